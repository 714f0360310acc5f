"""Fake providers for engine tests: behaviour given as a coroutine function, no network."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from linkmeter.engine.dns import DnsClient
from linkmeter.engine.http import HttpClient
from linkmeter.engine.plan import Plan
from linkmeter.engine.provider import (
    CallContext,
    Collected,
    Policy,
    Provider,
    ProviderConfig,
    ProviderError,
    Signals,
    SignalSpec,
)
from linkmeter.engine.runner import Engine
from linkmeter.engine.state import EngineState

Behaviour = Callable[[Signals, int], Awaitable[dict[str, Any]]]


class FakeProvider(Provider):
    """A provider whose collect() runs ``behave(signals, call_number)``; records every call."""

    def __init__(
        self,
        name: str,
        *,
        provides: tuple[str, ...] = (),
        needs: tuple[str, ...] = ("url",),
        wants: tuple[str, ...] = (),
        policy: Policy | None = None,
        behave: Behaviour | None = None,
        key_signal: str = "url",
        requires_key: bool = False,
        api_key: str | None = None,
        in_default_set: bool = True,
    ) -> None:
        super().__init__(ProviderConfig(base_url="", api_key=api_key))
        self.name = name  # type: ignore[misc]
        self.in_default_set = in_default_set  # type: ignore[misc]
        self.needs = needs  # type: ignore[misc]
        self.wants = wants  # type: ignore[misc]
        self.provides = {s: SignalSpec(int, s) for s in provides}  # type: ignore[misc]
        self.policy = policy or Policy(timeout=2.0, retries=0, backoff_base=0.01)  # type: ignore[misc]
        self.requires_key = requires_key  # type: ignore[misc]
        self._behave = behave or returns({s: 1 for s in provides})
        self._key_signal = key_signal
        self.calls = 0
        self.finished_at: float | None = None
        self.in_flight = 0
        self.max_in_flight = 0

    def key(self, signals: Signals) -> str:
        return str(signals.get(self._key_signal))

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            out = await self._behave(signals, self.calls)
        finally:
            self.in_flight -= 1
        self.finished_at = time.monotonic()
        return Collected(signals=out, raw={"fake": self.name})


def returns(values: Mapping[str, Any], *, delay: float = 0.0) -> Behaviour:
    async def behave(signals: Signals, n: int) -> dict[str, Any]:
        if delay:
            await asyncio.sleep(delay)
        return dict(values)

    return behave


def fails(error: BaseException, *, times: int | None = None, then: Mapping[str, Any] | None = None) -> Behaviour:
    """Raise ``error`` on the first ``times`` calls (all calls when None), then return ``then``."""

    async def behave(signals: Signals, n: int) -> dict[str, Any]:
        if times is None or n <= times:
            raise error
        return dict(then or {})

    return behave


def hangs() -> Behaviour:
    async def behave(signals: Signals, n: int) -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return behave


def retryable(message: str = "HTTP 503", *, retry_after: float | None = None, status: int = 503) -> ProviderError:
    return ProviderError(message, retryable=True, retry_after=retry_after, status=status,
                         rate_limited=status == 429)


def cached_provider(**options: Any) -> FakeProvider:
    """Provider "p": one signal from the domain, its results cached for a minute."""
    return FakeProvider("p", needs=("domain",), provides=("p.x",), key_signal="domain",
                        policy=Policy(timeout=1, cache_ttl=60), **options)


def make_engine(*providers: Provider, url_deadline: float = 5.0, state: EngineState | None = None,
                select: list[str] | None = None, bulk: bool = True) -> Engine:
    plan = Plan.build(list(providers), select=select)
    return Engine(plan, http=HttpClient(), dns=DnsClient([("127.0.0.1", 9)]), state=state,
                  url_deadline=url_deadline, bulk=bulk)


ItemAnswer = Callable[[Signals], Collected]  # one key's answer; raises ProviderError for that key's own error
RequestHook = Callable[[list[str], int], Awaitable[None]]  # (keys, request number): may raise or hang


def one_value(name: str) -> ItemAnswer:
    """The default answer: a signal computed from the key alone, so any batching gives the same results."""

    def answer(signals: Signals) -> Collected:
        return Collected({f"{name}.x": len(str(signals["url"]))}, raw={"url": signals["url"]})

    return answer


class BulkFake(FakeProvider):
    """A bulk provider: ``collect_many`` records each request's keys (``batches``) and answers every key with
    ``item`` (a ProviderError it raises is that key's outcome); ``collect`` answers one key the same way
    (``singles``). ``before(keys, n)`` runs first in both, for request-level failures and hangs."""

    def __init__(self, name: str, *, max_batch: int = 100, linger: float = 0.02, item: ItemAnswer | None = None,
                 before: RequestHook | None = None, policy: Policy | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("provides", (f"{name}.x",))
        super().__init__(name, policy=policy or Policy(timeout=2.0, retries=0, backoff_base=0.01,
                                                        batch_linger=linger), **kwargs)
        self.max_batch = max_batch  # type: ignore[misc]
        self._item = item or one_value(name)
        self._before = before
        self.batches: list[list[str]] = []
        self.singles: list[str] = []

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        key = self.key(signals)
        self.singles.append(key)
        if self._before is not None:
            await self._before([key], len(self.singles))
        return self._item(signals)

    async def collect_many(self, ctx: CallContext, batch: Sequence[Signals]) -> list[Collected | ProviderError]:
        keys = [self.key(signals) for signals in batch]
        self.batches.append(keys)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self._before is not None:
                await self._before(keys, len(self.batches))
        finally:
            self.in_flight -= 1
        answers: list[Collected | ProviderError] = []
        for signals in batch:
            try:
                answers.append(self._item(signals))
            except ProviderError as exc:
                answers.append(exc)
        return answers
