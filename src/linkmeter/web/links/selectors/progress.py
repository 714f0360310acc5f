"""A batch's progress: counts by status, ETA and the webhook's outcome (the batch page, the API, the webhook)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from django.db.models import Count
from django.utils import timezone

from linkmeter.providers.registry import DEFAULT_NAMES
from linkmeter.web.links.models import FINAL_STATUSES, AnalysisStatus, Batch, BatchItem
from linkmeter.web.links.selectors import owned
from linkmeter.web.links.selectors.deferred import batch_deferred

BatchStatus = Literal["queued", "running", "finished"]


@dataclass(frozen=True, slots=True)
class BatchProgress:
    batch_id: int
    name: str
    total: int
    counts: dict[str, int]
    finished: int
    progress: float  # 0..1
    eta_seconds: float | None
    created_at: datetime
    finished_at: datetime | None
    invalid: list[dict[str, Any]]
    callback: dict[str, Any] | None = None  # the webhook's outcome, when the submission named a callback_url
    requested: tuple[str, ...] = ()  # the providers the submission named; () = the default set
    deferred: int = 0  # cells waiting to be filled in the background (their analyses are final already)
    deferred_estimate: datetime | None = None  # when the last of them will likely be asked again

    @property
    def providers(self) -> tuple[str, ...]:
        """The providers the batch runs (besides those they need): those named, else the default set."""
        return self.requested or DEFAULT_NAMES

    @property
    def status(self) -> BatchStatus:
        """``queued`` (no analysis started), ``running``, or ``finished`` (every analysis ended)."""
        if self.finished >= self.total:
            return "finished"
        return "queued" if self.counts.get(AnalysisStatus.QUEUED, 0) == self.total else "running"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.batch_id,
            "name": self.name,
            "status": self.status,
            "total": self.total,
            "counts": self.counts,
            "finished": self.finished,
            "progress": round(self.progress, 4),
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
            "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "invalid": self.invalid,
            "callback": self.callback,
            "providers": list(self.providers),
            "default_set": not self.requested,
            "deferred": self.deferred,
            "deferred_estimate": self.deferred_estimate.isoformat() if self.deferred_estimate else None,
        }


def batch_callback(batch: Batch) -> dict[str, Any] | None:
    """Where the batch's webhook goes and how its delivery went (None: no callback asked for)."""
    if not batch.callback_url:
        return None
    return {
        "url": batch.callback_url,
        "status": batch.callback_status,
        "attempts": batch.callback_attempts,
        "last_error": batch.callback_last_error or None,
        "sent_at": batch.callback_sent_at.isoformat() if batch.callback_sent_at else None,
    }


def batch_progress(batch: Batch) -> BatchProgress:
    rows = (BatchItem.objects.filter(batch=batch).values("analysis__status")
            .annotate(n=Count("id")).order_by())
    counts = {status: 0 for status in AnalysisStatus.values}
    for row in rows:
        counts[row["analysis__status"]] += row["n"]
    total = sum(counts.values())
    finished = sum(counts[s] for s in FINAL_STATUSES)
    eta: float | None = None
    if batch.finished_at is None and 0 < finished < total:
        elapsed = (timezone.now() - batch.created_at).total_seconds()
        eta = elapsed / finished * (total - finished)
    elif finished == total:
        eta = 0.0
    deferred, estimate = batch_deferred(batch.pk)
    return BatchProgress(batch.pk, batch.name, total, counts, finished, finished / total if total else 1.0,
                         eta, batch.created_at, batch.finished_at, list(batch.invalid), batch_callback(batch),
                         tuple(batch.providers), deferred, estimate)


def recent_batches(owner: Any, *, limit: int = 10) -> list[BatchProgress]:
    """The owner's newest batches with their progress (the home page lists them)."""
    return [batch_progress(batch) for batch in owned.batches(owner).order_by("-id")[:limit]]
