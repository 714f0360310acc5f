"""Engine behaviours with fake providers: scheduling, statuses, deadlines, retries, limits, caching."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from linkmeter.engine.cache import MemoryCache
from linkmeter.engine.limits import MemoryCircuitBreakers, MemoryRateLimiter
from linkmeter.engine.plan import PlanError
from linkmeter.engine.ports import CacheEntry
from linkmeter.engine.provider import Collected, Policy, ProviderError, Signals
from linkmeter.engine.results import CallStatus, UrlStatus
from linkmeter.engine.state import EngineState
from tests.engine.fakes import FakeProvider, cached_provider, fails, hangs, make_engine, retryable, returns

URL = "https://news.example.org/a/1"


async def test_a_provider_starts_when_its_needs_are_met_not_at_a_round_boundary() -> None:
    slow = FakeProvider("slow", provides=("slow.x",), behave=returns({"slow.x": 1}, delay=0.4))
    fast = FakeProvider("fast", provides=("fast.x",), behave=returns({"fast.x": 2}, delay=0.01))
    follower = FakeProvider("follower", needs=("fast.x",), provides=("follower.x",),
                            behave=returns({"follower.x": 3}, delay=0.01))
    result = await make_engine(slow, fast, follower).analyze(URL)
    assert result.status is UrlStatus.DONE
    assert follower.finished_at is not None and slow.finished_at is not None
    assert follower.finished_at < slow.finished_at
    assert result.signals["follower.x"] == 3


async def test_signals_flow_from_one_round_to_the_next() -> None:
    seen: dict[str, Any] = {}

    async def record(signals: Signals, n: int) -> dict[str, Any]:
        seen.update(signals)
        return {"second.x": signals["first.x"] * 10}

    first = FakeProvider("first", provides=("first.x",), behave=returns({"first.x": 4}))
    second = FakeProvider("second", needs=("first.x",), provides=("second.x",), behave=record)
    result = await make_engine(first, second).analyze(URL)
    assert seen["url"] == URL and seen["domain"] == "example.org" and seen["host"] == "news.example.org"
    assert result.signals["second.x"] == 40


async def test_wants_wait_for_the_producer_but_run_without_its_signal() -> None:
    seen: list[Signals] = []

    async def record(signals: Signals, n: int) -> dict[str, Any]:
        seen.append(dict(signals))
        return {"social.x": 1}

    page = FakeProvider("page", provides=("page.canonical_url",), behave=fails(ProviderError("HTTP 404")))
    social = FakeProvider("social", wants=("page.canonical_url",), provides=("social.x",), behave=record)
    result = await make_engine(page, social).analyze(URL)
    assert result.providers["social"].status is CallStatus.OK
    assert "page.canonical_url" not in seen[0]
    assert result.status is UrlStatus.PARTIAL


async def test_a_provider_whose_needs_cannot_be_met_is_skipped_with_the_reason() -> None:
    page = FakeProvider("page", provides=("page.final_url",), behave=fails(ProviderError("HTTP 404 from x")))
    dns = FakeProvider("dns", needs=("page.final_url",), provides=("dns.a",))
    spam = FakeProvider("spam", needs=("dns.a",), provides=("spam.x",))
    result = await make_engine(page, dns, spam).analyze(URL)
    assert result.providers["dns"].status is CallStatus.SKIPPED
    assert result.providers["dns"].message == "needs page.final_url: page ended error (HTTP 404 from x)"
    assert result.providers["spam"].status is CallStatus.SKIPPED
    assert "needs dns.a: dns ended skipped" in result.providers["spam"].message
    assert dns.calls == 0 and spam.calls == 0
    assert result.status is UrlStatus.FAILED


async def test_every_call_ends_in_exactly_one_status_with_latency_attempts_and_message() -> None:
    ok = FakeProvider("ok", provides=("ok.x",))
    err = FakeProvider("err", provides=("err.x",), behave=fails(ProviderError("HTTP 400 from api")))
    keyed = FakeProvider("keyed", provides=("keyed.x",), requires_key=True)
    result = await make_engine(ok, err, keyed).analyze(URL)
    statuses = {name: r.status for name, r in result.providers.items()}
    assert statuses == {"ok": CallStatus.OK, "err": CallStatus.ERROR, "keyed": CallStatus.DISABLED}
    assert result.providers["ok"].attempts == 1 and result.providers["ok"].latency_ms >= 0
    assert result.providers["err"].message == "HTTP 400 from api"
    assert result.providers["keyed"].message == "no API key: set LINKMETER_KEYED_API_KEY"
    assert result.providers["keyed"].attempts == 0
    assert result.status is UrlStatus.PARTIAL  # disabled providers do not count against the URL


async def test_only_disabled_and_ok_means_done() -> None:
    ok = FakeProvider("ok", provides=("ok.x",))
    keyed = FakeProvider("keyed", provides=("keyed.x",), requires_key=True)
    assert (await make_engine(ok, keyed).analyze(URL)).status is UrlStatus.DONE


async def test_a_hanging_provider_times_out_on_its_own_timeout_and_costs_nobody_else() -> None:
    hung = FakeProvider("hung", provides=("hung.x",), behave=hangs(),
                        policy=Policy(timeout=0.3, retries=0))
    quick = FakeProvider("quick", provides=("quick.x",), behave=returns({"quick.x": 1}, delay=0.02))
    began = time.monotonic()
    result = await make_engine(hung, quick).analyze(URL)
    took = time.monotonic() - began
    assert result.providers["hung"].status is CallStatus.TIMEOUT
    assert 0.3 <= took < 0.3 + 0.25
    assert result.providers["quick"].status is CallStatus.OK
    assert result.providers["quick"].latency_ms < 250
    assert result.status is UrlStatus.PARTIAL


async def test_every_url_ends_by_its_deadline_even_when_calls_would_take_longer() -> None:
    slow = FakeProvider("slow", provides=("slow.x",), behave=hangs(), policy=Policy(timeout=30, retries=0))
    after = FakeProvider("after", needs=("slow.x",), provides=("after.x",))
    began = time.monotonic()
    result = await make_engine(slow, after, url_deadline=0.3).analyze(URL)
    assert time.monotonic() - began < 0.3 + 0.25
    assert result.providers["slow"].status is CallStatus.TIMEOUT
    assert result.providers["after"].status is CallStatus.SKIPPED
    assert result.status is UrlStatus.FAILED


async def test_an_unexpected_exception_is_an_error_of_that_provider_only() -> None:
    buggy = FakeProvider("buggy", provides=("buggy.x",), behave=fails(KeyError("hits")))
    fine = FakeProvider("fine", provides=("fine.x",))
    result = await make_engine(buggy, fine).analyze(URL)
    assert result.providers["buggy"].status is CallStatus.ERROR
    assert "KeyError" in result.providers["buggy"].message
    assert result.providers["fine"].status is CallStatus.OK


async def test_retryable_failures_are_retried_until_success() -> None:
    flaky = FakeProvider("flaky", provides=("flaky.x",), behave=fails(retryable(), times=2, then={"flaky.x": 7}),
                         policy=Policy(timeout=1, retries=3, backoff_base=0.01, backoff_max=0.05))
    result = await make_engine(flaky).analyze(URL)
    call = result.providers["flaky"]
    assert (call.status, call.attempts, call.signals) == (CallStatus.OK, 3, {"flaky.x": 7})


async def test_timeouts_are_retried() -> None:
    async def slow_then_fast(signals: Signals, n: int) -> dict[str, Any]:
        if n == 1:
            await asyncio.sleep(5)
        return {"t.x": n}

    provider = FakeProvider("t", provides=("t.x",), behave=slow_then_fast,
                            policy=Policy(timeout=0.1, retries=1, backoff_base=0.01))
    call = (await make_engine(provider).analyze(URL)).providers["t"]
    assert (call.status, call.attempts, call.signals) == (CallStatus.OK, 2, {"t.x": 2})


async def test_other_4xx_are_never_retried() -> None:
    provider = FakeProvider("p", provides=("p.x",), behave=fails(ProviderError("HTTP 404", status=404)),
                            policy=Policy(timeout=1, retries=5, backoff_base=0.01))
    call = (await make_engine(provider).analyze(URL)).providers["p"]
    assert (call.status, call.attempts) == (CallStatus.ERROR, 1)
    assert provider.calls == 1


async def test_retry_after_is_honoured() -> None:
    provider = FakeProvider("p", provides=("p.x",),
                            behave=fails(retryable("HTTP 429", retry_after=0.3, status=429), times=1,
                                         then={"p.x": 1}),
                            policy=Policy(timeout=1, retries=2, backoff_base=0.01, backoff_max=0.02))
    began = time.monotonic()
    call = (await make_engine(provider).analyze(URL)).providers["p"]
    assert call.status is CallStatus.OK and call.attempts == 2
    assert time.monotonic() - began >= 0.3


async def test_a_retry_after_beyond_the_deadline_ends_rate_limited_at_once() -> None:
    provider = FakeProvider("p", provides=("p.x",),
                            behave=fails(retryable("HTTP 429 rate limited", retry_after=60, status=429)),
                            policy=Policy(timeout=1, retries=3, backoff_base=0.01))
    began = time.monotonic()
    call = (await make_engine(provider, url_deadline=2).analyze(URL)).providers["p"]
    assert (call.status, call.attempts) == (CallStatus.RATE_LIMITED, 1)
    assert time.monotonic() - began < 0.5


async def test_retries_stop_when_attempts_run_out() -> None:
    provider = FakeProvider("p", provides=("p.x",), behave=fails(retryable("HTTP 502")),
                            policy=Policy(timeout=1, retries=2, backoff_base=0.01, backoff_max=0.02))
    call = (await make_engine(provider).analyze(URL)).providers["p"]
    assert (call.status, call.attempts, call.message) == (CallStatus.ERROR, 3, "HTTP 502")


async def test_circuit_opens_after_consecutive_failures_and_closes_after_a_good_probe() -> None:
    outcomes: list[bool] = [False, False, False, True, True]

    async def scripted(signals: Signals, n: int) -> dict[str, Any]:
        if not outcomes[n - 1]:
            raise ProviderError("HTTP 500", retryable=True)
        return {"p.x": n}

    provider = FakeProvider("p", provides=("p.x",), behave=scripted,
                            policy=Policy(timeout=1, retries=0, breaker_threshold=3, breaker_cooldown=0.2))
    engine = make_engine(provider)
    statuses = [(await engine.analyze(f"{URL}?n={i}")).providers["p"].status for i in range(4)]
    assert statuses == [CallStatus.ERROR] * 3 + [CallStatus.CIRCUIT_OPEN]
    assert provider.calls == 3  # the open circuit answered without calling
    open_call = (await engine.analyze(f"{URL}?n=open")).providers["p"]
    assert open_call.attempts == 0 and open_call.message.startswith("circuit open")
    await asyncio.sleep(0.25)
    probe = (await engine.analyze(f"{URL}?n=probe")).providers["p"]
    assert probe.status is CallStatus.OK
    after = (await engine.analyze(f"{URL}?n=after")).providers["p"]
    assert after.status is CallStatus.OK and provider.calls == 5


async def test_a_failed_probe_reopens_the_circuit() -> None:
    clock = [0.0]
    breakers = MemoryCircuitBreakers(clock=lambda: clock[0])
    for _ in range(2):
        await breakers.record("p", False, threshold=2)
    assert not await breakers.allow("p", 2, cooldown=10)
    clock[0] = 11
    assert await breakers.allow("p", 2, cooldown=10)  # the probe
    assert not await breakers.allow("p", 2, cooldown=10)  # only one probe at a time
    await breakers.record("p", False, threshold=2)
    assert not await breakers.allow("p", 2, cooldown=10)


async def test_a_rate_limit_wait_that_would_pass_the_deadline_ends_rate_limited() -> None:
    provider = FakeProvider("p", provides=("p.x",), policy=Policy(timeout=1, retries=0, rate_per_sec=2.0),
                            key_signal="url")
    engine = make_engine(provider, url_deadline=0.8)
    results = [r async for r in engine.analyze_many([f"{URL}?n={i}" for i in range(4)], concurrency=4)]
    statuses = sorted(str(r.providers["p"].status) for r in results)
    # 2/s: slots at 0, 0.5, 1.0, 1.5 s; only the first two fit in a 0.8 s deadline.
    assert statuses == ["ok", "ok", "rate_limited", "rate_limited"]
    assert provider.calls == 2


async def test_concurrency_cap_holds() -> None:
    provider = FakeProvider("p", provides=("p.x",), behave=returns({"p.x": 1}, delay=0.05),
                            policy=Policy(timeout=1, retries=0, concurrency=2))
    engine = make_engine(provider)
    results = [r async for r in engine.analyze_many([f"{URL}?n={i}" for i in range(8)], concurrency=8)]
    assert all(r.status is UrlStatus.DONE for r in results)
    assert provider.max_in_flight == 2


async def test_results_are_cached_per_key_for_the_ttl() -> None:
    provider = FakeProvider("whois", needs=("domain",), provides=("whois.age",), key_signal="domain",
                            behave=returns({"whois.age": 42}), policy=Policy(timeout=1, cache_ttl=60))
    engine = make_engine(provider)
    first = (await engine.analyze("https://a.example.org/1")).providers["whois"]
    second = (await engine.analyze("https://b.example.org/2")).providers["whois"]
    assert first.status is CallStatus.OK and second.status is CallStatus.CACHED
    assert second.signals == {"whois.age": 42} and second.attempts == 0
    other = (await engine.analyze("https://example.net/")).providers["whois"]
    assert other.status is CallStatus.OK and provider.calls == 2


async def test_a_result_held_in_process_is_final_at_once_and_starts_its_dependents() -> None:
    """A cache hit this process holds needs no task: the result is final before analyze() first waits, the
    providers that need it start from it, and disabled providers are still reported as disabled."""
    whois = FakeProvider("whois", needs=("domain",), provides=("whois.age",), key_signal="domain",
                         behave=returns({"whois.age": 42}), policy=Policy(timeout=1, cache_ttl=60))
    report = FakeProvider("report", needs=("whois.age",), provides=("report.x",),
                          behave=returns({"report.x": 1}))
    engine = make_engine(whois, report)
    await engine.analyze("https://a.example.org/1")
    called: list[str] = []  # providers run as a task through calls.call()
    original = engine.calls.call

    async def counting_call(provider: Any, signals: Any, deadline: float, priority: int = 0) -> Any:
        called.append(provider.name)
        return await original(provider, signals, deadline, priority)

    engine.calls.call = counting_call  # type: ignore[method-assign]
    result = await engine.analyze("https://b.example.org/2")
    cached = result.providers["whois"]
    assert cached.status is CallStatus.CACHED and cached.message == "from cache" and cached.attempts == 0
    assert cached.signals == {"whois.age": 42} and whois.calls == 1
    assert result.providers["report"].status is CallStatus.OK and report.calls == 2
    assert called == ["report"]  # whois never needed a task


async def test_a_disabled_provider_is_reported_disabled_even_with_a_cached_result() -> None:
    state = EngineState()
    await make_engine(cached_provider(), state=state).analyze("https://example.org/")
    disabled = cached_provider(requires_key=True)
    result = await make_engine(disabled, state=state).analyze("https://example.org/x")
    assert result.providers["p"].status is CallStatus.DISABLED


@pytest.mark.parametrize(("ttl", "cached_for"), [(None, 60.0), (5.0, 5.0), (600.0, 60.0), (0.0, None)])
async def test_a_result_s_own_ttl_caps_how_long_it_is_cached(ttl: float | None, cached_for: float | None) -> None:
    class Recording(MemoryCache):
        def __init__(self) -> None:
            super().__init__()
            self.ttls: dict[str, float] = {}

        async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
            self.ttls[key] = ttl
            await super().set(key, entry, ttl)

    class Expiring(FakeProvider):
        async def collect(self, ctx: Any, signals: Signals) -> Collected:
            found = await super().collect(ctx, signals)
            return Collected(found.signals, found.raw, ttl=ttl)

    cache = Recording()
    provider = Expiring("p", needs=("domain",), provides=("p.x",), key_signal="domain",
                        policy=Policy(timeout=1, cache_ttl=60))
    engine = make_engine(provider, state=EngineState(cache=cache))
    await engine.analyze("https://example.org/1")
    second = await engine.analyze("https://example.org/2")
    assert cache.ttls == ({} if cached_for is None else {"p:example.org": cached_for})
    assert second.providers["p"].status is (CallStatus.OK if cached_for is None else CallStatus.CACHED)
    assert provider.calls == (2 if cached_for is None else 1)


async def test_failures_are_not_cached() -> None:
    provider = FakeProvider("p", needs=("domain",), provides=("p.x",), key_signal="domain",
                            behave=fails(ProviderError("HTTP 400"), times=1, then={"p.x": 1}),
                            policy=Policy(timeout=1, cache_ttl=60))
    engine = make_engine(provider)
    assert (await engine.analyze("https://example.org/1")).providers["p"].status is CallStatus.ERROR
    assert (await engine.analyze("https://example.org/2")).providers["p"].status is CallStatus.OK


async def test_identical_calls_in_flight_become_one_upstream_call() -> None:
    rdap = FakeProvider("rdap", needs=("domain",), provides=("rdap.age",), key_signal="domain",
                        behave=returns({"rdap.age": 9}, delay=0.1), policy=Policy(timeout=1, cache_ttl=0))
    engine = make_engine(rdap)
    urls = [f"https://example.org/post/{i}" for i in range(50)]
    results = [r async for r in engine.analyze_many(urls, concurrency=50)]
    assert rdap.calls == 1
    statuses = sorted(str(r.providers["rdap"].status) for r in results)
    assert statuses.count("ok") == 1 and statuses.count("cached") == 49
    assert all(r.signals["rdap.age"] == 9 for r in results)


@pytest.mark.parametrize(("first", "calls"), [
    pytest.param("long", 1, id="a url reaching its deadline does not cancel a call others share"),
    pytest.param("short", 2, id="a joiner with time left calls again when the shared call hit its leader's deadline"),
])
async def test_a_shared_call_and_the_deadlines_of_the_urls_sharing_it(first: str, calls: int) -> None:
    shared = FakeProvider("shared", needs=("domain",), provides=("shared.x",), key_signal="domain",
                          behave=returns({"shared.x": 1}, delay=0.3), policy=Policy(timeout=2))
    engine = make_engine(shared)
    deadlines = {"long": 2.0, "short": 0.1}
    second = "short" if first == "long" else "long"
    leader = asyncio.create_task(engine.analyze(f"https://example.org/{first}", deadline=deadlines[first]))
    await asyncio.sleep(0.02)
    joiner = await engine.analyze(f"https://example.org/{second}", deadline=deadlines[second])
    results = {first: await leader, second: joiner}
    assert results["short"].providers["shared"].status is CallStatus.TIMEOUT
    assert results["long"].providers["shared"].status is CallStatus.OK and results["long"].signals["shared.x"] == 1
    assert shared.calls == calls


async def test_analyze_many_yields_every_url_with_bounded_concurrency() -> None:
    provider = FakeProvider("p", provides=("p.x",), behave=returns({"p.x": 1}, delay=0.02))
    engine = make_engine(provider)
    urls = [f"{URL}?n={i}" for i in range(30)]
    seen = [r.url async for r in engine.analyze_many(iter(urls), concurrency=5)]
    assert sorted(seen) == sorted(urls)
    assert provider.max_in_flight <= 5


async def test_shared_state_can_be_passed_between_engines() -> None:
    state = EngineState()
    await make_engine(cached_provider(), state=state).analyze("https://example.org/")
    second = cached_provider()
    result = await make_engine(second, state=state).analyze("https://example.org/x")
    assert result.providers["p"].status is CallStatus.CACHED and second.calls == 0


@pytest.mark.parametrize("concurrency", [1, 7])
async def test_no_url_is_lost_when_providers_misbehave(concurrency: int) -> None:
    chaos = FakeProvider("chaos", provides=("c.x",), behave=fails(RuntimeError("boom")))
    hung = FakeProvider("hung", provides=("h.x",), behave=hangs(), policy=Policy(timeout=0.05, retries=0))
    engine = make_engine(chaos, hung)
    urls = [f"{URL}?n={i}" for i in range(10)]
    results = [r async for r in engine.analyze_many(urls, concurrency=concurrency)]
    assert len(results) == 10 and all(r.status is UrlStatus.FAILED for r in results)


async def test_a_full_concurrency_cap_does_not_count_against_the_providers_health() -> None:
    provider = FakeProvider("p", provides=("p.x",), behave=returns({"p.x": 1}, delay=0.3),
                            policy=Policy(timeout=1, retries=0, concurrency=1, breaker_threshold=2))
    engine = make_engine(provider, url_deadline=0.1)
    results = [r async for r in engine.analyze_many([f"{URL}?n={i}" for i in range(4)], concurrency=4)]
    assert sorted(str(r.providers["p"].status) for r in results).count("rate_limited") >= 2
    assert await engine.state.breakers.allow("p", threshold=2, cooldown=30)


async def test_a_429_pauses_every_caller_of_that_provider_for_its_retry_after() -> None:
    first_call = asyncio.Event()

    async def limited_once(signals: Signals, n: int) -> dict[str, Any]:
        if n == 1:
            first_call.set()
            raise retryable("HTTP 429", retry_after=0.4, status=429)
        return {"p.x": n}

    provider = FakeProvider("p", provides=("p.x",), behave=limited_once,
                            policy=Policy(timeout=1, retries=1, backoff_base=0.01))
    engine = make_engine(provider)
    began = time.monotonic()
    first = asyncio.create_task(engine.analyze(f"{URL}?n=1"))
    await first_call.wait()
    second = await engine.analyze(f"{URL}?n=2")  # a different URL: no retry of its own, but it must wait
    assert second.providers["p"].status is CallStatus.OK
    assert time.monotonic() - began >= 0.4
    assert (await first).providers["p"].status is CallStatus.OK


class LaggingMirror(MemoryRateLimiter):
    """A shared limiter seen through a mirror that has not heard of its pauses yet (their events are on their
    way): only an ``exact`` read sees them."""

    async def paused_for(self, name: str, *, exact: bool = False) -> float:
        return await super().paused_for(name) if exact else 0.0


@pytest.mark.parametrize("limiter", [MemoryRateLimiter, LaggingMirror])
async def test_calls_already_waiting_for_their_slots_hold_back_during_a_pause(
        limiter: type[MemoryRateLimiter]) -> None:
    # Under load, slots are booked well ahead: a 429 (here from "another worker") must still hold back every
    # call that is already waiting for one, not only the calls that book after it, even when this process's
    # copy of the shared state has not heard of it yet.
    started: list[float] = []

    async def record(signals: Signals, n: int) -> dict[str, Any]:
        started.append(time.monotonic())
        return {"p.x": n}

    provider = FakeProvider("p", provides=("p.x",), behave=record,
                            policy=Policy(timeout=1, retries=0, rate_per_sec=40, burst=1))
    engine = make_engine(provider, state=EngineState(limiter=limiter()))
    urls = [f"{URL}?n={i}" for i in range(40)]  # a second of slots at 40/s
    running = asyncio.ensure_future(asyncio.gather(*(engine.analyze(u) for u in urls)))
    await asyncio.sleep(0.2)
    paused_at = time.monotonic()
    await engine.state.limiter.pause("p", 0.5)
    results = await running
    assert all(r.providers["p"].status is CallStatus.OK for r in results)
    inside = [t for t in started if paused_at + 0.01 < t < paused_at + 0.5]
    assert inside == []
    assert len(started) == 40


async def test_a_pause_longer_than_the_deadline_ends_rate_limited_without_calling() -> None:
    provider = FakeProvider("p", provides=("p.x",))
    engine = make_engine(provider, url_deadline=0.5)
    await engine.state.limiter.pause("p", 30)
    call = (await engine.analyze(URL)).providers["p"]
    assert call.status is CallStatus.RATE_LIMITED and "429" in call.message and provider.calls == 0


async def test_a_provider_selection_is_a_view_made_once_and_no_selection_is_the_engine() -> None:
    first, second = FakeProvider("a", provides=("a.x",)), FakeProvider("b", provides=("b.x",))
    engine = make_engine(first, second)
    assert engine.for_selection(()) is engine
    view = engine.for_selection(("b",))
    assert view is engine.for_selection(["b"]) and [p.name for p in view.plan.providers] == ["b"]
    assert engine.for_selection(("a", "b")) is not view
    with pytest.raises(PlanError):
        engine.for_selection(("nope",))


async def test_a_provider_outside_the_default_set_runs_only_when_a_selection_names_it() -> None:
    page = FakeProvider("page", provides=("page.x",))
    slow = FakeProvider("slow", needs=("page.x",), provides=("slow.x",), in_default_set=False,
                        behave=returns({"slow.x": 1}, delay=0.05), policy=Policy(timeout=1, retries=0, concurrency=1))
    engine = make_engine(page, slow)
    default = await engine.for_selection(()).analyze(URL)
    assert sorted(default.providers) == ["page"] and default.status is UrlStatus.DONE and slow.calls == 0
    chosen = engine.for_selection(["slow"])
    assert chosen is engine.for_selection(("slow",)) and sorted(p.name for p in chosen.plan.providers) == [
        "page", "slow"]
    named = await chosen.analyze(URL)
    assert named.providers["slow"].status is CallStatus.OK and named.signals["slow.x"] == 1
    assert engine.disabled() == {} and slow.calls == 1
    # Views share the concurrency cap of a provider the engine's own plan does not run.
    both = await asyncio.gather(chosen.analyze(f"{URL}?n=1"), engine.for_selection(["slow", "page"]).analyze(
        f"{URL}?n=2"))
    assert [r.providers["slow"].status for r in both] == [CallStatus.OK] * 2 and slow.max_in_flight == 1
    # And a view of a view still knows every provider.
    assert sorted(p.name for p in chosen.narrowed(["page"]).narrowed(["slow"]).plan.providers) == ["page", "slow"]
