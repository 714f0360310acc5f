"""Reads: batch progress and results, link history, provider health. Views and the API call these."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Count, F, FloatField, Func, Max, Q
from django.db.models.sql.compiler import SQLCompiler
from django.urls import reverse
from django.utils import timezone

from linkmeter.providers.registry import PROVIDER_CLASSES
from linkmeter.web.engineview import STORE_UNKNOWN, ProviderCache
from linkmeter.web.links.models import (
    FINAL_STATUSES,
    Analysis,
    AnalysisStatus,
    Batch,
    BatchItem,
    CallbackStatus,
    Link,
    ProviderResult,
    result_dict,
)

SIGNAL_COLUMNS: tuple[str, ...] = tuple(signal for cls in PROVIDER_CLASSES for signal in cls.provides)
NUMERIC_SIGNALS: tuple[str, ...] = tuple(
    signal for cls in PROVIDER_CLASSES for signal, spec in cls.provides.items() if spec.type in (int, float)
)
PROVIDER_NAMES: tuple[str, ...] = tuple(cls.name for cls in PROVIDER_CLASSES)
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
    return BatchProgress(batch.pk, batch.name, total, counts, finished, finished / total if total else 1.0,
                         eta, batch.created_at, batch.finished_at, list(batch.invalid), batch_callback(batch))


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
    cache: ProviderCache  # the engine's view of the provider's cache (policy, where, entries)
    hit_ratio: float | None  # cached / (ok + cached) over the window; None when neither happened

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
            "hit_ratio": None if self.hit_ratio is None else round(self.hit_ratio, 4),
            "cache": {"ttl_seconds": self.cache.ttl, "store": self.cache.store, "entries": self.cache.entries,
                      "entries_more": self.cache.more},
        }


PROBLEM_STATUSES = ("error", "timeout", "rate_limited", "circuit_open")


def provider_health(*, disabled: dict[str, str], breakers: dict[str, str],
                    caches: Mapping[str, ProviderCache] | None = None, window_minutes: int = 15,
                    sample: int = 2000) -> list[ProviderHealth]:
    """Per provider over the recent window: calls by status, success rate (of calls that ran), cache hit
    ratio, latency percentiles of calls that reached upstream, and the last error; with the engine's view
    (``linkmeter.web.jobs.health.engine_view``) of what is disabled, the breakers and the caches."""
    caches = caches or {}
    policies = {cls.name: cls.policy for cls in PROVIDER_CLASSES}
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
        succeeded = statuses["ok"] + statuses["cached"]  # results from the cache or from upstream
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
            cache=caches.get(name) or ProviderCache(policies[name].cache_ttl, STORE_UNKNOWN, None),
            hit_ratio=statuses["cached"] / succeeded if succeeded else None,
        ))
    return health


def running_analysis_ids() -> list[int]:
    """Analyses marked running: after a restart of the embedded runner, the ones it must take up again."""
    return list(Analysis.objects.filter(status=AnalysisStatus.RUNNING).order_by("id").values_list("id", flat=True))


# -- the web UI's reads -------------------------------------------------------------------------------


class NumericSignal(Func):
    """A numeric signal from a JSON signals column as a float: NULL when missing, null or not a number, so
    that sorting puts those last and range filters leave them out (SQLite and PostgreSQL)."""

    output_field = FloatField()

    def __init__(self, signal: str, column: str = "signals") -> None:
        super().__init__(F(column))
        self.signal = signal

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, function: str | None = None,
               template: str | None = None, arg_joiner: str | None = None,
               **extra_context: Any) -> tuple[str, tuple[str | int, ...]]:
        column, params = compiler.compile(self.source_expressions[0])
        sql = (f"(CASE WHEN jsonb_typeof(({column})::jsonb -> %s) = 'number' "
               f"THEN (({column})::jsonb ->> %s)::double precision END)")
        return sql, (*params, self.signal, *params, self.signal)

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper,
                  **extra_context: Any) -> tuple[str, tuple[str | int, ...]]:
        column, params = compiler.compile(self.source_expressions[0])
        path = "$." + json.dumps(self.signal)
        sql = f"(CASE WHEN json_type({column}, %s) IN ('integer', 'real') THEN json_extract({column}, %s) END)"
        return sql, (*params, path, *params, path)


@dataclass(frozen=True, slots=True)
class SignalRange:
    """Keep rows whose numeric ``signal`` lies within [minimum, maximum] (either bound optional)."""

    signal: str
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True, slots=True)
class TablePage:
    rows: list[dict[str, Any]]
    matching: int  # rows that pass the filters
    total: int  # rows of the batch


def batch_table(batch: Batch, *, sort: str | None = None, descending: bool = True,
                ranges: Sequence[SignalRange] = (), offset: int = 0, limit: int = 100) -> TablePage:
    """One page of a batch's rows, sorted by a numeric signal (rows without it last, then input order) and
    filtered by numeric ranges, in the database. An unknown or non-numeric signal is a ValueError."""
    unknown = sorted({s for s in [sort, *(r.signal for r in ranges)] if s is not None} - set(NUMERIC_SIGNALS))
    if unknown:
        raise ValueError(f"not a numeric signal: {', '.join(unknown)}")
    items = BatchItem.objects.filter(batch=batch)
    total = items.count()
    for number, bounds in enumerate(ranges):
        alias = f"range_{number}"
        items = items.alias(**{alias: NumericSignal(bounds.signal, "analysis__signals")})
        if bounds.minimum is not None:
            items = items.filter(**{f"{alias}__gte": bounds.minimum})
        if bounds.maximum is not None:
            items = items.filter(**{f"{alias}__lte": bounds.maximum})
    if sort is not None:
        items = items.alias(sort_key=NumericSignal(sort, "analysis__signals"))
        key = F("sort_key").desc(nulls_last=True) if descending else F("sort_key").asc(nulls_last=True)
        items = items.order_by(key, "position")
    else:
        items = items.order_by("position")
    matching = items.count() if ranges else total
    page = items.select_related("analysis__link")[max(0, offset):max(0, offset) + max(0, limit)]
    rows = [analysis_row(item.analysis, position=item.position, reused=item.reused) for item in page]
    return TablePage(rows=rows, matching=matching, total=total)


def provider_results(analysis: Analysis) -> list[ProviderResult]:
    """An analysis' provider results in registry order (the order of the plan), unknown names last."""
    order = {name: index for index, name in enumerate(PROVIDER_NAMES)}
    return sorted(analysis.results.defer("raw"), key=lambda r: (order.get(r.provider, len(order)), r.provider))


def provider_result(*, analysis_id: int, provider: str) -> ProviderResult | None:
    return ProviderResult.objects.filter(analysis_id=analysis_id, provider=provider).first()


def link_pending_analysis(link: Link) -> Analysis | None:
    """The newest analysis of a link that has not finished (queued or running), if any."""
    return (link.analyses.exclude(status__in=list(FINAL_STATUSES)).order_by("-id").first())


# -- the REST API's reads -----------------------------------------------------------------------------

MAX_ID = 2**63 - 1  # larger ids cannot exist (and SQLite refuses to compare with them)


def analysis_by_id(analysis_id: int) -> Analysis | None:
    """An analysis with its link and provider results, ready for ``analysis_detail``."""
    if not 0 < analysis_id <= MAX_ID:
        return None
    return (Analysis.objects.select_related("link").prefetch_related("results")
            .filter(pk=analysis_id).first())


def batch_by_id(batch_id: int) -> Batch | None:
    return Batch.objects.filter(pk=batch_id).first() if 0 < batch_id <= MAX_ID else None


def link_by_id(link_id: int) -> Link | None:
    return Link.objects.filter(pk=link_id).first() if 0 < link_id <= MAX_ID else None


def analyses_unfinished(analysis_ids: list[int]) -> int:
    """How many of these analyses are not final yet (what a waiting submission polls)."""
    return Analysis.objects.filter(id__in=set(analysis_ids)).exclude(status__in=list(FINAL_STATUSES)).count()


def analysis_details(analysis_ids: list[int], *, include_raw: bool = False) -> list[dict[str, Any]]:
    """``analysis_detail`` of each id in the given order (an id given twice appears twice)."""
    found = {a.pk: a for a in Analysis.objects.select_related("link").prefetch_related("results")
             .filter(id__in=set(analysis_ids))}
    details = {pk: analysis_detail(analysis, include_raw=include_raw) for pk, analysis in found.items()}
    return [details[pk] for pk in analysis_ids if pk in details]


def link_detail(link: Link, *, recent: int = 10) -> dict[str, Any]:
    """A link with its latest analysis in full and a summary of its history (final analyses)."""
    latest = analysis_by_id(link.latest_analysis_id) if link.latest_analysis_id else None
    final = link.analyses.filter(status__in=list(FINAL_STATUSES))
    first_at = final.order_by("finished_at").values_list("finished_at", flat=True).first()
    newest = list(final.order_by("-finished_at", "-id").values("id", "status", "finished_at")[:recent])
    return {
        "id": link.pk,
        "url": link.url,
        "domain": link.domain,
        "first_seen": link.first_seen.isoformat(),
        "latest_analysis": analysis_detail(latest) if latest else None,
        "history": {
            "count": final.count(),
            "first_at": first_at.isoformat() if first_at else None,
            "last_at": newest[0]["finished_at"].isoformat() if newest and newest[0]["finished_at"] else None,
            "recent": [{"analysis_id": row["id"], "status": row["status"],
                        "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None}
                       for row in newest],
        },
    }


def history_entries(history: list[Analysis]) -> list[dict[str, Any]]:
    """Final analyses (from ``link_history``) with their signals and timestamps."""
    return [{"analysis_id": a.pk, "status": a.status, "queued_at": a.queued_at.isoformat(),
             "finished_at": a.finished_at.isoformat() if a.finished_at else None,
             "elapsed_ms": a.elapsed_ms, "signals": a.signals} for a in history]


def recent_batches(*, limit: int = 10) -> list[BatchProgress]:
    """The newest batches with their progress (the home page lists them)."""
    return [batch_progress(batch) for batch in Batch.objects.order_by("-id")[:limit]]


# -- what /metrics reports --------------------------------------------------------------------------


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


# -- what the Celery workers and beat read ----------------------------------------------------------


def batch_webhook_summary(batch_id: int) -> dict[str, Any] | None:
    """The JSON a batch's webhook POSTs (``results_url`` is a path; the caller makes it absolute), with the
    target and the delivery state under ``callback_url`` and ``callback_status`` (not sent); None when
    there is no such batch."""
    batch = Batch.objects.filter(pk=batch_id).first()
    if batch is None:
        return None
    progress = batch_progress(batch)
    return {
        "batch_id": batch.pk,
        "name": batch.name,
        "status": progress.status,
        "total": progress.total,
        "counts": progress.counts,
        "finished_at": batch.finished_at.isoformat() if batch.finished_at else None,
        "results_url": reverse("api-v1:batch_results", kwargs={"batch_id": batch.pk}),
        "callback_url": batch.callback_url,
        "callback_status": batch.callback_status,
    }


def analyses_orphaned(*, older_than_seconds: float, limit: int = 10_000) -> list[tuple[int, int]]:
    """(id, priority) of analyses queued for longer than ``older_than_seconds``, highest priority first."""
    before = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(Analysis.objects.filter(status=AnalysisStatus.QUEUED, queued_at__lt=before)
                .order_by("-priority", "id").values_list("id", "priority")[:limit])


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
