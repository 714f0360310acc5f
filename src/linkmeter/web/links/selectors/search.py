"""The links list: an account's link entries filtered (text, domain, status, dates, provider status, signal
comparisons), sorted by any of them with the entry id as tiebreak, one keyset page at a time (docs/api.md)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, FloatField, Func, OrderBy, Q, QuerySet, TextField
from django.db.models.sql.compiler import SQLCompiler
from django.utils.dateparse import parse_date, parse_datetime

from linkmeter.engine.results import CallStatus
from linkmeter.web.links.models import AnalysisStatus, LinkEntry
from linkmeter.web.links.selectors import owned
from linkmeter.web.links.signalsql import SIGNAL_KINDS, provider_status_sql, signal_sql

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
# Sortable columns of an entry besides the signals; every sort ends with the entry id, in the same direction.
COLUMNS: dict[str, str] = {"analysed_at": "analysed_at", "url": "url", "domain": "domain", "title": "title",
                           "status": "status"}
DEFAULT_SORT = "-analysed_at"
OPERATORS = (">=", "<=", "!=", "=", ">", "<")
_FILTER = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*([^A-Za-z0-9_.\s-]+)\s*(\S*)\s*$")
_NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


class SearchError(ValueError):
    """A filter, sort or cursor that cannot be used: ``code`` and the offending parameter, for a 422."""

    def __init__(self, code: str, message: str, *, parameter: str, given: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = {"parameter": parameter, "given": given, **details}


class SignalValue(Func):
    """A numeric or boolean signal of a JSON column as a number (NULL when missing), in the same SQL text
    as the expression indexes of migration 0005."""

    output_field = FloatField()

    def __init__(self, signal: str, column: str = "signals") -> None:
        super().__init__(F(column))
        self.signal = signal

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, function: str | None = None,
               template: str | None = None, arg_joiner: str | None = None,
               **extra_context: Any) -> tuple[str, tuple[Any, ...]]:
        column, params = compiler.compile(self.source_expressions[0])
        return signal_sql(connection.vendor, column, self.signal, SIGNAL_KINDS[self.signal]), tuple(params)


class ProviderStatus(Func):
    """A provider's call status from an entry's ``providers`` object."""

    output_field = TextField()

    def __init__(self, provider: str) -> None:
        super().__init__(F("providers"))
        self.provider = provider

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, function: str | None = None,
               template: str | None = None, arg_joiner: str | None = None,
               **extra_context: Any) -> tuple[str, tuple[Any, ...]]:
        column, params = compiler.compile(self.source_expressions[0])
        return provider_status_sql(connection.vendor, column, self.provider), tuple(params)


@dataclass(frozen=True, slots=True)
class Comparison:
    signal: str
    operator: str
    value: float

    def q(self, alias: str) -> Q:
        lookup = {">=": "gte", "<=": "lte", ">": "gt", "<": "lt", "=": "exact"}
        if self.operator == "!=":
            return Q(**{f"{alias}__isnull": False}) & ~Q(**{alias: self.value})
        return Q(**{f"{alias}__{lookup[self.operator]}": self.value})


@dataclass(frozen=True, slots=True)
class Sort:
    key: str  # a column of COLUMNS or a signal
    descending: bool

    @property
    def text(self) -> str:
        return ("-" if self.descending else "") + self.key

    @property
    def is_signal(self) -> bool:
        return self.key not in COLUMNS


@dataclass(frozen=True, slots=True)
class LinkQuery:
    """One search of the links list, parsed and validated (``parse_link_query``)."""

    text: str = ""
    domain: str = ""
    statuses: tuple[str, ...] = ()
    providers: tuple[tuple[str, str], ...] = ()  # (provider, call status)
    after: datetime | None = None
    before: datetime | None = None
    comparisons: tuple[Comparison, ...] = ()
    sort: Sort = field(default_factory=lambda: Sort("analysed_at", True))
    limit: int = DEFAULT_LIMIT
    cursor: tuple[Any, int] | None = None  # the last row's sort value and entry id

    def parameters(self) -> list[tuple[str, str]]:
        """The query as URL parameters (no cursor, no limit): what the UI's links and exports repeat."""
        out: list[tuple[str, str]] = []
        if self.text:
            out.append(("q", self.text))
        if self.domain:
            out.append(("domain", self.domain))
        if self.statuses:
            out.append(("status", ",".join(self.statuses)))
        out += [("provider", f"{name}:{status}") for name, status in self.providers]
        if self.after:
            out.append(("after", self.after.isoformat()))
        if self.before:
            out.append(("before", self.before.isoformat()))
        out += [("filter", f"{c.signal}{c.operator}{_number_text(c.value)}") for c in self.comparisons]
        if self.sort.text != DEFAULT_SORT:
            out.append(("sort", self.sort.text))
        return out


def _number_text(value: float) -> str:
    return str(int(value)) if value == int(value) and abs(value) < 2**53 else repr(value)


def parse_comparison(text: str) -> Comparison:
    """``signal<op>value``: a numeric signal with a number, or a boolean one with true/false (= and != only)."""
    match = _FILTER.match(text)
    if not match:
        raise SearchError("invalid_filter", f"cannot read filter {text!r}: expected signal, operator, value "
                          "(e.g. hackernews.points>100)", parameter="filter", given=text, reason="syntax")
    signal, operator, raw = match.groups()
    operator = "=" if operator == "==" else operator
    if signal not in SIGNAL_KINDS:
        raise SearchError("unknown_signal", f"{signal!r} is not a numeric or boolean signal",
                          parameter="filter", given=text, signal=signal)
    if operator not in OPERATORS:
        raise SearchError("invalid_operator", f"{operator!r} is not an operator; use one of {' '.join(OPERATORS)}",
                          parameter="filter", given=text, signal=signal, operator=operator)
    if SIGNAL_KINDS[signal] == "bool":
        if raw.lower() not in ("true", "false") or operator not in ("=", "!="):
            raise SearchError("invalid_value", f"{signal} is boolean: compare it with = or != to true or false",
                              parameter="filter", given=text, signal=signal)
        return Comparison(signal, operator, 1.0 if raw.lower() == "true" else 0.0)
    if not _NUMBER.match(raw):
        raise SearchError("invalid_value", f"{signal} is numeric: {raw!r} is not a number",
                          parameter="filter", given=text, signal=signal)
    return Comparison(signal, operator, float(raw))


def parse_sort(text: str) -> Sort:
    key = text.strip()
    descending = key.startswith("-")
    key = key.lstrip("-+")
    if key not in COLUMNS and key not in SIGNAL_KINDS:
        raise SearchError("invalid_sort", f"cannot sort by {key!r}: a column ({', '.join(COLUMNS)}) or a numeric "
                          "or boolean signal, '-' first for descending", parameter="sort", given=text)
    return Sort(key, descending)


def parse_moment(text: str, parameter: str) -> datetime:
    """An ISO date (midnight UTC) or date and time (UTC when it names no offset)."""
    try:
        moment = parse_datetime(text)
        if moment is None:
            day = parse_date(text)
            moment = datetime(day.year, day.month, day.day) if day else None
    except ValueError:
        moment = None
    if moment is None:
        raise SearchError("invalid_date", f"{parameter}: {text!r} is not an ISO date or date and time",
                          parameter=parameter, given=text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def encode_cursor(sort: Sort, value: Any, entry_id: int) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    data = json.dumps([sort.text, value, entry_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def decode_cursor(text: str, sort: Sort) -> tuple[Any, int]:
    """The position a cursor names; it must come from the same sort (the filters are the caller's to keep)."""
    try:
        sort_text, value, entry_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, TypeError, binascii.Error):
        raise SearchError("invalid_cursor", "the cursor is not one this API gave", parameter="cursor",
                          given=text) from None
    valid_value = (value is None or isinstance(value, int | float)) if sort.is_signal else isinstance(value, str)
    if sort_text != sort.text or not isinstance(entry_id, int) or isinstance(entry_id, bool) or not valid_value:
        raise SearchError("invalid_cursor", "the cursor belongs to another sort or is damaged",
                          parameter="cursor", given=text)
    if sort.key == "analysed_at":
        return parse_moment(value, "cursor"), entry_id
    return value, entry_id


def _split(values: Sequence[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def parse_link_query(*, q: str = "", domain: str = "", status: Sequence[str] = (), provider: Sequence[str] = (),
                     after: str = "", before: str = "", filters: Sequence[str] = (), sort: str = "",
                     limit: int | None = None, cursor: str = "") -> LinkQuery:
    """Every parameter checked; the first unusable one is a SearchError naming it."""
    statuses = _split(status)
    for value in statuses:
        if value not in AnalysisStatus.values:
            raise SearchError("invalid_status", f"status {value!r}: one of {', '.join(AnalysisStatus.values)}",
                              parameter="status", given=value)
    calls: list[tuple[str, str]] = []
    for value in _split(provider):
        name, _, call = value.partition(":")
        try:
            provider_status_sql("sqlite", "providers", name)
        except ValueError:
            raise SearchError("unknown_provider", f"no provider {name!r}", parameter="provider",
                              given=value) from None
        if call not in CallStatus.__members__.values():
            raise SearchError("invalid_provider_status", f"{value!r}: provider:status, the status one of "
                              f"{', '.join(CallStatus)}", parameter="provider", given=value)
        calls.append((name, call))
    order = parse_sort(sort or DEFAULT_SORT)
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise SearchError("invalid_limit", f"limit must be 1 to {MAX_LIMIT}", parameter="limit", given=str(limit))
    return LinkQuery(
        text=q.strip(), domain=domain.strip().lower(), statuses=tuple(statuses), providers=tuple(calls),
        after=parse_moment(after, "after") if after else None,
        before=parse_moment(before, "before") if before else None,
        comparisons=tuple(parse_comparison(text) for text in _split(filters)),
        sort=order, limit=limit or DEFAULT_LIMIT,
        cursor=decode_cursor(cursor, order) if cursor else None,
    )


def owned_entries(owner: Any) -> QuerySet[LinkEntry]:
    """The entries of the owner's links (the local owner's include those from before accounts)."""
    if owner is None or not getattr(owner, "is_authenticated", False):
        return LinkEntry.objects.none()
    mine = Q(owner_id=owner.pk)
    if owned.is_local_owner(owner):
        mine |= Q(owner__isnull=True)
    return LinkEntry.objects.filter(mine)


def _sort_order(sort: Sort) -> list[OrderBy]:
    key = F("sort_key")
    if not sort.is_signal:
        return [key.desc(), F("id").desc()] if sort.descending else [key.asc(), F("id").asc()]
    # Rows without the signal come last either way; SQLite's NULLs sort lowest, so a plain DESC (the index's
    # order) already puts them last there.
    if sort.descending:
        first = key.desc(nulls_last=True) if connection.vendor == "postgresql" else key.desc()
        return [first, F("id").desc()]
    return [key.asc(nulls_last=True), F("id").asc()]


def _after_cursor(sort: Sort, value: Any, entry_id: int) -> Q:
    """Rows strictly after (value, entry_id) in the sort's order."""
    before, same = ("sort_key__lt", "id__lt") if sort.descending else ("sort_key__gt", "id__gt")
    if value is None:  # only a signal sort has NULL keys, and they come last
        return Q(sort_key__isnull=True, **{same: entry_id})
    bound = "sort_key__lte" if sort.descending else "sort_key__gte"
    later = Q(**{bound: value}) & (Q(**{before: value}) | Q(sort_key=value, **{same: entry_id}))
    return later | Q(sort_key__isnull=True) if sort.is_signal else later


def filtered(owner: Any, query: LinkQuery) -> QuerySet[LinkEntry]:
    """The owner's entries passing every filter, sorted, with ``sort_key`` annotated (no cursor, no limit)."""
    rows = owned_entries(owner)
    if query.text:
        rows = rows.filter(search_text__contains=query.text.lower())
    if query.domain:
        rows = rows.filter(domain=query.domain)
    if query.statuses:
        rows = rows.filter(status__in=query.statuses)
    if query.after:
        rows = rows.filter(analysed_at__gte=query.after)
    if query.before:
        rows = rows.filter(analysed_at__lt=query.before)
    for number, (name, call) in enumerate(query.providers):
        rows = rows.alias(**{f"call_{number}": ProviderStatus(name)}).filter(**{f"call_{number}": call})
    aliases: dict[str, str] = {}
    for comparison in query.comparisons:
        alias = aliases.setdefault(comparison.signal, f"signal_{len(aliases)}")
        if comparison.signal == query.sort.key:
            continue
        rows = rows.alias(**{alias: SignalValue(comparison.signal)})
    sort_key = SignalValue(query.sort.key) if query.sort.is_signal else F(COLUMNS[query.sort.key])
    rows = rows.annotate(sort_key=sort_key)
    for comparison in query.comparisons:
        # A filter on the sort's own signal reads the same expression (one index serves both).
        alias = "sort_key" if comparison.signal == query.sort.key else aliases[comparison.signal]
        rows = rows.filter(comparison.q(alias))
    return rows.order_by(*_sort_order(query.sort))


@dataclass(frozen=True, slots=True)
class LinkPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None


def entry_row(entry: LinkEntry) -> dict[str, Any]:
    return {
        "id": entry.link_id, "url": entry.url, "domain": entry.domain, "title": entry.title,
        "status": entry.status, "analysed_at": entry.analysed_at.isoformat(), "analysis_id": entry.analysis_id,
        "signals": entry.signals, "providers": entry.providers,
    }


def _page(owner: Any, query: LinkQuery, cursor: tuple[Any, int] | None, limit: int) -> tuple[list[LinkEntry], bool]:
    rows = filtered(owner, query)
    if cursor is not None:
        rows = rows.filter(_after_cursor(query.sort, *cursor))
    found = list(rows[:limit + 1])
    return found[:limit], len(found) > limit


def position(row: Any) -> tuple[Any, int]:
    """A fetched row's place in its sort: the annotated ``sort_key`` and the id."""
    return row.sort_key, row.pk


def link_search(owner: Any, query: LinkQuery) -> LinkPage:
    """One page of the owner's links for the query, and the cursor of the next (None: the last page)."""
    entries, more = _page(owner, query, query.cursor, query.limit)
    cursor = encode_cursor(query.sort, *position(entries[-1])) if more and entries else None
    return LinkPage([entry_row(entry) for entry in entries], cursor)


def link_search_all(owner: Any, query: LinkQuery, *, chunk: int = 500) -> Iterator[list[dict[str, Any]]]:
    """Every matching row from the query's cursor on, in chunks, each a keyset page of its own: an export
    holds one chunk in memory, never the whole result."""
    cursor = query.cursor
    while True:
        entries, more = _page(owner, query, cursor, chunk)
        if entries:
            yield [entry_row(entry) for entry in entries]
        if not more:
            return
        cursor = position(entries[-1])
