"""Renders analysis results for people (a table) and for programs (JSON, CSV)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from linkmeter.csvsafe import defused
from linkmeter.engine.plan import Plan
from linkmeter.engine.results import SUCCESS, UrlResult
from linkmeter.inputs import InvalidLine
from linkmeter.providers.registry import headlines

MISSING = "-"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

def stdout_console() -> Console:
    """A console for results: the terminal's width, or a wide fixed one when output goes to a file or pipe."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def render_json(results: Sequence[UrlResult], invalid: Sequence[InvalidLine]) -> str:
    document: dict[str, Any] = {"results": [r.as_dict() for r in results]}
    if invalid:
        document["invalid"] = [line.as_dict() for line in invalid]
    return json.dumps(document, indent=2, default=str, ensure_ascii=False)


def status_column(provider: str) -> str:
    # Not "<provider>.status": that is a signal's name (page.status is the HTTP status) and would clash.
    return f"status:{provider}"


def csv_columns(plan: Plan) -> list[str]:
    signals = [signal for provider in plan.providers for signal in provider.provides]
    statuses = [status_column(provider.name) for provider in plan.providers]
    return ["url", "status", "elapsed_ms", *signals, *statuses]


def render_csv(results: Sequence[UrlResult], plan: Plan) -> str:
    columns = csv_columns(plan)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for result in results:
        row: dict[str, Any] = {"url": result.url, "status": str(result.status),
                               "elapsed_ms": round(result.elapsed_ms, 1)}
        for signal, value in result.signals.items():
            row[signal] = _csv_value(value)
        for name, call in result.providers.items():
            row[status_column(name)] = str(call.status)
        writer.writerow(row)
    return buffer.getvalue()


def _csv_value(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return defused(";".join(str(v) for v in value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return defused(value)
    return value


def printable(text: str) -> str:
    """Scraped or upstream text without control characters, so it cannot drive the terminal."""
    return _CONTROL.sub("", text)


def table_columns(plan: Plan) -> list[tuple[str, str, bool]]:
    """(heading, signal, numeric) of the human table: the plan's headline signals (``SignalSpec.headline``)."""
    return [(str(spec.headline), signal, spec.type in (int, float))
            for signal, spec in headlines(type(provider) for provider in plan.providers)]


def print_table(console: Console, results: Sequence[UrlResult], plan: Plan) -> None:
    columns = table_columns(plan)
    table = Table(show_lines=False, header_style="bold", expand=False)
    table.add_column("URL", no_wrap=True, overflow="ellipsis", max_width=48)
    table.add_column("Status")
    for header, _, numeric in columns:
        table.add_column(header, justify="right" if numeric else "left",
                         max_width=32 if not numeric else None, overflow="ellipsis", no_wrap=not numeric)
    table.add_column("Providers ok", justify="right")
    for result in results:
        ok = sum(1 for call in result.providers.values() if call.status in SUCCESS)
        style = {"done": "green", "partial": "yellow", "failed": "red"}[str(result.status)]
        # Text() never interprets markup: scraped titles are shown exactly as written.
        cells = [Text(printable(result.url)), Text(str(result.status), style=style)]
        cells += [Text(_cell(result.signals.get(signal))) for _, signal, _ in columns]
        cells.append(Text(f"{ok}/{len(result.providers)}"))
        table.add_row(*cells)
    console.print(table)
    problems = _problems(results)
    if problems:
        console.print(Text(printable("Provider problems: " + "; ".join(problems)), style="dim"))


def _cell(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return printable(" ".join(str(value).split()))


def _problems(results: Sequence[UrlResult]) -> list[str]:
    counts: dict[tuple[str, str], int] = {}
    example: dict[tuple[str, str], str] = {}
    for result in results:
        for name, call in result.providers.items():
            if call.status in SUCCESS or str(call.status) == "disabled":
                continue
            key = (name, str(call.status))
            counts[key] = counts.get(key, 0) + 1
            example.setdefault(key, call.message)
    return [f"{name} {status} x{count} ({example[(name, status)]})" if example[(name, status)]
            else f"{name} {status} x{count}" for (name, status), count in sorted(counts.items())]
