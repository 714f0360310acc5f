"""What one upstream call hands the calls that waited for it, and how a failure becomes a status.

Shared by the one-key path (``call.py``) and bulk queries (``batch.py``), so a key ends with the same status
and message whichever way it was asked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from linkmeter.engine.budgets import BudgetRefusal
from linkmeter.engine.errors import ProviderDisabled, ProviderError
from linkmeter.engine.provider import Collected, Policy
from linkmeter.engine.results import CallStatus

log = logging.getLogger("linkmeter.engine.call")  # the call pipeline's logger, whichever path failed

SLOT_WAIT_MARGIN = 0.05  # a wait for a slot ends this long before the URL deadline
DEFAULT_PAUSE_SECONDS = 1.0  # how long to leave a provider alone after a 429 that gave no Retry-After


@dataclass(slots=True)
class Outcome:
    """The outcome of one upstream call for one key, handed to every URL that joined it in flight."""

    status: CallStatus
    attempts: int
    message: str
    collected: Collected | None


def cache_ttl(policy: Policy, collected: Collected) -> float:
    """How long to cache ``collected``: the policy's TTL, capped by the result's own ``ttl`` (0: not cached)."""
    ttl = collected.ttl
    return policy.cache_ttl if ttl is None else max(0.0, min(policy.cache_ttl, ttl))


def failure(exc: BaseException, name: str, timeout: float) -> tuple[Outcome, bool]:
    """What a failed call hands its callers, and whether the breaker counts it as a success (the provider
    itself is healthy). Called while ``exc`` is being handled (so a traceback can be logged)."""
    attempts = int(getattr(exc, "attempts", 0))
    if isinstance(exc, RateLimitWait):
        return Outcome(CallStatus.RATE_LIMITED, attempts, str(exc), None), True  # our own limiter said no
    if isinstance(exc, TimeoutError):
        return Outcome(CallStatus.TIMEOUT, attempts, f"no answer within {timeout:.3g}s", None), False
    if isinstance(exc, ProviderDisabled):  # a setting to change, not a failure of the provider
        return Outcome(CallStatus.DISABLED, attempts, exc.message, None), True
    if isinstance(exc, ProviderError):
        status = CallStatus.RATE_LIMITED if exc.rate_limited else CallStatus.ERROR
        # A 4xx answer is the caller's problem, not the provider's health.
        return Outcome(status, attempts, exc.message, None), not exc.retryable and not exc.rate_limited
    log.exception("provider %s failed unexpectedly", name)  # a provider bug costs only its own cell
    return Outcome(CallStatus.ERROR, attempts, f"unexpected {type(exc).__name__}: {exc}", None), False


class RateLimitWait(Exception):
    """Our own rate limit (or a pause after a 429) would not let the call out before its deadline."""

    def __init__(self, rate: float | None) -> None:
        super().__init__(rate_limit_message(rate))


class BudgetSpent(RateLimitWait):
    """A budget of the provider (per hour or day) is spent for this call's priority: the call ends
    ``rate_limited`` saying when the budget refills, and may be deferred until then."""

    def __init__(self, refusal: BudgetRefusal) -> None:
        Exception.__init__(self, refusal.message())
        self.refusal = refusal


def rate_limit_message(rate: float | None) -> str:
    limit = f"rate limit ({rate:g}/s)" if rate else "a pause after HTTP 429"
    return f"{limit} would not free a slot before the deadline"
