"""Provider budgets: calendar windows, the reserve only higher priorities spend, the engine's use of them, and
the Redis store two processes share (against a real Redis, as tests/engine/state does)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from linkmeter.engine.budgets import DAY, HOUR, BudgetRule, MemoryBudgets, budget_limits, window_start
from linkmeter.engine.limits import MemoryRateLimiter
from linkmeter.engine.provider import Policy
from linkmeter.engine.results import CallStatus
from linkmeter.engine.settings import EngineSettings, SettingsError
from linkmeter.engine.state import EngineState
from linkmeter.engine.state.budgets import RedisBudgets
from linkmeter.engine.state.link import RedisLink
from tests.engine.fakes import FakeProvider, make_engine
from tests.services import REDIS_URL


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_limits_come_from_the_rate_unless_a_period_is_set() -> None:
    assert budget_limits(Policy(rate_per_sec=0.4)) == ((HOUR, 1440), (DAY, 34560))
    assert budget_limits(Policy(rate_per_sec=0.4, per_hour=100)) == ((HOUR, 100), (DAY, 34560))
    assert budget_limits(Policy(rate_per_sec=0.4, per_day=0)) == ((HOUR, 1440),)
    assert budget_limits(Policy()) == ()
    assert budget_limits(Policy(per_day=25_000)) == ((DAY, 25_000),)


def test_the_reserve_grows_as_the_priority_falls() -> None:
    rule = BudgetRule(reserve=0.2, reserve_priority=4)
    assert [rule.allowance(1000, p) for p in (0, 1, 2, 3, 4, 8)] == [800, 850, 900, 950, 1000, 1000]
    assert BudgetRule(reserve=0.0).allowance(1000, 0) == 1000


async def test_a_low_priority_stops_at_its_share_and_a_higher_one_spends_the_reserve() -> None:
    clock = Clock(10 * HOUR + 5)
    budgets = MemoryBudgets(BudgetRule(reserve=0.5, reserve_priority=4), clock=clock)
    limits = ((HOUR, 4),)
    assert [await budgets.spend("p", limits, 0) for _ in range(2)] == [None, None]
    refused = await budgets.spend("p", limits, 0)
    assert refused is not None and refused.allowance == 2 and refused.resets_at == 11 * HOUR
    assert "hourly budget of 4 requests spent" in refused.message() and "T11:00:00Z" in refused.message()
    assert [await budgets.spend("p", limits, 4) for _ in range(2)] == [None, None]
    assert await budgets.spend("p", limits, 8) is not None  # the whole budget is spent now
    (window,) = await budgets.usage("p", limits)
    assert (window.name, window.limit, window.used, window.remaining, window.resets_at) == ("hour", 4, 4, 0, 11 * HOUR)


async def test_a_budget_refills_at_the_next_calendar_window_and_counts_every_period() -> None:
    clock = Clock(DAY - 1)  # one second before midnight UTC
    budgets = MemoryBudgets(BudgetRule(reserve=0.0), clock=clock)
    limits = ((HOUR, 1), (DAY, 2))
    assert await budgets.spend("p", limits, 0) is None
    assert await budgets.spend("p", limits, 0) is not None  # the hour's one request is used
    clock.now = DAY  # a new hour and a new day
    assert await budgets.spend("p", limits, 0) is None
    clock.now = DAY + HOUR
    assert await budgets.spend("p", limits, 0) is None
    clock.now = DAY + 2 * HOUR
    refused = await budgets.spend("p", limits, 0)
    assert refused is not None and refused.period == DAY and refused.resets_at == 2 * DAY
    assert window_start(DAY + 5, DAY) == DAY


async def test_a_spent_budget_ends_the_call_rate_limited_saying_when_it_refills() -> None:
    provider = FakeProvider("p", provides=("p.x",), policy=Policy(timeout=1, retries=0, per_hour=2))
    engine = make_engine(provider, state=EngineState(budgets=MemoryBudgets(BudgetRule(reserve=0.5))))
    low = [await engine.analyze(f"https://example.org/{n}", priority=0) for n in range(2)]
    assert [r.providers["p"].status for r in low] == [CallStatus.OK, CallStatus.RATE_LIMITED]
    assert "hourly budget of 2 requests spent" in low[1].providers["p"].message
    high = await engine.analyze("https://example.org/paid", priority=8)
    assert high.providers["p"].status is CallStatus.OK
    assert provider.calls == 2


async def test_refill_calls_one_provider_and_its_indicators_only() -> None:
    page = FakeProvider("page", provides=("page.x",))
    archive = FakeProvider("archive", provides=("archive.x",))
    score = FakeProvider("score", needs=("archive.x",), provides=("score.x",))
    score.group = "indicator"  # type: ignore[misc]
    engine = make_engine(page, archive, score)
    results = await engine.refill("archive", {"url": "https://example.org/", "page.x": 1}, priority=3)
    assert set(results) == {"archive", "score"}
    assert all(r.status is CallStatus.OK for r in results.values())
    assert (page.calls, archive.calls, score.calls) == (0, 1, 1)


def test_settings_set_and_lift_budgets() -> None:
    environ = {"LINKMETER_P_PER_HOUR": "50", "LINKMETER_P_PER_DAY": "off", "LINKMETER_BUDGET_RESERVE": "0.3"}
    settings = EngineSettings.from_env(environ)
    policy = settings.policy_for(Policy(rate_per_sec=1), "LINKMETER_P_")
    assert (policy.per_hour, policy.per_day) == (50, 0)
    assert budget_limits(policy) == ((HOUR, 50),)
    assert settings.budget_rule.reserve == 0.3
    relaxed = EngineSettings.from_env({}, relax_rate_limits=True).policy_for(Policy(per_day=10), "LINKMETER_P_")
    assert budget_limits(relaxed) == ()
    with pytest.raises(SettingsError, match="LINKMETER_BUDGET_RESERVE"):
        EngineSettings.from_env({"LINKMETER_BUDGET_RESERVE": "1"})


@pytest.fixture
async def prefix(admin: aioredis.Redis) -> AsyncIterator[str]:
    prefix = f"linkmeter-test:{uuid.uuid4().hex}:"
    yield prefix
    keys = [key async for key in admin.scan_iter(match=prefix + "*")]
    if keys:
        await admin.delete(*keys)


async def test_two_processes_share_a_budget_in_redis_and_never_overspend_it(prefix: str) -> None:
    # A generous timeout: a Redis call timing out on a loaded machine would fall back to a process's own count.
    links = [RedisLink.from_url(REDIS_URL, prefix=prefix, timeout=5.0) for _ in range(2)]
    try:
        rule = BudgetRule(reserve=0.25, reserve_priority=4)
        stores = [RedisBudgets(link, rule) for link in links]
        limits = ((HOUR, 40), (DAY, 1000))
        low = await asyncio.gather(*(stores[n % 2].spend("p", limits, 0) for n in range(50)))
        assert sum(r is None for r in low) == 30  # 75 % of 40, whichever process asked
        high = await asyncio.gather(*(stores[n % 2].spend("p", limits, 4) for n in range(20)))
        assert sum(r is None for r in high) == 10
        refused = next(r for r in high if r is not None)
        assert refused.period == HOUR and refused.resets_at % HOUR == 0
        windows = await stores[1].usage("p", limits)
        assert [(w.name, w.used, w.remaining) for w in windows] == [("hour", 40, 0), ("day", 40, 960)]
    finally:
        for link in links:
            await link.aclose()


class LaggingLimiter(MemoryRateLimiter):
    """Hands out a slot past the caller's deadline, as a loop lagging behind its timers does in effect."""

    async def reserve(self, name: str, rate: float, burst: int, max_wait: float) -> float | None:
        return max_wait + 5.0


async def test_a_call_still_waiting_for_its_slot_at_the_url_deadline_ends_rate_limited() -> None:
    provider = FakeProvider("p", provides=("p.x",), policy=Policy(timeout=1, retries=0, rate_per_sec=1))
    engine = make_engine(provider, url_deadline=0.3, state=EngineState(limiter=LaggingLimiter()))
    result = await engine.analyze("https://example.org/")
    assert result.providers["p"].status is CallStatus.RATE_LIMITED  # so it is deferred, not lost as a timeout
    assert "waiting for a rate-limit slot" in result.providers["p"].message
    assert provider.calls == 0


async def test_calls_that_joined_one_still_waiting_for_its_slot_end_rate_limited_too() -> None:
    provider = FakeProvider("p", provides=("p.x",), key_signal="domain",
                            policy=Policy(timeout=1, retries=0, rate_per_sec=1))
    engine = make_engine(provider, url_deadline=0.3, state=EngineState(limiter=LaggingLimiter()))
    results = await asyncio.gather(*(engine.analyze(f"https://example.org/{n}") for n in range(3)))
    assert [r.providers["p"].status for r in results] == [CallStatus.RATE_LIMITED] * 3
    assert provider.calls == 0
