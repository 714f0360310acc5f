"""What /metrics reports about the queue and the open batches: cheap counts however large the tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Max, Q
from django.utils import timezone

from linkmeter.web.links.models import FINAL_STATUSES, Analysis, AnalysisStatus, Batch, BatchItem


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    analyses: dict[str, int]  # queued and running: all of them; final statuses: finished within the window
    batches_open: int
    batch_progress: dict[int, float]  # open multi-URL batches, newest first: finished / total


def queue_snapshot(*, window_seconds: float = 3600.0, recent_rows: int = 100_000,
                   batches: int = 20) -> QueueSnapshot:
    """Cheap counts for monitoring, however large the tables: queued and running analyses exactly (the
    queue index); final ones finished within ``window_seconds`` among the newest ``recent_rows``
    analyses; open batches among the newest ``recent_rows`` batches; progress of the newest ``batches``
    open batches of more than one URL."""
    counts = {status: 0 for status in AnalysisStatus.values}
    active = [AnalysisStatus.QUEUED, AnalysisStatus.RUNNING]
    for row in Analysis.objects.filter(status__in=active).values("status").annotate(n=Count("id")).order_by():
        counts[row["status"]] = row["n"]
    newest = Analysis.objects.aggregate(newest=Max("id"))["newest"] or 0
    since = timezone.now() - timedelta(seconds=window_seconds)
    final = (Analysis.objects.filter(id__gt=newest - recent_rows, status__in=list(FINAL_STATUSES),
                                     finished_at__gte=since)
             .values("status").annotate(n=Count("id")).order_by())
    for row in final:
        counts[row["status"]] = row["n"]
    newest_batch = Batch.objects.aggregate(newest=Max("id"))["newest"] or 0
    open_batches = Batch.objects.filter(id__gt=newest_batch - recent_rows, finished_at__isnull=True)
    tracked = list(open_batches.filter(total__gt=1).order_by("-id").values_list("id", flat=True)[:batches])
    progress = {row["batch_id"]: row["finished"] / row["items"] if row["items"] else 1.0
                for row in BatchItem.objects.filter(batch_id__in=tracked).values("batch_id")
                .annotate(items=Count("id"), finished=Count("id", filter=Q(analysis__status__in=list(FINAL_STATUSES))))
                .order_by()}
    return QueueSnapshot(analyses=counts, batches_open=open_batches.count(),
                         batch_progress={pk: progress.get(pk, 0.0) for pk in tracked})
