"""The authority indicator: one documented 0-100 score of how established a link's site is.

authority.score = round(sum(weight * component) / sum(weight)), over the components whose input is present,
each on a 0-100 scale:

- Tranco rank (tranco.rank), weight 0.25: 100 * (1 - log10(rank) / 6), so rank 1 is 100 and rank 1,000,000
  is 0; not in the top million is 0.
- Open PageRank (openpagerank.page_rank, 0-10), weight 0.20: 10 * page_rank.
- Moz Domain Authority (moz.domain_authority, 1-100), weight 0.25: as it is.
- domain age (rdap.domain_age_days), weight 0.15: 100 * sqrt(min(days, 3650) / 3650), so ten years or more
  is 100.
- archive history (wayback.capture_count, wayback.first_capture), weight 0.15: the mean of
  100 * min(1, log10(1 + captures) / log10(1001)) and the first capture's age scaled like the domain's;
  no capture at all is 0.

A component whose input is absent (its provider failed, was skipped or disabled, or does not know the
domain: Open PageRank's "not found", an unregistered domain's age) is left out and named in
authority.missing, never counted as 0; the weights of the others are rescaled. Answers that are real lows
count: "not in the Tranco top million" and "no capture in the archive" are 0. authority.inputs names the
inputs used. With no input at all the indicator fails rather than report a misleading score.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from linkmeter.engine.provider import CallContext, Collected, Policy, Provider, ProviderError, Signals, SignalSpec
from linkmeter.providers.rdap import parse_date

AGE_SATURATION_DAYS = 3650  # ten years
CAPTURES_SATURATION = 1000  # log10(1 + 1000) ≈ 3


@dataclass(frozen=True, slots=True)
class Component:
    name: str  # the input it names in authority.inputs / authority.missing
    weight: float
    value: Callable[[Mapping[str, Any], datetime], float | None]  # 0-100, None when the input is absent


def tranco(signals: Mapping[str, Any], now: datetime) -> float | None:
    rank = signals.get("tranco.rank")
    if isinstance(rank, int) and rank > 0:
        return max(0.0, 100 * (1 - math.log10(rank) / 6))
    return 0.0 if signals.get("tranco.ranked") is False else None


def open_pagerank(signals: Mapping[str, Any], now: datetime) -> float | None:
    value = _number(signals.get("openpagerank.page_rank"))
    return None if value is None else _clamp(10 * value)


def moz(signals: Mapping[str, Any], now: datetime) -> float | None:
    value = _number(signals.get("moz.domain_authority"))
    return None if value is None else _clamp(value)


def domain_age(signals: Mapping[str, Any], now: datetime) -> float | None:
    days = _number(signals.get("rdap.domain_age_days"))
    return None if days is None else age_score(days)


def archive(signals: Mapping[str, Any], now: datetime) -> float | None:
    count = _number(signals.get("wayback.capture_count"))
    if count is None:
        return None
    if count <= 0:
        return 0.0
    volume = 100 * min(1.0, math.log10(1 + count) / math.log10(1 + CAPTURES_SATURATION))
    first = parse_date(signals.get("wayback.first_capture"))
    if first is None:
        return volume
    return (volume + age_score((now - first).total_seconds() / 86400)) / 2


COMPONENTS = (
    Component("tranco.rank", 0.25, tranco),
    Component("openpagerank.page_rank", 0.20, open_pagerank),
    Component("moz.domain_authority", 0.25, moz),
    Component("rdap.domain_age_days", 0.15, domain_age),
    Component("wayback.capture_count", 0.15, archive),
)


def authority(signals: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    """authority.score, .inputs and .missing of ``signals``; None when no component has its input."""
    present = [(component, component.value(signals, now)) for component in COMPONENTS]
    used = [(component, value) for component, value in present if value is not None]
    if not used:
        return None
    total = sum(component.weight for component, _ in used)
    score = sum(component.weight * value for component, value in used) / total
    return {
        "authority.score": round(score),
        "authority.inputs": [component.name for component, _ in used],
        "authority.missing": [component.name for component, value in present if value is None],
    }


class AuthorityIndicator(Provider):
    name = "authority"
    order = 210
    group = "indicator"
    needs = ("url",)
    wants = ("tranco.rank", "tranco.ranked", "openpagerank.page_rank", "moz.domain_authority",
             "rdap.domain_age_days", "wayback.capture_count", "wayback.first_capture")
    provides = {
        "authority.score": SignalSpec(int, "how established the site is, 0-100, from ranks, link scores, age "
                                           "and archive history", "0-100", headline="Authority"),
        "authority.inputs": SignalSpec(list, "the inputs the score is made of"),
        "authority.missing": SignalSpec(list, "the inputs that were absent, so left out of the score"),
    }
    policy = Policy(timeout=1.0, retries=0, cache_ttl=0)

    def __init__(self, *args: Any, now: Callable[[], datetime] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._now = now or (lambda: datetime.now(UTC))

    def key(self, signals: Signals) -> str:
        return str(signals["url"])

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        found = authority(signals, self._now())
        if found is None:
            names = ", ".join(component.name for component in COMPONENTS)
            raise ProviderError(f"no authority input answered ({names}), so there is no score")
        return Collected(signals=found, raw=None)


def age_score(days: float) -> float:
    return 100 * math.sqrt(max(0.0, min(days, AGE_SATURATION_DAYS)) / AGE_SATURATION_DAYS)


def _number(value: object) -> float | None:
    """``value`` as a finite number; None for anything else (absent, a bool, NaN)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _clamp(value: float) -> float:
    return max(0.0, min(100.0, value))
