"""An analysis from the queue to a final status: claimed (running), completed, failed, re-queued, recovered."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.utils import timezone

from linkmeter.engine.results import UrlResult
from linkmeter.web.links import bulkwrite
from linkmeter.web.links.models import FINAL_STATUSES, Analysis, AnalysisStatus, Batch, BatchItem, Link
from linkmeter.web.links.services.deferred import result_defer
from linkmeter.web.links.services.entries import entry_pending_status, link_entry_refresh


@dataclass(frozen=True, slots=True)
class ClaimedWork:
    """What running a claimed analysis needs (no model instances: the embedded runner claims several times
    a second)."""

    analysis_id: int
    url: str
    providers: tuple[str, ...]  # the selection asked for; () = all
    batch_id: int | None = None  # the submission that queued it (for log lines)
    priority: int = 0  # higher runs first (a worker's URL slots go to the highest waiting)


@dataclass(frozen=True, slots=True)
class Recovered:
    requeued: list[int]  # back in the queue: whoever runs them must be told (Celery: dispatch them again)
    failed: int


def analysis_claim_next(*, limit: int, deadline_seconds: float, oldest: int = 0) -> list[ClaimedWork]:
    """Move up to ``limit`` queued analyses to running and return what running them needs, highest priority
    first: ``oldest`` of them are the oldest queued whatever their priority (so lower plans are never starved),
    the rest the highest priority, oldest first. Only one runner process claims in embedded mode, so
    select-then-update is safe; the conditional update still makes a double claim impossible."""
    with transaction.atomic():
        now = timezone.now()
        queued = Analysis.objects.filter(status=AnalysisStatus.QUEUED)
        first = min(max(0, oldest), limit)
        ids = list(queued.order_by("id").values_list("id", flat=True)[:first]) if first else []
        ids += list(queued.exclude(id__in=ids).order_by("-priority", "id").values_list("id", flat=True)[:limit - first])
        return _claim(ids, Q(status=AnalysisStatus.QUEUED), now=now, deadline_seconds=deadline_seconds)


def analysis_claim_ids(*, analysis_ids: Sequence[int], deadline_seconds: float,
                       takeover: bool = False) -> list[ClaimedWork]:
    """Move these analyses to running for one worker (a Celery chunk), atomically, and return what running
    them needs, highest priority first. Claimed: the queued ones, and running ones whose deadline has
    passed (their worker is gone); with ``takeover`` (a redelivered or retried chunk: its previous holder
    died or gave up) every running one too. Final analyses are never claimed, so a chunk delivered twice
    repeats no finished work; a row is claimed by one worker at a time (row locks on PostgreSQL, the
    write lock on SQLite)."""
    if not analysis_ids:
        return []
    now = timezone.now()
    claimable = Q(status=AnalysisStatus.QUEUED)
    claimable |= Q(status=AnalysisStatus.RUNNING) if takeover else Q(status=AnalysisStatus.RUNNING,
                                                                        deadline_at__lt=now)
    with transaction.atomic():
        # FOR UPDATE: a concurrent claimer waits for our commit, then sees the rows running and passes.
        ids = list(Analysis.objects.select_for_update().filter(claimable, id__in=set(analysis_ids))
                   .order_by("id").values_list("id", flat=True))
        return _claim(ids, claimable, now=now, deadline_seconds=deadline_seconds)


def _claim(ids: list[int], claimable: Q, *, now: datetime, deadline_seconds: float) -> list[ClaimedWork]:
    """Move those of ``ids`` still ``claimable`` to running, started ``now``; the rows this call moved, as
    ``ClaimedWork``, highest priority first. Call inside a transaction."""
    if not ids:
        return []
    Analysis.objects.filter(claimable, id__in=ids).update(
        status=AnalysisStatus.RUNNING, started_at=now, attempts=F("attempts") + 1,
        deadline_at=now + timedelta(seconds=deadline_seconds),
    )
    entry_pending_status(analysis_ids=ids, status=AnalysisStatus.RUNNING)
    first_batch = BatchItem.objects.filter(analysis=OuterRef("pk")).order_by("batch_id").values("batch_id")[:1]
    rows = (Analysis.objects.filter(id__in=ids, status=AnalysisStatus.RUNNING, started_at=now)
            .annotate(batch_id=Subquery(first_batch))
            .order_by("-priority", "id").values_list("id", "link__url", "providers", "batch_id", "priority"))
    return [ClaimedWork(pk, url, tuple(providers or ()), batch, priority)
            for pk, url, providers, batch, priority in rows]


def analysis_complete(*, outcomes: Sequence[tuple[int, UrlResult]]) -> int:
    """Store finished analyses in one transaction; idempotent (an analysis already final is left alone,
    a provider result is written once). Returns how many analyses were stored."""
    if not outcomes:
        return 0
    now = timezone.now()
    by_id = dict(outcomes)
    with transaction.atomic():
        open_links = dict(Analysis.objects.filter(id__in=list(by_id)).exclude(status__in=list(FINAL_STATUSES))
                          .values_list("id", "link_id"))
        finished = [(pk, by_id[pk]) for pk in sorted(open_links)]
        bulkwrite.insert_provider_results(finished, now)
        bulkwrite.update_analyses(finished, now)
        if settings.LINKMETER["DEFER_MAX_AGE_SECONDS"] > 0:
            result_defer(analysis_ids=[pk for pk, _ in finished], now=now)
        _point_links_at_latest(set(open_links.values()))
        link_entry_refresh(link_ids=open_links.values())
        _close_finished_batches(set(open_links), now)
    return len(open_links)


def analysis_fail(*, analysis_ids: Sequence[int], reason: str) -> int:
    """Fail analyses that cannot finish (e.g. they outlived their deadline twice)."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(Analysis.objects.filter(id__in=analysis_ids,
                                           status__in=[AnalysisStatus.QUEUED, AnalysisStatus.RUNNING])
                   .values_list("id", flat=True))
        Analysis.objects.filter(id__in=ids).update(status=AnalysisStatus.FAILED, finished_at=now,
                                                   error=reason[:2000])
        failed_links = set(Analysis.objects.filter(id__in=ids).values_list("link_id", flat=True))
        _point_links_at_latest(failed_links)
        link_entry_refresh(link_ids=failed_links)
        _close_finished_batches(set(ids), now)
    return len(ids)


def analysis_requeue(*, analysis_ids: Sequence[int]) -> int:
    """Put running analyses back in the queue (after a restart, or by the watchdog)."""
    with transaction.atomic():
        moved = Analysis.objects.filter(id__in=analysis_ids, status=AnalysisStatus.RUNNING).update(
            status=AnalysisStatus.QUEUED, started_at=None, deadline_at=None)
        entry_pending_status(analysis_ids=analysis_ids, status=AnalysisStatus.QUEUED)
    return moved


def analysis_recover(*, max_attempts: int = 2, grace_seconds: float = 30.0) -> Recovered:
    """The watchdog: running analyses past their deadline plus grace are re-queued, or failed once they
    have been started ``max_attempts`` times. Answers which went back to the queue and how many failed."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    stale = Analysis.objects.filter(status=AnalysisStatus.RUNNING, deadline_at__lt=cutoff)
    retry = list(stale.filter(attempts__lt=max_attempts).values_list("id", flat=True))
    give_up = list(stale.filter(attempts__gte=max_attempts).values_list("id", flat=True))
    analysis_requeue(analysis_ids=retry)
    failed = analysis_fail(analysis_ids=give_up, reason="outlived its deadline twice (worker lost?)")
    requeued = list(Analysis.objects.filter(id__in=retry, status=AnalysisStatus.QUEUED).values_list("id", flat=True))
    return Recovered(requeued=requeued, failed=failed)


def _point_links_at_latest(link_ids: set[int]) -> None:
    """Each of these links (of just finished analyses) points at its newest final analysis: one statement."""
    if not link_ids:
        return
    newest = (Analysis.objects.filter(link=OuterRef("pk"), status__in=list(FINAL_STATUSES))
              .order_by("-id").values("id")[:1])
    Link.objects.filter(pk__in=link_ids).update(latest_analysis=Subquery(newest))


def _close_finished_batches(analysis_ids: set[int], now: datetime) -> None:
    """Set the finish time of the open batches of these analyses that have nothing left to run: one
    statement."""
    if not analysis_ids:
        return
    pending = BatchItem.objects.filter(batch_id=OuterRef("pk")).exclude(analysis__status__in=list(FINAL_STATUSES))
    (Batch.objects.filter(pk__in=BatchItem.objects.filter(analysis_id__in=analysis_ids).values("batch_id"),
                          finished_at__isnull=True)
     .exclude(Exists(pending)).update(finished_at=now))
