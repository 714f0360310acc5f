"""A Celery worker's runtime in this process (its own loop thread, the real emulator): chunks run to final
results, a chunk run twice repeats no work, a redelivered chunk takes over what its dead worker left
running, provider selections are honoured; and the claim-by-ids service underneath."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from linkmeter.emulator.server import RunningEmulator
from linkmeter.providers.registry import DEFAULT_NAMES
from linkmeter.web.jobs.worker import ChunkSummary, WorkerRuntime
from linkmeter.web.links.models import Analysis, AnalysisStatus, ProviderResult
from linkmeter.web.links.services.queue import analysis_claim_ids
from linkmeter.web.links.services.submission import analysis_submit

pytestmark = pytest.mark.django_db(transaction=True)

ALL_PROVIDERS = set(DEFAULT_NAMES)  # what runs when a submission names no provider
URLS = [f"https://news.example.org/c/{i}" for i in range(10)]


@pytest.fixture
def runtime(emulator: RunningEmulator) -> Iterator[WorkerRuntime]:
    started = WorkerRuntime({"LINKMETER_URL_DEADLINE": "10"}, emulator=emulator.info(), relax_rate_limits=True,
                            chunk_time_limit=30)
    started.start()
    yield started
    started.close()


def submit(urls: list[str], **options: Any) -> list[int]:
    return [a.pk for a in analysis_submit(urls=urls, **options).analyses]


def results() -> list[tuple[int, str]]:
    return list(ProviderResult.objects.values_list("analysis_id", "provider"))


def statuses() -> dict[int, str]:
    return dict(Analysis.objects.values_list("id", "status"))


async def run_chunk(runtime: WorkerRuntime, ids: list[int], *, takeover: bool = False) -> ChunkSummary:
    # The emulator answers on this test's event loop: the chunk waits in another thread, as a task thread does.
    return await asyncio.to_thread(runtime.run_chunk, ids, takeover=takeover)


async def test_a_chunk_runs_its_analyses_to_final_results_with_one_result_per_provider(
        runtime: WorkerRuntime) -> None:
    ids = await sync_to_async(submit)(URLS)
    summary = await run_chunk(runtime, ids)
    assert summary == ChunkSummary(asked=10, claimed=10, stored=10, failed=0)
    final = await sync_to_async(statuses)()
    assert set(final) == set(ids) and set(final.values()) == {"done"}
    stored = await sync_to_async(results)()
    assert sorted(stored) == sorted((pk, name) for pk in ids for name in ALL_PROVIDERS)
    page = await sync_to_async(lambda: ProviderResult.objects.filter(provider="page").first())()
    assert page is not None and isinstance(page.signals, dict) and page.signals["page.status"] == 200
    assert isinstance(page.raw, dict)  # JSON columns read back as JSON, on SQLite and PostgreSQL alike


async def test_the_same_chunk_run_again_repeats_no_work(runtime: WorkerRuntime, emulator: RunningEmulator) -> None:
    ids = await sync_to_async(submit)(URLS[:4])
    await run_chunk(runtime, ids)
    first = await sync_to_async(lambda: dict(Analysis.objects.values_list("id", "finished_at")))()
    calls = sum(emulator.request_counts.values())
    again = await run_chunk(runtime, ids)
    redelivered = await run_chunk(runtime, ids, takeover=True)  # a redelivered chunk: final ones stay final
    assert again == redelivered == ChunkSummary(asked=4, claimed=0, stored=0, failed=0)
    assert sum(emulator.request_counts.values()) == calls  # no provider asked twice
    assert await sync_to_async(lambda: dict(Analysis.objects.values_list("id", "finished_at")))() == first
    assert len(await sync_to_async(results)()) == 4 * len(ALL_PROVIDERS)


async def test_a_redelivered_chunk_finishes_what_its_dead_worker_left_running(runtime: WorkerRuntime) -> None:
    def lost() -> list[int]:
        ids = submit(URLS[:3])
        # A worker claimed them (deadline not passed yet), then died before storing anything.
        analysis_claim_ids(analysis_ids=ids, deadline_seconds=600)
        return ids

    ids = await sync_to_async(lost)()
    skipped = await run_chunk(runtime, ids)  # a second, ordinary delivery leaves them to their worker
    assert skipped.claimed == 0 and set((await sync_to_async(statuses)()).values()) == {"running"}
    taken = await run_chunk(runtime, ids, takeover=True)
    assert taken == ChunkSummary(asked=3, claimed=3, stored=3, failed=0)
    attempts = await sync_to_async(lambda: set(Analysis.objects.values_list("status", "attempts")))()
    assert attempts == {("done", 2)}


async def test_running_analyses_past_their_deadline_are_claimed_again_without_takeover(
        runtime: WorkerRuntime) -> None:
    def overdue() -> list[int]:
        ids = submit(URLS[:2])
        analysis_claim_ids(analysis_ids=ids, deadline_seconds=60)
        Analysis.objects.filter(id__in=ids).update(deadline_at=timezone.now() - timedelta(seconds=1))
        return ids

    ids = await sync_to_async(overdue)()
    assert (await run_chunk(runtime, ids)).claimed == 2
    assert set((await sync_to_async(statuses)()).values()) == {"done"}


async def test_a_provider_selection_runs_only_those_providers_and_what_they_need(
        runtime: WorkerRuntime, emulator: RunningEmulator) -> None:
    ids = await sync_to_async(submit)(URLS[:3], providers=["rdap"])
    await run_chunk(runtime, ids)
    assert {name for _, name in await sync_to_async(results)()} == {"rdap"}
    assert emulator.request_counts["page"] == 0


def test_claiming_by_ids_takes_only_queued_or_abandoned_analyses_once() -> None:
    ids = submit(URLS[:5])
    done, running, overdue, queued, unknown = *ids[:4], 10**9
    Analysis.objects.filter(pk=done).update(status=AnalysisStatus.DONE, finished_at=timezone.now())
    analysis_claim_ids(analysis_ids=[running, overdue], deadline_seconds=60)
    Analysis.objects.filter(pk=overdue).update(deadline_at=timezone.now() - timedelta(seconds=5))
    claimed = analysis_claim_ids(analysis_ids=[done, running, overdue, queued, unknown], deadline_seconds=30)
    assert sorted(c.analysis_id for c in claimed) == sorted([overdue, queued])
    assert {c.url for c in claimed} == {URLS[2], URLS[3]}
    assert all(c.batch_id is not None and c.providers == () for c in claimed)
    assert analysis_claim_ids(analysis_ids=[queued], deadline_seconds=30) == []
    taken = analysis_claim_ids(analysis_ids=[done, running, queued], deadline_seconds=30, takeover=True)
    assert sorted(c.analysis_id for c in taken) == sorted([running, queued])
    assert Analysis.objects.get(pk=done).status == AnalysisStatus.DONE


def test_claiming_puts_the_highest_priority_first_and_sets_a_deadline() -> None:
    bulk = submit([f"https://bulk.example.org/{i}" for i in range(12)])
    single = submit(["https://one.example.org/"])
    claimed = analysis_claim_ids(analysis_ids=[*bulk[:2], *single], deadline_seconds=45)
    assert claimed[0].analysis_id == single[0]
    analysis = Analysis.objects.get(pk=single[0])
    assert analysis.status == AnalysisStatus.RUNNING and analysis.attempts == 1
    assert analysis.deadline_at is not None and analysis.started_at is not None
    assert 44 <= (analysis.deadline_at - analysis.started_at).total_seconds() <= 46


async def test_a_workers_calls_are_counted_in_its_metrics(runtime: WorkerRuntime) -> None:
    from prometheus_client import REGISTRY

    def page_ok() -> float:
        labels = {"provider": "page", "status": "ok"}
        return REGISTRY.get_sample_value("linkmeter_provider_calls_total", labels) or 0.0

    before = page_ok()
    ids = await sync_to_async(submit)(URLS[:2])
    await run_chunk(runtime, ids)
    assert page_ok() - before == 2


async def test_url_slots_cap_the_urls_in_flight_across_chunks(emulator: RunningEmulator) -> None:
    capped = WorkerRuntime({"LINKMETER_URL_DEADLINE": "10"}, emulator=emulator.info(), relax_rate_limits=True,
                           chunk_time_limit=30, url_slots=3, waves=4)
    capped.start()
    in_flight, peak = 0, 0
    analyze = capped.engine.analyze

    async def counted(url: str, **options: Any) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await analyze(url, **options)
        finally:
            in_flight -= 1

    capped.engine.analyze = counted  # type: ignore[method-assign]
    try:
        ids = await sync_to_async(submit)(URLS)
        before = timezone.now()
        summaries = await asyncio.gather(run_chunk(capped, ids[:5]), run_chunk(capped, ids[5:]))
    finally:
        capped.close()
    assert [s.stored for s in summaries] == [5, 5]
    assert peak == 3  # two chunks of five, never more than the three slots at once
    # A claimed URL may wait for a slot behind three others: its claim allows four URL deadlines before the
    # watchdog steps in, and the chunk's backstop three more.
    deadlines = await sync_to_async(lambda: list(Analysis.objects.values_list("deadline_at", flat=True)))()
    assert all(d is not None and d >= before + timedelta(seconds=39) for d in deadlines)
    assert capped.chunk_time_limit == 30 + 3 * 10
