"""PhishTank checkurl: is the URL a known phish, verified by the community, still active."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from linkmeter import __version__
from linkmeter.engine.provider import (
    CallContext,
    Collected,
    Policy,
    Provider,
    ProviderConfig,
    ProviderError,
    Signals,
    SignalSpec,
)

PROJECT_URL = "https://github.com/linkmeter/linkmeter"
DEFAULT_INTERVAL = 300.0  # the wait after a 509 that named no interval (the docs' example: "300 Seconds")


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """What PhishTank's X-Request-* headers say: the window, the client's limit in it, its requests so far."""

    interval: float | None
    limit: int | None
    count: int | None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RequestLimits:
        return cls(_seconds(headers.get("X-Request-Limit-Interval")), _whole(headers.get("X-Request-Limit")),
                   _whole(headers.get("X-Request-Count")))

    def spent(self) -> bool:
        """No request is left in this window (Remaining = Limit - Count, REFERENCE §6c)."""
        return self.limit is not None and self.count is not None and self.count >= self.limit

    def describe(self) -> str:
        shown = [f"{self.count if self.count is not None else '?'} of {self.limit if self.limit is not None else '?'}"
                 " requests"]
        if self.interval is not None:
            shown.append(f"per {self.interval:g}s")
        return " ".join(shown)


class PhishTankProvider(Provider):
    """One POST per URL (``format=json``, the app key when set) with a descriptive User-Agent. A 509 pauses the
    provider for the window PhishTank names; a good answer that used the window's last request pauses it too,
    so the next calls wait instead of drawing 509s."""

    name = "phishtank"
    order = 43
    group = "threat"
    optional_key = True  # an app key: a much larger allowance
    key_url = "https://www.phishtank.com/api_info.php"
    published_limits = ("a limit per client per interval, announced in X-Request-Limit and "
                        "X-Request-Limit-Interval, much lower without an app key; over it HTTP 509 "
                        "(numbers UNVERIFIED)")
    needs = ("url",)
    provides = {
        "phishtank.in_database": SignalSpec(bool, "the URL is in PhishTank's database", headline="PhishTank"),
        "phishtank.verified": SignalSpec(bool, "the community verified it as a phish (false when not in it)"),
        "phishtank.valid": SignalSpec(bool, "a verified phish that is still active (false when not in it)"),
        "phishtank.detail_url": SignalSpec(str, "PhishTank's page about the phish"),
    }
    # REFERENCE §6c publishes no numbers: 1 request a second, and the X-Request-* headers and 509 pause it
    # (LINKMETER_PHISHTANK_RATE for a larger allowance). The database changes hourly.
    policy = Policy(timeout=10.0, retries=2, rate_per_sec=1.0, burst=5, cache_ttl=3600.0)
    default_base_url = "https://checkurl.phishtank.com"

    def key(self, signals: Signals) -> str:
        return str(signals["url"])

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        form = {"url": self.key(signals), "format": "json"}
        if ctx.config.api_key:
            form["app_key"] = ctx.config.api_key
        endpoint = ctx.config.base_url.rstrip("/") + "/checkurl/"
        response = await ctx.http.request(
            "POST", endpoint, data=form, accept=(200, 509),
            headers={"User-Agent": user_agent(ctx.config), "Accept": "application/json"},
        )
        limits = RequestLimits.from_headers(response.headers)
        if response.status == 509:
            raise ProviderError(f"HTTP 509 rate limited by {endpoint}: {limits.describe()}", retryable=True,
                                retry_after=limits.interval or DEFAULT_INTERVAL, status=509, rate_limited=True)
        payload = response.json()
        pause = (limits.interval or DEFAULT_INTERVAL) if limits.spent() else None
        return Collected(signals=parse_results(payload), raw=payload, pause=pause)


def user_agent(config: ProviderConfig) -> str:
    """``linkmeter/<version> (+<project>)``, led by ``phishtank/<username>`` when that option is set."""
    agent = f"linkmeter/{__version__} (+{PROJECT_URL})"
    username = config.extra.get("username", "").strip()
    return f"phishtank/{username} {agent}" if username else agent


def parse_results(payload: Any) -> dict[str, Any]:
    """The signals of a checkurl JSON answer; not in the database: every other signal false or null."""
    results = payload.get("results") if isinstance(payload, dict) else None
    if not isinstance(results, dict):
        text = payload.get("errortext") if isinstance(payload, dict) else None
        raise ProviderError(f"PhishTank answered {text!r}" if text else "unexpected PhishTank answer: no 'results'")
    in_database = _flag(results.get("in_database"))
    if in_database is None:
        raise ProviderError("unexpected PhishTank answer: no 'in_database'")
    detail = results.get("phish_detail_page")
    return {
        "phishtank.in_database": in_database,
        "phishtank.verified": in_database and bool(_flag(results.get("verified"))),
        "phishtank.valid": in_database and bool(_flag(results.get("valid"))),
        "phishtank.detail_url": detail if in_database and isinstance(detail, str) and detail else None,
    }


def _flag(value: object) -> bool | None:
    """A JSON boolean, or the strings the XML and PHP formats use."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "y", "n"):
        return value.strip().lower() in ("true", "1", "y")
    return None


def _seconds(value: str | None) -> float | None:
    """``300 Seconds`` (or ``300``) as 300.0."""
    if not value:
        return None
    number = value.strip().split(" ", 1)[0]
    try:
        seconds = float(number)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def _whole(value: str | None) -> int | None:
    return int(value.strip()) if value and value.strip().isdigit() else None
