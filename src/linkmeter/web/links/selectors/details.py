"""Analyses, links and their history as records (the REST API's bodies; the UI's link page reads them too)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from linkmeter.providers.registry import PROVIDER_CLASSES
from linkmeter.web.links.models import FINAL_STATUSES, Analysis, Batch, BatchItem, Link, ProviderResult, result_dict
from linkmeter.web.links.selectors import owned
from linkmeter.web.links.selectors.deferred import deferred_estimates

SIGNAL_COLUMNS: tuple[str, ...] = tuple(signal for cls in PROVIDER_CLASSES for signal in cls.provides)
NUMERIC_SIGNALS: tuple[str, ...] = tuple(
    signal for cls in PROVIDER_CLASSES for signal, spec in cls.provides.items() if spec.type in (int, float)
)
MAX_ID = 2**63 - 1  # larger ids cannot exist (and SQLite refuses to compare with them)


def analysis_row(analysis: Analysis, *, position: int | None = None, reused: bool = False,
                 deferred: dict[str, datetime] | None = None) -> dict[str, Any]:
    """``deferred``: provider -> estimate of each of its cells waiting to be filled in the background."""
    row: dict[str, Any] = {
        "analysis_id": analysis.pk,
        "link_id": analysis.link_id,
        "url": analysis.link.url,
        "status": analysis.status,
        "signals": analysis.signals if analysis.is_final else {},
        "finished_at": analysis.finished_at.isoformat() if analysis.finished_at else None,
        "deferred": {name: at.isoformat() for name, at in sorted((deferred or {}).items())},
    }
    if position is not None:
        row["position"] = position
        row["reused"] = reused
    return row


def analysis_detail(analysis: Analysis, *, include_raw: bool = False) -> dict[str, Any]:
    results = list(analysis.results.all())
    estimates = deferred_estimates(results)
    data = analysis_row(analysis, deferred={r.provider: estimates[r.pk] for r in results if r.pk in estimates})
    data.update({
        "queued_at": analysis.queued_at.isoformat(),
        "started_at": analysis.started_at.isoformat() if analysis.started_at else None,
        "elapsed_ms": analysis.elapsed_ms,
        "error": analysis.error,
        "providers_requested": analysis.providers,
        "providers": {r.provider: result_dict(r, include_raw=include_raw, estimate=estimates.get(r.pk))
                      for r in results},
    })
    return data


def analysis_by_id(analysis_id: int, owner: Any) -> Analysis | None:
    """One of the owner's analyses with its link and provider results, ready for ``analysis_detail``."""
    if not 0 < analysis_id <= MAX_ID:
        return None
    return (owned.analyses(owner).select_related("link").prefetch_related("results")
            .filter(pk=analysis_id).first())


def analysis_detail_of(analysis_id: int, owner: Any, *, include_raw: bool = False) -> dict[str, Any] | None:
    """``analysis_detail`` of one of the owner's analyses, or None (GET /api/v1/analyses/{id} in one call)."""
    analysis = analysis_by_id(analysis_id, owner)
    return analysis_detail(analysis, include_raw=include_raw) if analysis is not None else None


def analysis_details(analysis_ids: list[int], *, include_raw: bool = False) -> list[dict[str, Any]]:
    """``analysis_detail`` of each id in the given order (an id given twice appears twice)."""
    found = {a.pk: a for a in Analysis.objects.select_related("link").prefetch_related("results")
             .filter(id__in=set(analysis_ids))}
    details = {pk: analysis_detail(analysis, include_raw=include_raw) for pk, analysis in found.items()}
    return [details[pk] for pk in analysis_ids if pk in details]


def analyses_unfinished(analysis_ids: list[int]) -> int:
    """How many of these analyses are not final yet (what a waiting submission polls)."""
    return Analysis.objects.filter(id__in=set(analysis_ids)).exclude(status__in=list(FINAL_STATUSES)).count()


def batch_by_id(batch_id: int, owner: Any) -> Batch | None:
    """One of the owner's batches (another account's is missing, like one that does not exist)."""
    return owned.batches(owner).filter(pk=batch_id).first() if 0 < batch_id <= MAX_ID else None


def batch_rows(batch: Batch, *, chunk_size: int = 500) -> Iterator[dict[str, Any]]:
    """One row per submitted URL in input order: final analyses with numbers, the rest with their status."""
    items = (BatchItem.objects.filter(batch=batch).select_related("analysis__link")
             .order_by("position").iterator(chunk_size=chunk_size))
    chunk: list[BatchItem] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= chunk_size:
            yield from _rows(chunk)
            chunk = []
    yield from _rows(chunk)


def _rows(items: list[BatchItem]) -> Iterator[dict[str, Any]]:
    """Rows of these batch items, with their deferred cells' estimates (one query for the chunk's cells)."""
    if not items:
        return
    waiting = list(ProviderResult.objects.filter(analysis_id__in=[item.analysis_id for item in items],
                                                 deferred_since__isnull=False)
                   .only("id", "analysis_id", "provider", "deferred_since"))
    estimates = deferred_estimates(waiting)
    per_analysis: dict[int, dict[str, datetime]] = {}
    for result in waiting:
        per_analysis.setdefault(result.analysis_id, {})[result.provider] = estimates[result.pk]
    for item in items:
        yield analysis_row(item.analysis, position=item.position, reused=item.reused,
                           deferred=per_analysis.get(item.analysis_id))


def link_by_id(link_id: int, owner: Any) -> Link | None:
    """A link the owner submitted."""
    return owned.links(owner).filter(pk=link_id).first() if 0 < link_id <= MAX_ID else None


def link_by_url(url: str, owner: Any) -> Link | None:
    return owned.links(owner).filter(url=url).first()


def latest_analysis(link: Link, owner: Any) -> Analysis | None:
    """The owner's newest final analysis of the link (another account's later one stays unseen)."""
    return (owned.analyses(owner).filter(link=link, status__in=list(FINAL_STATUSES))
            .select_related("link").prefetch_related("results").order_by("-finished_at", "-id").first())


def link_detail(link: Link, owner: Any, *, recent: int = 10) -> dict[str, Any]:
    """A link with the owner's latest analysis in full and a summary of the owner's history of it."""
    latest = latest_analysis(link, owner)
    final = owned.analyses(owner).filter(link=link, status__in=list(FINAL_STATUSES))
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


def link_history(link: Link, owner: Any, *, limit: int = 200) -> list[Analysis]:
    """The owner's final analyses of a link, oldest first (the newest ``limit``)."""
    newest = list(owned.analyses(owner).filter(link=link, status__in=list(FINAL_STATUSES))
                  .order_by("-finished_at")[:limit])
    return newest[::-1]


def history_entries(history: list[Analysis]) -> list[dict[str, Any]]:
    """Final analyses (from ``link_history``) with their signals and timestamps."""
    return [{"analysis_id": a.pk, "status": a.status, "queued_at": a.queued_at.isoformat(),
             "finished_at": a.finished_at.isoformat() if a.finished_at else None,
             "elapsed_ms": a.elapsed_ms, "signals": a.signals} for a in history]


def numeric_series(history: list[Analysis]) -> dict[str, list[dict[str, Any]]]:
    """Per numeric signal, its values over time: what the history charts draw."""
    series: dict[str, list[dict[str, Any]]] = {}
    for analysis in history:
        for signal in NUMERIC_SIGNALS:
            value = analysis.signals.get(signal)
            if isinstance(value, int | float) and not isinstance(value, bool) and analysis.finished_at:
                series.setdefault(signal, []).append({"t": analysis.finished_at.isoformat(), "v": value})
    return series
