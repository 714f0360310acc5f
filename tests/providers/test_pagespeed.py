"""The PageSpeed Insights provider: the REFERENCE skeleton, lab and field signals, the emulated API, the key
(in a header, never shown), strategies and Google's error envelopes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from linkmeter.emulator.apis import pagespeed as psi_api
from linkmeter.emulator.parts import api_app
from linkmeter.emulator.world import World
from linkmeter.engine.dns import DnsClient
from linkmeter.engine.http import HttpClient
from linkmeter.engine.provider import CallContext, Collected, ProviderConfig, ProviderError
from linkmeter.providers.pagespeed import FIELD_SIGNALS, PageSpeedProvider, masked, parse_result

SEED = 41
KEY = psi_api.DEMO_KEY
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# REFERENCE.md section 10 (the verified skeleton).
REFERENCE: dict[str, Any] = {
    "kind": "pagespeedonline#result", "id": "https://example.com/", "captchaResult": "CAPTCHA_NOT_NEEDED",
    "loadingExperience": {
        "id": "https://example.com/",
        "metrics": {"LARGEST_CONTENTFUL_PAINT_MS": {"percentile": 2726, "distributions": [
            {"min": 0, "max": 2500, "proportion": 0.7087}, {"min": 2500, "max": 4000, "proportion": 0.1785},
            {"min": 4000, "proportion": 0.1128}], "category": "AVERAGE"},
            "INTERACTION_TO_NEXT_PAINT": {"percentile": 2098, "category": "SLOW"}},
        "overall_category": "SLOW", "initial_url": "https://example.com/"},
    "lighthouseResult": {
        "requestedUrl": "https://example.com/", "finalUrl": "https://example.com/", "lighthouseVersion": "12.0.0",
        "fetchTime": "2024-05-01T10:00:00.000Z", "categories": {"performance": {"score": 0.62}},
        "audits": {"largest-contentful-paint": {"numericValue": 3200.4, "displayValue": "3.2 s"},
                   "cumulative-layout-shift": {"numericValue": 0.031}, "total-blocking-time": {"numericValue": 320},
                   "first-contentful-paint": {"numericValue": 1800}, "speed-index": {"numericValue": 4100},
                   "server-response-time": {"numericValue": 650}}}}


@pytest.fixture(autouse=True)
def no_analysis_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psi_api, "DELAY_SCALE", 0.0)


@pytest.fixture
def world() -> World:
    return World(SEED)


@pytest.fixture
async def emulator(aiohttp_server: ServerFactory, world: World) -> tuple[str, list[web.Request]]:
    seen: list[web.Request] = []

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        seen.append(request)
        return await handler(request)

    root = web.Application(middlewares=[record])
    root.add_subapp("/pagespeed", api_app(psi_api, world))
    server = await aiohttp_server(root)
    return str(server.make_url("/pagespeed")), seen


async def serve(aiohttp_server: ServerFactory, handler: Handler) -> str:
    app = web.Application()
    app.router.add_get(psi_api.PATH, handler)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


def provider(base_url: str, key: str | None = KEY, **extra: str) -> PageSpeedProvider:
    return PageSpeedProvider(ProviderConfig(base_url=base_url, api_key=key, extra=extra))


async def collect(http: HttpClient, psi: PageSpeedProvider, url: str) -> Collected:
    ctx = CallContext(http=http, dns=DnsClient([("127.0.0.1", 53)]), config=psi.config)
    return await psi.collect(ctx, {"url": url})


def find_url(world: World, predicate: Callable[[float], bool]) -> str:
    for i in range(2000):
        facts = world.domain(f"site{i}.com")
        if facts.registered and not facts.spam and predicate(facts.popularity):
            return f"https://site{i}.com/a/{i}"
    raise AssertionError("no such domain in this world")


def test_the_reference_skeleton() -> None:
    assert parse_result(REFERENCE, "mobile") == {
        "pagespeed.performance": 62, "pagespeed.strategy": "mobile", "pagespeed.lcp_ms": 3200,
        "pagespeed.cls": 0.031, "pagespeed.tbt_ms": 320, "pagespeed.fcp_ms": 1800, "pagespeed.si_ms": 4100,
        "pagespeed.server_response_ms": 650, "pagespeed.field_scope": "url", "pagespeed.field_lcp_ms": 2726,
        "pagespeed.field_lcp_category": "AVERAGE", "pagespeed.field_inp_ms": 2098,
        "pagespeed.field_inp_category": "SLOW", "pagespeed.field_cls": None, "pagespeed.field_cls_category": None,
        "pagespeed.field_category": "SLOW",
    }


def test_without_loading_experience_every_field_signal_is_none() -> None:
    payload = {key: value for key, value in REFERENCE.items() if key != "loadingExperience"}

    signals = parse_result(payload, "desktop")

    assert {name: signals[name] for name in FIELD_SIGNALS} == dict.fromkeys(FIELD_SIGNALS)
    assert signals["pagespeed.performance"] == 62 and signals["pagespeed.strategy"] == "desktop"


def test_origin_data_cls_percentile_and_string_numbers() -> None:
    payload = {**REFERENCE, "loadingExperience": {
        "id": "https://example.com", "origin_fallback": True, "overall_category": "FAST",
        "metrics": {"CUMULATIVE_LAYOUT_SHIFT_SCORE": {"percentile": 7, "category": "FAST"}}}}
    payload["lighthouseResult"] = {"categories": {"performance": {"score": "0.905"}},
                                   "audits": {"total-blocking-time": {"numericValue": "123.6"}}}

    signals = parse_result(payload, "mobile")

    assert signals["pagespeed.field_scope"] == "origin"
    assert signals["pagespeed.field_cls"] == 0.07 and signals["pagespeed.field_cls_category"] == "FAST"
    assert signals["pagespeed.performance"] == 90 and signals["pagespeed.tbt_ms"] == 124
    assert signals["pagespeed.lcp_ms"] is None and signals["pagespeed.cls"] is None


@pytest.mark.parametrize("payload", [{}, {"lighthouseResult": []}, []])
def test_an_answer_without_a_lighthouse_result_is_an_error(payload: Any) -> None:
    with pytest.raises(ProviderError):
        parse_result(payload, "mobile")


async def test_lab_signals_match_the_world_and_the_key_is_in_a_header(
        http: HttpClient, emulator: tuple[str, list[web.Request]], world: World) -> None:
    base, seen = emulator
    url = find_url(world, lambda popularity: popularity < psi_api.FIELD_POPULARITY)
    lab = psi_api.lab_metrics(world, url, "mobile")

    result = await collect(http, provider(base), url)

    [request] = seen
    assert request.path == "/pagespeed" + psi_api.PATH
    assert request.query.getall("url") == [url] and request.query.getall("strategy") == ["mobile"]
    assert request.query.getall("category") == ["performance"]
    assert "key" not in request.query and request.headers["X-Goog-Api-Key"] == KEY
    signals = result.signals
    assert signals["pagespeed.lcp_ms"] == round(lab["largest-contentful-paint"])
    assert signals["pagespeed.tbt_ms"] == round(lab["total-blocking-time"])
    assert signals["pagespeed.cls"] == round(lab["cumulative-layout-shift"], 4)
    assert signals["pagespeed.performance"] == round(
        result.raw["lighthouseResult"]["categories"]["performance"]["score"] * 100)
    assert 0 <= signals["pagespeed.performance"] <= 100
    assert {name: signals[name] for name in FIELD_SIGNALS} == dict.fromkeys(FIELD_SIGNALS)  # low traffic


async def test_popular_pages_have_field_data(http: HttpClient, emulator: tuple[str, list[web.Request]],
                                             world: World) -> None:
    url = find_url(world, lambda popularity: popularity >= psi_api.URL_FIELD_POPULARITY)

    signals = (await collect(http, provider(emulator[0]), url)).signals

    assert signals["pagespeed.field_scope"] == "url"
    assert signals["pagespeed.field_lcp_ms"] > 0 and signals["pagespeed.field_inp_ms"] > 0
    assert signals["pagespeed.field_cls"] >= 0
    for name in ("lcp", "inp", "cls"):
        assert signals[f"pagespeed.field_{name}_category"] in ("FAST", "AVERAGE", "SLOW")
    assert signals["pagespeed.field_category"] in ("FAST", "AVERAGE", "SLOW")


async def test_the_strategy_option(http: HttpClient, emulator: tuple[str, list[web.Request]], world: World) -> None:
    base, seen = emulator
    url = find_url(world, lambda popularity: True)
    desktop = provider(base, strategy="Desktop")

    result = await collect(http, desktop, url)

    assert seen[0].query["strategy"] == "desktop" and result.signals["pagespeed.strategy"] == "desktop"
    assert desktop.key({"url": url}) == f"desktop {url}" and provider(base).key({"url": url}) == f"mobile {url}"
    assert provider(base, strategy="tablet").disabled_reason() == (
        "LINKMETER_PAGESPEED_OPT_STRATEGY must be one of mobile, desktop, not 'tablet'")
    assert provider(base, key=None).disabled_reason() == "no API key: set LINKMETER_PAGESPEED_API_KEY"


def test_it_runs_only_when_asked_for() -> None:
    assert PageSpeedProvider.in_default_set is False and PageSpeedProvider.requires_key is True


async def test_a_bad_key_is_a_final_error_naming_the_variable_and_hiding_the_key(
        http: HttpClient, emulator: tuple[str, list[web.Request]]) -> None:
    wrong = "AIzaSyWrongKeyWrongKeyWrongKeyWrong-_12"

    with pytest.raises(ProviderError) as caught:
        await collect(http, provider(emulator[0], key=wrong), "https://example.com/")

    assert caught.value.status == 400 and not caught.value.retryable
    assert caught.value.message == ("PageSpeed Insights HTTP 400: API key not valid. Please pass a valid API key. "
                                    "(check LINKMETER_PAGESPEED_API_KEY)")


async def test_a_key_echoed_back_is_masked(aiohttp_server: ServerFactory, http: HttpClient) -> None:
    async def echo(request: web.Request) -> web.Response:
        return psi_api.google_error(403, f"key {request.headers['X-Goog-Api-Key']} may not call this API",
                                    "PERMISSION_DENIED", "forbidden")

    with pytest.raises(ProviderError) as caught:
        await collect(http, provider(await serve(aiohttp_server, echo), key="se cret/+"), "https://example.com/")

    assert "se cret" not in caught.value.message and "<key> may not call" in caught.value.message
    assert "LINKMETER_PAGESPEED_API_KEY" in caught.value.message
    assert masked("a=se%20cret%2F%2B b=se+cret%2F%2B", "se cret/+") == "a=<key> b=<key>"


async def test_rate_limited_envelope(aiohttp_server: ServerFactory, http: HttpClient) -> None:
    async def limited(_request: web.Request) -> web.Response:
        return psi_api.rate_limited_response(3)

    with pytest.raises(ProviderError) as caught:
        await collect(http, provider(await serve(aiohttp_server, limited)), "https://example.com/")

    assert caught.value.rate_limited and caught.value.retryable and caught.value.status == 429
    assert "Queries per 100 seconds" in caught.value.message


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_is_retried(aiohttp_server: ServerFactory, http: HttpClient, status: int) -> None:
    async def failing(_request: web.Request) -> web.Response:
        return psi_api.error_response(status)

    with pytest.raises(ProviderError) as caught:
        await collect(http, provider(await serve(aiohttp_server, failing)), "https://example.com/")

    assert caught.value.retryable and not caught.value.rate_limited and caught.value.status == status
    if status == 500:
        assert caught.value.message.endswith("Unable to process request. Please wait a while and try again.")


async def test_a_page_lighthouse_cannot_load_is_a_final_error(
        http: HttpClient, emulator: tuple[str, list[web.Request]]) -> None:
    with pytest.raises(ProviderError) as caught:
        await collect(http, provider(emulator[0]), "https://unregistered-shop.com/")

    assert not caught.value.retryable and caught.value.status == 400
    assert "Lighthouse returned error: DNS_FAILURE" in caught.value.message
