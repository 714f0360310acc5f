"""The Common Crawl provider: collinfo.json (cached, shared), serial CDX queries of the newest crawls, the
REFERENCE lines, 404 "No Captures", the 503 slow-down and the crawls option."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from linkmeter.emulator.apis import commoncrawl as cc_api
from linkmeter.emulator.parts import api_app
from linkmeter.emulator.world import World
from linkmeter.engine.dns import DnsClient
from linkmeter.engine.http import HttpClient
from linkmeter.engine.provider import CallContext, Collected, ProviderConfig, ProviderError
from linkmeter.providers.commoncrawl import (
    CommonCrawlProvider,
    parse_capture,
    parse_collinfo,
    summarise,
)

SEED = 23
NEWEST = [crawl for crawl, _ in cc_api.CRAWLS[:3]]
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# REFERENCE.md section 12.
REFERENCE_COLLINFO = [{"id": "CC-MAIN-2024-18", "name": "April 2024 Index",
                       "timegate": "https://index.commoncrawl.org/CC-MAIN-2024-18/",
                       "cdx-api": "https://index.commoncrawl.org/CC-MAIN-2024-18-index"}]
REFERENCE_LINE = {"urlkey": "com,example)/", "timestamp": "20260508082331", "url": "http://www.example.com/",
                  "mime": "text/html", "mime-detected": "text/html", "status": "200",
                  "digest": "B6NJ6JIZT3B7E442X7OKPSKPSC2TEWYR", "length": "948", "offset": "26951243",
                  "filename": "crawl-data/CC-MAIN-2026-21/segments/x/warc/y.warc.gz", "languages": "eng",
                  "encoding": "UTF-8"}


class Emulator:
    def __init__(self, base_url: str, hits: Counter[str], in_flight: list[int]) -> None:
        self.base_url = base_url
        self.hits = hits
        self.in_flight = in_flight  # [now, most at once]
        self.queries: list[dict[str, str]] = []


@pytest.fixture
def world() -> World:
    return World(SEED)


@pytest.fixture
async def emulator(aiohttp_server: ServerFactory, world: World) -> Emulator:
    hits: Counter[str] = Counter()
    flight = [0, 0]
    emulated = Emulator("", hits, flight)

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        hits[request.path] += 1
        emulated.queries.append(dict(request.query))
        flight[0] += 1
        flight[1] = max(flight)
        try:
            await asyncio.sleep(0.001)
            return await handler(request)
        finally:
            flight[0] -= 1

    root = web.Application(middlewares=[count])
    root.add_subapp("/commoncrawl", api_app(cc_api, world))
    server = await aiohttp_server(root)
    emulated.base_url = str(server.make_url("/commoncrawl"))
    return emulated


def provider(base_url: str, **options: Any) -> CommonCrawlProvider:
    clock = options.pop("monotonic", None)
    extra = {name: str(value) for name, value in options.items()}
    config = ProviderConfig(base_url=base_url, extra=extra)
    return CommonCrawlProvider(config, monotonic=clock) if clock else CommonCrawlProvider(config)


async def collect(http: HttpClient, cc: CommonCrawlProvider, signals: dict[str, Any]) -> Collected:
    ctx = CallContext(http=http, dns=DnsClient([("127.0.0.1", 53)]), config=cc.config)
    return await cc.collect(ctx, signals)


def find_url(world: World, predicate: Callable[[list[int]], bool]) -> str:
    for i in range(3000):
        url = f"https://site{i}.com/"
        if predicate([len(cc_api.captures(world, crawl, url)) for crawl in NEWEST]):
            return url
    raise AssertionError("no such URL in this world")


def test_the_reference_collinfo_and_line() -> None:
    [crawl] = parse_collinfo(REFERENCE_COLLINFO)
    capture = parse_capture(crawl.id, REFERENCE_LINE)

    assert crawl.cdx_api == "https://index.commoncrawl.org/CC-MAIN-2024-18-index"
    assert capture is not None
    assert summarise([capture], [crawl.id]) == {
        "commoncrawl.captured": True, "commoncrawl.captures": 1,
        "commoncrawl.latest_capture": "2026-05-08T08:23:31Z", "commoncrawl.latest_status": 200,
        "commoncrawl.latest_redirect": None, "commoncrawl.languages": ["eng"], "commoncrawl.charset": "UTF-8",
        "commoncrawl.crawls_checked": ["CC-MAIN-2024-18"], "commoncrawl.captured_in": ["CC-MAIN-2024-18"],
    }


def test_redirects_charset_and_bad_lines() -> None:
    redirect = parse_capture("c", {**REFERENCE_LINE, "status": "301", "redirect": "https://example.com/",
                                   "languages": "eng,deu", "encoding": None, "charset": "ISO-8859-1"})
    assert redirect is not None
    assert (redirect.status, redirect.redirect, redirect.languages, redirect.charset) == (
        301, "https://example.com/", ("eng", "deu"), "ISO-8859-1")
    assert parse_capture("c", {**REFERENCE_LINE, "timestamp": "2026"}) is None
    with pytest.raises(ProviderError):
        parse_collinfo({"crawls": []})
    with pytest.raises(ProviderError):
        parse_collinfo([{"name": "no id"}])


async def test_signals_match_the_newest_three_crawls_asked_one_after_the_other(
        http: HttpClient, emulator: Emulator, world: World) -> None:
    url = find_url(world, lambda counts: sum(counts) >= 2 and 0 in counts)
    found = {crawl: cc_api.captures(world, crawl, url) for crawl in NEWEST}
    latest = max((c for captures in found.values() for c in captures), key=lambda c: c.timestamp)

    result = await collect(http, provider(emulator.base_url), {"url": url})

    assert emulator.hits["/commoncrawl/collinfo.json"] == 1
    assert [emulator.hits[f"/commoncrawl/{crawl}-index"] for crawl in NEWEST] == [1, 1, 1]
    assert emulator.queries[1:] == [{"url": url, "output": "json"}] * 3
    assert emulator.in_flight[1] == 1  # serially
    assert result.signals == {
        "commoncrawl.captured": True,
        "commoncrawl.captures": sum(len(c) for c in found.values()),
        "commoncrawl.latest_capture": result.signals["commoncrawl.latest_capture"],
        "commoncrawl.latest_status": int(latest.status),
        "commoncrawl.latest_redirect": latest.redirect,
        "commoncrawl.languages": list(latest.languages) if latest.status == "200" else None,
        "commoncrawl.charset": "UTF-8" if latest.status == "200" else None,
        "commoncrawl.crawls_checked": NEWEST,
        "commoncrawl.captured_in": [crawl for crawl in NEWEST if found[crawl]],
    }
    stamp = latest.timestamp
    assert result.signals["commoncrawl.latest_capture"] == (
        f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[8:10]}:{stamp[10:12]}:{stamp[12:]}Z")
    assert set(result.raw) == set(NEWEST)


async def test_no_captures_anywhere_is_an_answer(http: HttpClient, emulator: Emulator, world: World) -> None:
    url = find_url(world, lambda counts: sum(counts) == 0)

    result = await collect(http, provider(emulator.base_url), {"url": url, "page.canonical_url": None})

    assert result.signals == {
        "commoncrawl.captured": False, "commoncrawl.captures": 0, "commoncrawl.latest_capture": None,
        "commoncrawl.latest_status": None, "commoncrawl.latest_redirect": None, "commoncrawl.languages": None,
        "commoncrawl.charset": None, "commoncrawl.crawls_checked": NEWEST, "commoncrawl.captured_in": [],
    }
    assert all(answer["message"] == f"No Captures found for: {url}" for answer in result.raw.values())


async def test_the_crawls_option_sets_the_requests_and_the_call_rate(
        http: HttpClient, emulator: Emulator) -> None:
    one = provider(emulator.base_url, crawls=1)

    result = await collect(http, one, {"url": "https://site1.com/", "page.canonical_url": "https://site2.com/"})

    assert result.signals["commoncrawl.crawls_checked"] == NEWEST[:1]
    assert emulator.queries[-1]["url"] == "https://site2.com/"  # the canonical URL is asked
    assert one.policy.rate_per_sec == 1.0
    assert CommonCrawlProvider().policy.rate_per_sec == pytest.approx(1 / 3)  # one request a second in all
    assert provider(emulator.base_url, crawls=6).policy.rate_per_sec == pytest.approx(1 / 6)
    assert provider(emulator.base_url, crawls="0").disabled_reason() == (
        "LINKMETER_COMMONCRAWL_OPT_CRAWLS must be a whole number from 1 to 12, not '0'")


async def test_collinfo_is_fetched_once_for_concurrent_calls_and_again_after_its_ttl(
        http: HttpClient, emulator: Emulator) -> None:
    clock = [100.0]
    cc = provider(emulator.base_url, crawls=1, monotonic=lambda: clock[0])

    await asyncio.gather(*(collect(http, cc, {"url": f"https://site{i}.com/"}) for i in range(10)))
    first = emulator.hits["/commoncrawl/collinfo.json"]
    clock[0] += 12 * 3600
    await collect(http, cc, {"url": "https://site1.com/"})

    assert first == 1 and emulator.hits["/commoncrawl/collinfo.json"] == 2


async def serve(aiohttp_server: ServerFactory, index: Handler, collinfo: Handler | None = None) -> str:
    async def crawls(request: web.Request) -> web.Response:
        root = str(request.url.with_path("/CC-MAIN-2025-51-index"))
        return web.json_response([{"id": "CC-MAIN-2025-51", "cdx-api": root}])

    app = web.Application()
    app.router.add_get("/collinfo.json", collinfo or crawls)
    app.router.add_get("/CC-MAIN-2025-51-index", index)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


@pytest.mark.parametrize(("retry_after", "expected"), [("4", 4.0), (None, None)])
async def test_503_slows_the_provider_down(aiohttp_server: ServerFactory, http: HttpClient,
                                           retry_after: str | None, expected: float | None) -> None:
    async def busy(_request: web.Request) -> web.Response:
        response = cc_api.error_response(503)
        if retry_after:
            response.headers["Retry-After"] = retry_after
        return response

    with pytest.raises(ProviderError) as caught:
        await collect(http, provider(await serve(aiohttp_server, busy)), {"url": "https://a.example/"})

    # With a Retry-After every caller pauses (rate_limited); without, the call is retried after a backoff.
    assert caught.value.retryable and caught.value.status == 503 and caught.value.retry_after == expected
    assert caught.value.rate_limited is (retry_after is not None)
    assert CommonCrawlProvider.policy.backoff_base == 2.0 and CommonCrawlProvider.policy.breaker_cooldown == 60.0


@pytest.mark.parametrize(("status", "body", "retryable"), [
    (404, {"message": "No such collection: CC-MAIN-2025-51"}, False), (500, {"message": "boom"}, True),
    (403, {"message": "Forbidden"}, False)])
async def test_other_failures(aiohttp_server: ServerFactory, http: HttpClient, status: int, body: Any,
                              retryable: bool) -> None:
    async def failing(_request: web.Request) -> web.Response:
        return web.json_response(body, status=status)

    with pytest.raises(ProviderError) as caught:
        await collect(http, provider(await serve(aiohttp_server, failing)), {"url": "https://a.example/"})

    assert caught.value.status == status and caught.value.retryable is retryable
    assert not caught.value.rate_limited


async def test_a_failed_collinfo_is_not_cached_and_bad_ndjson_is_an_error(
        aiohttp_server: ServerFactory, http: HttpClient) -> None:
    answers = iter([web.Response(status=502, text="bad gateway")])

    async def collinfo(request: web.Request) -> web.Response:
        return next(answers, web.json_response([{"id": "CC-MAIN-2025-51",
                                                 "cdx-api": str(request.url.with_path("/CC-MAIN-2025-51-index"))}]))

    async def garbled(_request: web.Request) -> web.Response:
        return web.Response(text='{"timestamp": "20251201000000"}\n{not json\n', content_type="text/x-ndjson")

    cc = provider(await serve(aiohttp_server, garbled, collinfo))
    with pytest.raises(ProviderError) as first:
        await collect(http, cc, {"url": "https://a.example/"})
    with pytest.raises(ProviderError) as second:
        await collect(http, cc, {"url": "https://a.example/"})

    assert first.value.status == 502 and first.value.retryable
    assert "invalid JSON on line 2" in second.value.message and not second.value.retryable
