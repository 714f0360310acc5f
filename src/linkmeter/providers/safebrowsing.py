"""Google Safe Browsing v4 Lookup API: the URL, and where it redirected, on Google's threat lists."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from linkmeter import __version__
from linkmeter.engine.http import parse_retry_after
from linkmeter.engine.provider import (
    CallContext,
    Collected,
    Policy,
    ProviderError,
    Signals,
    SignalSpec,
)
from linkmeter.providers._batched import BatchedProvider

FIND_PATH = "/v4/threatMatches:find"
MAX_ENTRIES = 500  # URLs one request may carry (REFERENCE §6a)
THREAT_TYPES = ("MALWARE", "SOCIAL_ENGINEERING", "UNWANTED_SOFTWARE", "POTENTIALLY_HARMFUL_APPLICATION")
# "A threat posed to at least one platform": the lookup then answers whatever platform a list names.
PLATFORM_TYPES = ("ANY_PLATFORM",)
CLIENT_ID = "linkmeter"
CLEAN_TTL = 1800.0  # a clean answer carries no cacheDuration
MATCH_TTL = 300.0  # a match whose cacheDuration is missing or unreadable
QUOTA_PAUSE = 30.0  # after a 429 without Retry-After: Google's quotas are counted per minute and per day
KEY_SETTING = "LINKMETER_SAFEBROWSING_API_KEY"


@dataclass(frozen=True, slots=True)
class Match:
    url: str
    threat_type: str
    platform_type: str
    cache_seconds: float
    raw: dict[str, Any]


class SafeBrowsingProvider(BatchedProvider):
    """One ``threatMatches:find`` request for a whole batch: every call's submitted URL, and its final URL when
    the page redirected, each URL once; a URL the answer does not name is clean. A match is cached no longer than
    its ``cacheDuration``."""

    name = "safebrowsing"
    order = 41
    group = "threat"
    requires_key = True
    key_url = "https://developers.google.com/safe-browsing/v4/get-started"
    published_limits = ("up to 500 URLs a request; a per-project quota shown in the Cloud console (often quoted "
                        "as 10,000 requests a day, UNVERIFIED); non-commercial use only")
    needs = ("url",)
    wants = ("page.final_url",)
    provides = {
        "safebrowsing.listed": SignalSpec(bool, "the URL or its final URL is on a Safe Browsing list",
                                          headline="Safe Browsing"),
        "safebrowsing.threat_types": SignalSpec(list, "threat types of the matches (MALWARE, SOCIAL_ENGINEERING, "
                                                      "UNWANTED_SOFTWARE, POTENTIALLY_HARMFUL_APPLICATION), sorted"),
        "safebrowsing.matched_urls": SignalSpec(list, "the checked URLs that matched (submitted first, then final)"),
    }
    # REFERENCE §6a: a per-project quota the docs give no number for (10,000 a day is UNVERIFIED). One request
    # carries a whole batch, so a day's quota covers millions of URLs; clean answers are kept 30 min.
    policy = Policy(timeout=10.0, retries=2, rate_per_sec=10_000 / 86_400, burst=10, cache_ttl=CLEAN_TTL)
    default_base_url = "https://safebrowsing.googleapis.com"
    max_batch = MAX_ENTRIES // 2  # each call carries up to two URLs

    def key(self, signals: Signals) -> str:
        return " ".join(checked_urls(signals))

    async def collect_many(self, ctx: CallContext, batch: Sequence[Signals]) -> Sequence[Collected | ProviderError]:
        per_call = [checked_urls(signals) for signals in batch]
        entries = list(dict.fromkeys(url for urls in per_call for url in urls))
        chunks = [entries[i:i + MAX_ENTRIES] for i in range(0, len(entries), MAX_ENTRIES)]
        payloads = await asyncio.gather(*(self.find(ctx, chunk) for chunk in chunks))
        matches: dict[str, list[Match]] = {}
        for payload in payloads:
            for match in parse_matches(payload):
                matches.setdefault(match.url, []).append(match)
        return [outcome(urls, matches) for urls in per_call]

    async def find(self, ctx: CallContext, urls: list[str]) -> Any:
        """One threatMatches:find for ``urls``; the parsed answer. The key rides in the URL (the API wants it
        there), so every message raised from here has it masked."""
        key = ctx.config.api_key or ""
        try:
            response = await ctx.http.request(
                "POST", ctx.config.base_url.rstrip("/") + FIND_PATH, params={"key": key},
                headers={"Accept": "application/json"}, json_body=request_body(urls), accept=(200, 400, 403, 429),
            )
            if response.status == 200:
                return response.json()
        except ProviderError as exc:
            raise masked(exc, key) from None
        try:
            payload = response.json()
        except ProviderError:
            payload = None  # an error page that is not the envelope: the status still says what happened
        raise masked(google_error(response.status, payload, response.headers.get("Retry-After")), key)


def checked_urls(signals: Signals) -> list[str]:
    """The submitted URL, then the final URL when the page ended elsewhere."""
    url = str(signals["url"])
    final = signals.get("page.final_url")
    return [url] if not final or final == url else [url, str(final)]


def request_body(urls: Sequence[str]) -> dict[str, Any]:
    return {
        "client": {"clientId": CLIENT_ID, "clientVersion": __version__},
        "threatInfo": {"threatTypes": list(THREAT_TYPES), "platformTypes": list(PLATFORM_TYPES),
                       "threatEntryTypes": ["URL"], "threatEntries": [{"url": url} for url in urls]},
    }


def parse_matches(payload: Any) -> list[Match]:
    """The matches of an answer; ``{}`` and ``{"matches": []}`` both mean none."""
    if not isinstance(payload, dict):
        raise ProviderError("unexpected Safe Browsing response: not an object")
    found = payload.get("matches", [])
    if not isinstance(found, list):
        raise ProviderError("unexpected Safe Browsing response: 'matches' is not a list")
    matches = []
    for item in found:
        threat = item.get("threat") if isinstance(item, dict) else None
        url = threat.get("url") if isinstance(threat, dict) else None
        if not isinstance(url, str) or not isinstance(item.get("threatType"), str):
            continue
        matches.append(Match(url, item["threatType"], str(item.get("platformType", "")),
                             parse_duration(item.get("cacheDuration")), item))
    return matches


def parse_duration(value: object) -> float:
    """A protobuf Duration in JSON (``"300s"``, ``"300.000s"``) in seconds; MATCH_TTL when unreadable."""
    if isinstance(value, str) and value.endswith("s"):
        try:
            seconds = float(value[:-1])
        except ValueError:
            return MATCH_TTL
        if seconds >= 0:
            return seconds
    return MATCH_TTL


def outcome(urls: list[str], matches: dict[str, list[Match]]) -> Collected:
    """One call's result: its URLs' matches, cached no longer than the shortest of their cacheDurations."""
    own = [match for url in urls for match in matches.get(url, [])]
    signals = {
        "safebrowsing.listed": bool(own),
        "safebrowsing.threat_types": sorted({match.threat_type for match in own}),
        "safebrowsing.matched_urls": [url for url in urls if url in matches],
    }
    raw = {"checked": urls, "matches": [match.raw for match in own]}
    return Collected(signals=signals, raw=raw, ttl=min(match.cache_seconds for match in own) if own else None)


def google_error(status: int, payload: Any, retry_after: str | None) -> ProviderError:
    """A Google error envelope as a ProviderError: 429 pauses the provider, a refused key names its setting."""
    error = payload.get("error") if isinstance(payload, dict) else None
    error = error if isinstance(error, dict) else {}
    message = str(error.get("message") or f"HTTP {status}")
    code = str(error.get("status") or "")
    if status == 429:
        return ProviderError(f"Safe Browsing quota exhausted ({code or 'HTTP 429'}): {message}", retryable=True,
                             retry_after=parse_retry_after(retry_after) or QUOTA_PAUSE, status=429,
                             rate_limited=True)
    reasons = {str(detail.get("reason")) for detail in error.get("details", []) if isinstance(detail, dict)}
    if status == 403 or "API_KEY_INVALID" in reasons or "API key" in message:
        return ProviderError(f"Safe Browsing refused the key ({code or status}): {message}; check {KEY_SETTING}",
                             status=status)
    return ProviderError(f"Safe Browsing refused the request ({code or status}): {message}", status=status)


def masked(exc: ProviderError, key: str) -> ProviderError:
    """``exc`` with the API key (and its URL-encoded form) replaced by ``<key>`` in its message."""
    if not key:
        return exc
    message = exc.message.replace(key, "<key>").replace(quote(key, safe=""), "<key>")
    return ProviderError(message, retryable=exc.retryable, retry_after=exc.retry_after, status=exc.status,
                         rate_limited=exc.rate_limited)
