"""The Safe Browsing provider against the emulated Lookup API: one request per batch, TTLs, errors, a masked key."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from linkmeter import __version__
from linkmeter.emulator.apis import safebrowsing as sb_api
from linkmeter.emulator.parts import api_app
from linkmeter.emulator.world import World
from linkmeter.engine.dns import DnsClient
from linkmeter.engine.http import HttpClient
from linkmeter.engine.provider import CallContext, Collected, ProviderConfig, ProviderError
from linkmeter.providers.safebrowsing import (
    MATCH_TTL,
    QUOTA_PAUSE,
    SafeBrowsingProvider,
    outcome,
    parse_duration,
    parse_matches,
)

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SECRET = "AIzaSyTEST-secret_key_0123456789abcdefgh"
PHISH = "https://phish-login.example/signin"
MALWARE = "https://malware-downloads.example/a.exe"
CLEAN = "https://news.example.org/a/1"
# REFERENCE §6a's response.
REFERENCE_RESPONSE = {"matches": [{"threatType": "MALWARE", "platformType": "WINDOWS", "threatEntryType": "URL",
                                   "threat": {"url": "http://www.urltocheck1.org/"},
                                   "threatEntryMetadata": {"entries": [{"key": "malware_threat_type",
                                                                        "value": "landing"}]},
                                   "cacheDuration": "300.000s"}]}


@pytest.fixture
def world() -> World:
    return World(5)


@pytest.fixture
async def emulator(aiohttp_server: ServerFactory, world: World) -> tuple[str, list[dict[str, Any]]]:
    """The emulated API under /safebrowsing, and the JSON bodies it was sent."""
    bodies: list[dict[str, Any]] = []

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        bodies.append(json.loads(await request.read()))
        return await handler(request)

    root = web.Application(middlewares=[record])
    root.add_subapp("/safebrowsing", api_app(sb_api, world))
    server = await aiohttp_server(root)
    return str(server.make_url("/safebrowsing")), bodies


async def serve(aiohttp_server: ServerFactory, handler: Handler) -> str:
    app = web.Application()
    app.router.add_post("/v4/threatMatches:find", handler)
    return str((await aiohttp_server(app)).make_url("")).rstrip("/")


def context(http: HttpClient, base_url: str, key: str | None = sb_api.DEMO_KEY) -> tuple[SafeBrowsingProvider,
                                                                                           CallContext]:
    provider = SafeBrowsingProvider(ProviderConfig(base_url=base_url, api_key=key))
    return provider, CallContext(http=http, dns=DnsClient([("127.0.0.1", 53)]), config=provider.config)


async def collect(http: HttpClient, base_url: str, signals: dict[str, Any],
                  key: str | None = sb_api.DEMO_KEY) -> Collected:
    provider, ctx = context(http, base_url, key)
    return await provider.collect(ctx, signals)


async def test_a_phishing_url_is_listed_and_cached_no_longer_than_its_cache_duration(
        http: HttpClient, emulator: tuple[str, list[Any]]) -> None:
    result = await collect(http, emulator[0], {"url": PHISH})

    assert result.signals == {"safebrowsing.listed": True, "safebrowsing.threat_types": ["SOCIAL_ENGINEERING"],
                              "safebrowsing.matched_urls": [PHISH]}
    [match] = result.raw["matches"]
    assert result.ttl == parse_duration(match["cacheDuration"]) and result.ttl is not None and result.ttl < 3600


async def test_a_clean_url_is_not_listed_and_keeps_the_policys_ttl(
        http: HttpClient, emulator: tuple[str, list[Any]]) -> None:
    result = await collect(http, emulator[0], {"url": CLEAN})

    assert result.signals == {"safebrowsing.listed": False, "safebrowsing.threat_types": [],
                              "safebrowsing.matched_urls": []}
    assert result.ttl is None and result.raw == {"checked": [CLEAN], "matches": []}


async def test_one_request_answers_a_whole_batch_in_order(
        http: HttpClient, emulator: tuple[str, list[dict[str, Any]]], world: World) -> None:
    base, bodies = emulator
    provider, ctx = context(http, base)
    short = next(f"https://short{i}.example/x1" for i in range(100)
                 if not sb_api.threat_types(world, f"short{i}.example"))
    redirected = {"url": short, "page.final_url": MALWARE}
    batch = [{"url": CLEAN}, {"url": PHISH}, redirected, {"url": CLEAN + "?b=1", "page.final_url": CLEAN},
             {"url": MALWARE}]

    outcomes = await provider.collect_many(ctx, batch)

    assert len(bodies) == 1
    sent = [entry["url"] for entry in bodies[0]["threatInfo"]["threatEntries"]]
    assert sent == [CLEAN, PHISH, short, MALWARE, CLEAN + "?b=1"]  # each URL once
    results = [o for o in outcomes if isinstance(o, Collected)]
    assert len(results) == len(batch)
    assert [r.signals["safebrowsing.listed"] for r in results] == [False, True, True, False, True]
    assert results[2].signals["safebrowsing.matched_urls"] == [MALWARE]  # the redirect's target matched
    assert "MALWARE" in results[2].signals["safebrowsing.threat_types"]
    assert results[2].signals == results[4].signals | {"safebrowsing.matched_urls": [MALWARE]}


async def test_the_request_is_a_find_threat_matches_for_every_threat_type(
        aiohttp_server: ServerFactory, http: HttpClient) -> None:
    seen: list[tuple[str, dict[str, str], str, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.method, dict(request.query), request.content_type, await request.json()))
        return web.json_response({})

    await collect(http, await serve(aiohttp_server, handler), {"url": CLEAN}, key=SECRET)

    [(method, query, content_type, body)] = seen
    assert method == "POST" and query == {"key": SECRET} and content_type == "application/json"
    assert body == {"client": {"clientId": "linkmeter", "clientVersion": __version__},
                    "threatInfo": {"threatTypes": ["MALWARE", "SOCIAL_ENGINEERING", "UNWANTED_SOFTWARE",
                                                   "POTENTIALLY_HARMFUL_APPLICATION"],
                                   "platformTypes": ["ANY_PLATFORM"], "threatEntryTypes": ["URL"],
                                   "threatEntries": [{"url": CLEAN}]}}


@pytest.mark.parametrize("answer", [{}, {"matches": []}])
async def test_an_empty_object_and_an_empty_list_both_mean_clean(
        aiohttp_server: ServerFactory, http: HttpClient, answer: dict[str, Any]) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(answer)

    result = await collect(http, await serve(aiohttp_server, handler), {"url": CLEAN})
    assert result.signals["safebrowsing.listed"] is False and result.ttl is None


def test_the_reference_response_and_the_shortest_cache_duration() -> None:
    [match] = parse_matches(REFERENCE_RESPONSE)
    assert (match.url, match.threat_type, match.platform_type, match.cache_seconds) == (
        "http://www.urltocheck1.org/", "MALWARE", "WINDOWS", 300.0)

    url = "https://a.example/"
    second = {"threatType": "UNWANTED_SOFTWARE", "threat": {"url": url}, "cacheDuration": "120s"}
    first = {"threatType": "MALWARE", "threat": {"url": url}, "cacheDuration": "600s"}
    result = outcome([url], {url: parse_matches({"matches": [first, second]})})
    assert result.ttl == 120.0 and result.signals["safebrowsing.threat_types"] == ["MALWARE", "UNWANTED_SOFTWARE"]
    assert parse_duration(None) == parse_duration("soon") == parse_duration("-1s") == MATCH_TTL
    assert parse_duration("1.5s") == 1.5


def test_the_key_is_one_string_naming_every_checked_url() -> None:
    provider = SafeBrowsingProvider()
    assert provider.key({"url": CLEAN}) == CLEAN
    assert provider.key({"url": CLEAN, "page.final_url": CLEAN}) == CLEAN
    assert provider.key({"url": "https://lnk.example/x", "page.final_url": CLEAN}) == f"https://lnk.example/x {CLEAN}"


def test_without_a_key_it_is_disabled_naming_the_setting() -> None:
    assert SafeBrowsingProvider().disabled_reason() == "no API key: set LINKMETER_SAFEBROWSING_API_KEY"
    assert SafeBrowsingProvider(ProviderConfig(base_url="", api_key="k")).disabled_reason() is None


async def test_resource_exhausted_is_rate_limited_with_the_envelopes_message(
        aiohttp_server: ServerFactory, http: HttpClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        return sb_api.rate_limited_response(5)

    with pytest.raises(ProviderError) as caught:
        await collect(http, await serve(aiohttp_server, handler), {"url": CLEAN}, key=SECRET)

    error = caught.value
    assert error.rate_limited and error.retryable and error.status == 429 and error.retry_after == QUOTA_PAUSE
    assert "RESOURCE_EXHAUSTED" in error.message and "Quota exceeded" in error.message


async def test_a_retry_after_sent_with_a_429_is_honoured(aiohttp_server: ServerFactory, http: HttpClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        answer = sb_api.rate_limited_response(5)
        answer.headers["Retry-After"] = "7"
        return answer

    with pytest.raises(ProviderError) as caught:
        await collect(http, await serve(aiohttp_server, handler), {"url": CLEAN}, key=SECRET)
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize("key", ["AIzaSy-wrong-key-but-shaped-like-one-00", sb_api.DISABLED_KEY])
async def test_a_refused_key_is_an_error_naming_the_setting_never_the_key(
        http: HttpClient, emulator: tuple[str, list[Any]], key: str) -> None:
    with pytest.raises(ProviderError) as caught:
        await collect(http, emulator[0], {"url": CLEAN}, key=key)

    error = caught.value
    assert not error.retryable and not error.rate_limited and error.status in (400, 403)
    assert "LINKMETER_SAFEBROWSING_API_KEY" in error.message and key not in error.message


async def test_another_invalid_argument_is_a_plain_error(aiohttp_server: ServerFactory, http: HttpClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        return sb_api.google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")

    with pytest.raises(ProviderError) as caught:
        await collect(http, await serve(aiohttp_server, handler), {"url": CLEAN}, key=SECRET)
    assert not caught.value.retryable and "INVALID_ARGUMENT" in caught.value.message
    assert "API_KEY" not in caught.value.message


@pytest.mark.parametrize(("status", "body"), [(503, b'{"error": {"code": 503}}'), (200, b"<html>"),
                                              (404, b"Not Found")])
async def test_other_failures_never_show_the_key(
        aiohttp_server: ServerFactory, http: HttpClient, status: int, body: bytes) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/json")

    with pytest.raises(ProviderError) as caught:
        await collect(http, await serve(aiohttp_server, handler), {"url": CLEAN}, key=SECRET)

    assert SECRET not in caught.value.message and "key=<key>" in caught.value.message
    assert caught.value.retryable is (status == 503)


async def test_a_connection_failure_never_shows_the_key(http: HttpClient) -> None:
    with pytest.raises(ProviderError) as caught:
        await collect(http, "http://127.0.0.1:9", {"url": CLEAN}, key=SECRET)
    assert caught.value.retryable and SECRET not in caught.value.message
