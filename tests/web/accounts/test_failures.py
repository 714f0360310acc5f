"""The failed-authentication limiter: per address, a moving minute; a failure past the limit is answered
with the wait (429), and the process notes the address so its next requests cost no I/O; in Redis two
limiters (two web processes) share the count whether they count synchronously or from an event loop; with
Redis unreachable each counts in its own memory."""

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


def test_in_memory_an_address_is_blocked_at_its_limit_and_others_are_not() -> None:
    limiter = FailureLimiter(3)
    assert [limiter.failed("192.0.2.1") for _ in range(3)] == [None, None, None]  # within the limit: 401s
    wait = limiter.retry_after("192.0.2.1")  # the third reached it: noted
    assert wait is not None and 1 <= wait <= 60
    over = limiter.failed("192.0.2.1")
    assert over is not None and 1 <= over <= 60
    assert limiter.retry_after("192.0.2.2") is None and limiter.failed("192.0.2.2") is None


def test_two_limiters_sharing_redis_count_together(prefix: str) -> None:
    first, second = FailureLimiter(4, (REDIS_URL, prefix)), FailureLimiter(4, (REDIS_URL, prefix))

    async def from_a_loop() -> list[int | None]:
        return [await second.afailed("198.51.100.7"), await second.afailed("198.51.100.7")]

    assert first.failed("198.51.100.7") is None
    assert asyncio.run(from_a_loop()) == [None, None]  # three of four, two of them in the other process
    assert first.retry_after("198.51.100.7") is None and second.retry_after("198.51.100.7") is None
    assert first.failed("198.51.100.7") is None  # the fourth: at the limit, noted in the first process
    assert first.retry_after("198.51.100.7") is not None and second.retry_after("198.51.100.7") is None
    assert asyncio.run(second.afailed("198.51.100.7")) is not None  # the fifth, elsewhere: over, refused
    assert second.retry_after("198.51.100.7") is not None  # and noted there too
    assert second.failed("198.51.100.8") is None
    assert first.counted_in_memory("198.51.100.7") == 0  # counted in Redis, not in each process


def test_with_redis_unreachable_each_limiter_counts_in_its_memory(caplog: pytest.LogCaptureFixture) -> None:
    limiter = FailureLimiter(2, (UNREACHABLE_REDIS_URL, "linkmeter-test:"))
    assert limiter.failed("192.0.2.9") is None
    assert asyncio.run(limiter.afailed("192.0.2.9")) is None
    assert limiter.retry_after("192.0.2.9") is not None and limiter.counted_in_memory("192.0.2.9") == 2
    assert "counting in this process" in caplog.text
