"""The Bluesky provider against the emulated PDS: the session flow, searchPosts, and its refusals."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from linkmeter.emulator.apis import WORLD
from linkmeter.emulator.apis import bluesky as bsky_api
from linkmeter.emulator.world import World
from linkmeter.engine.dns import DnsClient
from linkmeter.engine.errors import ProviderDisabled
from linkmeter.engine.http import HttpClient
from linkmeter.engine.plan import Plan
from linkmeter.engine.provider import Collected, ProviderConfig, ProviderError
from linkmeter.engine.results import CallStatus
from linkmeter.engine.runner import Engine
from linkmeter.engine.urls import url_variants
from linkmeter.indicators.engagement import TERMS
from linkmeter.providers._bluesky_session import jwt_expiry, parse_credentials
from linkmeter.providers.bluesky import BlueskyProvider, matching_posts, summarise
from tests.providers.conftest import EmulatedApi, collect_from

SEED = 9
API = bsky_api
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CREATE = "/bluesky/xrpc/com.atproto.server.createSession"
REFRESH = "/bluesky/xrpc/com.atproto.server.refreshSession"
SEARCH = "/bluesky/xrpc/app.bsky.feed.searchPosts"

# The postView shape of REFERENCE.md section 11a, with a link card.
REFERENCE_ANSWER: dict[str, Any] = {"cursor": "25", "hitsTotal": 42, "posts": [{
    "uri": "at://did:plc:abc/app.bsky.feed.post/3kxyz", "cid": "bafyreiabc",
    "author": {"did": "did:plc:abc", "handle": "alice.bsky.social", "displayName": "Alice"},
    "record": {"text": "read this", "createdAt": "2024-05-01T10:00:00.000Z",
               "embed": {"$type": "app.bsky.embed.external", "external": {"uri": "https://example.com/a"}}},
    "embed": {"$type": "app.bsky.embed.external#view", "external": {"uri": "https://example.com/a"}},
    "replyCount": 3, "repostCount": 5, "likeCount": 20, "quoteCount": 1, "indexedAt": "2024-05-01T10:00:02.123Z",
    "labels": []}]}


@pytest.fixture
def emulator(api: EmulatedApi) -> str:
    return api.base_url


@pytest.fixture
def paths(api: EmulatedApi) -> Counter[str]:
    return api.hits


def provider_for(base_url: str, key: str | None = bsky_api.DEMO_KEY, *,
                 now: Callable[[], float] = time.time) -> BlueskyProvider:
    return BlueskyProvider(ProviderConfig(base_url=base_url, api_key=key), now=now)


async def collect(http: HttpClient, provider: BlueskyProvider, url: str) -> Collected:
    return await collect_from(provider, http, {"url": url})


def world_posts(world: World, url: str) -> list[dict[str, Any]]:
    """The emulated posts whose link is a spelling of ``url`` (the decoys left out)."""
    spellings = set(url_variants(url))
    return [post for post in bsky_api.posts_for(world, url)
            if post["record"]["facets"][0]["features"][0]["uri"] in spellings]


def url_with_posts(world: World, minimum: int = 1) -> str:
    return next(url for i in range(3000)
                if len(world_posts(world, url := f"https://www.site{i}.com/post/{i}")) >= minimum)


async def test_signals_sum_the_posts_linking_the_url(http: HttpClient, emulator: str, world: World) -> None:
    url = url_with_posts(world, 2)
    posts = world_posts(world, url)

    result = await collect(http, provider_for(emulator), url)

    assert result.signals == {
        "bluesky.posts": len(posts),
        "bluesky.likes": sum(p["likeCount"] for p in posts),
        "bluesky.reposts": sum(p["repostCount"] for p in posts),
        "bluesky.replies": sum(p["replyCount"] for p in posts),
        "bluesky.quotes": sum(p.get("quoteCount", 0) for p in posts),
        "bluesky.first_posted": min(p["indexedAt"] for p in posts)[:19] + "Z",
    }


async def test_near_misses_of_the_fuzzy_url_match_are_dropped(http: HttpClient, emulator: str, world: World) -> None:
    url = next(url for i in range(3000) if not world_posts(world, url := f"https://www.site{i}.com/post/{i}")
               and bsky_api.posts_for(world, url))

    result = await collect(http, provider_for(emulator), url)

    assert result.raw["returned"] > 0 and result.raw["posts"] == [] and result.signals["bluesky.posts"] == 0
    assert result.signals["bluesky.first_posted"] is None and result.signals["bluesky.likes"] == 0


async def test_one_session_serves_every_call_and_concurrent_first_calls_log_in_once(
    http: HttpClient, emulator: str, world: World, paths: Counter[str]
) -> None:
    provider = provider_for(emulator)
    urls = [f"https://www.site{i}.com/post/{i}" for i in range(8)]

    await asyncio.gather(*(collect(http, provider, url) for url in urls))
    await collect(http, provider, urls[0])

    assert (paths[CREATE], paths[REFRESH], paths[SEARCH]) == (1, 0, 9)


async def test_the_access_token_is_refreshed_before_it_expires(
    http: HttpClient, emulator: str, paths: Counter[str]
) -> None:
    offset = [0.0]
    provider = provider_for(emulator, now=lambda: time.time() + offset[0])
    await collect(http, provider, "https://www.site1.com/a")

    offset[0] = bsky_api.ACCESS_LIFETIME - 100  # within the refresh margin of the token's exp claim
    await collect(http, provider, "https://www.site2.com/b")
    offset[0] = 0.0
    await collect(http, provider, "https://www.site3.com/c")

    assert (paths[CREATE], paths[REFRESH], paths[SEARCH]) == (1, 1, 3)
    assert provider.sessions is not None and (provider.sessions.created, provider.sessions.refreshed) == (1, 1)


async def test_short_lived_tokens_are_refreshed_before_each_use(http: HttpClient, emulator: str,
                                                                 paths: Counter[str]) -> None:
    provider = provider_for(emulator, key=f"brief.alice.bsky.social:{bsky_api.DEMO_PASSWORD}")

    for i in range(3):
        await collect(http, provider, f"https://www.site{i}.com/a")

    assert (paths[CREATE], paths[REFRESH], paths[SEARCH]) == (1, 2, 3)


async def test_expired_token_from_the_server_refreshes_and_asks_again(
    http: HttpClient, emulator: str, paths: Counter[str]
) -> None:
    # A clock three hours slow believes a token the server holds expired.
    provider = provider_for(emulator, key=f"stale.bob.bsky.social:{bsky_api.DEMO_PASSWORD}",
                            now=lambda: time.time() - 3 * 3600)

    result = await collect(http, provider, "https://www.site1.com/a")

    assert "bluesky.posts" in result.signals
    assert (paths[CREATE], paths[REFRESH], paths[SEARCH]) == (1, 1, 2)


async def test_a_refresh_token_the_server_refuses_means_a_new_login(
    http: HttpClient, emulator: str, paths: Counter[str]
) -> None:
    provider = provider_for(emulator)
    await collect(http, provider, "https://www.site1.com/a")
    assert provider.sessions is not None and provider.sessions._session is not None
    provider.sessions._session = dataclasses.replace(provider.sessions._session, refresh="x.y.z",
                                                     access_expires=time.time())

    await collect(http, provider, "https://www.site2.com/a")

    assert (paths[CREATE], paths[REFRESH], paths[SEARCH]) == (2, 1, 2)


async def test_a_wrong_app_password_is_an_error_naming_the_key_and_is_not_tried_again(
    http: HttpClient, emulator: str, paths: Counter[str]
) -> None:
    provider = provider_for(emulator, key="alice.bsky.social:wrong-pass-word-here")

    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            await collect(http, provider, "https://www.site1.com/a")
        assert not caught.value.retryable and "LINKMETER_BLUESKY_API_KEY" in caught.value.message
        assert "Invalid identifier or password" in caught.value.message

    assert (paths[CREATE], paths[SEARCH]) == (1, 0)


@pytest.mark.parametrize("key", ["no-colon-here", "alice.bsky.social:", ":password", "  "])
def test_a_malformed_key_disables_the_provider_with_the_format(key: str) -> None:
    reason = provider_for("https://bsky.social", key=key).disabled_reason()

    assert reason is not None and "LINKMETER_BLUESKY_API_KEY" in reason and "handle:app-password" in reason


def test_without_a_key_the_provider_is_disabled_naming_the_variable() -> None:
    assert provider_for("https://bsky.social", key=None).disabled_reason() == \
        "no API key: set LINKMETER_BLUESKY_API_KEY"


def test_credentials_split_at_the_last_colon_and_the_jwt_expiry_is_read_unverified(world: World) -> None:
    assert parse_credentials("did:plc:abc123:abcd-efgh-ijkl-mnop") == \
        parse_credentials(" did:plc:abc123 : abcd-efgh-ijkl-mnop ")
    credentials = parse_credentials("did:plc:abc123:abcd-efgh-ijkl-mnop")
    assert credentials is not None and credentials.identifier == "did:plc:abc123"
    token = bsky_api.make_jwt(world, {"sub": "did:plc:x", "exp": 1_900_000_000}, "at+jwt")
    assert jwt_expiry(token) == 1_900_000_000.0
    assert jwt_expiry("not-a-jwt") is None and jwt_expiry("a.!!!.c") is None


async def serve_search(aiohttp_server: ServerFactory, world: World, search: Handler) -> str:
    """A PDS whose sessions are the emulator's and whose searchPosts is ``search``."""
    app = web.Application()
    app[WORLD] = world
    app.router.add_post("/xrpc/com.atproto.server.createSession", bsky_api.create_session)
    app.router.add_post("/xrpc/com.atproto.server.refreshSession", bsky_api.refresh_session)
    app.router.add_get("/xrpc/app.bsky.feed.searchPosts", search)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def test_the_search_request_carries_q_url_limit_and_the_session_token(
    aiohttp_server: ServerFactory, http: HttpClient, world: World
) -> None:
    seen: list[tuple[dict[str, str], str]] = []

    async def search(request: web.Request) -> web.Response:
        seen.append((dict(request.query), request.headers.get("Authorization", "")))
        return web.json_response(REFERENCE_ANSWER)

    provider = provider_for(await serve_search(aiohttp_server, world, search))
    result = await collect(http, provider, "https://example.com/a/")

    query, authorization = seen[0]
    assert query == {"q": "https://example.com/a/", "url": "https://example.com/a/", "limit": "100"}
    assert provider.sessions is not None and provider.sessions._session is not None
    assert authorization == f"Bearer {provider.sessions._session.access}"
    assert result.signals["bluesky.posts"] == 1


async def test_a_403_on_search_ends_the_call_disabled_with_the_reason_and_is_not_asked_again(
    aiohttp_server: ServerFactory, http: HttpClient, world: World
) -> None:
    searches = Counter[str]()

    async def search(request: web.Request) -> web.Response:
        searches["n"] += 1
        return web.Response(status=403, text=bsky_api.FORBIDDEN_PAGE, content_type="text/html")

    provider = provider_for(await serve_search(aiohttp_server, world, search))
    engine = Engine(Plan.build([provider]), http=http, dns=DnsClient([("127.0.0.1", 53)]))

    first = (await engine.analyze("https://www.site1.com/a")).providers["bluesky"]
    second = (await engine.analyze("https://www.site2.com/b")).providers["bluesky"]

    assert (first.status, first.attempts) == (CallStatus.DISABLED, 1)
    assert "Request forbidden by administrative rules." in first.message
    assert "LINKMETER_BLUESKY_API_KEY" in first.message
    assert second.status is CallStatus.DISABLED and searches["n"] == 1
    with pytest.raises(ProviderDisabled):
        await collect(http, provider, "https://www.site3.com/c")


async def test_429_waits_until_ratelimit_reset(aiohttp_server: ServerFactory, http: HttpClient, world: World) -> None:
    async def search(request: web.Request) -> web.Response:
        return bsky_api.rate_limited_response(30.0)

    provider = provider_for(await serve_search(aiohttp_server, world, search))
    with pytest.raises(ProviderError) as caught:
        await collect(http, provider, "https://example.com/")

    assert caught.value.rate_limited and caught.value.retry_after is not None
    assert 25.0 <= caught.value.retry_after <= 31.0


async def test_5xx_is_retryable_and_a_bad_request_is_not(aiohttp_server: ServerFactory, http: HttpClient,
                                                         world: World) -> None:
    answers = [bsky_api.error_response(502),
               bsky_api.xrpc_error(400, "InvalidRequest", "Error: something about the query")]

    async def search(request: web.Request) -> web.Response:
        return answers.pop(0)

    provider = provider_for(await serve_search(aiohttp_server, world, search))
    with pytest.raises(ProviderError) as server_error:
        await collect(http, provider, "https://example.com/")
    with pytest.raises(ProviderError) as bad_request:
        await collect(http, provider, "https://example.com/")

    assert server_error.value.retryable and server_error.value.status == 502
    assert not bad_request.value.retryable and "InvalidRequest" in bad_request.value.message


def test_reference_answer() -> None:
    posts = matching_posts(REFERENCE_ANSWER, "http://example.com/a/")

    assert summarise(posts) == {"bluesky.posts": 1, "bluesky.likes": 20, "bluesky.reposts": 5,
                                "bluesky.replies": 3, "bluesky.quotes": 1,
                                "bluesky.first_posted": "2024-05-01T10:00:02Z"}
    with pytest.raises(ProviderError):
        matching_posts({"feed": []}, "https://example.com/a")


def test_links_are_found_in_facets_and_record_with_media_embeds_and_posts_count_once() -> None:
    facet = {"features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://ex.com/p"}]}
    media = {"$type": "app.bsky.embed.recordWithMedia",
             "media": {"$type": "app.bsky.embed.external", "external": {"uri": "http://ex.com/p/"}}}
    answer = {"posts": [
        {"uri": "at://a/1", "record": {"facets": [facet]}, "likeCount": 2},
        {"uri": "at://a/1", "record": {"facets": [facet]}, "likeCount": 2},
        {"uri": "at://a/2", "record": {"embed": media}, "likeCount": None, "repostCount": 4},
        {"uri": "at://a/3", "record": {"text": "https://ex.com/p without a facet"}, "likeCount": 9},
    ]}

    assert summarise(matching_posts(answer, "https://ex.com/p"))["bluesky.posts"] == 2
    assert summarise(matching_posts(answer, "https://ex.com/p"))["bluesky.likes"] == 2


def test_engagement_totals_likes_reposts_replies_and_quotes() -> None:
    assert TERMS["bluesky"] == ("bluesky.likes", "bluesky.reposts", "bluesky.replies", "bluesky.quotes")
