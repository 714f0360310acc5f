"""The failed-authentication limiter: per address, a moving minute; in Redis two limiters (two web processes)
share the count whether they ask synchronously or from an event loop; with Redis unreachable each counts in
its own memory."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from linkmeter.bench.services import delete_redis_keys
from linkmeter.web.accounts.failures import FailureLimiter
from tests.services import REDIS_URL, UNREACHABLE_REDIS_URL


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"linkmeter-test:{uuid.uuid4().hex}:"
    yield name
    delete_redis_keys(REDIS_URL, f"{name}*")


def test_in_memory_an_address_is_blocked_after_its_failures_and_others_are_not() -> None:
    limiter = FailureLimiter(3)
    for _ in range(3):
        assert limiter.retry_after("192.0.2.1") is None
        limiter.failed("192.0.2.1")
    wait = limiter.retry_after("192.0.2.1")
    assert wait is not None and 1 <= wait <= 60
    assert limiter.retry_after("192.0.2.2") is None


def test_two_limiters_sharing_redis_count_together(prefix: str) -> None:
    first, second = FailureLimiter(4, (REDIS_URL, prefix)), FailureLimiter(4, (REDIS_URL, prefix))

    async def from_a_loop() -> int | None:
        await second.afailed("198.51.100.7")
        await second.afailed("198.51.100.7")
        return await second.aretry_after("198.51.100.7")

    first.failed("198.51.100.7")
    assert asyncio.run(from_a_loop()) is None  # three of four
    assert first.retry_after("198.51.100.7") is None
    first.failed("198.51.100.7")
    assert first.retry_after("198.51.100.7") is not None
    assert asyncio.run(second.aretry_after("198.51.100.7")) is not None
    assert second.retry_after("198.51.100.8") is None
    assert first.retry_after_in_memory("198.51.100.7") is None  # it was counted in Redis, not in memory


def test_with_redis_unreachable_each_limiter_counts_in_its_memory(caplog: pytest.LogCaptureFixture) -> None:
    limiter = FailureLimiter(2, (UNREACHABLE_REDIS_URL, "linkmeter-test:"))
    limiter.failed("192.0.2.9")
    asyncio.run(limiter.afailed("192.0.2.9"))
    assert limiter.retry_after("192.0.2.9") is not None
    assert "counting in this process" in caplog.text
