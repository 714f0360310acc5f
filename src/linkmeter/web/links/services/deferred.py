"""Deferred cells: a provider call that ended ``rate_limited`` or ``circuit_open`` is made again in the
background when the provider's budget allows (docs/providers.md, "Budgets and deferred cells").

A cell is deferred when its analysis is stored (``result_defer``); a refiller (the embedded runner's, or the
Celery beat task on a worker) claims the waiting cells of one provider, highest priority first, under a
lease (``deferred_claim``), calls that one provider again (and the indicators deriving from it), and stores
the outcome in place (``deferred_store``): the cell, its analysis's signals and status, and which batches
have no deferred cell left (their webhook is told again). A cell deferred longer than the configured age
gives up (``deferred_expire``).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone

from linkmeter.engine.results import SUCCESS, URL_DEADLINE_MESSAGE, CallResult, CallStatus
from linkmeter.web.links.bulkwrite import MESSAGE_LIMIT, jsonable
from linkmeter.web.links.models import Analysis, AnalysisStatus, Batch, BatchItem, CallbackStatus, ProviderResult
from linkmeter.web.links.services.entries import link_entry_refresh

DEFERRABLE = (CallStatus.RATE_LIMITED.value, CallStatus.CIRCUIT_OPEN.value)
# A background try ending so keeps its cell deferred: the provider refused, or did not answer in time (its
# background deadline is short); an error answer or a skip settles it.
STILL_WAITING = (*DEFERRABLE, CallStatus.TIMEOUT.value)


@dataclass(frozen=True, slots=True)
class DeferredWork:
    """One claimed deferred cell: what calling its provider again needs."""

    result_id: int
    analysis_id: int
    provider: str
    selection: tuple[str, ...]  # its analysis's providers asked for; () = the default set
    signals: dict[str, Any]  # what its analysis found (the provider's inputs)
    priority: int


def result_defer(*, analysis_ids: Sequence[int], now: datetime) -> int:
    """Defer the ``rate_limited`` and ``circuit_open`` cells of these just stored analyses, and those the URL's
    deadline cut short (``timeout`` with ``URL_DEADLINE_MESSAGE``: still waiting for a slot or in flight when
    the deadline came), at their analysis's priority. Call inside the transaction that stored them."""
    if not analysis_ids:
        return 0
    priority = Analysis.objects.filter(pk=OuterRef("analysis_id")).values("priority")[:1]
    cut_short = Q(status=CallStatus.TIMEOUT.value, message=URL_DEADLINE_MESSAGE)
    return (ProviderResult.objects.filter(Q(status__in=DEFERRABLE) | cut_short, analysis_id__in=analysis_ids,
                                          deferred_since__isnull=True, refilled_at__isnull=True)
            .update(deferred_since=now, deferred_priority=Subquery(priority)))


def deferred_waiting() -> dict[str, int]:
    """Provider -> its deferred cells no refiller holds now."""
    now = timezone.now()
    rows = (ProviderResult.objects.filter(deferred_since__isnull=False)
            .filter(Q(refill_lease__isnull=True) | Q(refill_lease__lt=now))
            .values("provider").annotate(n=Count("id")).order_by())
    return {row["provider"]: row["n"] for row in rows}


def deferred_claim(*, provider: str, limit: int, lease_seconds: float) -> list[DeferredWork]:
    """Up to ``limit`` deferred cells of ``provider`` no refiller holds, highest priority first (then the oldest),
    leased for ``lease_seconds``: a refiller that dies lets them go when the lease ends. Safe with concurrent
    refillers (the conditional update takes each cell once)."""
    if limit <= 0:
        return []
    now = timezone.now()
    token = secrets.token_hex(8)
    free = Q(refill_lease__isnull=True) | Q(refill_lease__lt=now)
    with transaction.atomic():
        ids = list(ProviderResult.objects.filter(free, provider=provider, deferred_since__isnull=False)
                   .order_by("-deferred_priority", "id").values_list("id", flat=True)[:limit])
        ProviderResult.objects.filter(free, id__in=ids, deferred_since__isnull=False).update(
            refill_lease=now + timedelta(seconds=lease_seconds), refill_token=token)
        rows = (ProviderResult.objects.filter(id__in=ids, refill_token=token)
                .order_by("-deferred_priority", "id")
                .values_list("id", "analysis_id", "analysis__providers", "analysis__signals", "deferred_priority"))
        return [DeferredWork(pk, analysis_id, provider, tuple(selection or ()), dict(signals or {}), priority)
                for pk, analysis_id, selection, signals, priority in rows]


@dataclass(frozen=True, slots=True)
class Refilled:
    filled: int  # cells that got an answer
    waiting: int  # still deferred (the provider still said no, or did not answer in time)
    settled: int  # cells that ended otherwise (an error, a timeout): no longer deferred
    batches: list[int]  # batches that have no deferred cell left because of this call: tell their webhook


def deferred_store(*, outcomes: Sequence[tuple[DeferredWork, dict[str, CallResult]]]) -> Refilled:
    """Store what the background calls answered, in place: the cell (and the indicators derived again from
    it), its analysis's signals and status. A cell the provider still refused (or that timed out) stays
    deferred, for a later round; one that ended otherwise (an error answer) is settled with that status."""
    now = timezone.now()
    filled = waiting = settled = 0
    touched: set[int] = set()
    with transaction.atomic():
        for work, results in outcomes:
            main = results.get(work.provider)
            if main is None:
                continue
            current = ProviderResult.objects.filter(pk=work.result_id, deferred_since__isnull=False).first()
            if current is None:
                continue  # settled meanwhile (given up)
            current.refills += 1
            current.refill_lease, current.refill_token = None, ""
            if main.status.value in STILL_WAITING:
                current.message = _text(main.message)
                current.save(update_fields=["refills", "refill_lease", "refill_token", "message"])
                waiting += 1
                continue
            _write(current, main, now)
            for name, derived in results.items():
                if name != work.provider:
                    row = ProviderResult.objects.filter(analysis_id=work.analysis_id, provider=name).first()
                    if row is not None and row.deferred_since is None:
                        _write(row, derived, now)
            _update_analysis(work.analysis_id, results)
            touched.add(work.analysis_id)
            if main.status in SUCCESS:
                filled += 1
            else:
                settled += 1
        if touched:  # the lists show an analysis's signals and calls: they changed in place
            link_entry_refresh(link_ids=Analysis.objects.filter(pk__in=touched).values_list("link_id", flat=True))
    return Refilled(filled, waiting, settled, _settled_batches(touched))


def deferred_expire(*, max_age_seconds: float) -> Refilled:
    """Give up on cells deferred longer than ``max_age_seconds``: they keep their status, their message says
    so, and they are no longer deferred."""
    now = timezone.now()
    with transaction.atomic():
        old = ProviderResult.objects.filter(deferred_since__lt=now - timedelta(seconds=max_age_seconds))
        analysis_ids = set(old.values_list("analysis_id", flat=True))
        count = old.update(deferred_since=None, refill_lease=None, refill_token="", refilled_at=now,
                           message=f"gave up: deferred for over {max_age_seconds:g}s without an answer")
    return Refilled(0, 0, count, _settled_batches(analysis_ids))


def batch_webhook_renotify(*, batch_ids: Sequence[int]) -> list[int]:
    """The batches among these whose webhook was delivered (or gave up) start it again, to tell their
    deferred cells are settled; answers those to send now."""
    with transaction.atomic():
        ids = list(Batch.objects.filter(pk__in=batch_ids, finished_at__isnull=False)
                   .exclude(callback_url="")
                   .filter(callback_status__in=[CallbackStatus.DELIVERED, CallbackStatus.FAILED])
                   .values_list("id", flat=True))
        Batch.objects.filter(pk__in=ids).update(callback_status=CallbackStatus.SENDING, callback_attempts=0,
                                                callback_last_error="")
    return ids


def _write(row: ProviderResult, result: CallResult, now: datetime) -> None:
    row.status = result.status.value
    row.latency_ms = result.latency_ms
    row.attempts = result.attempts
    row.message = _text(result.message or ("filled later, in the background" if result.status in SUCCESS else ""))
    row.signals = jsonable(result.signals)
    row.raw = jsonable(result.raw)
    row.deferred_since = None
    row.refill_lease, row.refill_token = None, ""
    row.refilled_at = now
    row.save()


def _update_analysis(analysis_id: int, results: dict[str, CallResult]) -> None:
    """The analysis's signals with the new answers merged in, and its status from its cells as they are now."""
    analysis = Analysis.objects.select_for_update().filter(pk=analysis_id).first()
    if analysis is None:
        return
    signals = dict(analysis.signals or {})
    for result in results.values():
        if result.status in SUCCESS:
            signals.update(jsonable(result.signals))
    statuses = list(ProviderResult.objects.filter(analysis_id=analysis_id).values_list("status", flat=True))
    considered = [s for s in statuses if s != CallStatus.DISABLED.value]
    succeeded = sum(1 for s in considered if s in (CallStatus.OK.value, CallStatus.CACHED.value))
    status = (AnalysisStatus.DONE if considered and succeeded == len(considered)
              else AnalysisStatus.PARTIAL if succeeded else AnalysisStatus.FAILED)
    Analysis.objects.filter(pk=analysis_id).update(signals=signals, status=status)


def _settled_batches(analysis_ids: set[int]) -> list[int]:
    """The closed batches of these analyses that have no deferred cell left."""
    if not analysis_ids:
        return []
    candidates = set(BatchItem.objects.filter(analysis_id__in=analysis_ids).values_list("batch_id", flat=True))
    still = set(BatchItem.objects.filter(batch_id__in=candidates, analysis__results__deferred_since__isnull=False)
                .values_list("batch_id", flat=True))
    return sorted(candidates - still)


def _text(message: str) -> str:
    return message[:MESSAGE_LIMIT].replace("\x00", "\ufffd")
