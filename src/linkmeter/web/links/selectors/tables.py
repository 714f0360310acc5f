"""The web UI's reads: a batch's results table (sorted and filtered in the database) and a link's provider results."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, FloatField, Func, QuerySet
from django.db.models.sql.compiler import SQLCompiler

from linkmeter.providers.registry import PROVIDER_NAMES
from linkmeter.web.links.models import FINAL_STATUSES, Analysis, Batch, BatchItem, Link, ProviderResult
from linkmeter.web.links.selectors import owned
from linkmeter.web.links.selectors.details import NUMERIC_SIGNALS, analysis_row
from linkmeter.web.links.selectors.search import SignalValue


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


def flagged(items: QuerySet[BatchItem], spam: bool | None) -> QuerySet[BatchItem]:
    """Only the rows whose ``spam.flag`` is ``spam`` (None: every row; rows without a verdict are left out)."""
    if spam is None:
        return items
    return items.alias(spam_flag=SignalValue("spam.flag", "analysis__signals")).filter(spam_flag=int(spam))


def batch_export_rows(batch: Batch, *, spam: bool | None = None, chunk_size: int = 500) -> Iterator[dict[str, Any]]:
    """``details.batch_rows``, optionally only the rows flagged spam (``spam=True``) or not (``False``)."""
    items = flagged(BatchItem.objects.filter(batch=batch), spam).select_related("analysis__link").order_by("position")
    for item in items.iterator(chunk_size=chunk_size):
        yield analysis_row(item.analysis, position=item.position, reused=item.reused)


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
                ranges: Sequence[SignalRange] = (), spam: bool | None = None, offset: int = 0,
                limit: int = 100) -> TablePage:
    """One page of a batch's rows, sorted by a numeric signal (rows without it last, then input order) and
    filtered by numeric ranges and by the spam flag (``spam``: True flagged only, False not flagged only), in
    the database. An unknown or non-numeric signal is a ValueError."""
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
    items = flagged(items, spam)
    matching = items.count() if ranges or spam is not None else total
    page = items.select_related("analysis__link")[max(0, offset):max(0, offset) + max(0, limit)]
    rows = [analysis_row(item.analysis, position=item.position, reused=item.reused) for item in page]
    return TablePage(rows=rows, matching=matching, total=total)


def provider_results(analysis: Analysis) -> list[ProviderResult]:
    """An analysis' provider results in registry order (the order of the plan), unknown names last."""
    order = {name: index for index, name in enumerate(PROVIDER_NAMES)}
    return sorted(analysis.results.defer("raw"), key=lambda r: (order.get(r.provider, len(order)), r.provider))


def provider_result(*, analysis_id: int, provider: str) -> ProviderResult | None:
    return ProviderResult.objects.filter(analysis_id=analysis_id, provider=provider).first()


def link_pending_analysis(link: Link, owner: Any) -> Analysis | None:
    """The owner's newest analysis of a link that has not finished (queued or running), if any."""
    return (owned.analyses(owner).filter(link=link).exclude(status__in=list(FINAL_STATUSES)).order_by("-id")
            .first())
