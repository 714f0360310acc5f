"""The engine: runs the plan for one URL and for many, starting each provider the moment it is ready."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from linkmeter.engine.cache import CacheEntry, MemoryCache, ResultCache, SingleFlight
from linkmeter.engine.dns import DnsClient
from linkmeter.engine.http import HttpClient
from linkmeter.engine.limits import (
    CircuitBreakers,
    MemoryCircuitBreakers,
    MemoryRateLimiter,
    RateLimiter,
)
from linkmeter.engine.observe import EngineObserver, logging_context, notify_call, notify_url
from linkmeter.engine.plan import Plan
from linkmeter.engine.policy import call_with_retries
from linkmeter.engine.provider import CallContext, Collected, Provider, ProviderError
from linkmeter.engine.results import SUCCESS, CallResult, CallStatus, UrlResult, UrlStatus, url_status
from linkmeter.engine.urls import parse_url

log = logging.getLogger(__name__)

DEFAULT_URL_DEADLINE = 60.0
SLOT_WAIT_MARGIN = 0.05  # a wait for a slot ends this long before the URL deadline
DEFAULT_PAUSE_SECONDS = 1.0  # how long to leave a provider alone after a 429 that gave no Retry-After


@dataclass(slots=True)
class EngineState:
    """What calls share: caches, limits and breakers (in memory here; in Redis when workers scale out:
    ``linkmeter.engine.redis_state.redis_state``). ``closer`` releases what the state holds (a Redis pool)."""

    cache: ResultCache = field(default_factory=MemoryCache)
    limiter: RateLimiter = field(default_factory=MemoryRateLimiter)
    breakers: CircuitBreakers = field(default_factory=MemoryCircuitBreakers)
    closer: Callable[[], Awaitable[None]] | None = None

    async def aclose(self) -> None:
        if self.closer is not None:
            await self.closer()


@dataclass(slots=True)
class _Shared:
    """The outcome of one upstream call, handed to every URL that joined it in flight."""

    status: CallStatus
    attempts: int
    message: str
    collected: Collected | None


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
    ) -> None:
        self.plan = plan
        self.observer = observer  # set it before narrowed() views are made: they copy it
        self.http = http
        self.dns = dns
        self.state = state or EngineState()
        self.url_deadline = url_deadline
        self._clock = clock
        self._flights: SingleFlight[_Shared] = SingleFlight()
        self._semaphores = {
            p.name: asyncio.Semaphore(p.policy.concurrency) for p in plan.providers if p.policy.concurrency
        }
        self._contexts = {p.name: CallContext(http=http, dns=dns, config=p.config) for p in plan.providers}
        self._disabled = {p.name: p.disabled_reason() for p in plan.providers}
        self._selections: dict[frozenset[str], Engine] = {}
        self._peek: Callable[[str], CacheEntry | None] | None = getattr(self.state.cache, "peek", None)

    async def close(self) -> None:
        """Close the shared HTTP client and the shared state (their connection pools). Call once, when the
        process is done."""
        try:
            await self.http.close()
        finally:
            await self.state.aclose()

    def disabled(self) -> dict[str, str]:
        return {name: reason for name, reason in self._disabled.items() if reason}

    def narrowed(self, select: Iterable[str]) -> Engine:
        """An engine running only ``select`` (plus the providers they need), sharing this one's clients,
        state, in-flight calls and concurrency caps; close only this one. Raises PlanError for an unknown
        name."""
        view = Engine(Plan.build(self.plan.providers, select=select), http=self.http, dns=self.dns,
                      state=self.state, url_deadline=self.url_deadline, clock=self._clock, observer=self.observer)
        view._flights = self._flights
        view._semaphores = self._semaphores
        return view

    def for_selection(self, providers: Iterable[str]) -> Engine:
        """This engine for an empty selection, else its ``narrowed`` view for these providers, made once per
        distinct selection and kept. Raises PlanError for an unknown name."""
        key = frozenset(providers)
        if not key:
            return self
        view = self._selections.get(key)
        if view is None:
            view = self._selections[key] = self.narrowed(sorted(key))
        return view

    async def analyze(self, url: str, *, deadline: float | None = None) -> UrlResult:
        """Run every provider of the plan for one normalised URL; always returns, by the deadline."""
        started = self._clock()
        parsed = parse_url(url)
        signals: dict[str, Any] = {"url": parsed.url, "host": parsed.host, "domain": parsed.domain}
        run = _UrlRun(self, signals, started + (deadline or self.url_deadline))
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

    def cached(self, provider: Provider, signals: dict[str, Any]) -> CallResult | None:
        """The call's result when this process holds it in its cache (a ``PeekableCache``), at once: no task,
        no I/O. None means "run ``call``", which also reports a disabled provider or a failing key()."""
        if self._peek is None or provider.policy.cache_ttl <= 0 or self._disabled.get(provider.name):
            return None
        started = self._clock()
        try:
            key = provider.key(signals)
        except Exception:  # call() says what went wrong
            return None
        entry = self._peek(f"{provider.name}:{key}")
        if entry is None:
            return None
        return CallResult(provider.name, CallStatus.CACHED, (self._clock() - started) * 1000, 0, "from cache",
                          dict(entry.signals), entry.raw, key)

    async def call(self, provider: Provider, signals: dict[str, Any], deadline: float) -> CallResult:
        """One provider call for one URL, with every policy applied; never raises."""
        started = self._clock()
        reason = self._disabled.get(provider.name)
        if reason:
            return CallResult(provider.name, CallStatus.DISABLED, message=reason)
        try:
            key = provider.key(signals)
        except Exception as exc:  # a provider bug costs only its own cell
            return CallResult(provider.name, CallStatus.ERROR, message=f"key() failed: {exc!r}")
        cache_key = f"{provider.name}:{key}"
        policy = provider.policy
        if policy.cache_ttl > 0:
            entry = await self.state.cache.get(cache_key)
            if entry is not None:
                return CallResult(provider.name, CallStatus.CACHED, (self._clock() - started) * 1000, 0,
                                  "from cache", dict(entry.signals), entry.raw, key)
        shared, joined = await self._flights.run(
            cache_key, lambda: self._upstream(provider, signals, key, cache_key, deadline)
        )
        if joined and shared.status is CallStatus.TIMEOUT and self._clock() < deadline - 0.05:
            # The call we joined ran under its first caller's (earlier) deadline; ours has time left.
            shared, joined = await self._flights.run(
                cache_key, lambda: self._upstream(provider, signals, key, cache_key, deadline)
            )
        latency = (self._clock() - started) * 1000
        collected = shared.collected
        if joined:
            status = CallStatus.CACHED if shared.status is CallStatus.OK else shared.status
            message = "shared an identical call in flight" if status is CallStatus.CACHED else shared.message
            return CallResult(provider.name, status, latency, 0, message,
                              dict(collected.signals) if collected else {},
                              collected.raw if collected else None, key)
        return CallResult(provider.name, shared.status, latency, shared.attempts, shared.message,
                          collected.signals if collected else {}, collected.raw if collected else None, key)

    async def _upstream(
        self, provider: Provider, signals: dict[str, Any], key: str, cache_key: str, deadline: float
    ) -> _Shared:
        policy = provider.policy
        name = provider.name
        started = self._clock()
        if not await self.state.breakers.allow(name, policy.breaker_threshold, policy.breaker_cooldown):
            return _Shared(CallStatus.CIRCUIT_OPEN, 0, "circuit open after repeated failures", None)
        success = False
        try:
            semaphore = self._semaphores.get(name)
            if semaphore is not None:
                try:
                    # Give up just before the URL's deadline, so the call can still say why it did not run.
                    async with asyncio.timeout(max(0.0, deadline - self._clock() - SLOT_WAIT_MARGIN)):
                        await semaphore.acquire()
                except TimeoutError:
                    success = True  # our own cap was full: says nothing about the provider's health
                    return _Shared(CallStatus.RATE_LIMITED, 0,
                                   f"concurrency cap ({policy.concurrency}) full until the deadline", None)
            try:
                async def wait_for_slot() -> None:
                    limiter = self.state.limiter
                    while True:
                        left = deadline - self._clock() - SLOT_WAIT_MARGIN
                        if policy.rate_per_sec:
                            wait = await limiter.reserve(name, policy.rate_per_sec, policy.burst, left)
                        else:
                            paused = await limiter.paused_for(name)
                            wait = paused if paused <= left else None
                        if wait is None:
                            raise _RateLimitWait(policy.rate_per_sec)
                        if wait > 0:
                            await asyncio.sleep(wait)
                        # A 429 anywhere while we waited (slots are booked seconds ahead under load) pauses
                        # the provider: our slot is void, take a new one after the pause. Asked of the shared
                        # state itself: a mirror of it may not have heard of a pause set a moment ago.
                        if wait == 0 or await limiter.paused_for(name, exact=True) <= 0:
                            return

                async def attempt() -> Collected:
                    try:
                        return await provider.collect(self._contexts[name], signals)
                    except ProviderError as exc:
                        if exc.rate_limited:
                            # Every caller of this provider (every worker, with shared state) pauses too.
                            await self.state.limiter.pause(name, exc.retry_after or DEFAULT_PAUSE_SECONDS)
                        raise

                collected, attempts = await call_with_retries(
                    attempt, policy=policy, deadline=deadline, clock=self._clock, before_attempt=wait_for_slot,
                )
            finally:
                if semaphore is not None:
                    semaphore.release()
        except _RateLimitWait as exc:
            success = True  # our own limiter said no: the provider itself is healthy
            return _Shared(CallStatus.RATE_LIMITED, _attempts(exc), str(exc), None)
        except TimeoutError as exc:
            return _Shared(CallStatus.TIMEOUT, _attempts(exc),
                           f"no answer within {min(policy.timeout, deadline - started):.3g}s", None)
        except ProviderError as exc:
            status = CallStatus.RATE_LIMITED if exc.rate_limited else CallStatus.ERROR
            success = not exc.retryable and not exc.rate_limited  # a 4xx answer is the caller's problem
            return _Shared(status, _attempts(exc), exc.message, None)
        except Exception as exc:  # a provider bug costs only its own cell
            log.exception("provider %s failed unexpectedly", name)
            return _Shared(CallStatus.ERROR, _attempts(exc), f"unexpected {type(exc).__name__}: {exc}", None)
        else:
            success = True
            if policy.cache_ttl > 0:
                await self.state.cache.set(
                    cache_key, CacheEntry(collected.signals, collected.raw, time.time()), policy.cache_ttl
                )
            return _Shared(CallStatus.OK, attempts, "", collected)
        finally:
            await self.state.breakers.record(name, success, policy.breaker_threshold)


def _attempts(exc: BaseException) -> int:
    return int(getattr(exc, "attempts", 0))


class _RateLimitWait(Exception):
    def __init__(self, rate: float | None) -> None:
        limit = f"rate limit ({rate:g}/s)" if rate else "a pause after HTTP 429"
        super().__init__(f"{limit} would not free a slot before the deadline")


class _UrlRun:
    """One URL's run: starts providers as their inputs become final; ends by the deadline."""

    def __init__(self, engine: Engine, signals: dict[str, Any], deadline: float) -> None:
        self.engine = engine
        self.plan = engine.plan
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
            remaining = self.deadline - self.engine._clock()
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
        if self.ending or self.engine._clock() >= self.deadline:
            self._final(name, CallResult(
                name, CallStatus.SKIPPED, message="URL deadline reached before it could start"))
            return
        missing = [s for s in provider.needs if s not in self.signals]
        if missing:
            self._final(name, CallResult(name, CallStatus.SKIPPED, message=self._why_missing(missing)))
            return
        cached = self.engine.cached(provider, self.signals)
        if cached is not None:
            self._final(name, cached)
            return
        self.tasks[name] = asyncio.create_task(self._run(provider))

    async def _run(self, provider: Provider) -> None:
        with logging_context(provider=provider.name):
            result = await self.engine.call(provider, dict(self.signals), self.deadline)
        self._final(provider.name, result)

    def _final(self, name: str, result: CallResult) -> None:
        if name in self.results:
            return
        self.results[name] = result
        if self.engine.observer is not None:
            notify_call(self.engine.observer, name, result)
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

    def _finish_unfinished(self) -> None:
        self.ending = True  # on cancellation the clock is not past the deadline: no dependent may start
        for name, task in list(self.tasks.items()):
            if name not in self.results:
                task.cancel()
                self._final(name, CallResult(name, CallStatus.TIMEOUT, message="URL deadline reached"))
        for provider in self.plan.providers:
            if provider.name not in self.results:
                self._final(provider.name, CallResult(
                    provider.name, CallStatus.SKIPPED, message="URL deadline reached before it could start"))
