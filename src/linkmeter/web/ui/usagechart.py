"""The usage page's chart: URLs per day as bars of an inline SVG (no script, nothing the CSP refuses)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

WIDTH = 600
HEIGHT = 160
AXIS = 20  # room for the day labels under the bars


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: str
    urls: int
    label: str  # the day shown under every seventh bar, else ""


def bars(history: Sequence[dict[str, Any]], *, width: int = WIDTH, height: int = HEIGHT) -> list[Bar]:
    """One bar per day, scaled to the busiest day (a day with none has no height)."""
    if not history:
        return []
    top = max(int(day["urls"]) for day in history) or 1
    slot = width / len(history)
    room = height - AXIS
    out = []
    for index, day in enumerate(history):
        h = room * int(day["urls"]) / top
        out.append(Bar(x=round(index * slot + 1, 2), y=round(room - h, 2), width=round(max(1.0, slot - 2), 2),
                       height=round(h, 2), day=str(day["day"]), urls=int(day["urls"]),
                       label=str(day["day"])[5:] if index % 7 == 0 else ""))
    return out
