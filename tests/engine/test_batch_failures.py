"""Bulk queries that fail, hang or wait: each key ends with its own status by its own deadline, one request
costs one limiter slot and one place under the cap, and a URL giving up leaves the request to the others."""

from __future__ import annotations

import asyncio
from typing import Any

from linkmeter.engine.limits import MemoryRateLimiter
from linkmeter.engine.provider import Collected, Policy, ProviderError, Signals
from linkmeter.engine.results import CallStatus, UrlStatus
from linkmeter.engine.runner import Engine
from linkmeter.engine.state import EngineState
from tests.engine.bulkcheck import calls, compare_bulk, run_all, urls
from tests.engine.fakes import BulkFake, FakeProvider, make_engine, retryable


def sizes(bulk: BulkFake) -> list[int]:
    return sorted(len(batch) for batch in bulk.batches)


async def test_a_per_key_error_is_that_key_s_result_only() -> None:
    missing, limited = urls(2)[0], urls(2)[1]

    def item(signals: Signals) -> Collected:
        if signals["url"] == missing:
            raise ProviderError("not found: no such entry", status=404)
        if signals["url"] == limited:
            raise ProviderError("HTTP 429 for this key", rate_limited=True, retryable=True, retry_after=30)
        return Collected({"bulk.x": 1})

    state = EngineState()
    bulk = BulkFake("bulk", item=item)
    results = calls(await run_all(make_engine(bulk, state=state), urls(6)), "bulk")
    assert sizes(bulk) == [6]
    assert (results[missing].status, results[missing].message) == (CallStatus.ERROR, "not found: no such entry")
    assert results[limited].status is CallStatus.RATE_LIMITED
    assert {results[url].status for url in urls(4, start=2)} == {CallStatus.OK}
    assert await state.limiter.paused_for("bulk") == 0  # an answer about one key does not pause the provider


async def test_a_failed_request_fails_just_its_keys_with_one_status_and_message() -> None:
    async def first_fails(keys: list[str], n: int) -> None:
        if n == 1:
            raise retryable("HTTP 503 from bulk")

    bulk = BulkFake("bulk", max_batch=5, before=first_fails)
    results = calls(await run_all(make_engine(bulk), urls(10)), "bulk")
    failed = set(bulk.batches[0])
    assert len(bulk.batches) == 2
    for url, call in results.items():
        if url in failed:
            assert (call.status, call.message, call.attempts) == (CallStatus.ERROR, "HTTP 503 from bulk", 1)
        else:
            assert (call.status, call.attempts) == (CallStatus.OK, 1)


async def test_a_failed_request_is_retried_as_a_whole_under_the_policy() -> None:
    async def first_fails(keys: list[str], n: int) -> None:
        if n == 1:
            raise retryable()

    bulk = BulkFake("bulk", before=first_fails, policy=Policy(retries=2, backoff_base=0.01, batch_linger=0.02))
    results = calls(await run_all(make_engine(bulk), urls(8)), "bulk")
    assert bulk.batches == [urls(8), urls(8)]
    assert {(call.status, call.attempts) for call in results.values()} == {(CallStatus.OK, 2)}


async def test_a_key_with_no_time_for_the_retry_ends_with_the_failure_and_the_others_are_retried() -> None:
    async def first_fails(keys: list[str], n: int) -> None:
        if n == 1:
            raise retryable("HTTP 503 from bulk")

    bulk = BulkFake("bulk", before=first_fails, policy=Policy(retries=2, backoff_base=0.5, batch_linger=0.02))
    engine = make_engine(bulk, url_deadline=10)
    hurried, patient = urls(2)
    async with asyncio.timeout(10):
        short, long = await asyncio.gather(engine.analyze(hurried, deadline=0.3), engine.analyze(patient))
    assert bulk.batches == [[hurried, patient], [patient]]  # the retry carries only the key still waiting
    call = short.providers["bulk"]
    assert (call.status, call.message, call.attempts) == (CallStatus.ERROR, "HTTP 503 from bulk", 1)
    assert call.latency_ms < 300  # ended at the backoff, as its own call would have, not at its deadline
    assert (long.providers["bulk"].status, long.providers["bulk"].attempts) == (CallStatus.OK, 2)


async def test_a_hanging_request_costs_only_its_keys_cells_within_their_timeout() -> None:
    cancelled: list[list[str]] = []

    async def first_hangs(keys: list[str], n: int) -> None:
        if n == 1:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(keys)
                raise

    bulk = BulkFake("bulk", max_batch=3, before=first_hangs,
                    policy=Policy(timeout=0.3, retries=0, batch_linger=0.02))
    other = FakeProvider("other", provides=("other.x",))
    results = await run_all(make_engine(bulk, other, url_deadline=10), urls(6))
    hung = set(bulk.batches[0])
    assert len(bulk.batches) == 2 and len(hung) == 3
    for url, result in results.items():
        call = result.providers["bulk"]
        assert result.providers["other"].status is CallStatus.OK
        if url in hung:
            assert (call.status, call.message, call.attempts) == (CallStatus.TIMEOUT, "no answer within 0.3s", 1)
            assert result.status is UrlStatus.PARTIAL and call.latency_ms < 10_000
        else:
            assert call.status is CallStatus.OK and result.status is UrlStatus.DONE
    assert [sorted(keys) for keys in cancelled] == [sorted(hung)]  # the request itself was given up


async def test_each_key_of_a_hanging_request_ends_by_its_own_deadline() -> None:
    async def hang(keys: list[str], n: int) -> None:
        await asyncio.Event().wait()

    bulk = BulkFake("bulk", before=hang, policy=Policy(timeout=1.0, retries=0, batch_linger=0.02))
    engine = make_engine(bulk, url_deadline=10)
    hurried, patient = urls(2)
    async with asyncio.timeout(10):
        short, long = await asyncio.gather(engine.analyze(hurried, deadline=0.4), engine.analyze(patient))
    assert bulk.batches == [[hurried, patient]]
    assert short.providers["bulk"].status is CallStatus.TIMEOUT and short.elapsed_ms < 400
    assert (long.providers["bulk"].status, long.providers["bulk"].message) == (
        CallStatus.TIMEOUT, "no answer within 1s")


async def test_a_request_no_key_waits_for_any_more_is_given_up() -> None:
    sent, given_up = asyncio.Event(), asyncio.Event()

    async def hang(keys: list[str], n: int) -> None:
        sent.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            given_up.set()
            raise

    bulk = BulkFake("bulk", before=hang, policy=Policy(timeout=60, retries=0, batch_linger=0.02))
    engine = make_engine(bulk, url_deadline=60)
    tasks = [asyncio.create_task(engine.analyze(url)) for url in urls(3)]
    await asyncio.wait_for(sent.wait(), 5)
    for task in tasks:  # e.g. the runner stopping: every URL of the request gives up
        task.cancel()
    await asyncio.wait_for(given_up.wait(), 5)  # not its own 60 s timeout, nor the URLs' deadline
    batcher = engine.calls.batcher("bulk")
    assert batcher is not None
    for _ in range(3):
        await asyncio.sleep(0)
    assert batcher.requests_in_flight == 0 and batcher.requests == 1


async def test_a_url_that_gives_up_does_not_cancel_the_request_for_the_others() -> None:
    release = asyncio.Event()
    sent = asyncio.Event()

    async def hold(keys: list[str], n: int) -> None:
        sent.set()
        await release.wait()

    bulk = BulkFake("bulk", before=hold)
    engine = make_engine(bulk)
    tasks = [asyncio.create_task(engine.analyze(url)) for url in urls(3)]
    await asyncio.wait_for(sent.wait(), 5)
    tasks[0].cancel()
    await asyncio.sleep(0.01)
    release.set()
    done = await asyncio.wait_for(asyncio.gather(*tasks[1:]), 5)
    assert [r.providers["bulk"].status for r in done] == [CallStatus.OK, CallStatus.OK]
    assert len(bulk.batches) == 1 and tasks[0].cancelled()


async def test_a_url_that_gives_up_while_its_key_waits_leaves_the_batch() -> None:
    bulk = BulkFake("bulk", linger=0.2)
    engine = make_engine(bulk)
    tasks = [asyncio.create_task(engine.analyze(url)) for url in urls(3)]
    await asyncio.sleep(0.05)
    tasks[0].cancel()
    done = await asyncio.wait_for(asyncio.gather(*tasks[1:]), 5)
    assert bulk.batches == [urls(2, start=1)]
    assert [r.providers["bulk"].status for r in done] == [CallStatus.OK, CallStatus.OK]


async def test_the_rate_limiter_counts_one_slot_per_request() -> None:
    limiter = _CountingLimiter()
    bulk = BulkFake("bulk", max_batch=10, policy=Policy(retries=0, rate_per_sec=1000, burst=100, batch_linger=0.02))
    results = calls(await run_all(make_engine(bulk, state=EngineState(limiter=limiter)), urls(30)), "bulk")
    assert len(bulk.batches) == 3 and limiter.reserved == 3
    assert {call.status for call in results.values()} == {CallStatus.OK}


async def test_a_request_takes_one_place_under_the_concurrency_cap() -> None:
    release = asyncio.Event()

    async def first_holds(keys: list[str], n: int) -> None:
        if n == 1:
            await release.wait()

    bulk = BulkFake("bulk", max_batch=2, before=first_holds,
                    policy=Policy(retries=0, concurrency=1, batch_linger=0.02))
    engine = make_engine(bulk, url_deadline=10)
    holding = [asyncio.create_task(engine.analyze(url)) for url in urls(2)]
    await asyncio.sleep(0.1)
    # The second request (these two keys) waits for the cap; one key's deadline comes first.
    patient = asyncio.create_task(engine.analyze(urls(1, start=3)[0]))
    async with asyncio.timeout(5):
        refused = await engine.analyze(urls(1, start=2)[0], deadline=0.5)
    release.set()
    held = await asyncio.wait_for(asyncio.gather(*holding, patient), 5)
    assert refused.providers["bulk"].status is CallStatus.RATE_LIMITED
    assert refused.providers["bulk"].message == "concurrency cap (1) full until the deadline"
    assert [r.providers["bulk"].status for r in held] == [CallStatus.OK] * 3
    assert len(bulk.batches) == 2 and bulk.max_in_flight == 1
    assert bulk.batches[1] == [urls(1, start=3)[0]]  # sent when the cap freed, without the key that had ended


async def test_an_open_breaker_refuses_the_request_and_every_key_says_so() -> None:
    bulk = BulkFake("bulk", before=_fail_always, policy=Policy(retries=0, breaker_threshold=1, batch_linger=0.02))
    engine = make_engine(bulk)
    await run_all(engine, urls(3))
    results = calls(await run_all(engine, urls(3, start=3)), "bulk")
    assert len(bulk.batches) == 1
    assert {(call.status, call.message) for call in results.values()} == {
        (CallStatus.CIRCUIT_OPEN, "circuit open after repeated failures")}


async def test_a_provider_bug_in_collect_many_fails_its_keys_only() -> None:
    class Miscounting(BulkFake):
        async def collect_many(self, ctx: Any, batch: Any) -> list[Collected | ProviderError]:
            await super().collect_many(ctx, batch)
            return []

    bulk = Miscounting("bulk")
    other = FakeProvider("other", provides=("other.x",))
    results = await run_all(make_engine(bulk, other), urls(2))
    for result in results.values():
        assert result.providers["bulk"].status is CallStatus.ERROR
        message = result.providers["bulk"].message
        assert message == "unexpected RuntimeError: collect_many answered 0 outcomes for 2 keys"
        assert result.providers["other"].status is CallStatus.OK


async def test_the_comparison_helper_sees_shared_keys_and_per_key_errors_alike() -> None:
    def item(signals: Signals) -> Collected:
        if signals["domain"] == "site3.example":
            raise ProviderError("Domain not found", status=404)
        return Collected({"bulk.x": len(signals["domain"])})

    def make(bulk_on: bool) -> Engine:
        return make_engine(BulkFake("bulk", max_batch=4, key_signal="domain", item=item),
                           FakeProvider("other", provides=("other.x",)), bulk=bulk_on)

    targets = urls(10) + [url.replace("/page", "/other") for url in urls(10)]  # every key asked twice
    run = await compare_bulk(make, targets, concurrency=len(targets))
    assert run.differences("bulk") == {} and run.differences("other") == {}
    assert run.requests == {"bulk": 3} and run.keys_sent == {"bulk": 10}
    assert run.bulk[urls(4)[3]].providers["bulk"].message == "Domain not found"


async def _fail_always(keys: list[str], n: int) -> None:
    raise retryable()


class _CountingLimiter(MemoryRateLimiter):
    def __init__(self) -> None:
        super().__init__()
        self.reserved = 0

    async def reserve(self, name: str, rate: float, burst: int, max_wait: float) -> float | None:
        self.reserved += 1
        return await super().reserve(name, rate, burst, max_wait)
