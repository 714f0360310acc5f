"""Bulk queries: calls ready across URLs go out as one request, through the cache and single flight, with the
results one call per key would give."""

from __future__ import annotations

import asyncio

import pytest

from linkmeter.assembly import build_engine
from linkmeter.engine.cache import MemoryCache
from linkmeter.engine.ports import CacheEntry
from linkmeter.engine.provider import Collected, Policy, ProviderError, Signals
from linkmeter.engine.results import CallResult, CallStatus, UrlResult
from linkmeter.engine.state import EngineState
from tests.engine.bulkcheck import calls, run_all, urls
from tests.engine.fakes import BulkFake, FakeProvider, make_engine, returns

STILL = 30.0  # a linger no test waits for: a batch that is sent proves something else sent it


def sizes(bulk: BulkFake) -> list[int]:
    return sorted(len(batch) for batch in bulk.batches)


async def test_calls_ready_across_urls_go_out_as_one_request() -> None:
    bulk = BulkFake("bulk")
    results = await run_all(make_engine(bulk), urls(20))
    assert bulk.batches == [[url for url in urls(20)]] and bulk.singles == []
    for url, call in calls(results, "bulk").items():
        assert (call.status, call.attempts, call.signals) == (CallStatus.OK, 1, {"bulk.x": len(url)})
        assert call.raw == {"url": url} and call.key == url


async def test_a_batch_holds_at_most_max_batch_keys() -> None:
    bulk = BulkFake("bulk", max_batch=10, linger=0.05)
    results = await run_all(make_engine(bulk), urls(25))
    assert sizes(bulk) == [5, 10, 10]
    assert sorted(key for batch in bulk.batches for key in batch) == sorted(urls(25))
    assert {call.status for call in calls(results, "bulk").values()} == {CallStatus.OK}


async def test_a_batch_that_never_fills_is_sent_when_the_linger_ends() -> None:
    bulk = BulkFake("bulk", max_batch=100, linger=0.1)
    results = await run_all(make_engine(bulk), urls(3))
    assert sizes(bulk) == [3]
    for call in calls(results, "bulk").values():
        assert call.status is CallStatus.OK
        assert call.latency_ms >= 90  # from the call's start: the linger is part of its latency


async def test_a_url_whose_deadline_is_nearer_than_the_linger_sends_the_batch_at_once() -> None:
    bulk = BulkFake("bulk", linger=STILL)
    engine = make_engine(bulk, url_deadline=60)
    patient = [asyncio.create_task(engine.analyze(url)) for url in urls(4)]
    await asyncio.sleep(0.05)
    assert bulk.batches == []  # they wait for the linger...
    async with asyncio.timeout(5):
        hurried = await engine.analyze(urls(1, start=4)[0], deadline=1.0)  # ...until a near deadline joins
        results = [await task for task in patient]
    assert sizes(bulk) == [5]
    assert hurried.providers["bulk"].status is CallStatus.OK
    assert all(r.providers["bulk"].status is CallStatus.OK for r in results)


@pytest.mark.parametrize("peekable", [True, False], ids=["near-cache", "shared-cache"])
async def test_cached_keys_are_answered_from_the_cache_and_not_sent(peekable: bool) -> None:
    cache = MemoryCache() if peekable else _UnpeekableCache()
    bulk = BulkFake("bulk", policy=Policy(retries=0, cache_ttl=60))
    engine = make_engine(bulk, state=EngineState(cache=cache))
    await run_all(engine, urls(10))
    results = await run_all(engine, urls(20))
    assert bulk.batches[1:] == [urls(10, start=10)]
    assert {calls(results, "bulk")[url].status for url in urls(10)} == {CallStatus.CACHED}
    assert {calls(results, "bulk")[url].status for url in urls(10, start=10)} == {CallStatus.OK}
    assert calls(results, "bulk")[urls(1)[0]].signals == {"bulk.x": len(urls(1)[0])}


async def test_a_key_waiting_in_a_batch_is_joined_not_sent_twice() -> None:
    bulk = BulkFake("bulk", key_signal="domain")
    same_domain = ["https://a.example.org/1", "https://a.example.org/2", "https://b.example.net/"]
    results = calls(await run_all(make_engine(bulk), same_domain), "bulk")
    assert sizes(bulk) == [2] and sorted(bulk.batches[0]) == ["example.net", "example.org"]
    statuses = sorted(str(results[url].status) for url in same_domain[:2])
    assert statuses == ["cached", "ok"]  # one sent it, the other shared it
    assert results[same_domain[0]].signals == results[same_domain[1]].signals


async def test_a_key_already_sent_is_joined_by_a_later_call() -> None:
    sent = asyncio.Event()
    release = asyncio.Event()

    async def hold(keys: list[str], n: int) -> None:
        sent.set()
        await release.wait()

    bulk = BulkFake("bulk", key_signal="domain", before=hold)
    engine = make_engine(bulk)
    first = asyncio.create_task(engine.analyze("https://a.example.org/1"))
    await asyncio.wait_for(sent.wait(), 5)
    second = asyncio.create_task(engine.analyze("https://a.example.org/2"))
    await asyncio.sleep(0.1)  # longer than the linger: a second request would have been sent by now
    release.set()
    one, two = await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert bulk.batches == [["example.org"]]
    assert one.providers["bulk"].status is CallStatus.OK
    assert two.providers["bulk"].status is CallStatus.CACHED
    assert two.providers["bulk"].message == "shared an identical call in flight"


def test_bulk_off_in_the_environment_sends_every_call_one_by_one() -> None:
    engine = build_engine({"LINKMETER_BULK": "off"})
    assert engine.bulk is False and engine.narrowed(["page"]).bulk is False
    assert build_engine({}).bulk is True


async def test_every_call_ends_in_exactly_one_status_with_latency_and_attempts() -> None:
    seen: list[tuple[str, CallResult]] = []

    class Observer:
        def call_finished(self, provider: str, result: CallResult) -> None:
            seen.append((provider, result))

        def url_finished(self, result: UrlResult) -> None:
            pass

    def item(signals: Signals) -> Collected:
        if signals["url"].startswith("https://site1"):
            raise ProviderError("HTTP 404 item")
        return Collected({"bulk.x": 1})

    bulk = BulkFake("bulk", max_batch=4, item=item)
    engine = make_engine(bulk, FakeProvider("other", provides=("other.x",), behave=returns({"other.x": 1})))
    engine.observer = Observer()
    results = await run_all(engine, urls(15))
    bulk_calls = [result for provider, result in seen if provider == "bulk"]
    assert len(bulk_calls) == 15 and len(results) == 15
    assert {r.status for r in bulk_calls} == {CallStatus.OK, CallStatus.ERROR}
    assert all(r.attempts == 1 and r.latency_ms > 0 for r in bulk_calls)


async def test_results_are_identical_to_one_call_per_key() -> None:
    def item(signals: Signals) -> Collected:
        if signals["url"].endswith("7.example/page"):
            raise ProviderError("HTTP 404 item")
        return Collected({"bulk.x": len(signals["url"]), "bulk.domain": signals["domain"]}, raw=signals["url"])

    outcomes = {}
    for bulk_on in (True, False):
        bulk = BulkFake("bulk", max_batch=7, item=item, provides=("bulk.x", "bulk.domain"))
        results = calls(await run_all(make_engine(bulk, bulk=bulk_on), urls(30)), "bulk")
        outcomes[bulk_on] = {url: (c.status, c.message, c.signals, c.raw, c.attempts) for url, c in results.items()}
        assert (len(bulk.batches), len(bulk.singles)) == ((5, 0) if bulk_on else (0, 30))
    assert outcomes[True] == outcomes[False]


async def test_the_cached_ttl_of_a_batched_answer_is_capped_by_the_answer() -> None:
    def item(signals: Signals) -> Collected:
        ttl = {"https://site0.example/page": 0.0, "https://site1.example/page": 5.0}.get(signals["url"])
        return Collected({"bulk.x": 1}, ttl=ttl)

    cache = _RecordingCache()
    bulk = BulkFake("bulk", item=item, policy=Policy(retries=0, cache_ttl=60, batch_linger=0.02))
    await run_all(make_engine(bulk, state=EngineState(cache=cache)), urls(3))
    assert cache.ttls == {"bulk:https://site1.example/page": 5.0, "bulk:https://site2.example/page": 60.0}


class _UnpeekableCache:
    """A shared cache without a near-cache: every read is a ``get``."""

    def __init__(self) -> None:
        self._inner = MemoryCache()

    async def get(self, key: str) -> CacheEntry | None:
        return await self._inner.get(key)

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        await self._inner.set(key, entry, ttl)


class _RecordingCache(_UnpeekableCache):
    def __init__(self) -> None:
        super().__init__()
        self.ttls: dict[str, float] = {}

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        self.ttls[key] = ttl
        await super().set(key, entry, ttl)
