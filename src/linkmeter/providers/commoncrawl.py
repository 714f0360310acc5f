"""Common Crawl URL index: captures of a URL in the newest crawls (the crawl list from collinfo.json)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from linkmeter.engine.http import HttpResponse, error_for_status, parse_retry_after
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
from linkmeter.providers.timestamps import iso_utc
from linkmeter.providers.wayback import parse_timestamp

COLLINFO_TTL = 12 * 3600.0  # a crawl is published about once a month
DEFAULT_CRAWLS = 3  # REFERENCE §12: "only the latest 1-3 crawls"
MAX_CRAWLS = 12
NO_CAPTURES = "No Captures found"


@dataclass(frozen=True, slots=True)
class Crawl:
    id: str
    cdx_api: str


@dataclass(frozen=True, slots=True)
class Capture:
    crawl: str
    when: datetime
    status: int | None
    languages: tuple[str, ...]
    charset: str | None
    redirect: str | None


@dataclass(frozen=True, slots=True)
class _CrawlList:
    url: str
    fetched_at: float
    crawls: tuple[Crawl, ...]


class CommonCrawlProvider(Provider):
    """``collinfo.json`` once per 12 h per instance (concurrent calls share one fetch), then one CDX query per
    crawl for the newest ``LINKMETER_COMMONCRAWL_OPT_CRAWLS`` crawls (default 3), one after the other. A 404
    "No Captures found" is zero captures in that crawl; a 503 slows the provider down (see status_error)."""

    name = "commoncrawl"
    order = 55
    group = "archive"
    published_limits = ("none published; the index server takes about 100k lookups an hour in all and blocks "
                        "busy IPs: plan for one request a second, serially, against the latest 1-3 crawls")
    needs = ("url",)
    wants = ("page.canonical_url",)
    provides = {
        "commoncrawl.captured": SignalSpec(bool, "the URL was captured in one of the crawls checked"),
        "commoncrawl.captures": SignalSpec(int, "captures of the URL in the crawls checked", "captures"),
        "commoncrawl.latest_capture": SignalSpec(str, "time of the latest capture (ISO-8601 UTC)"),
        "commoncrawl.latest_status": SignalSpec(int, "HTTP status of the latest capture"),
        "commoncrawl.latest_redirect": SignalSpec(str, "where the latest capture redirected to, if it did"),
        "commoncrawl.languages": SignalSpec(list, "languages of the latest capture (ISO 639-3 codes)"),
        "commoncrawl.charset": SignalSpec(str, "character encoding of the latest capture"),
        "commoncrawl.crawls_checked": SignalSpec(list, "the crawls asked, newest first"),
        "commoncrawl.captured_in": SignalSpec(list, "the crawls that hold a capture of the URL, newest first"),
    }
    # ~1 request a second in all (REFERENCE §12: "plan for <= 1 request per second, serially"). A call makes
    # one request per crawl, so the call rate is 1/crawls (set in __init__ from the option); near-serial:
    # two calls in flight at most. The index is slow under load; captures of past crawls never change, but
    # a new crawl appears monthly: a day's cache. "Slow down when you got 503s": a long backoff, and after 5
    # failed calls in a row the breaker leaves the server alone for a minute.
    policy = Policy(timeout=30.0, retries=1, backoff_base=2.0, rate_per_sec=1.0 / DEFAULT_CRAWLS, burst=1,
                    concurrency=2, cache_ttl=86400.0, breaker_cooldown=60.0)
    default_base_url = "https://index.commoncrawl.org"

    def __init__(self, config: ProviderConfig | None = None, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__(config)
        self.crawl_count = crawl_count(self.config.extra)
        if self.crawl_count:
            self.policy = dataclasses.replace(self.policy, rate_per_sec=1.0 / self.crawl_count)
        self._monotonic = monotonic
        self._crawls: _CrawlList | None = None
        self._crawls_lock = asyncio.Lock()

    def disabled_reason(self) -> str | None:
        reason = super().disabled_reason()
        if reason is None and not self.crawl_count:
            return (f"LINKMETER_COMMONCRAWL_OPT_CRAWLS must be a whole number from 1 to {MAX_CRAWLS}, "
                    f"not {self.config.extra.get('crawls')!r}")
        return reason

    def key(self, signals: Signals) -> str:
        return str(signals.get("page.canonical_url") or signals["url"])

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        url = self.key(signals)
        crawls = (await self.crawls(ctx))[: self.crawl_count or DEFAULT_CRAWLS]
        found: list[Capture] = []
        raw: dict[str, Any] = {}
        for crawl in crawls:  # one at a time, as the index server asks
            response = await ctx.http.request("GET", crawl.cdx_api, params={"url": url, "output": "json"},
                                              accept=range(200, 600))
            captures, raw[crawl.id] = crawl_answer(crawl, response)
            found.extend(captures)
        return Collected(signals=summarise(found, [crawl.id for crawl in crawls]), raw=raw)

    async def crawls(self, ctx: CallContext) -> tuple[Crawl, ...]:
        """The crawls of ``collinfo.json``, newest first, fetched at most once per COLLINFO_TTL."""
        url = ctx.config.base_url.rstrip("/") + "/collinfo.json"
        cached = self._cached(url)
        if cached is not None:
            return cached
        async with self._crawls_lock:
            cached = self._cached(url)
            if cached is not None:
                return cached
            response = await ctx.http.request("GET", url, accept=range(200, 600))
            if response.status != 200:
                raise status_error(response)
            crawls = parse_collinfo(response.json())
            self._crawls = _CrawlList(url, self._monotonic(), crawls)
            return crawls

    def _cached(self, url: str) -> tuple[Crawl, ...] | None:
        cached = self._crawls
        if cached is None or cached.url != url or self._monotonic() - cached.fetched_at >= COLLINFO_TTL:
            return None
        return cached.crawls


def crawl_count(extra: dict[str, str]) -> int | None:
    """The ``crawls`` option (default 3); None when it is not a whole number from 1 to MAX_CRAWLS."""
    text = extra.get("crawls", "").strip() or str(DEFAULT_CRAWLS)
    return int(text) if text.isdigit() and 1 <= int(text) <= MAX_CRAWLS else None


def parse_collinfo(payload: Any) -> tuple[Crawl, ...]:
    """The crawls of collinfo.json in its order (newest first); entries without an id or cdx-api are skipped."""
    if not isinstance(payload, list):
        raise ProviderError("unexpected Common Crawl collinfo.json: not a list")
    crawls = tuple(Crawl(str(item["id"]), str(item["cdx-api"])) for item in payload
                   if isinstance(item, dict) and item.get("id") and item.get("cdx-api"))
    if not crawls:
        raise ProviderError("Common Crawl collinfo.json lists no crawl")
    return crawls


def crawl_answer(crawl: Crawl, response: HttpResponse) -> tuple[list[Capture], Any]:
    """One crawl's captures and what to keep of its answer; 404 "No Captures" is none, other failures raise."""
    if response.status == 200:
        lines = parse_ndjson(response.body)
        return [capture for line in lines if (capture := parse_capture(crawl.id, line)) is not None], lines
    if response.status == 404:
        try:
            body = response.json()
        except ProviderError:
            body = None
        if isinstance(body, dict) and NO_CAPTURES in str(body.get("message", "")):
            return [], body
    raise status_error(response)


def status_error(response: HttpResponse) -> ProviderError:
    """503 is the index server's "slow down": with a Retry-After it pauses the provider (rate_limited),
    without one it is a retried error (backoff from 2 s, and the breaker's minute after 5 in a row)."""
    if response.status == 503:
        wait = parse_retry_after(response.headers.get("Retry-After"))
        return ProviderError(f"HTTP 503 from {response.url}: Common Crawl asks to slow down", retryable=True,
                             retry_after=wait, status=503, rate_limited=wait is not None)
    return error_for_status(response.status, response.headers, response.url, response.text()[:200])


def parse_ndjson(body: bytes) -> list[dict[str, Any]]:
    """One JSON object per line; blank lines are skipped."""
    lines: list[dict[str, Any]] = []
    for number, line in enumerate(body.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise ProviderError(f"invalid JSON on line {number} of a Common Crawl index answer: {exc}") from exc
        if not isinstance(item, dict):
            raise ProviderError(f"unexpected Common Crawl index answer: line {number} is not an object")
        lines.append(item)
    return lines


def parse_capture(crawl: str, line: dict[str, Any]) -> Capture | None:
    """A capture from one index line (every value a string); None without a valid timestamp."""
    when = parse_timestamp(line.get("timestamp"))
    if when is None:
        return None
    status = str(line.get("status", "")).strip()
    languages = str(line.get("languages") or "")
    charset = line.get("encoding") or line.get("charset")  # the API says encoding, the raw files charset
    return Capture(
        crawl=crawl,
        when=when,
        status=int(status) if status.isdigit() else None,
        languages=tuple(code.strip() for code in languages.split(",") if code.strip()),
        charset=str(charset) if charset else None,
        redirect=str(line["redirect"]) if line.get("redirect") else None,
    )


def summarise(captures: list[Capture], checked: list[str]) -> dict[str, Any]:
    """The provider's signals; no capture gives False, 0, None and []."""
    latest = max(captures, key=lambda c: c.when, default=None)
    held = {capture.crawl for capture in captures}
    return {
        "commoncrawl.captured": bool(captures),
        "commoncrawl.captures": len(captures),
        "commoncrawl.latest_capture": iso_utc(latest.when) if latest else None,
        "commoncrawl.latest_status": latest.status if latest else None,
        "commoncrawl.latest_redirect": latest.redirect if latest else None,
        "commoncrawl.languages": list(latest.languages) if latest and latest.languages else None,
        "commoncrawl.charset": latest.charset if latest else None,
        "commoncrawl.crawls_checked": list(checked),
        "commoncrawl.captured_in": [crawl for crawl in checked if crawl in held],
    }
