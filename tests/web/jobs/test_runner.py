"""The embedded runner against the real emulator: final statuses, selections, restart-resume, the watchdog,
batched writes, hanging providers and graceful stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.utils import timezone

from linkmeter.assembly import build_engine
from linkmeter.emulator.knobs import Knobs
from linkmeter.emulator.server import RunningEmulator
from linkmeter.engine.runner import Engine
from linkmeter.providers.registry import DEFAULT_NAMES
from linkmeter.web.jobs import runner as runner_module
from linkmeter.web.jobs.runner import InlineRunner, RunnerSettings
from linkmeter.web.links.models import FINAL_STATUSES, Analysis, AnalysisStatus, ProviderResult
from linkmeter.web.links.services.queue import analysis_claim_next
from linkmeter.web.links.services.submission import analysis_submit
from linkmeter.web.plans.limits import PlanLimits
from linkmeter.web.plans.models import Plan
from linkmeter.web.plans.services.submission import plan_submission_submit
from tests.waiting import wait_until_async
from tests.web.conftest import use_dispatcher

pytestmark = pytest.mark.django_db(transaction=True)

MakeEmulator = Callable[..., Awaitable[RunningEmulator]]
ALL_PROVIDERS = set(DEFAULT_NAMES)  # what runs when a submission names no provider
URLS = [f"https://news.example.org/a/{i}" for i in range(12)]
FAST = {"poll_interval": 0.1, "flush_interval": 0.05, "watchdog_interval": 60.0, "stop_grace": 5.0}


def engine_for(emulator: RunningEmulator, **env: str) -> Engine:
    return build_engine(env, relax_rate_limits=True, url_deadline=10, emulator=emulator.info())


@pytest_asyncio.fixture
async def engine(emulator: RunningEmulator) -> AsyncIterator[Engine]:
    built = engine_for(emulator)
    yield built
    await built.close()


@pytest.fixture(autouse=True)
def database_queue() -> Iterator[None]:
    yield
    use_dispatcher(None)


def statuses() -> dict[int, str]:
    return dict(Analysis.objects.values_list("id", "status"))


def results_by_analysis() -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for analysis_id, provider in ProviderResult.objects.values_list("analysis_id", "provider"):
        found.setdefault(analysis_id, set()).add(provider)
    return found


async def run_until(runner: InlineRunner, done: Callable[[], bool], *, within: float = 30.0) -> None:
    """Run the runner until ``done()`` (evaluated on its database thread) holds, then stop it."""
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(runner.ready.wait(), within)

        async def finished() -> bool:
            assert not task.done(), "the runner stopped by itself"
            return await runner.database(done)

        async def state() -> str:
            return f"{done.__name__} (statuses: {await runner.database(statuses)})"

        await wait_until_async(finished, within, message=state)
    finally:
        runner.stop()
        await asyncio.wait_for(task, within)


def all_final() -> bool:
    return all(status in FINAL_STATUSES for status in statuses().values())


async def test_submitted_analyses_end_final_with_every_provider_result_stored(engine: Engine) -> None:
    urls = [*URLS[:6], "https://unregistered-thing.example/x", "https://spam-deals.example/offer"]
    submission = await sync_to_async(analysis_submit)(urls=urls)
    runner = InlineRunner(engine, RunnerSettings(concurrency=4, **FAST))
    await run_until(runner, all_final)
    final = await sync_to_async(statuses)()
    assert set(final) == {a.pk for a in submission.analyses}
    assert set(final.values()) <= {"done", "partial", "failed"}
    assert "done" in final.values()
    stored = await sync_to_async(results_by_analysis)()
    assert all(stored[pk] == ALL_PROVIDERS for pk in final)
    spam = await sync_to_async(Analysis.objects.get)(link__url="https://spam-deals.example/offer")
    assert spam.signals["dnsbl.listed_count"] >= 1 and spam.finished_at is not None


async def test_a_provider_selection_runs_only_those_providers_and_what_they_need(
        engine: Engine, emulator: RunningEmulator) -> None:
    await sync_to_async(analysis_submit)(urls=URLS[:3], providers=["rdap"])
    await sync_to_async(analysis_submit)(urls=URLS[3:5], providers=["dnsbl", "rdap"])
    await run_until(InlineRunner(engine, RunnerSettings(**FAST)), all_final)
    stored = await sync_to_async(results_by_analysis)()
    assert sorted(map(frozenset, stored.values()), key=len) == [
        {"rdap"}, {"rdap"}, {"rdap"}, {"dnsbl", "rdap"}, {"dnsbl", "rdap"}]
    assert emulator.request_counts["page"] == 0 and emulator.request_counts["wayback"] == 0
    assert set((await sync_to_async(statuses)()).values()) == {"done"}


async def test_after_a_crash_a_new_runner_finishes_what_was_running_and_what_was_queued(engine: Engine) -> None:
    def crash() -> list[int]:
        analysis_submit(urls=URLS)
        # A runner claimed these, then its process died: they stay "running" with nobody working on them.
        return [work.analysis_id for work in analysis_claim_next(limit=5, deadline_seconds=60)]

    orphaned = await sync_to_async(crash)()
    before = await sync_to_async(statuses)()
    assert sum(s == "running" for s in before.values()) == 5 and sum(s == "queued" for s in before.values()) == 7
    runner = InlineRunner(engine, RunnerSettings(**FAST))
    await run_until(runner, all_final)
    assert runner.stats.resumed == 5
    after = await sync_to_async(statuses)()
    assert set(after) == set(before) and set(after.values()) <= {"done", "partial"}
    attempts = await sync_to_async(lambda: dict(Analysis.objects.values_list("id", "attempts")))()
    assert {attempts[pk] for pk in orphaned} == {2}  # started once before the crash, once after
    assert all(len(providers) == len(ALL_PROVIDERS) for providers in
               (await sync_to_async(results_by_analysis)()).values())


async def test_the_watchdog_requeues_a_lost_analysis_once_then_fails_it(engine: Engine) -> None:
    runner = InlineRunner(engine, RunnerSettings(**{**FAST, "watchdog_interval": 0.05, "watchdog_grace": 60.0}))

    def lose_two() -> tuple[int, int]:
        # Both claimed by some runner that then lost them; the second was already started twice.
        analysis_submit(urls=URLS[:2])
        first, second = (work.analysis_id for work in analysis_claim_next(limit=2, deadline_seconds=60))
        Analysis.objects.filter(pk__in=[first, second]).update(deadline_at=timezone.now() - timedelta(1))
        Analysis.objects.filter(pk=second).update(attempts=2)
        return first, second

    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(runner.ready.wait(), 10)
        retried, given_up = await runner.database(lose_two)
        await wait_until_async(lambda: runner.database(all_final), 20, message="every analysis to end")
    finally:
        runner.stop()
        await asyncio.wait_for(task, 10)
    final = await sync_to_async(lambda: {a.pk: a for a in Analysis.objects.all()})()
    assert final[retried].status in ("done", "partial") and final[retried].attempts == 2
    assert final[given_up].status == "failed" and "deadline" in final[given_up].error


async def test_results_are_written_in_batches(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[int] = []
    original = runner_module.analysis_complete

    def counting(*, outcomes: Any) -> int:
        writes.append(len(outcomes))
        return original(outcomes=outcomes)

    monkeypatch.setattr(runner_module, "analysis_complete", counting)
    await sync_to_async(analysis_submit)(urls=[f"https://site{i % 5}.example.com/p/{i}" for i in range(30)])
    # Writes happen when 10 are waiting (the interval is too long to matter), and once more at the stop.
    runner = InlineRunner(engine, RunnerSettings(concurrency=30, poll_interval=0.1, flush_interval=600,
                                                 flush_size=10))
    task = asyncio.create_task(runner.run())
    try:
        await wait_until_async(lambda: runner.stats.claimed == 30 and runner.in_flight == 0, 30,
                               message=lambda: f"30 claimed, none in flight ({runner.stats}, {runner.in_flight})")
    finally:
        runner.stop()
        await asyncio.wait_for(task, 10)
    assert sum(writes) == 30 and len(writes) <= 3
    assert all(size >= 10 for size in writes[:-1])
    assert set((await sync_to_async(statuses)()).values()) <= {"done", "partial"}


async def test_a_hanging_provider_never_stalls_the_runner(emulator_factory: MakeEmulator) -> None:
    hanging = await emulator_factory(knobs=Knobs(hang=frozenset({"wayback"})))
    engine = engine_for(hanging, LINKMETER_WAYBACK_TIMEOUT="0.3", LINKMETER_WAYBACK_RETRIES="0")
    try:
        await sync_to_async(analysis_submit)(urls=URLS[:8])
        await run_until(InlineRunner(engine, RunnerSettings(concurrency=3, **FAST)), all_final)
    finally:
        await engine.close()
    assert set((await sync_to_async(statuses)()).values()) == {"partial"}
    wayback = await sync_to_async(lambda: set(
        ProviderResult.objects.filter(provider="wayback").values_list("status", flat=True)))()
    assert "timeout" in wayback and wayback <= {"timeout", "circuit_open"}  # the breaker opens after a few


async def test_a_commit_wakes_the_runner_from_another_thread(engine: Engine) -> None:
    runner = InlineRunner(engine, RunnerSettings(**{**FAST, "poll_interval": 600}))
    use_dispatcher(runner)
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(runner.ready.wait(), 10)
        await wait_until_async(lambda: runner.stats.claims, 2, interval=0.01, message="the runner's first claim")
        assert runner.stats.claims == 1  # it found nothing: now only a wake-up can start the next claim
        await sync_to_async(analysis_submit)(urls=URLS[:2])  # commits on another thread, then enqueues
        await wait_until_async(lambda: runner.database(all_final), 10, message="every analysis to end")
    finally:
        runner.stop()
        await asyncio.wait_for(task, 10)
    assert set((await sync_to_async(statuses)()).values()) == {"done"}


async def test_a_stop_requeues_what_did_not_finish(emulator_factory: MakeEmulator) -> None:
    hanging = await emulator_factory(knobs=Knobs(hang=frozenset({"page"})))
    engine = engine_for(hanging, LINKMETER_PAGE_TIMEOUT="60", LINKMETER_PAGE_RETRIES="0")
    runner = InlineRunner(engine, RunnerSettings(**{**FAST, "stop_grace": 0.2}))
    try:
        await sync_to_async(analysis_submit)(urls=URLS[:3])
        task = asyncio.create_task(runner.run())
        await wait_until_async(lambda: runner.in_flight == 3, 4, interval=0.02,
                               message=lambda: f"3 analyses in flight (now {runner.in_flight})")
        assert runner.in_flight == 3
        runner.stop()
        await asyncio.wait_for(task, 10)
    finally:
        await engine.close()
    final = await sync_to_async(lambda: list(Analysis.objects.values_list("status", "started_at")))()
    assert final == [(AnalysisStatus.QUEUED, None)] * 3


async def test_a_paid_batch_submitted_after_a_free_one_overtakes_it_and_the_free_one_still_finishes(
        engine: Engine) -> None:
    def submit_both() -> tuple[list[int], list[int]]:
        free, paid = (PlanLimits.of(Plan(code=code, name=code, priority=priority)) for code, priority in
                      (("free", 0), ("pro", 4)))
        first = plan_submission_submit(user=None, plan=free, providers=["rdap"],
                                       urls=[f"https://free.example.org/{i}" for i in range(40)])
        second = plan_submission_submit(user=None, plan=paid, providers=["rdap"],
                                        urls=[f"https://paid.example.org/{i}" for i in range(20)])
        return ([a.pk for a in first.submission.analyses], [a.pk for a in second.submission.analyses])

    free_ids, paid_ids = await sync_to_async(submit_both)()
    await run_until(InlineRunner(engine, RunnerSettings(concurrency=4, **FAST)), all_final)

    def order() -> list[int]:
        return list(Analysis.objects.order_by("started_at", "id").values_list("id", flat=True))

    started = await sync_to_async(order)()
    paid_done = max(started.index(pk) for pk in paid_ids)
    assert paid_done < len(paid_ids) + len(free_ids) // 2  # every paid one started before most free ones
    assert min(started.index(pk) for pk in free_ids) < paid_done  # the free batch was not starved meanwhile
    assert set((await sync_to_async(statuses)()).values()) == {"done"}


async def test_the_embedded_runner_fills_deferred_cells_in_the_background_asking_only_their_provider() -> None:
    from linkmeter.engine.provider import Policy
    from linkmeter.web.jobs.refill import RefillSettings
    from tests.engine.fakes import FakeProvider, fails, make_engine, retryable

    page = FakeProvider("page", provides=("page.x",))
    # The archive answers 429 to the first three calls (each analysis's own), then answers.
    archive = FakeProvider("archive", provides=("archive.x",), policy=Policy(timeout=1, retries=0),
                           behave=fails(retryable("HTTP 429", retry_after=0.2, status=429), times=3,
                                        then={"archive.x": 5}))
    engine = make_engine(page, archive)
    await sync_to_async(analysis_submit)(urls=URLS[:3])
    runner = InlineRunner(engine, RunnerSettings(**FAST, refill=RefillSettings(interval=0.2, max_age=3600)))

    def filled() -> bool:
        return ProviderResult.objects.filter(provider="archive", status="ok").count() == 3

    try:
        await run_until(runner, filled)
    finally:
        await engine.close()
    assert (page.calls, archive.calls) == (3, 6)  # the page was not asked again
    rows = await sync_to_async(lambda: list(ProviderResult.objects.filter(provider="archive").values_list(
        "deferred_since", "refills", "signals")))()
    assert all(since is None and signals == {"archive.x": 5} for since, _, signals in rows), rows
    # The three 429s fall on the analyses' own calls or on background tries, as they interleave: every cell
    # refused at first was filled in the background.
    assert runner.stats.refilled == sum(1 for _, tries, _ in rows if tries >= 1) >= 1, rows
    assert set((await sync_to_async(statuses)()).values()) == {"done"}
