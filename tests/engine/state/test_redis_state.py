"""Shared state in Redis, against a real Redis (LINKMETER_TEST_REDIS_URL, default 127.0.0.1:6379).

Two stores built on two clients stand for two worker processes. These tests fail (never skip) when Redis is
not reachable: CI starts one."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from linkmeter.assembly import build_engine
from linkmeter.engine.cache import CacheEntry, MemoryCache
from linkmeter.engine.limits import BreakerState
from linkmeter.engine.provider import Policy
from linkmeter.engine.results import CallStatus
from linkmeter.engine.settings import SettingsError
from linkmeter.engine.state import EngineState
from linkmeter.engine.state.breakers import RedisCircuitBreakers
from linkmeter.engine.state.cache import RedisCache
from linkmeter.engine.state.limiter import RedisRateLimiter
from linkmeter.engine.state.link import RedisLink
from linkmeter.engine.state.redis_state import redis_state
from tests.engine.fakes import BulkFake, cached_provider, make_engine
from tests.services import REDIS_URL, UNREACHABLE_REDIS_URL
from tests.waiting import wait_until_async

MakeLink = Callable[..., RedisLink]


@pytest.fixture
async def prefix(admin: aioredis.Redis) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"linkmeter-test:{uuid.uuid4().hex}:"
    yield prefix
    keys = [key async for key in admin.scan_iter(match=prefix + "*")]
    if keys:
        await admin.delete(*keys)


@pytest.fixture
async def link(prefix: str) -> AsyncIterator[MakeLink]:
    """``link(**options)``: a new client (one "worker") on the test's prefix, closed at teardown."""
    made: list[RedisLink] = []

    def make(**options: Any) -> RedisLink:
        made.append(RedisLink.from_url(REDIS_URL, prefix=prefix, **options))
        return made[-1]

    yield make
    for each in made:
        await each.aclose()


# --- rate limiter ---------------------------------------------------------------------------------------


async def _server_time(admin: aioredis.Redis) -> float:
    seconds, micros = await admin.time()
    return seconds + micros / 1e6


async def test_two_workers_reserving_concurrently_never_exceed_the_rate(
        link: MakeLink, admin: aioredis.Redis, prefix: str) -> None:
    workers = [RedisRateLimiter(link()), RedisRateLimiter(link())]
    rate, burst, calls = 50.0, 5, 40
    interval = 1 / rate
    started = await _server_time(admin)
    waits = await asyncio.gather(*(workers[n % 2].reserve("p", rate, burst, max_wait=10) for n in range(calls)))
    window = await _server_time(admin) - started  # every reservation was made (server time) in this window
    # GCRA over both workers together: the burst at once, then one slot per interval. A slot is the
    # reservation's server time plus its wait, so the j-th smallest wait is at least (j - burst + 1)
    # intervals less the window; and no wait is longer than the whole queue.
    ordered = sorted(w for w in waits if w is not None)
    assert len(ordered) == calls
    for j, wait in enumerate(ordered):
        assert wait >= (j - burst + 1) * interval - window - 0.001, j
    assert ordered[-1] <= (calls - burst) * interval + 0.001
    # Every reservation counted, none lost between the workers: the theoretical arrival time moved on by
    # one interval per call from the first reservation.
    tat = float(await admin.get(f"{prefix}rl:{{p}}:tat")) / 1e6
    assert tat >= started + calls * interval - 0.001


async def test_a_refusal_reserves_nothing_in_any_worker(link: MakeLink, admin: aioredis.Redis,
                                                         prefix: str) -> None:
    a, b = RedisRateLimiter(link()), RedisRateLimiter(link())
    assert await a.reserve("p", rate=1, burst=1, max_wait=0.5) == 0.0
    assert await b.reserve("p", rate=1, burst=1, max_wait=0.5) is None
    assert 0.5 < (await b.reserve("p", rate=1, burst=1, max_wait=2) or 0) <= 1.0
    assert await a.reserve("other", rate=1, burst=1, max_wait=0) == 0.0  # names are independent
    # Keys expire once they hold nothing back: the 'p' slot 1 s ahead, plus a second of slack.
    assert 0 < await admin.pttl(f"{prefix}rl:{{p}}:tat") <= 3000
    assert 0 < await admin.pttl(f"{prefix}rl:{{other}}:tat") <= 2000


async def test_a_pause_holds_in_every_worker_and_is_never_shortened(link: MakeLink, admin: aioredis.Redis,
                                                                   prefix: str) -> None:
    a, b = RedisRateLimiter(link()), RedisRateLimiter(link())
    assert await b.paused_for("p") == 0.0
    await a.pause("p", 2.0)
    assert 1.5 < await b.paused_for("p") <= 2.0
    assert 1.5 < (await b.reserve("p", rate=100, burst=10, max_wait=5) or 0) <= 2.0
    assert await b.reserve("p", rate=100, burst=10, max_wait=1) is None
    await b.pause("p", 0.5)  # a shorter pause never shortens a longer one
    assert await a.paused_for("p") > 1.0
    assert 0 < await admin.pttl(f"{prefix}rl:{{p}}:pause") <= 3000
    await a.pause("q", 0.1)
    await asyncio.sleep(0.15)
    assert await b.paused_for("q") == 0.0
    assert await b.reserve("q", rate=1, burst=1, max_wait=0) == 0.0


class PauseLeft:
    """What is left of a pause of ``seconds`` noted now: at most ``seconds``, and no less than what has passed
    since allows (a round trip to Redis on a loaded machine can take a good part of a second)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.noted = time.monotonic()

    def holds(self, left: float | None) -> bool:
        return left is not None and self.seconds - (time.monotonic() - self.noted) - 0.01 <= left <= self.seconds


async def test_a_workers_own_429_holds_its_calls_back_before_redis_has_it(link: MakeLink) -> None:
    limiter = RedisRateLimiter(link())
    pause = PauseLeft(1.0)
    pausing = asyncio.create_task(limiter.pause("p", 1.0))
    await asyncio.sleep(0)  # the pause has left for Redis; its answer has not come back
    assert not pausing.done()
    assert pause.holds(await limiter.paused_for("p"))
    assert pause.holds(await limiter.paused_for("p", exact=True))
    await pausing


async def test_a_reservation_waits_out_a_pause_known_here_that_redis_has_not_heard_of(
        link: MakeLink, admin: aioredis.Redis, prefix: str) -> None:
    shared = link()
    limiter = RedisRateLimiter(shared)
    pause = PauseLeft(1.0)
    shared.mirror.note_pause("p", 1.0)  # as when this process's own 429 is still on its way to Redis
    assert pause.holds(await limiter.reserve("p", rate=100, burst=10, max_wait=5))
    assert await admin.get(f"{prefix}rl:{{p}}:pause") is None
    assert await limiter.reserve("p", rate=100, burst=10, max_wait=0.5) is None


async def test_a_429_that_arrives_while_a_slot_is_being_booked_voids_that_slot(link: MakeLink) -> None:
    shared = link()
    limiter = RedisRateLimiter(shared)
    booking = asyncio.create_task(limiter.reserve("p", rate=100, burst=10, max_wait=5))
    await asyncio.sleep(0)  # the reservation is on its way to Redis, which knows of no pause
    pause = PauseLeft(1.0)
    shared.mirror.note_pause("p", 1.0)  # this process's 429 comes back meanwhile
    assert pause.holds(await booking)  # booked again, after the pause


async def test_a_429_that_arrives_while_an_exact_read_is_on_its_way_counts(link: MakeLink) -> None:
    shared = link()
    limiter = RedisRateLimiter(shared)
    reading = asyncio.create_task(limiter.paused_for("p", exact=True))
    await asyncio.sleep(0)
    pause = PauseLeft(1.0)
    shared.mirror.note_pause("p", 1.0)
    assert pause.holds(await reading)


async def test_a_pause_known_here_survives_the_subscription_coming_up(link: MakeLink) -> None:
    shared = link()
    limiter = RedisRateLimiter(shared)
    pause = PauseLeft(1.0)
    shared.mirror.note_pause("p", 1.0)  # our own 429, before the events channel is confirmed
    await _mirrored(shared)  # the subscription comes up (and starts its mirror of breakers over)
    assert pause.holds(shared.mirror.known_pause("p"))
    assert pause.holds(await limiter.paused_for("p", exact=True))


async def test_an_exact_read_sees_a_pause_whose_event_has_not_arrived(link: MakeLink, admin: aioredis.Redis,
                                                                     prefix: str) -> None:
    shared = link()
    limiter = RedisRateLimiter(shared)
    await _mirrored(shared)
    assert await limiter.paused_for("p") == 0.0  # synced: answered from the mirror from here on
    pause = PauseLeft(1.0)
    seconds, micros = await admin.time()  # a pause set in Redis whose event is still on its way (no PUBLISH)
    await admin.set(f"{prefix}rl:{{p}}:pause", str(seconds * 1_000_000 + micros + 1_000_000), px=2000)
    assert await limiter.paused_for("p") == 0.0
    assert pause.holds(await limiter.paused_for("p", exact=True))
    assert pause.holds(await limiter.paused_for("p"))  # what the exact read found is mirrored


# --- circuit breakers -----------------------------------------------------------------------------------


async def test_failures_from_two_workers_open_the_breaker_and_one_probe_runs_in_all(link: MakeLink) -> None:
    a, b = RedisCircuitBreakers(link(), probe_lease=10), RedisCircuitBreakers(link(), probe_lease=10)
    cooldown = 0.3
    await a.record("p", False, threshold=3)
    await b.record("p", False, threshold=3)
    assert await a.state("p", cooldown) is BreakerState.CLOSED and await b.allow("p", 3, cooldown)
    await a.record("p", False, threshold=3)
    assert await b.state("p", cooldown) is BreakerState.OPEN
    assert not await a.allow("p", 3, cooldown) and not await b.allow("p", 3, cooldown)

    await asyncio.sleep(cooldown + 0.05)
    assert await a.state("p", cooldown) is BreakerState.HALF_OPEN
    allowed = await asyncio.gather(*(w.allow("p", 3, cooldown) for w in [a, b] * 10))
    assert allowed.count(True) == 1  # exactly one probe across the workers
    await b.record("p", False, threshold=3)  # the probe failed: open again, a new cooldown
    assert await a.state("p", cooldown) is BreakerState.OPEN and not await a.allow("p", 3, cooldown)

    await asyncio.sleep(cooldown + 0.05)
    assert (await asyncio.gather(*(w.allow("p", 3, cooldown) for w in [a, b] * 10))).count(True) == 1
    await a.record("p", True, threshold=3)  # the probe succeeded: closed everywhere
    assert await b.state("p", cooldown) is BreakerState.CLOSED
    assert await a.allow("p", 3, cooldown) and await b.allow("p", 3, cooldown)
    assert await a.state("other", cooldown) is BreakerState.CLOSED


async def test_a_probe_that_never_reports_lets_another_through_when_its_lease_ends(link: MakeLink) -> None:
    a, b = RedisCircuitBreakers(link(), probe_lease=0.5), RedisCircuitBreakers(link(), probe_lease=0.5)
    await a.record("p", False, threshold=1)
    await asyncio.sleep(0.15)
    assert await a.allow("p", 1, cooldown=0.1)  # a's worker takes the probe, then dies
    assert not await b.allow("p", 1, cooldown=0.1)
    assert await b.state("p", cooldown=0.1) is BreakerState.HALF_OPEN
    await asyncio.sleep(0.55)
    assert await b.allow("p", 1, cooldown=0.1)
    assert not await a.allow("p", 1, cooldown=0.1)


async def test_the_default_probe_lease_is_the_cooldown(link: MakeLink) -> None:
    a, b = RedisCircuitBreakers(link()), RedisCircuitBreakers(link())
    await a.record("p", False, threshold=1)
    await asyncio.sleep(0.55)
    assert await a.allow("p", 1, cooldown=0.5)
    assert not await b.allow("p", 1, cooldown=0.5)
    await asyncio.sleep(0.55)
    assert await b.allow("p", 1, cooldown=0.5)


# --- the mirror: breaker states and pauses by pub/sub -----------------------------------------------------


class _Counting:
    """Counts the Redis calls a link makes (each is one round trip)."""

    def __init__(self, link: RedisLink) -> None:
        self.calls: list[str] = []
        original = link.call

        async def call(store: str, make: Callable[[], Any]) -> Any:
            self.calls.append(store)
            return await original(store, make)

        link.call = call  # type: ignore[method-assign]


async def _mirrored(link: RedisLink) -> None:
    """Wait until the link's mirror is subscribed (it starts on first use)."""
    await wait_until_async(lambda: link.mirror.ready, 2.0, interval=0.01, message="the mirror to subscribe")


async def test_calls_to_a_healthy_provider_cost_no_breaker_or_pause_round_trip(link: MakeLink) -> None:
    shared = link()
    breakers, limiter = RedisCircuitBreakers(shared), RedisRateLimiter(shared)
    await _mirrored(shared)
    assert await breakers.allow("p", 3, cooldown=1) and await limiter.paused_for("p") == 0.0  # first: synced
    counting = _Counting(shared)
    for _ in range(50):
        assert await breakers.allow("p", 3, cooldown=1)
        assert await limiter.paused_for("p") == 0.0
        await breakers.record("p", True, threshold=3)
    assert counting.calls == []
    await breakers.record("p", False, threshold=3)  # a failure goes to Redis, so does the success after it
    await breakers.record("p", True, threshold=3)
    await breakers.record("p", True, threshold=3)
    assert counting.calls == ["breakers", "breakers"]


async def _seen_by(link: RedisLink, name: str, change: Awaitable[object]) -> None:
    """Make ``change`` (a breaker record elsewhere) and wait until ``link``'s mirror has its event: milliseconds
    on loopback, more on a loaded machine, so wait for the event itself rather than a fixed time."""
    mirrored = link.mirror.breaker(name)
    before = mirrored.seq if mirrored is not None else -1
    await change

    def arrived() -> bool:
        mirrored = link.mirror.breaker(name)
        return mirrored is not None and mirrored.seq > before

    await wait_until_async(arrived, 5, interval=0.002, message=f"the breaker event of {name!r}")


async def test_a_breaker_opened_by_one_worker_is_seen_by_another_without_asking(link: MakeLink) -> None:
    one, other = link(), link()
    a, b = RedisCircuitBreakers(one), RedisCircuitBreakers(other)
    await _mirrored(one)
    await _mirrored(other)
    assert await b.allow("p", 2, cooldown=0.3)  # b mirrors "p" from here on
    assert await a.allow("p", 2, cooldown=0.3)  # and so does a
    counting = _Counting(other)
    await _seen_by(other, "p", a.record("p", False, threshold=2))
    await b.record("p", True, threshold=2)  # b learnt of a's failure: this success resets the count
    await _seen_by(other, "p", a.record("p", False, threshold=2))  # the first of a new streak: still closed
    assert await b.allow("p", 2, cooldown=0.3)
    assert counting.calls == ["breakers"]
    await _seen_by(other, "p", a.record("p", False, threshold=2))  # two in a row: open
    assert not await b.allow("p", 2, cooldown=0.3)
    assert counting.calls == ["breakers"]  # b knew it from the event
    await asyncio.sleep(0.3)
    assert await b.allow("p", 2, cooldown=0.3)  # the probe: decided in Redis
    assert not await a.allow("p", 2, cooldown=0.3)
    await _seen_by(one, "p", b.record("p", True, threshold=2))
    assert await a.allow("p", 2, cooldown=0.3)


async def test_a_pause_reaches_every_worker_by_event(link: MakeLink) -> None:
    one, other = link(), link()
    a, b = RedisRateLimiter(one), RedisRateLimiter(other)
    await _mirrored(one)
    await _mirrored(other)
    assert await b.paused_for("p") == 0.0
    counting = _Counting(other)
    pause = PauseLeft(1.0)
    await a.pause("p", 1.0)
    # The event's way between two clients: milliseconds, more on a loaded machine.
    await wait_until_async(lambda: other.mirror.known_pause("p") > 0, 5, interval=0.005, message="the pause event")
    assert pause.holds(await b.paused_for("p"))
    assert counting.calls == []
    await a.pause("p", 0.2)  # shorter: changes nothing
    assert pause.holds(await b.paused_for("p"))


async def test_a_lost_subscription_is_re_established_and_nothing_is_missed(
        link: MakeLink, admin: aioredis.Redis) -> None:
    one, other = link(retry_after=0.1), link(retry_after=0.1)
    a, b = RedisCircuitBreakers(one), RedisCircuitBreakers(other)
    await _mirrored(one)
    await _mirrored(other)
    assert await b.allow("p", 1, cooldown=5)
    await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # every subscription drops
    await a.record("p", False, threshold=1)  # opened while b may not be listening
    await asyncio.sleep(0.02)
    assert not await b.allow("p", 1, cooldown=5)  # asked Redis, or re-synced: either way it knows
    await asyncio.sleep(0.3)
    assert other.mirror.ready
    assert not await b.allow("p", 1, cooldown=5)


# --- cache ----------------------------------------------------------------------------------------------


async def test_a_cached_result_round_trips_between_workers(link: MakeLink, admin: aioredis.Redis,
                                                          prefix: str) -> None:
    a, b = RedisCache(link()), RedisCache(link())
    entry = CacheEntry({"p.x": 1, "p.tags": ["a", "b"], "p.none": None}, {"raw": [1, 2.5, "é"]}, 1700000000.25)
    await a.set("p:https://example.org/", entry, ttl=60)
    assert await b.get("p:https://example.org/") == entry
    assert await b.get("p:https://example.org/other") is None
    assert 59_000 < await admin.pttl(f"{prefix}cache:p:https://example.org/") <= 60_000

    long_key = "p:https://example.org/" + "x" * 1000
    await a.set(long_key, entry, ttl=60)
    assert await b.get(long_key) == entry
    keys = [key async for key in admin.scan_iter(match=prefix + "cache:*")]
    assert len(keys) == 2 and all(len(key) < len(prefix) + 100 for key in keys)


async def test_the_near_cache_answers_repeated_reads_without_redis(link: MakeLink) -> None:
    one, other = link(), link()
    a, b = RedisCache(one), RedisCache(other)
    await a.set("p:k", CacheEntry({"p.x": 1}, None, 0.0), ttl=60)
    counting = _Counting(other)
    assert await b.get("p:k") is not None and await b.get("p:k") is not None
    assert counting.calls == ["cache"]  # the first read from Redis, the second from b's near-cache
    writer = _Counting(one)
    assert await a.get("p:k") is not None and writer.calls == []  # the writer kept its own
    await a.set("p:short", CacheEntry({"p.x": 2}, None, 0.0), ttl=0.3)
    assert await b.get("p:short") is not None
    await asyncio.sleep(0.35)
    assert await b.get("p:short") is None and await a.get("p:short") is None  # near entries expire with it


async def test_the_near_cache_keeps_within_its_byte_budget_and_redis_keeps_the_rest(link: MakeLink) -> None:
    a, b = RedisCache(link(), near_bytes=4096), RedisCache(link(), near_bytes=4096)
    small, large = CacheEntry({"p.x": 1}, "x" * 10, 0.0), CacheEntry({"p.x": 2}, "x" * 2000, 0.0)  # large: ~8 KB
    await a.set("p:small", small, ttl=60)
    await a.set("p:large", large, ttl=60)
    assert a.peek("p:small") == small and a.peek("p:large") is None  # too big for this process's budget
    assert await b.get("p:large") == large and b.peek("p:large") is None  # still shared through Redis
    for i in range(20):  # the least recently used go first
        await a.set(f"p:{i}", small, ttl=60)
    assert a.peek("p:small") is None and a.peek("p:19") == small
    assert await a.get("p:small") == small  # evicted from the near-cache only


async def test_peek_hands_out_only_what_the_near_cache_holds(link: MakeLink) -> None:
    a, b = RedisCache(link()), RedisCache(link())
    entry = CacheEntry({"p.x": 1}, None, 0.0)
    await a.set("p:k", entry, ttl=60)
    assert a.peek("p:k") == entry  # the writer holds it
    assert b.peek("p:k") is None  # not in b's process yet: "ask get()", not "absent"
    assert await b.get("p:k") == entry and b.peek("p:k") == entry
    assert RedisCache(link(), near_bytes=0).peek("p:k") is None


async def test_cached_results_expire_after_their_ttl(link: MakeLink) -> None:
    a, b = RedisCache(link()), RedisCache(link())
    await a.set("p:k", CacheEntry({"p.x": 1}, None, 0.0), ttl=0.5)
    assert await b.get("p:k") is not None
    await asyncio.sleep(0.6)
    assert await b.get("p:k") is None
    await a.set("p:zero", CacheEntry({"p.x": 1}, None, 0.0), ttl=0)
    assert await b.get("p:zero") is None


async def test_a_value_json_cannot_encode_is_just_not_cached(link: MakeLink,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    cache = RedisCache(link())
    with caplog.at_level(logging.DEBUG, logger="linkmeter.engine.state"):
        await cache.set("p:a", CacheEntry({"p.x": object()}, None, 0.0), ttl=60)
        await cache.set("p:b", CacheEntry({"p.x": 1}, {1j}, 0.0), ttl=60)
    assert await cache.get("p:a") is None and await cache.get("p:b") is None
    assert caplog.text.count("not JSON-serialisable") == 2


async def test_an_unreadable_entry_is_a_miss(link: MakeLink, admin: aioredis.Redis, prefix: str) -> None:
    await admin.set(f"{prefix}cache:p:bad", b"{not json")
    await admin.set(f"{prefix}cache:p:shape", b"[1, 2]")
    cache = RedisCache(link())
    assert await cache.get("p:bad") is None and await cache.get("p:shape") is None


# --- when Redis is unavailable --------------------------------------------------------------------------


async def test_an_unreachable_redis_degrades_to_this_process_state_quickly(
        caplog: pytest.LogCaptureFixture) -> None:
    link = RedisLink.from_url(UNREACHABLE_REDIS_URL, prefix="linkmeter-test:")
    limiter, breakers, cache = RedisRateLimiter(link), RedisCircuitBreakers(link), RedisCache(link)
    started = time.monotonic()
    try:
        with caplog.at_level(logging.WARNING, logger="linkmeter.engine.state"):
            waits = [await limiter.reserve("p", rate=1, burst=3, max_wait=10) for _ in range(5)]
            assert waits == pytest.approx([0.0, 0.0, 0.0, 1.0, 2.0], abs=0.2)  # the in-memory limiter
            await limiter.pause("q", 2.0)
            assert 1.5 < await limiter.paused_for("q") <= 2.0

            await cache.set("p:k", CacheEntry({"p.x": 1}, None, 0.0), ttl=60)
            assert await cache.get("p:k") is not None  # this process's near-cache still answers
            assert await RedisCache(link, near_bytes=0).get("p:k") is None  # without one: a miss

            for _ in range(3):
                await breakers.record("p", False, threshold=3)
            assert await breakers.state("p", cooldown=5) is BreakerState.OPEN  # the in-memory breakers
            assert not await breakers.allow("p", 3, cooldown=5)
            assert await breakers.allow("other", 3, cooldown=5)
            assert not await link.ping()
    finally:
        await link.aclose()
    assert time.monotonic() - started < 1.0
    assert link.down
    warnings = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert 1 <= len(warnings) <= 3  # at most one per store


async def test_a_redis_that_never_answers_costs_one_timeout_then_falls_back_at_once() -> None:
    connections: list[asyncio.StreamWriter] = []

    async def accept_and_ignore(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(accept_and_ignore, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    link = RedisLink.from_url(f"redis://127.0.0.1:{port}/0", timeout=0.2, retry_after=5)
    limiter, cache = RedisRateLimiter(link), RedisCache(link)
    try:
        started = time.monotonic()
        assert await limiter.reserve("p", rate=1, burst=1, max_wait=5) == 0.0
        assert time.monotonic() - started < 0.8  # bounded by the timeout
        started = time.monotonic()
        results = await asyncio.gather(*(cache.get(f"p:{n}") for n in range(50)))
        assert results == [None] * 50
        assert await limiter.reserve("p", rate=1, burst=1, max_wait=5) == pytest.approx(1.0, abs=0.2)
        assert time.monotonic() - started < 0.3  # no more timeouts: Redis is left alone for retry_after
    finally:
        await link.aclose()
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_redis_is_used_again_once_it_answers(link: MakeLink) -> None:
    shared = link(retry_after=0.1)
    cache = RedisCache(shared)
    good = shared.client
    shared.client = aioredis.Redis.from_url(UNREACHABLE_REDIS_URL)  # Redis "goes away"
    try:
        await cache.set("p:k", CacheEntry({"p.x": 1}, None, 0.0), ttl=60)
        assert shared.down
    finally:
        await shared.client.aclose()
        shared.client = good  # and comes back
    await asyncio.sleep(0.15)
    await cache.set("p:k", CacheEntry({"p.x": 1}, None, 0.0), ttl=60)
    assert not shared.down and await cache.get("p:k") is not None


# --- the engine -----------------------------------------------------------------------------------------


async def test_a_result_cached_by_one_engine_is_cached_in_another(prefix: str) -> None:
    first, second = cached_provider(), cached_provider()
    one = make_engine(first, state=redis_state(REDIS_URL, prefix=prefix))
    other = make_engine(second, state=redis_state(REDIS_URL, prefix=prefix))
    try:
        done = await one.analyze("https://example.org/")
        again = await other.analyze("https://example.org/x")
    finally:
        await one.close()
        await other.close()
    assert done.providers["p"].status is CallStatus.OK
    assert again.providers["p"].status is CallStatus.CACHED and second.calls == 0
    assert again.signals["p.x"] == 1 and again.providers["p"].raw == {"fake": "p"}


async def test_a_bulk_query_s_answers_are_cached_for_every_worker_and_take_one_shared_slot(prefix: str) -> None:
    policy = Policy(timeout=2, retries=0, cache_ttl=60, rate_per_sec=100, burst=1, batch_linger=0.02)
    first, second = BulkFake("bulk", policy=policy), BulkFake("bulk", policy=policy)
    one = make_engine(first, state=redis_state(REDIS_URL, prefix=prefix))
    other = make_engine(second, state=redis_state(REDIS_URL, prefix=prefix))
    targets = [f"https://site{i}.example/" for i in range(30)]
    try:
        done = [r async for r in one.analyze_many(targets, concurrency=30)]
        again = [r async for r in other.analyze_many(targets, concurrency=30)]
        # One request took one slot: the next one is booked 1/rate after it, not 30 slots later.
        wait = await one.state.limiter.reserve("bulk", 100, 1, 10)
    finally:
        await one.close()
        await other.close()
    assert len(first.batches) == 1 and second.batches == []
    assert {r.providers["bulk"].status for r in done} == {CallStatus.OK}
    assert {r.providers["bulk"].status for r in again} == {CallStatus.CACHED}
    assert wait is not None and wait <= 0.02


async def test_an_engine_whose_redis_is_unreachable_still_runs() -> None:
    provider = cached_provider()
    engine = make_engine(provider, state=redis_state(UNREACHABLE_REDIS_URL))
    try:
        results = [await engine.analyze(f"https://example.org/{n}") for n in range(2)]
    finally:
        await engine.close()
    # Redis is out of reach, so only this process's near-cache holds the result for the second URL.
    assert [r.providers["p"].status for r in results] == [CallStatus.OK, CallStatus.CACHED]
    assert provider.calls == 1


async def test_build_engine_uses_redis_when_linkmeter_redis_url_is_set(prefix: str) -> None:
    engine = build_engine({"LINKMETER_REDIS_URL": REDIS_URL, "LINKMETER_REDIS_PREFIX": prefix,
                           "LINKMETER_REDIS_TIMEOUT": "0.3"})
    try:
        assert isinstance(engine.state.cache, RedisCache)
        assert isinstance(engine.state.limiter, RedisRateLimiter)
        assert isinstance(engine.state.breakers, RedisCircuitBreakers)
        assert await engine.state.limiter.reserve("p", rate=1, burst=1, max_wait=0) == 0.0
    finally:
        await engine.close()
    memory = build_engine({})
    assert isinstance(memory.state.cache, MemoryCache)
    await memory.close()
    with pytest.raises(SettingsError, match="LINKMETER_REDIS_URL"):
        build_engine({"LINKMETER_REDIS_URL": "http://127.0.0.1:6379"})
    with pytest.raises(SettingsError, match="LINKMETER_REDIS_TIMEOUT"):
        build_engine({"LINKMETER_REDIS_URL": REDIS_URL, "LINKMETER_REDIS_TIMEOUT": "0"})


async def test_engine_close_closes_the_state() -> None:
    closed: list[bool] = []

    async def closer() -> None:
        closed.append(True)

    engine = make_engine(cached_provider(), state=EngineState(closer=closer))
    await engine.close()
    assert closed == [True]


async def test_a_providers_cache_entries_are_counted(link: MakeLink) -> None:
    cache = RedisCache(link())
    memory = MemoryCache()
    for store in (cache, memory):
        for n in range(5):
            await store.set(f"rdap:example{n}.org", CacheEntry({"rdap.x": n}, None, 0.0), ttl=60)
        await store.set("rdap:" + "x" * 500, CacheEntry({"rdap.x": 1}, None, 0.0), ttl=60)  # hashed in Redis
        await store.set("dns:example.org", CacheEntry({"dns.x": 1}, None, 0.0), ttl=60)
        assert await store.entries("rdap", limit=100) == 6
        assert await store.entries("rdap", limit=3) == 4  # "more than 3"
        assert await store.entries("dns", limit=100) == 1
        assert await store.entries("wayback", limit=100) == 0
    unreachable = RedisLink.from_url(UNREACHABLE_REDIS_URL, prefix="linkmeter-test:")
    try:
        assert await RedisCache(unreachable).entries("rdap", limit=10) is None
    finally:
        await unreachable.aclose()
