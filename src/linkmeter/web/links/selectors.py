"""Reads: batch progress and results, link history, provider health. Views and the API call these."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count
from django.utils import timezone

from linkmeter.providers.registry import PROVIDER_CLASSES
from linkmeter.web.links.models import (
    FINAL_STATUSES,
    Analysis,
    AnalysisStatus,
    Batch,
    BatchItem,
    Link,
    ProviderResult,
    result_dict,
)

SIGNAL_COLUMNS: tuple[str, ...] = tuple(signal for cls in PROVIDER_CLASSES for signal in cls.provides)
NUMERIC_SIGNALS: tuple[str, ...] = tuple(
    signal for cls in PROVIDER_CLASSES for signal, spec in cls.provides.items() if spec.type in (int, float)
)
PROVIDER_NAMES: tuple[str, ...] = tuple(cls.name for cls in PROVIDER_CLASSES)


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.batch_id,
            "name": self.name,
            "total": self.total,
            "counts": self.counts,
            "finished": self.finished,
            "progress": round(self.progress, 4),
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
            "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "invalid": self.invalid,
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
    return BatchProgress(batch.pk, batch.name, total, counts, finished, finished / total if total else 1.0,
                         eta, batch.created_at, batch.finished_at, list(batch.invalid))


def batch_rows(batch: Batch, *, chunk_size: int = 500) -> Iterator[dict[str, Any]]:
    """One row per submitted URL in input order: final analyses with numbers, the rest with their status."""
    items = (BatchItem.objects.filter(batch=batch).select_related("analysis__link")
             .order_by("position").iterator(chunk_size=chunk_size))
    for item in items:
        yield analysis_row(item.analysis, position=item.position, reused=item.reused)


def analysis_row(analysis: Analysis, *, position: int | None = None, reused: bool = False) -> dict[str, Any]:
    row: dict[str, Any] = {
        "analysis_id": analysis.pk,
        "link_id": analysis.link_id,
        "url": analysis.link.url,
        "status": analysis.status,
        "signals": analysis.signals if analysis.is_final else {},
        "finished_at": analysis.finished_at.isoformat() if analysis.finished_at else None,
    }
    if position is not None:
        row["position"] = position
        row["reused"] = reused
    return row


def analysis_detail(analysis: Analysis, *, include_raw: bool = False) -> dict[str, Any]:
    data = analysis_row(analysis)
    data.update({
        "queued_at": analysis.queued_at.isoformat(),
        "started_at": analysis.started_at.isoformat() if analysis.started_at else None,
        "elapsed_ms": analysis.elapsed_ms,
        "error": analysis.error,
        "providers_requested": analysis.providers,
        "providers": {r.provider: result_dict(r, include_raw=include_raw) for r in analysis.results.all()},
    })
    return data


def link_by_url(url: str) -> Link | None:
    return Link.objects.filter(url=url).select_related("latest_analysis").first()


def link_history(link: Link, *, limit: int = 200) -> list[Analysis]:
    """Final analyses of a link, oldest first (the newest ``limit``)."""
    newest = list(link.analyses.filter(status__in=list(FINAL_STATUSES)).order_by("-finished_at")[:limit])
    return newest[::-1]


def numeric_series(history: list[Analysis]) -> dict[str, list[dict[str, Any]]]:
    """Per numeric signal, its values over time: what the history charts draw."""
    series: dict[str, list[dict[str, Any]]] = {}
    for analysis in history:
        for signal in NUMERIC_SIGNALS:
            value = analysis.signals.get(signal)
            if isinstance(value, int | float) and not isinstance(value, bool) and analysis.finished_at:
                series.setdefault(signal, []).append({"t": analysis.finished_at.isoformat(), "v": value})
    return series


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    name: str
    enabled: bool
    disabled_reason: str | None
    breaker: str
    calls: int
    success_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    statuses: dict[str, int]
    last_error: str | None
    last_error_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "breaker": self.breaker,
            "calls": self.calls,
            "success_rate": None if self.success_rate is None else round(self.success_rate, 4),
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "statuses": self.statuses,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
        }


PROBLEM_STATUSES = ("error", "timeout", "rate_limited", "circuit_open")


def provider_health(*, disabled: dict[str, str], breakers: dict[str, str], window_minutes: int = 15,
                    sample: int = 2000) -> list[ProviderHealth]:
    """Per provider over the recent window: calls by status, success rate (of calls that ran), latency
    percentiles of calls that reached upstream, and the last error."""
    since = timezone.now() - timedelta(minutes=window_minutes)
    health = []
    for name in PROVIDER_NAMES:
        recent = list(ProviderResult.objects.filter(provider=name, created_at__gte=since)
                      .order_by("-id").values("status", "latency_ms", "message", "created_at")[:sample])
        statuses = Counter(row["status"] for row in recent)
        ran = [row for row in recent if row["status"] not in ("skipped", "disabled")]
        ok = sum(1 for row in ran if row["status"] in ("ok", "cached"))
        latencies = sorted(row["latency_ms"] for row in ran if row["status"] == "ok")
        problem = next((row for row in recent if row["status"] in PROBLEM_STATUSES), None)
        health.append(ProviderHealth(
            name=name,
            enabled=name not in disabled,
            disabled_reason=disabled.get(name),
            breaker=breakers.get(name, "unknown"),
            calls=len(recent),
            success_rate=ok / len(ran) if ran else None,
            p50_ms=round(statistics.median(latencies), 1) if latencies else None,
            p95_ms=round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))], 1) if latencies else None,
            statuses=dict(statuses),
            last_error=f"{problem['status']}: {problem['message']}" if problem else None,
            last_error_at=problem["created_at"] if problem else None,
        ))
    return health
