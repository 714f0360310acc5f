"""Retries under a deadline: which failures are retried, and how long to back off (tenacity)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential_jitter

from linkmeter.engine.errors import ProviderError
from linkmeter.engine.outcome import RateLimitWait
from linkmeter.engine.provider import Policy

# An attempt that would start with less than this much time left is not worth starting.
MIN_ATTEMPT_SECONDS = 0.05


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, ProviderError):
        return exc.retryable
    return isinstance(exc, TimeoutError)


class _WaitRetryAfterOrBackoff:
    """Jittered exponential backoff, but never shorter than the upstream's Retry-After."""

    def __init__(self, policy: Policy) -> None:
        self._backoff = wait_exponential_jitter(
            multiplier=policy.backoff_base, max=policy.backoff_max, jitter=policy.backoff_base
        )

    def __call__(self, state: RetryCallState) -> float:
        wait = float(self._backoff(state))
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, ProviderError) and exc.retry_after is not None:
            wait = max(wait, exc.retry_after)
        return wait


def _tell_backoff(on_backoff: Callable[[BaseException, float], None], state: RetryCallState) -> None:
    failure = state.outcome.exception() if state.outcome is not None else None
    if failure is not None:
        on_backoff(failure, state.upcoming_sleep)


class _StopAtDeadline(stop_base):
    """Stop when sleeping the upcoming backoff would leave no time for another attempt."""

    def __init__(self, deadline: float, clock: Callable[[], float]) -> None:
        self._deadline = deadline
        self._clock = clock

    def __call__(self, state: RetryCallState) -> bool:
        return self._clock() + state.upcoming_sleep + MIN_ATTEMPT_SECONDS >= self._deadline


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
        # Fast path: most calls succeed at once, and tenacity's machinery costs more than the call's
        # own bookkeeping; it takes over only after a retryable failure. (one_attempt() inlined: every
        # frame between the call and its I/O is passed through again on each resumption.)
        if before_attempt is not None:
            await before_attempt()
        remaining = deadline - clock()
        if remaining <= 0:
            raise _late(policy, before_attempt)
        attempts = 1
        async with asyncio.timeout(min(policy.timeout, remaining)):
            return await attempt(), attempts
    except Exception as exc:
        if not is_retryable(exc) or policy.retries <= 0:
            exc.attempts = attempts  # type: ignore[attr-defined]
            raise
        first_failure: Exception | None = exc

    async def replay_first_then_attempt() -> Any:
        nonlocal first_failure
        if first_failure is not None:
            # Hand tenacity the failure we already saw, so its backoff and Retry-After see it too.
            failure, first_failure = first_failure, None
            raise failure
        return await one_attempt()

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.retries + 1) | _StopAtDeadline(deadline, clock),
        wait=_WaitRetryAfterOrBackoff(policy),
        retry=retry_if_exception(is_retryable),
        reraise=True,
        sleep=asyncio.sleep,
        before_sleep=None if on_backoff is None else partial(_tell_backoff, on_backoff),
    )
    try:
        return await retrying(replay_first_then_attempt), attempts
    except Exception as exc:
        exc.attempts = attempts  # type: ignore[attr-defined]
        raise
