"""Batch result rows as CSV, JSON or NDJSON text, chunk by chunk, for streamed responses."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from linkmeter.csvsafe import defused
from linkmeter.web.links.selectors.details import SIGNAL_COLUMNS

MEDIA_TYPES = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
}
# ``deferred``: the providers whose cells wait to be filled in the background, each with its estimate
# (``wayback@2026-01-01T10:00:00+00:00``; ';' between several).
CSV_COLUMNS: tuple[str, ...] = ("position", "url", "status", "analysis_id", "deferred", *SIGNAL_COLUMNS)

Row = dict[str, Any]


def csv_cell(value: Any) -> Any:
    """One spreadsheet-safe cell: lists joined with ';', booleans as true/false, formulas defused."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        value = ";".join("" if v is None else str(v) for v in value)
    elif isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, str):
        return defused(value)
    return value


def csv_chunk(rows: Sequence[Row], *, header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for row in rows:
        signals = row.get("signals") or {}
        deferred = [f"{name}@{at}" for name, at in (row.get("deferred") or {}).items()]
        writer.writerow([csv_cell(row.get("position")), csv_cell(row.get("url")), csv_cell(row.get("status")),
                         csv_cell(row.get("analysis_id")), csv_cell(deferred),
                         *(csv_cell(signals.get(s)) for s in SIGNAL_COLUMNS)])
    return buffer.getvalue()


def _dumps(row: Row) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=str)


async def encode(chunks: AsyncIterator[Sequence[Row]], fmt: str) -> AsyncIterator[str]:
    """The whole document for ``fmt``, one piece per chunk of rows: a CSV with its header, one JSON array,
    or one JSON object per line."""
    first = True
    if fmt == "json":
        yield "["
    elif fmt == "csv":
        yield csv_chunk([], header=True)
    async for rows in chunks:
        if not rows:
            continue
        if fmt == "csv":
            yield csv_chunk(rows, header=False)
        elif fmt == "ndjson":
            yield "".join(_dumps(row) + "\n" for row in rows)
        else:
            yield ("" if first else ",\n") + ",\n".join(_dumps(row) for row in rows)
        first = False
    if fmt == "json":
        yield "]\n"
