"""Deferred cells: deferred when stored, claimed highest priority first under a lease, filled in place (the
analysis, its indicators, its batch's counts), given up after their age; one refill round on an engine asks
only the deferred provider again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from linkmeter.engine.provider import Policy
from linkmeter.engine.results import CallResult, CallStatus, UrlResult, UrlStatus
from linkmeter.web import runtime
from linkmeter.web.jobs.refill import RefillSettings, refill_round
from linkmeter.web.links.models import Analysis, Batch, CallbackStatus, LinkEntry, ProviderResult
from linkmeter.web.links.selectors.deferred import deferred_estimates
from linkmeter.web.links.selectors.details import analysis_detail, batch_rows
from linkmeter.web.links.selectors.progress import batch_progress
from linkmeter.web.links.services.deferred import (
    batch_webhook_renotify,
    deferred_claim,
    deferred_expire,
    deferred_store,
    deferred_waiting,
)
from linkmeter.web.links.services.queue import analysis_claim_next, analysis_complete
from linkmeter.web.links.services.submission import analysis_submit
from tests.engine.fakes import FakeProvider, make_engine

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def installed_runtime() -> Iterator[None]:
    previous = runtime.installed()
    runtime.install(runtime.Runtime())
    yield
    if previous is not None:
        runtime.install(previous)
    else:
        runtime.uninstall()


def limited(url: str, status: CallStatus = CallStatus.RATE_LIMITED) -> UrlResult:
    """A URL whose page answered and whose archive was refused (rate limited, or its breaker open)."""
    calls = {
        "page": CallResult("page", CallStatus.OK, 10.0, 1, "", {"page.x": 1}, None),
        "archive": CallResult("archive", status, 50.0, 0, "rate limit (2/s) would not free a slot", {}, None),
    }
    return UrlResult(url, UrlStatus.PARTIAL, {"url": url, "host": "example.org", "domain": "example.org",
                                              "page.x": 1}, calls, 60.0)


def stored(urls: list[str], *, priority: int, status: CallStatus = CallStatus.RATE_LIMITED) -> int:
    """Submit and store these URLs as finished with their archive cell refused; the batch id."""
    submitted = analysis_submit(urls=urls, priority=priority)
    claimed = analysis_claim_next(limit=len(urls), deadline_seconds=60)
    analysis_complete(outcomes=[(work.analysis_id, limited(work.url, status)) for work in claimed])
    return submitted.batch.pk


def answer(work: Any, value: int = 7) -> dict[str, CallResult]:
    return {work.provider: CallResult(work.provider, CallStatus.OK, 5.0, 1, "", {"archive.x": value}, {"n": value})}


def test_refused_cells_are_deferred_at_their_analysis_priority_and_shown_with_an_estimate() -> None:
    batch_id = stored(["https://example.org/a", "https://example.org/b"], priority=0)
    stored(["https://example.org/c"], priority=2, status=CallStatus.CIRCUIT_OPEN)
    deferred = ProviderResult.objects.filter(deferred_since__isnull=False)
    assert sorted(deferred.values_list("provider", "deferred_priority")) == [("archive", 0), ("archive", 0),
                                                                            ("archive", 2)]
    assert not ProviderResult.objects.filter(provider="page", deferred_since__isnull=False).exists()
    assert deferred_waiting() == {"archive": 3}
    progress = batch_progress(Batch.objects.get(pk=batch_id))
    assert progress.deferred == 2 and progress.deferred_estimate is not None
    assert progress.as_dict()["deferred"] == 2
    rows = list(batch_rows(Batch.objects.get(pk=batch_id)))
    assert [sorted(row["deferred"]) for row in rows] == [["archive"], ["archive"]]
    analysis = Analysis.objects.get(link__url="https://example.org/a")
    detail = analysis_detail(analysis)
    assert detail["providers"]["archive"]["deferred"]["estimate"] is not None
    assert detail["providers"]["page"]["deferred"] is None
    # The priority-2 cell is first in the queue: its estimate comes before the others'.
    estimates = deferred_estimates(list(deferred))
    first = deferred.get(deferred_priority=2)
    assert all(estimates[first.pk] < at for pk, at in estimates.items() if pk != first.pk)


def test_claims_go_highest_priority_first_and_never_twice_while_leased() -> None:
    stored([f"https://bulk.example.org/{i}" for i in range(5)], priority=0)
    stored(["https://paid.example.org/"], priority=6)
    first = deferred_claim(provider="archive", limit=2, lease_seconds=60)
    assert [w.priority for w in first] == [6, 0]
    assert first[0].signals["url"] == "https://paid.example.org/"
    rest = deferred_claim(provider="archive", limit=10, lease_seconds=60)
    assert len(rest) == 4 and not {w.result_id for w in rest} & {w.result_id for w in first}
    assert deferred_claim(provider="archive", limit=10, lease_seconds=60) == []
    ProviderResult.objects.update(refill_lease=timezone.now() - timedelta(seconds=1))  # a refiller died
    assert len(deferred_claim(provider="archive", limit=10, lease_seconds=60)) == 6


def test_a_filled_cell_updates_its_analysis_in_place_and_settles_its_batch() -> None:
    batch_id = stored(["https://example.org/a"], priority=0)
    Batch.objects.filter(pk=batch_id).update(callback_url="https://hooks.example.org/",
                                             callback_status=CallbackStatus.DELIVERED)
    (work,) = deferred_claim(provider="archive", limit=10, lease_seconds=60)
    refused = {work.provider: CallResult(work.provider, CallStatus.RATE_LIMITED, 1.0, 0, "still busy")}
    again = deferred_store(outcomes=[(work, refused)])
    assert (again.filled, again.waiting, again.batches) == (0, 1, [])
    cell = ProviderResult.objects.get(pk=work.result_id)
    assert cell.deferred_since is not None and cell.refills == 1 and cell.message == "still busy"
    (work,) = deferred_claim(provider="archive", limit=10, lease_seconds=60)
    done = deferred_store(outcomes=[(work, answer(work))])
    assert (done.filled, done.batches) == (1, [batch_id])
    cell.refresh_from_db()
    assert (cell.status, cell.signals, cell.deferred_since, cell.refills) == ("ok", {"archive.x": 7}, None, 2)
    analysis = Analysis.objects.get(pk=work.analysis_id)
    assert analysis.status == "done" and analysis.signals["archive.x"] == 7 and analysis.signals["page.x"] == 1
    # The links list shows the filled cell too (it reads the link entries, not the analysis).
    entry = LinkEntry.objects.get(link_id=analysis.link_id)
    assert (entry.status, entry.signals["archive.x"], entry.providers["archive"]) == ("done", 7, "ok")
    assert batch_progress(Batch.objects.get(pk=batch_id)).deferred == 0
    assert batch_webhook_renotify(batch_ids=done.batches) == [batch_id]
    assert Batch.objects.get(pk=batch_id).callback_status == CallbackStatus.SENDING


def test_a_cell_deferred_too_long_gives_up() -> None:
    batch_id = stored(["https://example.org/a", "https://example.org/b"], priority=0)
    ProviderResult.objects.filter(analysis__link__url="https://example.org/a", provider="archive").update(
        deferred_since=timezone.now() - timedelta(hours=2))
    expired = deferred_expire(max_age_seconds=3600)
    assert expired.settled == 1 and expired.batches == []  # the other cell of the batch still waits
    gone = ProviderResult.objects.get(analysis__link__url="https://example.org/a", provider="archive")
    assert gone.deferred_since is None and gone.status == "rate_limited" and "gave up" in gone.message
    ProviderResult.objects.filter(deferred_since__isnull=False).update(
        deferred_since=timezone.now() - timedelta(hours=2))
    assert deferred_expire(max_age_seconds=3600).batches == [batch_id]


def test_nothing_is_deferred_when_deferral_is_off(settings: Any) -> None:
    settings.LINKMETER = {**settings.LINKMETER, "DEFER_MAX_AGE_SECONDS": 0}
    stored(["https://example.org/a"], priority=0)
    assert deferred_waiting() == {}


async def test_a_refill_round_asks_only_the_deferred_provider_again() -> None:
    await sync_to_async(stored)([f"https://example.org/{i}" for i in range(3)], priority=0)
    page = FakeProvider("page", provides=("page.x",))
    archive = FakeProvider("archive", provides=("archive.x",), policy=Policy(timeout=1, retries=0, rate_per_sec=100))
    engine = make_engine(page, archive)

    async def database(function: Any, /, **kwargs: Any) -> Any:
        return await sync_to_async(function, thread_sensitive=True)(**kwargs)

    try:
        report = await refill_round(engine, database, RefillSettings(interval=0.5, max_age=3600))
    finally:
        await engine.close()
    assert (report.claimed, report.filled, report.waiting) == (3, 3, 0)
    assert (page.calls, archive.calls) == (0, 3)
    statuses = await sync_to_async(lambda: sorted(Analysis.objects.values_list("status", flat=True)))()
    assert statuses == ["done", "done", "done"]


def test_a_cell_the_url_deadline_cut_short_is_deferred_but_a_provider_timeout_is_not() -> None:
    submitted = analysis_submit(urls=["https://example.org/a", "https://example.org/b"], priority=0)
    claimed = analysis_claim_next(limit=2, deadline_seconds=60)
    outcomes = []
    for work, message in zip(claimed, ("URL deadline reached", "no answer within 15s"), strict=True):
        result = limited(work.url)
        result.providers["archive"] = CallResult("archive", CallStatus.TIMEOUT, 0.0, 0, message)
        outcomes.append((work.analysis_id, result))
    analysis_complete(outcomes=outcomes)
    deferred = ProviderResult.objects.filter(deferred_since__isnull=False)
    assert list(deferred.values_list("message", flat=True)) == ["URL deadline reached"]
    assert batch_progress(submitted.batch).deferred == 1
