"""Bulk queries: calls to a provider that answers many keys per request wait briefly and go out as one request.

A provider with ``max_batch`` > 1 gets one ``Batcher``. A call reaches it after the cache (the runner's peek
and ``CallPipeline.call``'s read) and single flight (a key already in flight, batched or not, is joined
there, never sent twice), and waits in the pending batch. The batch is sent when ``max_batch`` keys wait,
when ``policy.batch_linger`` has passed since its first key, or at once when a key arrives whose URL deadline
is nearer than the linger. One request is one breaker check, one place under the concurrency cap, one
rate-limiter slot per attempt (the limiter counts requests, not keys) and one attempt loop under
``call_with_retries``; the breaker records the request's outcome once.

Deadlines: keys of one request belong to URLs with different deadlines. The request runs under the latest of
them (every wait and attempt is bounded by it), and each key ends by its own:

- while the request waits for our own concurrency cap or rate limit, a key whose deadline comes (50 ms
  before it, as the one-key path's waits do) ends ``rate_limited`` with the reason;
- while an attempt is on its way, it ends ``timeout`` then;
- before a backoff sleep, every key that would have no time for the next attempt ends at once with the
  failure the request just got (its status and message), as its own one-key call would have stopped
  retrying; the other keys are retried together, and only they are sent again.

A key whose URL gives up (cancelled) leaves the request without cancelling it for the others; a request no key
waits for any more is cancelled. Outcomes per key: ``Collected`` is ``ok`` (cached for ``min(cache_ttl,
ttl)``), a ``ProviderError`` item is that key's ``error`` (``rate_limited`` when it says so; neither pauses the
provider nor counts against its breaker: it is an answer about one key); a raised ``ProviderError`` or a
timeout fails every key still waiting with one status and message. ``attempts`` is the request's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from linkmeter.engine.errors import ProviderDisabled, ProviderError
from linkmeter.engine.observe import LOG_FIELDS, logging_context
from linkmeter.engine.outcome import (
    DEFAULT_PAUSE_SECONDS,
    SLOT_WAIT_MARGIN,
    Outcome,
    cache_ttl,
    failure,
    rate_limit_message,
)
from linkmeter.engine.policy import MIN_ATTEMPT_SECONDS, call_with_retries
from linkmeter.engine.ports import CacheEntry
from linkmeter.engine.provider import CallContext, Collected, Policy, Provider
from linkmeter.engine.results import CallStatus
from linkmeter.engine.state import EngineState

Acquire = Callable[[asyncio.Semaphore, float], Awaitable[bool]]
WaitForSlot = Callable[[str, Policy, float, int], Awaitable[None]]  # name, policy, deadline, priority

# A request's log lines are about many URLs: none of theirs is carried over from the call that flushed it.
_NO_URL_FIELDS = dict.fromkeys(LOG_FIELDS)


@dataclass(slots=True, eq=False)
class _Key:
    """One call waiting for a bulk query: its signals, its cache key, its URL's deadline, its outcome."""

    signals: dict[str, Any]
    cache_key: str
    deadline: float
    started: float
    future: asyncio.Future[Outcome]
    timer: asyncio.TimerHandle | None = None
    priority: int = 0  # its analysis's: a request spends the budgets at its keys' highest


Answers = list[tuple[_Key, Collected | ProviderError]]


@dataclass(slots=True, eq=False)
class _Request:
    """One upstream request for several keys, across its attempts."""

    keys: list[_Key]
    deadline: float  # the latest of its keys' deadlines
    live: int  # keys still waiting for it
    waiting: str | None = None  # why, while it waits for our own cap or limiter (a key ending then: rate_limited)
    attempts: int = 0
    settled: bool = False  # its outcomes are being handed out: nothing cancels it any more
    task: asyncio.Task[None] | None = None


class Batcher:
    """Gathers one provider's calls across every URL in flight into bulk requests (``collect_many``)."""

    def __init__(self, provider: Provider, *, context: CallContext, state: EngineState, clock: Callable[[], float],
                 semaphore: asyncio.Semaphore | None, acquire: Acquire, wait_for_slot: WaitForSlot) -> None:
        self._provider = provider
        self._context = context
        self._state = state
        self._clock = clock
        self._semaphore = semaphore
        self._acquire = acquire
        self._wait_for_slot = wait_for_slot
        self._pending: list[_Key] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.requests = 0  # upstream requests sent, every attempt counted (tests, the benchmark's notes)
        self.keys_sent = 0  # keys those requests carried

    @property
    def requests_in_flight(self) -> int:
        return len(self._tasks)

    async def submit(self, signals: dict[str, Any], cache_key: str, deadline: float, priority: int = 0) -> Outcome:
        """Wait in the pending batch, then for the request that carries this key; its outcome for the key."""
        loop = asyncio.get_running_loop()
        now = self._clock()
        key = _Key(signals, cache_key, deadline, now, loop.create_future(), priority=priority)
        pending = self._pending
        pending.append(key)
        linger = self._provider.policy.batch_linger
        if len(pending) >= self._provider.max_batch or deadline - now <= linger + SLOT_WAIT_MARGIN:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(linger, self._flush)
        return await key.future  # cancelled with our URL: the key leaves its batch (see _key_done)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        keys = [key for key in self._pending if not key.future.done()]  # not those whose URL gave up
        self._pending = []
        if not keys:
            return
        loop = asyncio.get_running_loop()
        request = _Request(keys, max(key.deadline for key in keys), len(keys))
        now = self._clock()
        for key in keys:
            key.future.add_done_callback(partial(self._key_done, request, key))
            key.timer = loop.call_later(key.deadline - SLOT_WAIT_MARGIN - now, self._expire, request, key)
        with logging_context(**{**_NO_URL_FIELDS, "provider": self._provider.name}):
            task = loop.create_task(self._send(request))
        request.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _key_done(self, request: _Request, key: _Key, future: asyncio.Future[Outcome]) -> None:
        if key.timer is not None:
            key.timer.cancel()
            key.timer = None
        if future.cancelled():  # its URL gave up
            self._drop(request)

    def _drop(self, request: _Request) -> None:
        request.live -= 1
        if request.live <= 0 and not request.settled and request.task is not None:
            request.task.cancel()  # nobody waits for it any more

    def _end(self, request: _Request, key: _Key, outcome: Outcome) -> None:
        """End one key before its request does."""
        key.future.set_result(outcome)
        self._drop(request)

    def _expire(self, request: _Request, key: _Key) -> None:
        key.timer = None
        if key.future.done():
            return
        if request.waiting is not None:
            outcome = Outcome(CallStatus.RATE_LIMITED, request.attempts, request.waiting, None)
        else:
            outcome = Outcome(CallStatus.TIMEOUT, request.attempts,
                              f"no answer within {key.deadline - key.started:.3g}s", None)
        self._end(request, key, outcome)

    def _on_backoff(self, request: _Request, policy: Policy, exc: BaseException, sleep: float) -> None:
        """Before a backoff sleep: the keys with no time for the next attempt end with this failure (the margin:
        a key still waiting ends that long before its deadline)."""
        last_start = self._clock() + sleep + MIN_ATTEMPT_SECONDS + SLOT_WAIT_MARGIN
        outcome: Outcome | None = None
        for key in request.keys:
            if key.deadline <= last_start and not key.future.done():
                if outcome is None:
                    shown, _ = failure(exc, self._provider.name, policy.timeout)  # only retryable ones get here
                    outcome = Outcome(shown.status, request.attempts, shown.message, None)
                self._end(request, key, outcome)

    async def _send(self, request: _Request) -> None:
        provider = self._provider
        policy, name = provider.policy, provider.name
        breakers = self._state.breakers
        started = self._clock()
        if not await breakers.allow(name, policy.breaker_threshold, policy.breaker_cooldown):
            self._settle(request, Outcome(CallStatus.CIRCUIT_OPEN, 0, "circuit open after repeated failures", None))
            return
        success = False
        try:
            semaphore = self._semaphore
            if semaphore is not None:
                request.waiting = f"concurrency cap ({policy.concurrency}) full until the deadline"
                if not await self._acquire(semaphore, request.deadline):
                    success = True  # our own cap was full: says nothing about the provider's health
                    self._settle(request, Outcome(CallStatus.RATE_LIMITED, 0, request.waiting, None))
                    return
                request.waiting = None
            try:
                answers, attempts = await call_with_retries(
                    partial(self._attempt, request), policy=policy, deadline=request.deadline, clock=self._clock,
                    before_attempt=partial(self._before_attempt, request, policy),
                    on_backoff=partial(self._on_backoff, request, policy),
                )
            finally:
                if semaphore is not None:
                    semaphore.release()
        except Exception as exc:
            outcome, success = failure(exc, name, min(policy.timeout, request.deadline - started))
            self._settle(request, outcome)
        else:
            success = True
            await self._deliver(policy, answers, attempts, request)
        finally:
            # Cancelled (every key gone) while it waited for our own cap or limiter: not the provider's health.
            await breakers.record(name, success or request.waiting is not None, policy.breaker_threshold)

    async def _before_attempt(self, request: _Request, policy: Policy) -> None:
        request.waiting = rate_limit_message(policy.rate_per_sec)
        priority = max((key.priority for key in request.keys if not key.future.done()), default=0)
        await self._wait_for_slot(self._provider.name, policy, request.deadline, priority)
        request.waiting = None
        request.attempts += 1

    async def _attempt(self, request: _Request) -> Answers:
        keys = [key for key in request.keys if not key.future.done()]  # a retry sends only the keys still waiting
        if not keys:  # cannot happen: the request is cancelled when its last key leaves
            raise asyncio.CancelledError
        self.requests += 1
        self.keys_sent += len(keys)
        try:
            answers = await self._provider.collect_many(self._context, [key.signals for key in keys])
        except ProviderError as exc:
            if exc.rate_limited:
                # Every caller of this provider (every worker, with shared state) pauses too.
                await self._state.limiter.pause(self._provider.name, exc.retry_after or DEFAULT_PAUSE_SECONDS)
            raise
        if len(answers) != len(keys):
            raise RuntimeError(f"collect_many answered {len(answers)} outcomes for {len(keys)} keys")
        pause = max((answer.pause or 0.0 for answer in answers if isinstance(answer, Collected)), default=0.0)
        if pause:
            # A good answer that spent the allowance: hold every caller back before the next one is refused.
            await self._state.limiter.pause(self._provider.name, pause)
        return list(zip(keys, answers, strict=True))

    async def _deliver(self, policy: Policy, answers: Answers, attempts: int, request: _Request) -> None:
        """Cache the answers (before the keys leave single flight, so a new call finds them), then hand them out."""
        request.settled = True
        if policy.cache_ttl > 0:
            stored = time.time()
            writes = [self._state.cache.set(key.cache_key, CacheEntry(answer.signals, answer.raw, stored), ttl)
                      for key, answer in answers
                      if isinstance(answer, Collected) and (ttl := cache_ttl(policy, answer)) > 0]
            if len(writes) == 1:
                await writes[0]
            elif writes:
                await asyncio.gather(*writes)  # concurrently: a shared cache sends them in one round trip
        for key, answer in answers:
            if not key.future.done():
                key.future.set_result(_answer(answer, attempts))

    def _settle(self, request: _Request, outcome: Outcome) -> None:
        """The request failed as a whole: every key still waiting ends with its outcome."""
        request.settled = True
        for key in request.keys:
            if not key.future.done():
                key.future.set_result(outcome)


def _answer(answer: Collected | ProviderError | object, attempts: int) -> Outcome:
    if isinstance(answer, Collected):
        return Outcome(CallStatus.OK, attempts, "", answer)
    if isinstance(answer, ProviderDisabled):
        return Outcome(CallStatus.DISABLED, attempts, answer.message, None)
    if isinstance(answer, ProviderError):
        status = CallStatus.RATE_LIMITED if answer.rate_limited else CallStatus.ERROR
        return Outcome(status, attempts, answer.message, None)
    return Outcome(CallStatus.ERROR, attempts,
                   f"collect_many answered {type(answer).__name__}, not Collected or ProviderError", None)
