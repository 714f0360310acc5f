"""Retries under a deadline: which failures are retried, and how long to back off."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from linkmeter.engine.errors import ProviderError
from linkmeter.engine.outcome import RateLimitWait
from linkmeter.engine.provider import Policy

# An attempt that would start with less than this much time left is not worth starting.
MIN_ATTEMPT_SECONDS = 0.05


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, ProviderError):
        return exc.retryable
    return isinstance(exc, TimeoutError)


def backoff_seconds(policy: Policy, attempt: int, failure: BaseException) -> float:
    """The sleep after failed attempt number ``attempt`` (1 = the first): jittered exponential backoff
    (``backoff_base * 2**(attempt-1)`` plus up to ``backoff_base`` of jitter, at most ``backoff_max``), but never
    shorter than the upstream's Retry-After."""
    try:
        wait = policy.backoff_base * 2.0 ** (attempt - 1) + random.uniform(0, policy.backoff_base)
    except OverflowError:
        wait = policy.backoff_max
    wait = max(0.0, min(wait, policy.backoff_max))
    if isinstance(failure, ProviderError) and failure.retry_after is not None:
        wait = max(wait, failure.retry_after)
    return wait


def _late(policy: Policy, before_attempt: Callable[[], Awaitable[None]] | None) -> Exception:
    """No time left once the wait before an attempt returned (a loop lagging past the wait's margin): the
    request was never sent, so the call ends as its rate-limit wait would have (``rate_limited``), not as a
    timeout of the provider."""
    return RateLimitWait(policy.rate_per_sec) if before_attempt is not None else TimeoutError("deadline reached")


async def call_with_retries(
    attempt: Callable[[], Awaitable[Any]],
    *,
    policy: Policy,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    before_attempt: Callable[[], Awaitable[None]] | None = None,
    on_backoff: Callable[[BaseException, float], None] | None = None,
) -> tuple[Any, int]:
    """Run ``attempt()`` until it succeeds, fails for good, runs out of retries or of time.

    Each attempt gets ``min(policy.timeout, time left)``, counted after ``before_attempt`` (a rate-limit
    wait) returns. ``on_backoff(failure, seconds)`` is told before each backoff sleep (a bulk query ends the
    keys that cannot wait that long). Returns (result, attempts); the last exception is re-raised with
    ``.attempts`` set."""
    attempts = 0

    async def one_attempt() -> Any:
        nonlocal attempts
        if before_attempt is not None:
            await before_attempt()
        remaining = deadline - clock()
        if remaining <= 0:
            raise _late(policy, before_attempt)
        attempts += 1
        timeout = min(policy.timeout, remaining)
        async with asyncio.timeout(timeout):
            return await attempt()

    try:
        # The first attempt inlined (one_attempt() is the retries'): every frame between the call and its I/O
        # is passed through again on each resumption.
        if before_attempt is not None:
            await before_attempt()
        remaining = deadline - clock()
        if remaining <= 0:
            raise _late(policy, before_attempt)
        attempts = 1
        async with asyncio.timeout(min(policy.timeout, remaining)):
            return await attempt(), attempts
    except Exception as first:
        if not is_retryable(first) or policy.retries <= 0:
            first.attempts = attempts  # type: ignore[attr-defined]
            raise
        exc: Exception = first

    # A plain loop, not tenacity's: its machinery (inspecting each action for a coroutine on every
    # iteration) cost more than the retried call itself (a tenth of the engine's CPU when calls failed often).
    while True:
        sleep = backoff_seconds(policy, attempts, exc)
        if attempts > policy.retries or clock() + sleep + MIN_ATTEMPT_SECONDS >= deadline:
            exc.attempts = attempts  # type: ignore[attr-defined]
            raise exc
        if on_backoff is not None:
            on_backoff(exc, sleep)
        await asyncio.sleep(sleep)
        try:
            return await one_attempt(), attempts
        except Exception as failure:
            if not is_retryable(failure):
                failure.attempts = attempts  # type: ignore[attr-defined]
                raise
            exc = failure
