"""The Facebook provider against the emulated Graph URL node: one URL, several ids, errors, the hourly limit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from linkmeter.emulator.apis import facebook as fb_api
from linkmeter.emulator.parts import api_app
from linkmeter.emulator.world import World
from linkmeter.engine.dns import DnsClient
from linkmeter.engine.http import HttpClient
from linkmeter.engine.plan import Plan
from linkmeter.engine.provider import CallContext, Collected, ProviderConfig, ProviderError
from linkmeter.engine.results import CallStatus
from linkmeter.engine.runner import Engine
from linkmeter.indicators.engagement import TERMS, engagement
from linkmeter.providers.facebook import GRAPH_VERSION, MAX_IDS, FacebookProvider, chunks, engagement_signals

SEED = 5
TOKEN = fb_api.DEMO_KEY
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The official example of the URL node reference (REFERENCE.md section 7).
REFERENCE_NODE: dict[str, Any] = {
    "engagement": {"reaction_count": 514919172, "comment_count": 68687082, "share_count": 975739682,
                   "comment_plugin_count": 1641},
    "id": "https://www.facebook.com",
}


@pytest.fixture
def world() -> World:
    return World(SEED)


@pytest.fixture
def requests() -> Counter[str]:
    return Counter()


@pytest.fixture
async def emulator(aiohttp_server: ServerFactory, world: World, requests: Counter[str]) -> str:
    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        requests["ids" if "ids" in request.query else "id"] += 1
        return await handler(request)

    root = web.Application(middlewares=[count])
    root.add_subapp("/facebook", api_app(fb_api, world))
    server = await aiohttp_server(root)
    return str(server.make_url("/facebook"))


async def serve(aiohttp_server: ServerFactory, handler: Handler) -> str:
    app = web.Application()
    app.router.add_get(f"/{GRAPH_VERSION}/", handler)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


def provider_for(base_url: str, token: str | None = TOKEN) -> FacebookProvider:
    return FacebookProvider(ProviderConfig(base_url=base_url, api_key=token))


def context(http: HttpClient, provider: FacebookProvider) -> CallContext:
    return CallContext(http=http, dns=DnsClient([("127.0.0.1", 53)]), config=provider.config)


async def collect(http: HttpClient, base_url: str, url: str) -> Collected:
    provider = provider_for(base_url)
    return await provider.collect(context(http, provider), {"url": url})


def expected(world: World, url: str) -> dict[str, int]:
    counts = fb_api.engagement(world, url)
    signals = {"facebook.reactions": counts["reaction_count"], "facebook.comments": counts["comment_count"],
               "facebook.shares": counts["share_count"], "facebook.plugin_comments": counts["comment_plugin_count"]}
    return {**signals, "facebook.total": sum(signals.values())}


def shared_url(world: World) -> str:
    return next(url for i in range(2000)
                if fb_api.engagement(world, url := f"https://www.site{i}.com/post/{i}")["share_count"] > 0)


async def test_signals_are_the_urls_engagement_counts(http: HttpClient, emulator: str, world: World) -> None:
    url = shared_url(world)

    result = await collect(http, emulator, url)

    assert result.signals == expected(world, url)
    assert result.signals["facebook.total"] > 0
    assert result.raw["id"] == url


async def test_a_url_nobody_shared_has_zero_counts(http: HttpClient, emulator: str, world: World) -> None:
    url = next(url for i in range(2000)
               if not any(fb_api.engagement(world, url := f"https://www.quiet{i}.org/{i}").values()))

    result = await collect(http, emulator, url)

    assert result.signals == dict.fromkeys(expected(world, url), 0)


async def test_the_request_is_the_url_node_with_the_token_in_a_bearer_header(
    aiohttp_server: ServerFactory, http: HttpClient
) -> None:
    seen: list[tuple[str, str, dict[str, str], str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, dict(request.query), request.headers.get("Authorization", "")))
        return web.json_response(REFERENCE_NODE)

    result = await collect(http, await serve(aiohttp_server, handler), "https://www.facebook.com/")

    assert seen == [("GET", f"/{GRAPH_VERSION}/", {"id": "https://www.facebook.com/", "fields": "engagement"},
                     f"Bearer {TOKEN}")]
    assert result.signals["facebook.total"] == 514919172 + 68687082 + 975739682 + 1641


async def test_the_graph_version_is_an_option(aiohttp_server: ServerFactory, http: HttpClient) -> None:
    paths: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        paths.append(request.path)
        return web.json_response(REFERENCE_NODE)

    app = web.Application()
    app.router.add_get("/v19.0/", handler)
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    provider = FacebookProvider(ProviderConfig(base_url=base, api_key=TOKEN, extra={"version": "v19.0"}))

    await provider.collect(context(http, provider), {"url": "https://www.facebook.com"})

    assert paths == ["/v19.0/"]


def test_reference_payload_and_string_counts() -> None:
    assert engagement_signals(REFERENCE_NODE) == {
        "facebook.reactions": 514919172, "facebook.comments": 68687082, "facebook.shares": 975739682,
        "facebook.plugin_comments": 1641, "facebook.total": 514919172 + 68687082 + 975739682 + 1641}
    node = {"engagement": {"reaction_count": "7", "comment_count": None, "share_count": 2}, "id": "x"}
    assert engagement_signals(node)["facebook.total"] == 9
    with pytest.raises(ProviderError):
        engagement_signals({"id": "https://example.com/"})


async def test_a_batch_is_one_several_ids_request_with_the_same_results_as_one_by_one(
    http: HttpClient, emulator: str, world: World, requests: Counter[str]
) -> None:
    urls = [f"https://www.site{i}.com/post/{i}" for i in range(MAX_IDS)]
    provider = provider_for(emulator)

    outcomes = await provider.collect_many(context(http, provider), [{"url": url} for url in urls])

    assert requests == Counter({"ids": 1})
    assert [outcome.signals for outcome in outcomes if isinstance(outcome, Collected)] == \
        [expected(world, url) for url in urls]
    singles = [(await collect(http, emulator, url)).signals for url in urls[:5]]
    assert singles == [expected(world, url) for url in urls[:5]]


async def test_a_url_holding_a_comma_gets_its_own_request(
    http: HttpClient, emulator: str, world: World, requests: Counter[str]
) -> None:
    urls = ["https://www.site1.com/a", "https://www.site2.com/b,c", "https://www.site3.com/d"]
    provider = provider_for(emulator)

    outcomes = await provider.collect_many(context(http, provider), [{"url": url} for url in urls])

    assert requests == Counter({"ids": 1, "id": 1})
    assert [outcome.signals for outcome in outcomes if isinstance(outcome, Collected)] == \
        [expected(world, url) for url in urls]


async def test_an_entry_missing_from_the_answer_fails_only_its_url_and_keys_are_matched_loosely(
    aiohttp_server: ServerFactory, http: HttpClient
) -> None:
    async def handler(request: web.Request) -> web.Response:
        assert request.query["ids"] == "https://a.example/,http://b.example/x/,https://c.example/"
        # Graph may answer a URL under its own spelling of it.
        return web.json_response({
            "https://a.example": {"engagement": {"share_count": 3}, "id": "https://a.example"},
            "http://b.example/x/": {"engagement": {"reaction_count": 4}, "id": "https://b.example/x"},
        })

    provider = provider_for(await serve(aiohttp_server, handler))
    urls = ["https://a.example/", "http://b.example/x/", "https://c.example/"]

    first, second, third = await provider.collect_many(context(http, provider), [{"url": url} for url in urls])

    assert isinstance(first, Collected) and first.signals["facebook.shares"] == 3
    assert isinstance(second, Collected) and second.signals["facebook.reactions"] == 4
    assert isinstance(third, ProviderError) and "no entry for https://c.example/" in third.message


async def test_a_failed_several_ids_request_fails_the_batch(aiohttp_server: ServerFactory, http: HttpClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        return fb_api.error_response(503)

    provider = provider_for(await serve(aiohttp_server, handler))

    with pytest.raises(ProviderError) as caught:
        await provider.collect_many(context(http, provider), [{"url": "https://a.example/"},
                                                              {"url": "https://b.example/"}])

    assert caught.value.retryable and caught.value.status == 503


def test_long_urls_are_split_over_requests_whose_urls_stay_short() -> None:
    urls = [f"https://example.com/{i}/" + "x" * 2500 for i in range(5)] + ["https://example.com/short"]

    runs = chunks(urls)

    assert [url for run in runs for url in run] == urls
    assert all(len(",".join(run)) <= 6000 for run in runs) and len(runs) == 3
    assert [len(run) for run in chunks([f"https://e.com/{i}" for i in range(120)])] == [50, 50, 20]


async def test_throttling_codes_are_rate_limited_with_a_pause(
    aiohttp_server: ServerFactory, http: HttpClient
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return fb_api.throttled()

    with pytest.raises(ProviderError) as caught:
        await collect(http, await serve(aiohttp_server, handler), "https://example.com/")

    assert caught.value.rate_limited and caught.value.retryable and caught.value.retry_after == 60.0
    assert "Graph error 4" in caught.value.message and "call_count" in caught.value.message


@pytest.mark.parametrize("code", [17, 32, 613])
async def test_every_throttling_code_is_rate_limited(aiohttp_server: ServerFactory, http: HttpClient,
                                                     code: int) -> None:
    async def handler(request: web.Request) -> web.Response:
        return fb_api.graph_error(400, code, f"(#{code}) Calls to this api have exceeded the rate limit.")

    with pytest.raises(ProviderError) as caught:
        await collect(http, await serve(aiohttp_server, handler), "https://example.com/")

    assert caught.value.rate_limited


async def test_an_invalid_token_is_not_retried_names_the_setting_and_is_masked(
    aiohttp_server: ServerFactory, http: HttpClient
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return fb_api.graph_error(400, 190, f"Invalid OAuth access token: {TOKEN}")

    with pytest.raises(ProviderError) as caught:
        await collect(http, await serve(aiohttp_server, handler), "https://example.com/")

    assert not caught.value.retryable and not caught.value.rate_limited
    assert "LINKMETER_FACEBOOK_API_KEY" in caught.value.message and TOKEN not in caught.value.message


async def test_the_emulator_refuses_a_wrong_token_with_code_190(http: HttpClient, emulator: str) -> None:
    provider = provider_for(emulator, token="not-the-token")

    with pytest.raises(ProviderError) as caught:
        await provider.collect(context(http, provider), {"url": "https://example.com/"})

    assert "Graph error 190" in caught.value.message and not caught.value.retryable


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True)])
async def test_5xx_is_retryable(aiohttp_server: ServerFactory, http: HttpClient, status: int,
                                retryable: bool) -> None:
    async def handler(request: web.Request) -> web.Response:
        return fb_api.error_response(status)

    with pytest.raises(ProviderError) as caught:
        await collect(http, await serve(aiohttp_server, handler), "https://example.com/")

    assert caught.value.retryable is retryable and caught.value.status == status


async def test_invalid_json_is_not_retryable(aiohttp_server: ServerFactory, http: HttpClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=b"<html>oops</html>", content_type="application/json")

    with pytest.raises(ProviderError) as caught:
        await collect(http, await serve(aiohttp_server, handler), "https://example.com/")

    assert not caught.value.retryable


def test_without_a_token_the_provider_is_disabled_naming_the_variable() -> None:
    assert provider_for("https://graph.facebook.com", token=None).disabled_reason() == \
        "no API key: set LINKMETER_FACEBOOK_API_KEY"


async def test_the_cache_keeps_repeated_analyses_under_graphs_hourly_limit_per_url(
    http: HttpClient, emulator: str, world: World, requests: Counter[str]
) -> None:
    url = shared_url(world)
    engine = Engine(Plan.build([provider_for(emulator)]), http=http, dns=DnsClient([("127.0.0.1", 53)]))

    calls = [(await engine.analyze(url)).providers["facebook"] for _ in range(fb_api.URL_REQUESTS_PER_HOUR + 2)]

    assert [call.status for call in calls] == [CallStatus.OK] + [CallStatus.CACHED] * 11
    assert sum(requests.values()) == 1


async def test_the_emulator_throttles_the_eleventh_request_for_a_url_in_an_hour(
    http: HttpClient, emulator: str
) -> None:
    url = "https://www.eleven.example/x"
    for _ in range(fb_api.URL_REQUESTS_PER_HOUR):
        await collect(http, emulator, url)

    with pytest.raises(ProviderError) as caught:
        await collect(http, emulator, url)

    assert caught.value.rate_limited


def test_engagement_counts_the_four_counts_not_their_total() -> None:
    assert TERMS["facebook"] == ("facebook.reactions", "facebook.comments", "facebook.shares",
                                 "facebook.plugin_comments")
    signals = engagement_signals(REFERENCE_NODE)
    assert engagement(signals) == {"engagement.total": signals["facebook.total"], "engagement.sources": ["facebook"]}
