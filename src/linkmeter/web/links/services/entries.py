"""The link entries lists and search read: rewritten for the links whose analyses just changed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from linkmeter.web.links.models import FINAL_STATUSES, Analysis, BatchItem, Link, LinkEntry, ProviderResult

CHUNK = 500


def entry_fields(analysis: Analysis, link: Link, providers: dict[str, str]) -> dict[str, Any]:
    """What an entry copies from its analysis (the bench builds its rows with this too)."""
    final = analysis.status in FINAL_STATUSES
    signals = analysis.signals if final and isinstance(analysis.signals, dict) else {}
    title = signals.get("page.title")
    title = title[:500] if isinstance(title, str) else ""
    return {
        "link_id": link.pk, "analysis_id": analysis.pk, "url": link.url, "domain": link.domain, "title": title,
        "search_text": f"{link.url} {title} {link.domain}".lower(), "status": analysis.status,
        "analysed_at": (analysis.finished_at if final and analysis.finished_at else analysis.queued_at),
        "signals": signals, "providers": providers if final else {},
    }


def link_entry_refresh(*, link_ids: Iterable[int]) -> int:
    """Rewrite the entries of these links: for each account with one of their analyses in its batches, the
    newest final analysis it got (else its newest, still queued or running). Call inside a transaction; the
    links' rows are locked first, so two refreshes of one link follow each other. Returns the entries written."""
    ids = sorted(set(link_ids))
    written = 0
    for start in range(0, len(ids), CHUNK):
        written += _refresh(ids[start:start + CHUNK])
    return written


def _by_link(item: tuple[tuple[int | None, int], Any]) -> tuple[int, int]:
    (owner_id, link_id), _ = item
    return link_id, -1 if owner_id is None else owner_id  # the same order of rows on every database


def _refresh(ids: list[int]) -> int:
    links = {link.pk: link for link in Link.objects.select_for_update().filter(pk__in=ids).order_by("pk")}
    best: dict[tuple[int | None, int], tuple[bool, int]] = {}
    seen = (BatchItem.objects.filter(analysis__link_id__in=ids)
            .values_list("batch__owner_id", "analysis__link_id", "analysis_id", "analysis__status").distinct())
    for owner_id, link_id, analysis_id, status in seen:
        rank = (status in FINAL_STATUSES, analysis_id)
        key = (owner_id, link_id)
        if key not in best or rank > best[key]:
            best[key] = rank
    chosen = {analysis_id for _, analysis_id in best.values()}
    analyses = {a.pk: a for a in Analysis.objects.filter(pk__in=chosen)
                .only("id", "status", "signals", "queued_at", "finished_at")}
    calls: dict[int, dict[str, str]] = {}
    for analysis_id, provider, status in (ProviderResult.objects.filter(analysis_id__in=chosen)
                                          .values_list("analysis_id", "provider", "status")):
        calls.setdefault(analysis_id, {})[provider] = status
    LinkEntry.objects.filter(link_id__in=ids).delete()
    entries = [LinkEntry(owner_id=owner_id, **entry_fields(analyses[analysis_id], links[link_id],
                                                            calls.get(analysis_id, {})))
               for (owner_id, link_id), (_, analysis_id) in sorted(best.items(), key=_by_link)
               if analysis_id in analyses and link_id in links]
    LinkEntry.objects.bulk_create(entries, batch_size=CHUNK)
    return len(entries)


def entry_pending_status(*, analysis_ids: Sequence[int], status: str) -> int:
    """Entries showing one of these unfinished analyses take its new status (claimed: running; back in the
    queue: queued): one UPDATE, no rewrite, as claims are frequent."""
    return (LinkEntry.objects.filter(analysis_id__in=list(analysis_ids))
            .exclude(status__in=list(FINAL_STATUSES)).update(status=status))
