"""The engine: runs the plan for one URL and for many, starting each provider the moment it is ready."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from linkmeter.engine.call import CallPipeline
from linkmeter.engine.dns import DnsClient
from linkmeter.engine.http import HttpClient
from linkmeter.engine.observe import EngineObserver, logging_context, notify_call, notify_url
from linkmeter.engine.plan import Plan, PlanError
from linkmeter.engine.provider import Provider
from linkmeter.engine.results import (
    SUCCESS,
    URL_DEADLINE_MESSAGE,
    CallResult,
    CallStatus,
    UrlResult,
    UrlStatus,
    url_status,
)
from linkmeter.engine.settings import DEFAULT_URL_DEADLINE
from linkmeter.engine.state import EngineState
from linkmeter.engine.urls import parse_url

log = logging.getLogger(__name__)


class Engine:
    """Holds the plan, the shared clients and the shared state. Use one per process."""

    def __init__(
        self,
        plan: Plan,
        *,
        http: HttpClient,
        dns: DnsClient,
        state: EngineState | None = None,
        url_deadline: float = DEFAULT_URL_DEADLINE,
        clock: Callable[[], float] = time.monotonic,
        observer: EngineObserver | None = None,
        bulk: bool = True,
    ) -> None:
        self.plan = plan
        self.observer = observer  # set it before narrowed() views are made: they copy it
        self.http = http
        self.dns = dns
        self.state = state or EngineState()
        self.url_deadline = url_deadline
        self.bulk = bulk  # False (LINKMETER_BULK=off): every call goes one by one through collect()
        self._clock = clock
        # Over every known provider, not only the plan's: a selection's view (narrowed) shares its caps and
        # pending bulk queries, and may run a provider outside the default set.
        self.calls = CallPipeline(plan.known or plan.providers, http=http, dns=dns, state=self.state, clock=clock,
                                  bulk=bulk)
        self._selections: dict[frozenset[str], Engine] = {}

    async def close(self) -> None:
        """Close the providers (what they run in the background), the shared HTTP client and the shared state
        (their connection pools). Call once, when the process is done."""
        try:
            for provider in self.plan.known or self.plan.providers:
                try:
                    await provider.aclose()
                except Exception:  # one provider's cleanup must not keep the others open
                    log.exception("closing provider %s failed", provider.name)
            await self.http.close()
        finally:
            await self.state.aclose()

    def disabled(self) -> dict[str, str]:
        return self.calls.disabled()

    def narrowed(self, select: Iterable[str]) -> Engine:
        """An engine running only ``select`` (plus the providers they need), chosen among every provider this
        one knows (in its default set or not), sharing this one's clients, state, in-flight calls, concurrency
        caps and pending bulk queries; close only this one. Raises PlanError for an unknown name."""
        view = Engine(Plan.build(self.plan.known or self.plan.providers, select=select), http=self.http,
                      dns=self.dns, state=self.state, url_deadline=self.url_deadline, clock=self._clock,
                      observer=self.observer, bulk=self.bulk)
        view.calls = self.calls.narrowed(view.plan.providers)
        return view

    def for_selection(self, providers: Iterable[str]) -> Engine:
        """This engine for an empty selection (its plan: the default set), else its ``narrowed`` view for these
        providers, made once per distinct selection and kept. Raises PlanError for an unknown name."""
        key = frozenset(providers)
        if not key:
            return self
        view = self._selections.get(key)
        if view is None:
            view = self._selections[key] = self.narrowed(sorted(key))
        return view

    async def analyze(self, url: str, *, deadline: float | None = None, priority: int = 0) -> UrlResult:
        """Run every provider of the plan for one normalised URL; always returns, by the deadline. ``priority``
        (higher first): how much of the providers' budgets its calls may spend (``engine/budgets.py``)."""
        started = self._clock()
        parsed = parse_url(url)
        signals: dict[str, Any] = {"url": parsed.url, "host": parsed.host, "domain": parsed.domain}
        run = _UrlRun(self.plan, self.calls, self._clock, self.observer, signals,
                      started + (deadline or self.url_deadline), priority)
        with logging_context(url=parsed.url):
            results = await run.execute()
        result = UrlResult(
            url=parsed.url,
            status=url_status(results),
            signals=signals,
            providers=results,
            elapsed_ms=(self._clock() - started) * 1000,
        )
        if self.observer is not None:
            notify_url(self.observer, result)
        return result

    async def refill(self, name: str, signals: dict[str, Any], *, priority: int = 0,
                     deadline: float | None = None) -> dict[str, CallResult]:
        """Call provider ``name`` again for a URL analysed before (``signals``: what that analysis found), and
        then the indicators that derive from it, with its new signals: no other provider is asked again (a
        deferred cell filled later). Answers the new result of each (the provider first). Raises PlanError for
        an unknown name."""
        known = {p.name: p for p in self.plan.known or self.plan.providers}
        provider = known.get(name)
        if provider is None:
            raise PlanError(f"unknown provider {name!r}")
        until = self._clock() + (deadline or self.url_deadline)
        merged = dict(signals)
        with logging_context(url=str(signals.get("url", "")), provider=name):
            result = await self.calls.call(provider, merged, until, priority)
        results = {name: result}
        if result.status not in SUCCESS:
            return results
        merged.update(result.signals)
        for dependent in _indicators_after(self.plan, name, known):
            indicator = known[dependent]
            if all(signal in merged for signal in indicator.needs):
                derived = await self.calls.call(indicator, dict(merged), until, priority)
                results[dependent] = derived
                if derived.status in SUCCESS:
                    merged.update(derived.signals)
        return results

    async def analyze_many(
        self, urls: Iterable[str], *, concurrency: int = 50, deadline: float | None = None
    ) -> AsyncIterator[UrlResult]:
        """Analyse URLs with at most ``concurrency`` in flight, yielding results as they finish."""
        done: asyncio.Queue[UrlResult] = asyncio.Queue()
        pending: set[asyncio.Task[None]] = set()
        iterator = iter(urls)

        async def one(url: str) -> None:
            try:
                result = await self.analyze(url, deadline=deadline)
            except Exception as exc:  # analyze() never raises for valid URLs; a bad one must not hang us
                log.exception("analysis of %s failed", url)
                result = UrlResult(url, UrlStatus.FAILED, {"url": url}, {}, 0.0)
                result.signals["error"] = str(exc)
                if self.observer is not None:
                    notify_url(self.observer, result)
            await done.put(result)

        def launch_next() -> bool:
            # Pull from the input only when a slot frees, so a huge input never piles up as tasks.
            for url in iterator:
                task = asyncio.create_task(one(url))
                pending.add(task)
                task.add_done_callback(pending.discard)
                return True
            return False

        in_flight = sum(1 for _ in range(concurrency) if launch_next())
        try:
            while in_flight:
                result = await done.get()
                in_flight -= 1
                in_flight += launch_next()
                yield result
        finally:
            for task in pending:
                task.cancel()


def _indicators_after(plan: Plan, name: str, known: dict[str, Provider]) -> list[str]:
    """The indicators (no I/O) that depend on provider ``name``, directly or through other indicators, in
    an order where each comes after those it waits for."""
    found: list[str] = []
    frontier = [name]
    while frontier:
        current = frontier.pop(0)
        for dependent in plan.dependents.get(current, ()):
            if dependent not in found and dependent in known and known[dependent].group == "indicator":
                found.append(dependent)
                frontier.append(dependent)
    order = [p.name for p in plan.providers]  # the plan's order: each after what it waits for
    return sorted(found, key=lambda n: order.index(n) if n in order else len(order))


class _UrlRun:
    """One URL's run: starts providers as their inputs become final; ends by the deadline."""

    def __init__(self, plan: Plan, calls: CallPipeline, clock: Callable[[], float], observer: EngineObserver | None,
                 signals: dict[str, Any], deadline: float, priority: int = 0) -> None:
        self.plan = plan
        self.priority = priority
        self.calls = calls
        self.clock = clock
        self.observer = observer
        self.signals = signals
        self.deadline = deadline
        self.results: dict[str, CallResult] = {}
        self.waiting = {name: set(deps) for name, deps in self.plan.waits_for.items()}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.all_final = asyncio.Event()
        self.ending = False  # deadline reached or cancelled: start nothing more

    async def execute(self) -> dict[str, CallResult]:
        # Roots first, listed before any starts: a cached root finishes at once and starts its dependents.
        for name in [name for name, deps in self.waiting.items() if not deps]:
            self._start(name)
        if len(self.results) < len(self.plan.providers):
            remaining = self.deadline - self.clock()
            try:
                async with asyncio.timeout(max(0.0, remaining)):
                    await self.all_final.wait()
            except TimeoutError:
                pass
            finally:
                self._finish_unfinished()
        return {p.name: self.results[p.name] for p in self.plan.providers}

    def _start(self, name: str) -> None:
        provider = self.plan.by_name(name)
        if self.ending or self.clock() >= self.deadline:
            self._final(name, CallResult(
                name, CallStatus.SKIPPED, message="URL deadline reached before it could start"))
            return
        missing = [s for s in provider.needs if s not in self.signals]
        if missing:
            self._final(name, CallResult(name, CallStatus.SKIPPED, message=self._why_missing(missing)))
            return
        cached = self.calls.cached(provider, self.signals)
        if cached is not None:
            self._final(name, cached)
            return
        self.tasks[name] = asyncio.create_task(self._run(provider))

    async def _run(self, provider: Provider) -> None:
        with logging_context(provider=provider.name):
            result = await self.calls.call(provider, dict(self.signals), self.deadline, self.priority)
        self._final(provider.name, result)

    def _final(self, name: str, result: CallResult) -> None:
        if name in self.results:
            return
        self.results[name] = result
        if self.observer is not None:
            notify_call(self.observer, name, result)
        if result.status in SUCCESS:
            for signal, value in result.signals.items():
                if self.plan.producer.get(signal) == name:
                    self.signals[signal] = value
        for dependent in self.plan.dependents[name]:
            deps = self.waiting[dependent]
            deps.discard(name)
            if not deps and dependent not in self.results and dependent not in self.tasks:
                self._start(dependent)
        if len(self.results) == len(self.plan.providers):
            self.all_final.set()

    def _why_missing(self, missing: Sequence[str]) -> str:
        reasons = []
        for signal in missing:
            producer = self.plan.producer.get(signal)
            result = self.results.get(producer) if producer else None
            if result is None:
                reasons.append(f"needs {signal}: nothing produced it")
            elif result.status in SUCCESS:
                reasons.append(f"needs {signal}: {producer} did not report it")
            else:
                detail = f" ({result.message})" if result.message else ""
                reasons.append(f"needs {signal}: {producer} ended {result.status}{detail}")
        return "; ".join(reasons)

    def _cache_key(self, name: str) -> str | None:
        try:
            return f"{name}:{self.plan.by_name(name).key(self.signals)}"
        except Exception:  # the call itself reported a failing key()
            return None

    def _finish_unfinished(self) -> None:
        self.ending = True  # on cancellation the clock is not past the deadline: no dependent may start
        for name, task in list(self.tasks.items()):
            if name not in self.results:
                waiting = self.calls.waiting_for_slot(task, self._cache_key(name))  # before the cancellation
                task.cancel()
                if waiting:
                    self._final(name, CallResult(name, CallStatus.RATE_LIMITED,
                                                 message="URL deadline reached while waiting for a rate-limit slot"))
                else:
                    self._final(name, CallResult(name, CallStatus.TIMEOUT, message=URL_DEADLINE_MESSAGE))
        for provider in self.plan.providers:
            if provider.name not in self.results:
                self._final(provider.name, CallResult(
                    provider.name, CallStatus.SKIPPED, message="URL deadline reached before it could start"))
