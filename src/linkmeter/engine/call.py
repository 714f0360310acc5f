"""One provider call with every policy applied: cache, single flight, breaker, concurrency cap, limiter, retries.

The order, for a call the cache does not answer: identical calls in flight are joined (single flight); the
breaker may refuse; the provider's concurrency cap and rate limit are waited for (each until just before the
URL's deadline), and each attempt is counted against the provider's budgets (``budgets.py``); the call is
tried and retried under the policy; a success is cached; the breaker records the outcome. This is every
call's path: each coroutine frame between the URL's task and the provider's I/O is passed through again on
every resumption, so helpers here are plain methods handed over with
``functools.partial``, never extra layers of ``await``. A provider with ``max_batch`` > 1 takes the same path
up to single flight, then waits for a bulk query (``batch.py``), which applies the rest per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from linkmeter.engine.batch import Batcher
from linkmeter.engine.budgets import budget_limits
from linkmeter.engine.cache import SingleFlight
from linkmeter.engine.errors import ProviderError
from linkmeter.engine.outcome import (
    DEFAULT_PAUSE_SECONDS,
    SLOT_WAIT_MARGIN,
    BudgetSpent,
    Outcome,
    RateLimitWait,
    cache_ttl,
    failure,
)
from linkmeter.engine.policy import call_with_retries
from linkmeter.engine.ports import CacheEntry, DnsApi, HttpApi
from linkmeter.engine.provider import CallContext, Collected, Policy, Provider
from linkmeter.engine.results import CallResult, CallStatus
from linkmeter.engine.state import EngineState


class CallPipeline:
    """Calls the providers of one engine. ``narrowed()`` views share its in-flight calls and concurrency caps."""

    def __init__(
        self,
        providers: Iterable[Provider],
        *,
        http: HttpApi,
        dns: DnsApi,
        state: EngineState,
        clock: Callable[[], float] = time.monotonic,
        bulk: bool = True,
        flights: SingleFlight[Outcome] | None = None,
        semaphores: dict[str, asyncio.Semaphore] | None = None,
        batchers: dict[str, Batcher] | None = None,
        slot_waiters: set[asyncio.Task[Any]] | None = None,
        keys_waiting: set[str] | None = None,
    ) -> None:
        providers = list(providers)
        # Tasks waiting for our own rate limit, pause or budget: a URL whose deadline comes while one still waits
        # (a loop lagging past the wait's own margin) reports that call rate_limited, not timeout.
        self._slot_waiters: set[asyncio.Task[Any]] = slot_waiters if slot_waiters is not None else set()
        # The cache keys whose call waits so: the calls that joined one in flight wait with it.
        self._keys_waiting: set[str] = keys_waiting if keys_waiting is not None else set()
        self.state = state
        self._http, self._dns = http, dns
        self._clock = clock
        self._flights: SingleFlight[Outcome] = flights if flights is not None else SingleFlight()
        self._semaphores = semaphores if semaphores is not None else {
            p.name: asyncio.Semaphore(p.policy.concurrency) for p in providers if p.policy.concurrency
        }
        self._contexts = {p.name: CallContext(http=http, dns=dns, config=p.config) for p in providers}
        self._disabled = {p.name: p.disabled_reason() for p in providers}
        self._budgets: dict[str, tuple[tuple[int, int], ...]] = {}  # each provider's budget_limits(policy)
        self._peek: Callable[[str], CacheEntry | None] | None = getattr(state.cache, "peek", None)
        # Bulk queries: one Batcher per provider that takes many keys per request (none with bulk=False: every
        # call then goes one by one through collect()). Empty for most engines, so call() pays one truth test.
        self._batchers = batchers if batchers is not None else {
            p.name: Batcher(p, context=self._contexts[p.name], state=state, clock=clock,
                            semaphore=self._semaphores.get(p.name), acquire=self._acquire,
                            wait_for_slot=self._wait_for_slot)
            for p in providers if bulk and p.max_batch > 1
        }

    def narrowed(self, providers: Iterable[Provider]) -> CallPipeline:
        """A pipeline for some of these providers sharing this one's clients, state, in-flight calls, caps and
        pending bulk queries."""
        return CallPipeline(providers, http=self._http, dns=self._dns, state=self.state, clock=self._clock,
                            flights=self._flights, semaphores=self._semaphores, batchers=self._batchers,
                            slot_waiters=self._slot_waiters, keys_waiting=self._keys_waiting)

    def waiting_for_slot(self, task: asyncio.Task[Any], cache_key: str | None = None) -> bool:
        """Whether ``task`` is waiting for a provider's rate-limit slot (or a pause) right now, itself or as one
        that joined the call of ``cache_key`` (``provider:key``) in flight."""
        return task in self._slot_waiters or (cache_key is not None and cache_key in self._keys_waiting)

    def batcher(self, name: str) -> Batcher | None:
        """The bulk-query batcher of provider ``name`` (None: its calls go one by one)."""
        return self._batchers.get(name)

    def disabled(self) -> dict[str, str]:
        return {name: reason for name, reason in self._disabled.items() if reason}

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

    async def call(self, provider: Provider, signals: dict[str, Any], deadline: float, priority: int = 0) -> CallResult:
        """One provider call for one URL, with every policy applied; never raises. ``priority`` (the analysis's,
        higher first) decides how much of the provider's budgets the call may spend (``engine/budgets.py``)."""
        started = self._clock()
        reason = self._disabled.get(provider.name)
        if reason:
            return CallResult(provider.name, CallStatus.DISABLED, message=reason)
        try:
            key = provider.key(signals)
        except Exception as exc:  # a provider bug costs only its own cell
            return CallResult(provider.name, CallStatus.ERROR, message=f"key() failed: {exc!r}")
        cache_key = f"{provider.name}:{key}"
        if provider.policy.cache_ttl > 0:
            entry = await self.state.cache.get(cache_key)
            if entry is not None:
                return CallResult(provider.name, CallStatus.CACHED, (self._clock() - started) * 1000, 0,
                                  "from cache", dict(entry.signals), entry.raw, key)
        batcher = self._batchers.get(provider.name) if self._batchers else None
        if batcher is None:
            upstream = partial(self._upstream, provider, signals, cache_key, deadline, priority)
        else:
            upstream = partial(batcher.submit, signals, cache_key, deadline, priority)
        shared, joined = await self._flights.run(cache_key, upstream)
        if joined and shared.status is CallStatus.TIMEOUT and self._clock() < deadline - 0.05:
            # The call we joined ran under its first caller's (earlier) deadline; ours has time left.
            shared, joined = await self._flights.run(cache_key, upstream)
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

    async def _upstream(self, provider: Provider, signals: dict[str, Any], cache_key: str, deadline: float,
                        priority: int = 0) -> Outcome:
        """The call itself, once for every URL that joined it: breaker, cap, limiter, retries, cache write."""
        policy = provider.policy
        name = provider.name
        started = self._clock()
        if not await self.state.breakers.allow(name, policy.breaker_threshold, policy.breaker_cooldown):
            return Outcome(CallStatus.CIRCUIT_OPEN, 0, "circuit open after repeated failures", None)
        success = False
        try:
            semaphore = self._semaphores.get(name)
            if semaphore is not None and not await self._acquire(semaphore, deadline):
                success = True  # our own cap was full: says nothing about the provider's health
                return Outcome(CallStatus.RATE_LIMITED, 0,
                               f"concurrency cap ({policy.concurrency}) full until the deadline", None)
            try:
                collected, attempts = await call_with_retries(
                    partial(self._attempt, provider, signals), policy=policy, deadline=deadline, clock=self._clock,
                    before_attempt=partial(self._wait_for_slot, name, policy, deadline, priority, cache_key),
                )
            finally:
                if semaphore is not None:
                    semaphore.release()
        except Exception as exc:
            shared, success = failure(exc, name, min(policy.timeout, deadline - started))
            return shared
        else:
            success = True
            if policy.cache_ttl > 0 and (ttl := cache_ttl(policy, collected)) > 0:
                await self.state.cache.set(cache_key, CacheEntry(collected.signals, collected.raw, time.time()), ttl)
            return Outcome(CallStatus.OK, attempts, "", collected)
        finally:
            await self.state.breakers.record(name, success, policy.breaker_threshold)

    async def _acquire(self, semaphore: asyncio.Semaphore, deadline: float) -> bool:
        """Take a place under the concurrency cap; False when none frees just before the URL's deadline (so the
        call can still say why it did not run)."""
        try:
            async with asyncio.timeout(max(0.0, deadline - self._clock() - SLOT_WAIT_MARGIN)):
                await semaphore.acquire()
        except TimeoutError:
            return False
        return True

    async def _wait_for_slot(self, name: str, policy: Policy, deadline: float, priority: int = 0,
                             cache_key: str | None = None) -> None:
        """Before each attempt: wait for a rate-limit slot, or for a pause after a 429 to end, then count the
        request against the provider's budgets; raises RateLimitWait when the wait would outlast the deadline,
        BudgetSpent when a budget is spent for this priority."""
        task = asyncio.current_task()
        if task is not None:
            self._slot_waiters.add(task)
        if cache_key is not None:
            self._keys_waiting.add(cache_key)
        try:
            await self._wait_for_rate(name, policy, deadline)
        finally:
            if task is not None:
                self._slot_waiters.discard(task)
            if cache_key is not None:
                self._keys_waiting.discard(cache_key)
        limits = self._budgets.get(name)
        if limits is None:
            limits = self._budgets[name] = budget_limits(policy)
        if limits and (refused := await self.state.budgets.spend(name, limits, priority)) is not None:
            raise BudgetSpent(refused)

    async def _wait_for_rate(self, name: str, policy: Policy, deadline: float) -> None:
        limiter = self.state.limiter
        while True:
            left = deadline - self._clock() - SLOT_WAIT_MARGIN
            if policy.rate_per_sec:
                wait = await limiter.reserve(name, policy.rate_per_sec, policy.burst, left)
            else:
                paused = await limiter.paused_for(name)
                wait = paused if paused <= left else None
            if wait is None:
                raise RateLimitWait(policy.rate_per_sec)
            if wait > 0:
                await asyncio.sleep(wait)
            # A 429 anywhere while we waited (slots are booked seconds ahead under load) pauses
            # the provider: our slot is void, take a new one after the pause. Asked of the shared state itself:
            # a mirror of it may not have heard of a pause set a moment ago.
            if wait == 0 or await limiter.paused_for(name, exact=True) <= 0:
                return

    async def _attempt(self, provider: Provider, signals: dict[str, Any]) -> Collected:
        try:
            collected = await provider.collect(self._contexts[provider.name], signals)
        except ProviderError as exc:
            if exc.rate_limited:
                # Every caller of this provider (every worker, with shared state) pauses too.
                await self.state.limiter.pause(provider.name, exc.retry_after or DEFAULT_PAUSE_SECONDS)
            raise
        if collected.pause:
            # A good answer that spent the allowance: hold every caller back before the next one is refused.
            await self.state.limiter.pause(provider.name, collected.pause)
        return collected
