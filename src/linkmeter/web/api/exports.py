"""Result rows (a batch's, the links and batches lists') as CSV, JSON or NDJSON text, chunk by chunk."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable, Sequence
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


def batch_cells(row: Row) -> list[Any]:
    """A batch result row's CSV cells, in CSV_COLUMNS order."""
    signals = row.get("signals") or {}
    deferred = [f"{name}@{at}" for name, at in (row.get("deferred") or {}).items()]
    return [row.get("position"), row.get("url"), row.get("status"), row.get("analysis_id"), deferred,
            *(signals.get(s) for s in SIGNAL_COLUMNS)]


def csv_chunk(rows: Sequence[Row], *, header: bool, columns: Sequence[str] = CSV_COLUMNS,
              cells: Callable[[Row], Sequence[Any]] = batch_cells) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(value) for value in cells(row)])
    return buffer.getvalue()


def _dumps(row: Row) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=str)


async def encode(chunks: AsyncIterator[Sequence[Row]], fmt: str, *, columns: Sequence[str] = CSV_COLUMNS,
                 cells: Callable[[Row], Sequence[Any]] = batch_cells) -> AsyncIterator[str]:
    """The whole document for ``fmt``, one piece per chunk of rows: a CSV with its header (``columns``, each
    row's ``cells``), one JSON array, or one JSON object per line."""
    first = True
    if fmt == "json":
        yield "["
    elif fmt == "csv":
        yield csv_chunk([], header=True, columns=columns, cells=cells)
    async for rows in chunks:
        if not rows:
            continue
        if fmt == "csv":
            yield csv_chunk(rows, header=False, columns=columns, cells=cells)
        elif fmt == "ndjson":
            yield "".join(_dumps(row) + "\n" for row in rows)
        else:
            yield ("" if first else ",\n") + ",\n".join(_dumps(row) for row in rows)
        first = False
    if fmt == "json":
        yield "]\n"


LINK_CSV_COLUMNS: tuple[str, ...] = ("id", "url", "domain", "title", "status", "analysed_at", "analysis_id",
                                     *SIGNAL_COLUMNS)


def link_cells(row: Row) -> list[Any]:
    """A links-list row's CSV cells, in LINK_CSV_COLUMNS order."""
    signals = row.get("signals") or {}
    return [*(row.get(c) for c in LINK_CSV_COLUMNS[:7]), *(signals.get(s) for s in SIGNAL_COLUMNS)]


BATCH_STATUSES = ("queued", "running", "done", "partial", "failed")
BATCH_CSV_COLUMNS: tuple[str, ...] = ("id", "name", "source", "status", "total", "finished", "progress",
                                      "created_at", "finished_at", "invalid_count", *BATCH_STATUSES)


def batch_list_cells(row: Row) -> list[Any]:
    """A batches-list row's CSV cells, in BATCH_CSV_COLUMNS order (then its analyses' counts by status)."""
    counts = row.get("counts") or {}
    return [*(row.get(c) for c in BATCH_CSV_COLUMNS[:10]), *(counts.get(s, 0) for s in BATCH_STATUSES)]
