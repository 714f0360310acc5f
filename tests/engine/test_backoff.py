"""The backoff between retries: jittered exponential, capped, never shorter than Retry-After."""

from __future__ import annotations

from linkmeter.engine.errors import ProviderError
from linkmeter.engine.policy import backoff_seconds
from linkmeter.engine.provider import Policy


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    policy = Policy(backoff_base=0.25, backoff_max=1.0)
    failure = TimeoutError()
    for attempt, low in ((1, 0.25), (2, 0.5)):
        waits = [backoff_seconds(policy, attempt, failure) for _ in range(200)]
        assert all(low <= wait <= low + 0.25 for wait in waits)
    assert {backoff_seconds(policy, attempt, failure) for attempt in (3, 4, 2000)} == {1.0}


def test_a_retry_after_longer_than_the_backoff_wins() -> None:
    policy = Policy(backoff_base=0.25, backoff_max=1.0)
    assert backoff_seconds(policy, 1, ProviderError("HTTP 429", retryable=True, retry_after=7.0)) == 7.0
    assert backoff_seconds(policy, 1, ProviderError("HTTP 503", retryable=True, retry_after=0.0)) <= 0.5
