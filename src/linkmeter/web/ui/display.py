"""Shapes selector results for the templates: table columns, cells and readable values (never marked safe)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from linkmeter.providers.registry import DEFAULT_NAMES, PROVIDER_CLASSES, headlines

if TYPE_CHECKING:
    from linkmeter.web.links.selectors.health import ProviderHealth

# Shown in the URL cell and the HTTP column of the results table rather than as columns of their own.
OWN_PLACE = frozenset({"page.title", "page.status"})


def main_columns(providers: Sequence[str] = ()) -> tuple[tuple[str, str], ...]:
    """The results table's other columns, (signal, heading): the headlines of the providers a batch asked for
    (``providers``; none named: the default set), as in the CLI table. Any numeric signal can still sort and
    filter."""
    classes = [cls for cls in PROVIDER_CLASSES if (cls.name in providers if providers else cls.in_default_set)]
    return tuple((signal, str(spec.headline)) for signal, spec in headlines(classes) if signal not in OWN_PLACE)


SIGNAL_SPECS = {signal: spec for cls in PROVIDER_CLASSES for signal, spec in cls.provides.items()}

# The provider groups (``Provider.group``) in the order pages show them, with their headings.
GROUP_TITLES = {
    "page": "Page", "domain": "Domain", "threat": "Threat lists", "authority": "Authority",
    "social": "Social", "archive": "Archive", "indicator": "Indicators",
}
GROUP_NOTES = {
    "page": "the page itself: status, title, links, speed",
    "domain": "DNS, registration and certificates of the domain",
    "threat": "blocklists and lists of phishing and malware",
    "authority": "rank and authority of the domain",
    "social": "posts and interactions that link the URL",
    "archive": "captures by web archives",
    "indicator": "numbers derived from the other providers",
}
PROVIDER_GROUP = {cls.name: cls.group for cls in PROVIDER_CLASSES}


def group_title(group: str) -> str:
    return GROUP_TITLES.get(group, group.capitalize())


def grouped[T](items: Iterable[T], group_of: Callable[[T], str]) -> list[dict[str, Any]]:
    """``items`` (in their order) under their groups, the groups in ``GROUP_TITLES`` order (unknown ones last):
    ``[{"group", "title", "note", "items"}]``, empty groups left out."""
    by_group: dict[str, list[T]] = {}
    for item in items:
        by_group.setdefault(group_of(item), []).append(item)
    order = {group: index for index, group in enumerate(GROUP_TITLES)}
    return [{"group": group, "title": group_title(group), "note": GROUP_NOTES.get(group, ""), "items": members}
            for group, members in sorted(by_group.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))]


@dataclass(frozen=True, slots=True)
class ProviderChoice:
    """A provider's checkbox on the submit form."""

    name: str
    checked: bool
    in_default_set: bool
    key: str  # required, optional or none
    disabled_reason: str | None  # why it would not run now (it may still be chosen: its cells say so)


def provider_choices(selected: Iterable[str] | None, disabled: Mapping[str, str]) -> list[dict[str, Any]]:
    """The submit form's provider checkboxes, grouped: ``selected`` checked (None: the default set)."""
    chosen = set(DEFAULT_NAMES if selected is None else selected)
    choices = [ProviderChoice(cls.name, cls.name in chosen, cls.in_default_set, cls.takes_key(),
                              disabled.get(cls.name)) for cls in PROVIDER_CLASSES]
    return grouped(choices, lambda choice: PROVIDER_GROUP[choice.name])

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


def table_row(row: dict[str, Any], columns: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """A batch_table row plus what the template shows: title, HTTP status and the numbers of ``columns``."""
    signals = row["signals"]
    return {
        **row,
        "number": row.get("position", 0) + 1,
        "title": signals.get("page.title") or "",
        "http": signals.get("page.status"),
        "cells": [Cell(signal, value_text(signals.get(signal)) if signal in signals else "",
                       SIGNAL_SPECS[signal].type in (int, float))
                  for signal, _ in columns],
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


@dataclass(frozen=True, slots=True)
class ProviderRow:
    """A row of the providers table: the provider's health and its cache in words."""

    health: ProviderHealth
    cache_ttl: str  # "1 h", or "not cached"
    cache_location: str  # "shared (Redis)", "this process (memory)" or "unknown"
    cache_entries: str  # "1,234", "more than 100,000" or "unknown"
    hit_ratio: str  # "42 %" or "—"


def provider_row(health: ProviderHealth) -> ProviderRow:
    cache = health.cache
    if cache.entries is None:
        entries = "unknown"
    else:
        entries = f"more than {cache.entries:,}" if cache.more else f"{cache.entries:,}"
    return ProviderRow(health=health, cache_ttl=duration_text(cache.ttl) if cache.ttl > 0 else "not cached",
                       cache_location=cache.location, cache_entries=entries,
                       hit_ratio="—" if health.hit_ratio is None else percent_text(health.hit_ratio))


def duration_text(seconds: float) -> str:
    """A duration in its largest whole unit: "1 d", "6 h", "3 min", "45 s" (else seconds, e.g. "1.5 s")."""
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min")):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:,.0f} {unit}"
    return f"{seconds:,.0f} s" if seconds == int(seconds) else f"{seconds:,.1f} s"


def percent_text(ratio: float) -> str:
    """A ratio as a percentage: whole percents, but never "0 %" or "100 %" for what is not exactly that."""
    percent = ratio * 100
    if 0 < percent < 1:
        return "< 1 %"
    if 99 < percent < 100:
        return "> 99 %"
    return f"{percent:.0f} %"
