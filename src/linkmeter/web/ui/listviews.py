"""The Links and Batches pages: thin views over the search selectors; exports go to the API's lists."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from linkmeter.web.links.models import AnalysisStatus, BatchSource
from linkmeter.web.links.selectors import batchlist, search
from linkmeter.web.links.selectors.search import LinkQuery, SearchError

PAGE_SIZE = 50
# The signal columns of the Links page (each sortable); any other signal can be filtered and sorted by URL.
SIGNAL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("spam.score", "Spam"), ("hackernews.points", "HN points"), ("dnsbl.listed_count", "Listed"),
    ("engagement.total", "Engagement"), ("authority.score", "Authority"), ("tranco.rank", "Tranco"),
)
TEXT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("url", "URL"), ("title", "Title"), ("domain", "Domain"), ("status", "Status"), ("analysed_at", "Analysed"),
)


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    href: str  # this page sorted by the column (descending first, then ascending)
    arrow: str  # "▼", "▲" or ""
    aria_sort: str  # "descending", "ascending" or "none"


def _columns(query: LinkQuery, base: list[tuple[str, str]]) -> list[Column]:
    columns = []
    for key, label in (*TEXT_COLUMNS, *SIGNAL_COLUMNS):
        current = query.sort.key == key
        descending = not (current and query.sort.descending)
        href = "?" + urlencode([*base, ("sort", ("-" if descending else "") + key)])
        arrow = ("▼" if query.sort.descending else "▲") if current else ""
        state = ("descending" if query.sort.descending else "ascending") if current else "none"
        columns.append(Column(key, label, href, arrow, state))
    return columns


def _filter_text(request: HttpRequest) -> str:
    return ", ".join(value.strip() for value in request.GET.getlist("filter") if value.strip())


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else ("yes" if value else "no")
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@require_GET
def links(request: HttpRequest) -> HttpResponse:
    form = {
        "q": request.GET.get("q", ""), "domain": request.GET.get("domain", ""),
        "status": request.GET.get("status", ""), "provider": request.GET.get("provider", ""),
        "after": request.GET.get("after", ""), "before": request.GET.get("before", ""),
        "filter": _filter_text(request),
    }
    error: SearchError | None = None
    try:
        query = search.parse_link_query(
            q=form["q"], domain=form["domain"], status=request.GET.getlist("status"),
            provider=request.GET.getlist("provider"), after=form["after"], before=form["before"],
            filters=request.GET.getlist("filter"), sort=request.GET.get("sort", ""), limit=PAGE_SIZE,
            cursor=request.GET.get("cursor", ""))
    except SearchError as exc:
        error, query = exc, LinkQuery(limit=PAGE_SIZE)
    page = search.link_search(request.user, query)
    base = [(k, v) for k, v in query.parameters() if k != "sort"]
    shown = query.parameters()
    rows = [{**row, "cells": [_cell(row["signals"].get(key)) for key, _ in SIGNAL_COLUMNS]} for row in page.rows]
    context = {
        "form": form, "error": error, "rows": rows, "query": query,
        "columns": _columns(query, base), "signal_columns": [key for key, _ in SIGNAL_COLUMNS],
        "next_href": "?" + urlencode([*shown, ("cursor", page.next_cursor)]) if page.next_cursor else None,
        "first_href": "?" + urlencode(shown) if query.cursor else None,
        "exports": [(fmt.upper(), "/api/v1/links?" + urlencode([*shown, ("format", fmt)]))
                    for fmt in ("csv", "ndjson", "json")],
        "statuses": AnalysisStatus.values, "sort": query.sort.text,
    }
    return render(request, "ui/links.html", context, status=400 if error else 200)


@require_GET
def batches(request: HttpRequest) -> HttpResponse:
    given = {"q": request.GET.get("q", ""), "status": request.GET.get("status", ""),
             "source": request.GET.get("source", ""), "sort": request.GET.get("sort", "")}
    error: SearchError | None = None
    try:
        query = batchlist.parse_batch_query(q=given["q"], status=given["status"],
                                            source=[given["source"]] if given["source"] else [],
                                            sort=given["sort"], limit=PAGE_SIZE,
                                            cursor=request.GET.get("cursor", ""))
    except SearchError as exc:
        error, query = exc, batchlist.BatchQuery(limit=PAGE_SIZE)
    page = batchlist.batch_search(request.user, query)
    kept = [(k, v) for k, v in given.items() if v]
    rows: list[dict[str, Any]] = [{**row, "percent": math.floor(row["progress"] * 100)} for row in page.rows]
    context = {
        "form": given, "error": error, "rows": rows, "sources": BatchSource.values,
        "sort_choices": [("", "newest first"), ("created_at", "oldest first"), ("-total", "most URLs"),
                         ("name", "name")],
        "next_href": "?" + urlencode([*kept, ("cursor", page.next_cursor)]) if page.next_cursor else None,
        "first_href": "?" + urlencode(kept) if query.cursor else None,
        "exports": [(fmt.upper(), "/api/v1/batches?" + urlencode([*kept, ("format", fmt)]))
                    for fmt in ("csv", "ndjson", "json")],
    }
    return render(request, "ui/batches.html", context, status=400 if error else 200)
