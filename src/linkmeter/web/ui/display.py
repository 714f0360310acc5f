"""Shapes selector results for the templates: table columns, cells and readable values (never marked safe)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from linkmeter.providers.registry import PROVIDER_CLASSES

# The results table's number columns: (signal, heading). Any numeric signal can still sort and filter.
MAIN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("page.word_count", "Words"),
    ("page.links_external", "Ext. links"),
    ("rdap.domain_age_days", "Domain age (d)"),
    ("dnsbl.listed_count", "Blocklists"),
    ("wayback.capture_count", "Captures"),
    ("hackernews.points", "HN points"),
    ("reddit.score", "Reddit score"),
    ("engagement.total", "Engagement"),
)

SIGNAL_SPECS = {signal: spec for cls in PROVIDER_CLASSES for signal, spec in cls.provides.items()}

STATUS_STYLES = {
    "done": "success", "ok": "success", "cached": "success",
    "partial": "warning", "rate_limited": "warning", "circuit_open": "warning", "timeout": "warning",
    "failed": "danger", "error": "danger",
    "queued": "secondary", "running": "info", "skipped": "secondary", "disabled": "light",
}


@dataclass(frozen=True, slots=True)
class Cell:
    signal: str
    value: str
    numeric: bool


def value_text(value: Any) -> str:
    """A signal's value as plain text (the template escapes it)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        return ", ".join(value_text(v) for v in value) if value else "—"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def table_row(row: dict[str, Any]) -> dict[str, Any]:
    """A batch_table row plus what the template shows: title, HTTP status and the main numbers."""
    signals = row["signals"]
    return {
        **row,
        "number": row.get("position", 0) + 1,
        "title": signals.get("page.title") or "",
        "http": signals.get("page.status"),
        "cells": [Cell(signal, value_text(signals.get(signal)) if signal in signals else "", True)
                  for signal, _ in MAIN_COLUMNS],
        "style": STATUS_STYLES.get(row["status"], "secondary"),
    }


def signal_cells(signals: dict[str, Any]) -> list[dict[str, str]]:
    """A provider's signals for the link page: name, value, unit and description."""
    cells = []
    for signal, value in signals.items():
        spec = SIGNAL_SPECS.get(signal)
        cells.append({"signal": signal, "value": value_text(value),
                      "unit": spec.unit if spec and value is not None else "",
                      "description": spec.description if spec else ""})
    return cells


def raw_text(raw: Any) -> str:
    """A raw provider response for a <pre> block: JSON, indented (the template escapes it)."""
    if raw is None:
        return "(no raw response stored)"
    if isinstance(raw, str):
        return raw
    return json.dumps(raw, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def chart_labels(signals: list[str]) -> dict[str, str]:
    """Per signal, the axis label of its history chart."""
    labels = {}
    for signal in signals:
        spec = SIGNAL_SPECS.get(signal)
        unit = f" ({spec.unit})" if spec and spec.unit else ""
        labels[signal] = f"{signal}{unit}"
    return labels
