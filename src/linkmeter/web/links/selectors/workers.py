"""What the embedded runner, the Celery workers and beat read: work to take up again and webhooks to send."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone

from linkmeter.web.links.models import Analysis, AnalysisStatus, Batch, BatchItem, CallbackStatus
from linkmeter.web.links.selectors.progress import batch_progress


def running_analysis_ids() -> list[int]:
    """Analyses marked running: after a restart of the embedded runner, the ones it must take up again."""
    return list(Analysis.objects.filter(status=AnalysisStatus.RUNNING).order_by("id").values_list("id", flat=True))


def batch_webhook_summary(batch_id: int) -> dict[str, Any] | None:
    """The JSON a batch's webhook POSTs (``results_url`` is a path; the caller makes it absolute), with the
    target and the delivery state under ``callback_url`` and ``callback_status`` (not sent); None when
    there is no such batch."""
    batch = Batch.objects.filter(pk=batch_id).first()
    if batch is None:
        return None
    progress = batch_progress(batch)
    return {
        # batch.updated: sent again once its deferred cells are settled (it was delivered before)
        "event": "batch.updated" if batch.callback_sent_at else "batch.finished",
        "batch_id": batch.pk,
        "name": batch.name,
        "status": progress.status,
        "total": progress.total,
        "counts": progress.counts,
        "deferred": progress.deferred,  # cells still to be filled in the background (told again when 0)
        "deferred_estimate": progress.deferred_estimate.isoformat() if progress.deferred_estimate else None,
        "finished_at": batch.finished_at.isoformat() if batch.finished_at else None,
        "results_url": reverse("api-v1:batch_results", kwargs={"batch_id": batch.pk}),
        "callback_url": batch.callback_url,
        "callback_status": batch.callback_status,
    }


def analyses_orphaned(*, older_than_seconds: float, limit: int = 10_000) -> list[tuple[int, int]]:
    """(id, priority) of analyses queued for longer than ``older_than_seconds``, highest priority first, but
    for those of a batch still moving (one of its analyses running, or finished within that time): a batch's
    later chunks wait for its lanes (``jobs.celery_dispatch.batch_lanes``) with no message in the queue."""
    before = timezone.now() - timedelta(seconds=older_than_seconds)
    moving = BatchItem.objects.filter(batch__items__analysis=OuterRef("pk")).filter(
        Q(analysis__status=AnalysisStatus.RUNNING) | Q(analysis__finished_at__gte=before))
    return list(Analysis.objects.filter(status=AnalysisStatus.QUEUED, queued_at__lt=before)
                .exclude(Exists(moving)).order_by("-priority", "id").values_list("id", "priority")[:limit])


def analyses_priorities(analysis_ids: Sequence[int]) -> list[tuple[int, int]]:
    """(id, priority) of those of these analyses still queued."""
    return list(Analysis.objects.filter(id__in=set(analysis_ids), status=AnalysisStatus.QUEUED)
                .order_by("-priority", "id").values_list("id", "priority"))


def batches_unclosed(*, finished_before_seconds: float, limit: int = 1000) -> list[int]:
    """Batches whose analyses all finished over ``finished_before_seconds`` ago but whose webhook never
    started (their chord callback was lost): the sweeper closes them."""
    before = timezone.now() - timedelta(seconds=finished_before_seconds)
    return list(Batch.objects.filter(callback_status=CallbackStatus.PENDING, finished_at__lt=before)
                .order_by("id").values_list("id", flat=True)[:limit])
