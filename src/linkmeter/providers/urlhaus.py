"""URLhaus (abuse.ch): the URL among known malware distribution URLs, and what its host has served."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

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
from linkmeter.engine.urls import host_of
from linkmeter.providers.timestamps import iso_utc

KEY_SETTING = "LINKMETER_URLHAUS_API_KEY"
REJECTED_KEY_HOLD = 300.0  # seconds a key URLhaus refused is not sent again (one 401, not one per URL)
ANSWERS = ("ok", "no_results")  # query_status values that are answers; the others are errors


class UrlhausProvider(Provider):
    """Two POSTs at once: ``/v1/url/`` for the submitted URL and ``/v1/host/`` for its host (the exact host, as
    URLhaus lists hosts). ``no_results`` is an answer (not listed); a refused key is not sent again for a while."""

    name = "urlhaus"
    order = 42
    group = "threat"
    requires_key = True
    key_url = "https://auth.abuse.ch/"
    published_limits = "no published rate limit (UNVERIFIED); a free Auth-Key is required since mid-2025"
    needs = ("url",)
    provides = {
        "urlhaus.listed": SignalSpec(bool, "the URL is on URLhaus", headline="URLhaus"),
        "urlhaus.url_status": SignalSpec(str, "the listed URL's status: online, offline or unknown"),
        "urlhaus.threat": SignalSpec(str, "what the listed URL does (e.g. malware_download)"),
        "urlhaus.tags": SignalSpec(list, "the listed URL's tags (malware families, file types)"),
        "urlhaus.date_added": SignalSpec(str, "when the URL was listed (ISO-8601 UTC)"),
        "urlhaus.host_url_count": SignalSpec(int, "URLs URLhaus lists on the URL's host", "URLs"),
        "urlhaus.host_online_count": SignalSpec(int, "of the host's URLs in the answer, those online", "URLs"),
    }
    # REFERENCE §6b: no published rate limit (UNVERIFIED); two requests per call, so 2 calls/s is 4 requests/s.
    # URL statuses (online/offline) change within hours: 30 min of cache.
    policy = Policy(timeout=10.0, retries=2, rate_per_sec=2.0, burst=4, cache_ttl=1800.0)
    default_base_url = "https://urlhaus-api.abuse.ch"

    def __init__(self, config: ProviderConfig | None = None, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__(config)
        self._monotonic = monotonic
        self._rejected: tuple[str, float] | None = None  # the key URLhaus refused, and when

    def key(self, signals: Signals) -> str:
        return str(signals["url"])

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        url = self.key(signals)
        host = str(signals.get("host") or host_of(url))
        key = ctx.config.api_key or ""
        self._refuse_a_rejected_key(key)
        outcomes = await asyncio.gather(self.query(ctx, "url", url), self.query(ctx, "host", host),
                                        return_exceptions=True)
        url_answer, host_answer = outcomes
        if isinstance(url_answer, BaseException):
            raise url_answer
        if isinstance(host_answer, BaseException):
            raise host_answer
        return Collected(signals={**parse_url_answer(url_answer), **parse_host_answer(host_answer)},
                         raw={"url": url_answer, "host": host_answer})

    async def query(self, ctx: CallContext, kind: str, value: str) -> dict[str, Any]:
        """One lookup (``kind`` is ``url`` or ``host``); an answer whose query_status is ok or no_results."""
        key = ctx.config.api_key or ""
        response = await ctx.http.request(
            "POST", f"{ctx.config.base_url.rstrip('/')}/v1/{kind}/", data={kind: value},
            headers={"Auth-Key": key, "Accept": "application/json"}, accept=(200, 401),
        )
        payload = response.json() if response.status == 200 else None
        status = payload.get("query_status") if isinstance(payload, dict) else None
        if response.status == 401 or status == "unknown_auth_key":
            self._rejected = (key, self._monotonic())
            raise ProviderError(f"URLhaus refused the Auth-Key (HTTP {response.status}): check {KEY_SETTING}",
                                status=response.status)
        if not isinstance(payload, dict) or not isinstance(status, str):
            raise ProviderError(f"unexpected URLhaus {kind} answer: no query_status")
        if status not in ANSWERS:
            raise ProviderError(f"URLhaus {kind} lookup of {value!r} answered {status}")
        return payload

    def _refuse_a_rejected_key(self, key: str) -> None:
        """Fail at once, without a request, while the key URLhaus refused is still the key and the hold lasts."""
        rejected = self._rejected
        if rejected is None or rejected[0] != key:
            return
        left = REJECTED_KEY_HOLD - (self._monotonic() - rejected[1])
        if left > 0:
            raise ProviderError(f"URLhaus refused the Auth-Key (HTTP 401) {REJECTED_KEY_HOLD - left:.0f}s ago; "
                                f"not asked again for {left:.0f}s: check {KEY_SETTING}", status=401)
        self._rejected = None


def parse_url_answer(payload: dict[str, Any]) -> dict[str, Any]:
    """The URL signals from a ``/v1/url/`` answer (``no_results``: not listed)."""
    if payload.get("query_status") != "ok":
        return {"urlhaus.listed": False, "urlhaus.url_status": None, "urlhaus.threat": None, "urlhaus.tags": [],
                "urlhaus.date_added": None}
    tags = payload.get("tags")
    return {
        "urlhaus.listed": True,
        "urlhaus.url_status": _text(payload.get("url_status")),
        "urlhaus.threat": _text(payload.get("threat")),
        "urlhaus.tags": [tag for tag in tags if isinstance(tag, str)] if isinstance(tags, list) else [],
        "urlhaus.date_added": parse_date(payload.get("date_added")),
    }


def parse_host_answer(payload: dict[str, Any]) -> dict[str, Any]:
    """The host signals from a ``/v1/host/`` answer (``no_results``: 0 and 0). Numbers come as strings."""
    if payload.get("query_status") != "ok":
        return {"urlhaus.host_url_count": 0, "urlhaus.host_online_count": 0}
    urls = payload.get("urls")
    listed = [item for item in urls if isinstance(item, dict)] if isinstance(urls, list) else []
    count = parse_count(payload.get("url_count"))
    return {
        "urlhaus.host_url_count": max(count, len(listed)) if count is not None else len(listed),
        "urlhaus.host_online_count": sum(1 for item in listed if item.get("url_status") == "online"),
    }


def parse_count(value: object) -> int | None:
    """A count URLhaus sends as a string ("11"), or as a number; None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def parse_date(value: object) -> str | None:
    """URLhaus's ``2019-01-19 01:33:26 UTC`` as ISO-8601 UTC; None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.strptime(value.strip().removesuffix(" UTC"), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return iso_utc(when.replace(tzinfo=UTC))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
