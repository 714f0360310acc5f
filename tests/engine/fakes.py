"""Fake providers for engine tests: behaviour given as a coroutine function, no network."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
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
    ) -> None:
        super().__init__(ProviderConfig(base_url="", api_key=api_key))
        self.name = name  # type: ignore[misc]
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
                select: list[str] | None = None) -> Engine:
    plan = Plan.build(list(providers), select=select)
    return Engine(plan, http=HttpClient(), dns=DnsClient([("127.0.0.1", 9)]), state=state,
                  url_deadline=url_deadline)
