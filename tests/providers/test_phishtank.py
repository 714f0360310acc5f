"""The PhishTank provider against the emulated checkurl: the form, the User-Agent, 509 and the pause headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from linkmeter import __version__
from linkmeter.emulator.apis import phishtank as pt_api
from linkmeter.emulator.parts import api_app
from linkmeter.emulator.world import World
from linkmeter.engine.dns import DnsClient
from linkmeter.engine.http import HttpClient
from linkmeter.engine.provider import CallContext, Collected, ProviderConfig, ProviderError
from linkmeter.providers.phishtank import DEFAULT_INTERVAL, PhishTankProvider, RequestLimits, parse_results

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PHISH = "https://phish-login.example/signin"
AGENT = f"linkmeter/{__version__} (+https://github.com/linkmeter/linkmeter)"
# REFERENCE §6c's answer.
REFERENCE_RESULTS = {"results": {"url": "http://example.com/", "in_database": True, "phish_id": "12345",
                                 "phish_detail_page": "http://www.phishtank.com/phish_detail.php?phish_id=12345",
                                 "verified": True, "verified_at": "2006-10-01T02:32:23+00:00", "valid": True}}
NOT_IN_DATABASE = {"phishtank.in_database": False, "phishtank.verified": False, "phishtank.valid": False,
                   "phishtank.detail_url": None}


@pytest.fixture
def world() -> World:
    return World(17)


@pytest.fixture
async def emulator(aiohttp_server: ServerFactory, world: World) -> str:
    root = web.Application()
    root.add_subapp("/phishtank", api_app(pt_api, world))
    return str((await aiohttp_server(root)).make_url("/phishtank"))


async def serve(aiohttp_server: ServerFactory, handler: Handler) -> str:
    app = web.Application()
    app.router.add_post("/checkurl/", handler)
    return str((await aiohttp_server(app)).make_url("")).rstrip("/")


def context(http: HttpClient, base_url: str, key: str | None = None,
            extra: dict[str, str] | None = None) -> tuple[PhishTankProvider, CallContext]:
    provider = PhishTankProvider(ProviderConfig(base_url=base_url, api_key=key, extra=extra or {}))
    return provider, CallContext(http=http, dns=DnsClient([("127.0.0.1", 53)]), config=provider.config)


async def collect(http: HttpClient, base_url: str, url: str, key: str | None = None) -> Collected:
    provider, ctx = context(http, base_url, key)
    return await provider.collect(ctx, {"url": url})


async def test_a_phish_in_the_database(http: HttpClient, emulator: str, world: World) -> None:
    expected = pt_api.lookup(world, PHISH)

    result = await collect(http, emulator, PHISH, key=pt_api.DEMO_KEY)

    assert result.signals == {"phishtank.in_database": True, "phishtank.verified": expected["verified"],
                              "phishtank.valid": expected["valid"],
                              "phishtank.detail_url": expected["phish_detail_page"]}
    assert result.raw["results"] == expected and result.pause is None


async def test_a_url_not_in_the_database_is_false_everywhere(http: HttpClient, emulator: str, world: World) -> None:
    clean = next(f"https://site{i}.com/" for i in range(1000)
                 if not pt_api.lookup(world, f"https://site{i}.com/")["in_database"])
    result = await collect(http, emulator, clean)
    assert result.signals == NOT_IN_DATABASE


@pytest.mark.parametrize(("key", "extra", "form", "agent"), [
    (None, {}, {"url": PHISH, "format": "json"}, AGENT),
    ("app-1", {"username": "alice"}, {"url": PHISH, "format": "json", "app_key": "app-1"},
     f"phishtank/alice {AGENT}"),
])
async def test_the_request_is_a_form_post_with_a_descriptive_user_agent(
        aiohttp_server: ServerFactory, http: HttpClient, key: str | None, extra: dict[str, str],
        form: dict[str, str], agent: str) -> None:
    seen: list[tuple[str, dict[str, str], str]] = []

    async def handler(request: web.Request) -> web.Response:
        posted = {name: str(value) for name, value in (await request.post()).items()}
        seen.append((request.method, posted, request.headers["User-Agent"]))
        return web.json_response({"results": {"url": PHISH, "in_database": False}})

    provider, ctx = context(http, await serve(aiohttp_server, handler), key, extra)
    await provider.collect(ctx, {"url": PHISH})

    assert seen == [("POST", form, agent)]


async def test_509_pauses_for_the_interval_it_names(aiohttp_server: ServerFactory, http: HttpClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=509, text="over", headers={"X-Request-Limit-Interval": "120 Seconds",
                                                              "X-Request-Limit": "50", "X-Request-Count": "51"})

    with pytest.raises(ProviderError) as caught:
        await collect(http, await serve(aiohttp_server, handler), PHISH)

    error = caught.value
    assert error.rate_limited and error.retryable and error.status == 509 and error.retry_after == 120.0
    assert "509" in error.message and "51 of 50" in error.message


async def test_the_windows_last_request_is_a_result_that_pauses_the_provider(
        http: HttpClient, emulator: str) -> None:
    provider, ctx = context(http, emulator)  # no app key: the small anonymous allowance
    for n in range(1, pt_api.ANONYMOUS_LIMIT):
        assert (await provider.collect(ctx, {"url": f"{PHISH}?{n}"})).pause is None

    last = await provider.collect(ctx, {"url": PHISH})
    assert last.signals["phishtank.in_database"] is True
    assert last.pause == float(pt_api.INTERVAL)

    with pytest.raises(ProviderError) as over:
        await provider.collect(ctx, {"url": PHISH})
    assert over.value.rate_limited and over.value.retry_after == float(pt_api.INTERVAL)


def test_limit_headers() -> None:
    spent = RequestLimits.from_headers({"X-Request-Limit-Interval": "300 Seconds", "X-Request-Limit": "10",
                                        "X-Request-Count": "10"})
    assert (spent.interval, spent.limit, spent.count, spent.spent()) == (300.0, 10, 10, True)
    assert not RequestLimits.from_headers({"X-Request-Limit": "10", "X-Request-Count": "9"}).spent()
    odd = RequestLimits.from_headers({"X-Request-Limit-Interval": "soon", "X-Request-Limit": "-1"})
    assert (odd.interval, odd.limit, odd.count, odd.spent()) == (None, None, None, False)
    assert RequestLimits.from_headers({"X-Request-Limit-Interval": "inf Seconds"}).interval is None
    assert DEFAULT_INTERVAL == 300.0


def test_the_reference_answer_and_string_flags() -> None:
    assert parse_results(REFERENCE_RESULTS) == {
        "phishtank.in_database": True, "phishtank.verified": True, "phishtank.valid": True,
        "phishtank.detail_url": "http://www.phishtank.com/phish_detail.php?phish_id=12345"}
    strings = {"results": {"in_database": "true", "verified": "false", "valid": "false", "phish_id": 7}}
    assert parse_results(strings)["phishtank.verified"] is False
    assert parse_results({"results": {"in_database": False, "verified": True}}) == NOT_IN_DATABASE


@pytest.mark.parametrize(("payload", "words"), [
    ({"errortext": "You must supply a URL to use this function."}, "supply a URL"),
    ({"meta": {}}, "no 'results'"),
    ({"results": {"url": PHISH}}, "no 'in_database'"),
])
def test_answers_without_a_verdict_are_errors(payload: dict[str, Any], words: str) -> None:
    with pytest.raises(ProviderError) as caught:
        parse_results(payload)
    assert words in caught.value.message and not caught.value.retryable


async def test_5xx_is_retryable(aiohttp_server: ServerFactory, http: HttpClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        return pt_api.error_response(503)

    with pytest.raises(ProviderError) as caught:
        await collect(http, await serve(aiohttp_server, handler), PHISH)
    assert caught.value.retryable and caught.value.status == 503 and not caught.value.rate_limited


def test_no_key_is_needed() -> None:
    assert PhishTankProvider().disabled_reason() is None
    assert PhishTankProvider().key({"url": PHISH}) == PHISH
