"""The URLhaus provider against the emulated API: URL and host lookups, string numbers, a refused key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from linkmeter.emulator.apis import urlhaus as uh_api
from linkmeter.emulator.parts import api_app
from linkmeter.emulator.world import World
from linkmeter.engine.dns import DnsClient
from linkmeter.engine.http import HttpClient
from linkmeter.engine.provider import CallContext, Collected, ProviderConfig, ProviderError
from linkmeter.providers.urlhaus import (
    REJECTED_KEY_HOLD,
    UrlhausProvider,
    parse_count,
    parse_date,
    parse_host_answer,
    parse_url_answer,
)

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MALWARE_URL = "http://malware-downloads.example/bins/x.exe"
NOT_LISTED = {"urlhaus.listed": False, "urlhaus.url_status": None, "urlhaus.threat": None, "urlhaus.tags": [],
              "urlhaus.date_added": None, "urlhaus.host_url_count": 0, "urlhaus.host_online_count": 0}
# REFERENCE §6b's URL answer, trimmed.
REFERENCE_URL = {"query_status": "ok", "id": "105821", "urlhaus_reference": "https://urlhaus.abuse.ch/url/105821/",
                 "url": "http://example.com/x.doc", "url_status": "online", "host": "example.com",
                 "date_added": "2019-01-19 01:33:26 UTC", "last_online": None, "threat": "malware_download",
                 "blacklists": {"spamhaus_dbl": "abused_legit_malware", "surbl": "listed"},
                 "reporter": "Cryptolaemus1", "larted": "true", "takedown_time_seconds": None,
                 "tags": ["emotet", "heodo"], "payloads": []}


@pytest.fixture
def world() -> World:
    return World(8)


@pytest.fixture
async def emulator(aiohttp_server: ServerFactory, world: World) -> str:
    root = web.Application()
    root.add_subapp("/urlhaus", api_app(uh_api, world))
    return str((await aiohttp_server(root)).make_url("/urlhaus"))


async def serve(aiohttp_server: ServerFactory, handler: Handler) -> str:
    app = web.Application()
    app.router.add_post("/v1/url/", handler)
    app.router.add_post("/v1/host/", handler)
    return str((await aiohttp_server(app)).make_url("")).rstrip("/")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def context(http: HttpClient, base_url: str, key: str | None = uh_api.DEMO_KEY,
            clock: Clock | None = None) -> tuple[UrlhausProvider, CallContext]:
    provider = UrlhausProvider(ProviderConfig(base_url=base_url, api_key=key), monotonic=clock or Clock())
    return provider, CallContext(http=http, dns=DnsClient([("127.0.0.1", 53)]), config=provider.config)


async def collect(http: HttpClient, base_url: str, signals: dict[str, Any],
                  key: str | None = uh_api.DEMO_KEY) -> Collected:
    provider, ctx = context(http, base_url, key)
    return await provider.collect(ctx, signals)


async def test_a_listed_url_and_its_host(http: HttpClient, emulator: str, world: World) -> None:
    result = await collect(http, emulator, {"url": MALWARE_URL, "host": "malware-downloads.example"})

    entry = uh_api.url_entry(world, MALWARE_URL)
    host = uh_api.host_entry(world, "malware-downloads.example")
    assert entry is not None and host is not None
    assert result.signals == {
        "urlhaus.listed": True,
        "urlhaus.url_status": entry["url_status"],
        "urlhaus.threat": "malware_download",
        "urlhaus.tags": entry["tags"],
        "urlhaus.date_added": entry["date_added"].replace(" UTC", "Z").replace(" ", "T"),
        "urlhaus.host_url_count": int(host["url_count"]),
        "urlhaus.host_online_count": sum(item["url_status"] == "online" for item in host["urls"]),
    }
    assert result.raw == {"url": entry, "host": host}


async def test_no_results_is_an_answer_not_listed(http: HttpClient, emulator: str, world: World) -> None:
    clean = next(f"site{i}.com" for i in range(1000) if uh_api.listed_domain(world, f"site{i}.com") is None)

    result = await collect(http, emulator, {"url": f"https://www.{clean}/a/1"})

    assert result.signals == NOT_LISTED
    assert result.raw == {"url": {"query_status": "no_results"}, "host": {"query_status": "no_results"}}


async def test_the_requests_are_two_form_posts_with_the_auth_key(
        aiohttp_server: ServerFactory, http: HttpClient) -> None:
    seen: list[tuple[str, str, str, str, dict[str, str]]] = []

    async def handler(request: web.Request) -> web.Response:
        form = {name: str(value) for name, value in (await request.post()).items()}
        seen.append((request.method, request.path, request.headers.get("Auth-Key", ""), request.content_type, form))
        return web.json_response({"query_status": "no_results"})

    url = "https://www.blog.example.co.uk/post?id=1"
    await collect(http, await serve(aiohttp_server, handler), {"url": url}, key="k-123")

    assert sorted(seen) == [
        ("POST", "/v1/host/", "k-123", "application/x-www-form-urlencoded", {"host": "www.blog.example.co.uk"}),
        ("POST", "/v1/url/", "k-123", "application/x-www-form-urlencoded", {"url": url}),
    ]


def test_the_reference_answers_and_string_numbers() -> None:
    assert parse_url_answer(REFERENCE_URL) == {
        "urlhaus.listed": True, "urlhaus.url_status": "online", "urlhaus.threat": "malware_download",
        "urlhaus.tags": ["emotet", "heodo"], "urlhaus.date_added": "2019-01-19T01:33:26Z"}
    host = {"query_status": "ok", "url_count": "11", "urls": [
        {"url_status": "online"}, {"url_status": "offline"}, {"url_status": "online"}, "junk"]}
    assert parse_host_answer(host) == {"urlhaus.host_url_count": 11, "urlhaus.host_online_count": 2}
    assert parse_count("11") == parse_count(11) == 11
    assert parse_count("eleven") is parse_count(None) is parse_count(True) is None
    assert parse_date("2019-01-19") is None and parse_date(None) is None
    assert parse_url_answer({"query_status": "ok", "tags": None})["urlhaus.tags"] == []


def test_the_key_is_the_url_and_without_an_auth_key_it_is_disabled() -> None:
    provider = UrlhausProvider()
    assert provider.key({"url": MALWARE_URL, "host": "x"}) == MALWARE_URL
    assert provider.disabled_reason() == "no API key: set LINKMETER_URLHAUS_API_KEY"


async def test_a_refused_key_names_the_setting_and_is_not_sent_again_for_a_while(
        aiohttp_server: ServerFactory, http: HttpClient) -> None:
    requests: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        requests.append(request.headers.get("Auth-Key", ""))
        return web.json_response({"query_status": "unknown_auth_key"}, status=401)

    clock = Clock()
    provider, ctx = context(http, await serve(aiohttp_server, handler), key="wrong", clock=clock)
    with pytest.raises(ProviderError) as caught:
        await provider.collect(ctx, {"url": MALWARE_URL})
    assert "LINKMETER_URLHAUS_API_KEY" in caught.value.message and not caught.value.retryable
    assert caught.value.status == 401 and len(requests) == 2

    clock.now += REJECTED_KEY_HOLD - 1
    with pytest.raises(ProviderError) as again:
        await provider.collect(ctx, {"url": MALWARE_URL + "?2"})
    assert "LINKMETER_URLHAUS_API_KEY" in again.value.message and len(requests) == 2  # nothing sent

    clock.now += 2
    with pytest.raises(ProviderError):
        await provider.collect(ctx, {"url": MALWARE_URL + "?3"})
    assert len(requests) == 4  # the hold is over: URLhaus is asked again


async def test_the_emulators_401_is_the_refused_key(http: HttpClient, emulator: str) -> None:
    with pytest.raises(ProviderError) as caught:
        await collect(http, emulator, {"url": MALWARE_URL}, key="not-the-demo-key")
    assert caught.value.status == 401 and "LINKMETER_URLHAUS_API_KEY" in caught.value.message


@pytest.mark.parametrize("query_status", ["invalid_url", "invalid_host", "http_post_expected"])
async def test_the_other_query_statuses_are_errors(
        aiohttp_server: ServerFactory, http: HttpClient, query_status: str) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"query_status": query_status})

    with pytest.raises(ProviderError) as caught:
        await collect(http, await serve(aiohttp_server, handler), {"url": MALWARE_URL})
    assert query_status in caught.value.message and not caught.value.retryable


async def test_5xx_is_retryable_and_429_rate_limited(aiohttp_server: ServerFactory, http: HttpClient) -> None:
    async def unavailable(request: web.Request) -> web.Response:
        return uh_api.error_response(503)

    async def limited(request: web.Request) -> web.Response:
        return uh_api.rate_limited_response(6)

    with pytest.raises(ProviderError) as failed:
        await collect(http, await serve(aiohttp_server, unavailable), {"url": MALWARE_URL})
    assert failed.value.retryable and failed.value.status == 503

    with pytest.raises(ProviderError) as slowed:
        await collect(http, await serve(aiohttp_server, limited), {"url": MALWARE_URL})
    assert slowed.value.rate_limited and slowed.value.retry_after == 6.0


@pytest.mark.parametrize("body", [b"<html>", b'{"id": "1"}', b"[]"])
async def test_an_answer_without_query_status_is_an_error(
        aiohttp_server: ServerFactory, http: HttpClient, body: bytes) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    with pytest.raises(ProviderError) as caught:
        await collect(http, await serve(aiohttp_server, handler), {"url": MALWARE_URL})
    assert not caught.value.retryable
