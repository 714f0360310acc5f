"""Auto-pipelining against a real Redis (LINKMETER_TEST_REDIS_URL, default 127.0.0.1:6379): commands issued
together share a round trip, each gets its own answer, and failures reach every caller. Fails (never skips)
when Redis is not reachable."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from linkmeter.engine.state.pipeline import AutoPipeline
from tests.services import REDIS_URL, UNREACHABLE_REDIS_URL


@pytest.fixture
def prefix() -> str:
    return f"linkmeter-test:{uuid.uuid4().hex}:"


async def test_commands_issued_together_share_one_round_trip(admin: aioredis.Redis, prefix: str) -> None:
    pipeline = AutoPipeline(lambda: admin)
    try:
        await asyncio.gather(*(pipeline.execute("SET", f"{prefix}{n}", str(n), "PX", 5000) for n in range(50)))
        values = await asyncio.gather(*(pipeline.execute("GET", f"{prefix}{n}") for n in range(50)),
                                      pipeline.execute("GET", f"{prefix}missing"))
    finally:
        await admin.delete(*(f"{prefix}{n}" for n in range(50)))
        await pipeline.aclose()
    assert values == [str(n).encode() for n in range(50)] + [None]
    assert pipeline.commands == 101 and pipeline.round_trips == 2


async def test_one_command_failing_fails_only_its_caller(admin: aioredis.Redis, prefix: str) -> None:
    pipeline = AutoPipeline(lambda: admin)
    await admin.set(f"{prefix}text", "x", px=5000)
    try:
        results = await asyncio.gather(pipeline.execute("INCR", f"{prefix}text"),
                                       pipeline.execute("GET", f"{prefix}text"), return_exceptions=True)
    finally:
        await admin.delete(f"{prefix}text")
        await pipeline.aclose()
    assert isinstance(results[0], ResponseError) and results[1] == b"x"


async def test_a_failed_round_trip_reaches_every_caller_and_the_next_one_works(prefix: str) -> None:
    dead = aioredis.Redis.from_url(UNREACHABLE_REDIS_URL, socket_connect_timeout=0.5)
    live = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    current = [dead]
    pipeline = AutoPipeline(lambda: current[0])
    try:
        results = await asyncio.gather(*(pipeline.execute("GET", f"{prefix}{n}") for n in range(5)),
                                       return_exceptions=True)
        assert all(isinstance(r, (RedisError, OSError)) for r in results)
        current[0] = live
        assert await pipeline.execute("GET", f"{prefix}0") is None
    finally:
        await pipeline.aclose()
        await dead.aclose()
        await live.aclose()


async def test_a_caller_that_gives_up_does_not_disturb_the_others(admin: aioredis.Redis, prefix: str) -> None:
    pipeline = AutoPipeline(lambda: admin, max_in_flight=1)
    await admin.set(f"{prefix}k", "v", px=5000)
    try:
        impatient = asyncio.ensure_future(pipeline.execute("GET", f"{prefix}k"))
        patient = asyncio.ensure_future(pipeline.execute("GET", f"{prefix}k"))
        await asyncio.sleep(0)
        impatient.cancel()
        assert await patient == b"v"
        assert impatient.cancelled()
    finally:
        await admin.delete(f"{prefix}k")
        await pipeline.aclose()
