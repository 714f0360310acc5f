"""The Reddit provider against the emulated /api/info and the reference payload."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from linkmeter.emulator.apis import reddit as reddit_api
from linkmeter.emulator.apis.reddit import RedditPost
from linkmeter.emulator.world import World
from linkmeter.engine.http import HttpClient
from linkmeter.engine.provider import Collected, ProviderConfig, ProviderError
from linkmeter.engine.urls import url_variants
from linkmeter.providers.reddit import (
    OAUTH_RATE,
    UNAUTHENTICATED_RATE,
    USER_AGENT,
    RedditProvider,
    merge_listings,
    summarise,
)
from tests.providers.conftest import (
    Answer,
    EmulateApi,
    Handler,
    StubApi,
    answering,
    collect_from,
    raises_provider_error,
)

SEED = 11

# The reddit wiki "API: info.json" example (REFERENCE.md section 2).
REFERENCE_LISTING: dict[str, Any] = {"kind": "Listing", "data": {"modhash": "abc", "children": [{"kind": "t3", "data": {
    "domain": "blog.reddit.com", "subreddit": "blog", "id": "i0jf9", "author": "hueypriest", "score": 1520,
    "over_18": False, "subreddit_id": "t5_2qh49", "downs": 2381, "is_self": False,
    "permalink": "/r/blog/comments/i0jf9/reddit_levels_up_with_three_new_programmers/",
    "name": "t3_i0jf9", "created": 1308164715.0, "url": "http://blog.reddit.com/2011/06/x",
    "title": "reddit Levels Up with Three New Programmers", "created_utc": 1308164715.0, "num_comments": 533}}],
    "after": None, "before": None}}


@pytest.fixture
async def emulator(emulated_api: EmulateApi) -> str:
    return (await emulated_api(reddit_api)).base_url


def info(handler: Handler) -> dict[str, Handler]:
    """Both paths of /api/info: unauthenticated (.json) and OAuth."""
    return {"/api/info.json": handler, "/api/info": handler}


async def collect(http: HttpClient, config: ProviderConfig, signals: dict[str, Any]) -> Collected:
    return await collect_from(RedditProvider(config), http, signals)


def posts_by_variant(world: World, url: str) -> dict[str, list[RedditPost]]:
    return {variant: reddit_api.posts(world, variant) for variant in url_variants(url)}


def find_url(world: World, predicate: Callable[[dict[str, list[RedditPost]]], bool]) -> str:
    for i in range(5000):
        url = f"https://www.site{i}.com/story/{i}"
        if predicate(posts_by_variant(world, url)):
            return url
    raise AssertionError("no such URL in this world")


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_posts_of_every_variant_are_merged(http: HttpClient, emulator: str, world: World) -> None:
    url = find_url(world, lambda by_variant: sum(1 for posts in by_variant.values() if posts) >= 2)
    posts = [post for found in posts_by_variant(world, url).values() for post in found]
    top = max(posts, key=lambda p: (p.score, -p.created_utc))

    result = await collect(http, ProviderConfig(base_url=emulator), {"url": url})

    assert result.signals == {
        "reddit.posts": len(posts),
        "reddit.score": sum(p.score for p in posts),
        "reddit.comments": sum(p.num_comments for p in posts),
        "reddit.subreddits": sorted({p.subreddit for p in posts}),
        "reddit.first_posted": iso(min(p.created_utc for p in posts)),
        "reddit.top_permalink": "https://www.reddit.com" + reddit_api.post_data(top)["permalink"],
    }
    assert len(result.raw) == len(url_variants(url))


async def test_a_post_seen_under_several_variants_counts_once(
    stub_api: StubApi, http: HttpClient
) -> None:
    post = RedditPost(id="abc12", url="https://ex.com/a", subreddit="python", title="t", author="u",
                      score=40, num_comments=9, created_utc=1_600_000_000.0)
    other = RedditPost(id="zzz99", url="http://ex.com/a/", subreddit="news", title="t", author="v",
                       score=2, num_comments=1, created_utc=1_700_000_000.0)
    asked: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        asked.append(request.query["url"])
        posts = [post, other] if request.query["url"].startswith("http://") else [post]
        return web.json_response(reddit_api.listing(posts))

    result = await collect(http, ProviderConfig(base_url=await stub_api(info(handler))),
                           {"url": "https://ex.com/a"})

    assert asked == url_variants("https://ex.com/a")
    assert result.signals["reddit.posts"] == 2
    assert result.signals["reddit.score"] == 42 and result.signals["reddit.comments"] == 10
    assert result.signals["reddit.subreddits"] == ["news", "python"]
    assert result.signals["reddit.first_posted"] == iso(1_600_000_000.0)
    assert result.signals["reddit.top_permalink"].startswith("https://www.reddit.com/r/python/comments/abc12/")


async def test_a_url_never_posted_gives_zeros(http: HttpClient, emulator: str, world: World) -> None:
    url = find_url(world, lambda by_variant: not any(by_variant.values()))

    result = await collect(http, ProviderConfig(base_url=emulator), {"url": url})

    assert result.signals == {"reddit.posts": 0, "reddit.score": 0, "reddit.comments": 0,
                              "reddit.subreddits": [], "reddit.first_posted": None, "reddit.top_permalink": None}


async def test_requests_carry_reddits_user_agent_form(stub_api: StubApi, http: HttpClient) -> None:
    seen: list[tuple[str, str, dict[str, str]]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("User-Agent", ""), dict(request.query)))
        return web.json_response(reddit_api.listing([]))

    await collect(http, ProviderConfig(base_url=await stub_api(info(handler))),
                  {"url": "https://ex.com/", "page.canonical_url": "https://ex.com/canonical"})

    assert {path for path, _, _ in seen} == {"/api/info.json"}
    assert {agent for _, agent, _ in seen} == {USER_AGENT}
    assert USER_AGENT.startswith("python:linkmeter:") and "(by /u/" in USER_AGENT
    assert [query["url"] for _, _, query in seen] == url_variants("https://ex.com/canonical")
    assert all(query["raw_json"] == "1" for _, _, query in seen)


async def test_with_an_oauth_token_the_oauth_endpoint_and_bearer_header_are_used(
    http: HttpClient, emulator: str, world: World
) -> None:
    url = find_url(world, lambda by_variant: any(by_variant.values()))

    result = await collect(http, ProviderConfig(base_url=emulator, api_key="tok3n"), {"url": url})
    provider = RedditProvider(ProviderConfig(base_url=RedditProvider.default_base_url, api_key="tok3n"))
    endpoint, headers = provider.endpoint(provider.config)

    assert result.signals["reddit.posts"] == sum(len(p) for p in posts_by_variant(world, url).values())
    assert endpoint == "https://oauth.reddit.com/api/info"
    assert headers["Authorization"] == "bearer tok3n"
    assert provider.policy.rate_per_sec == OAUTH_RATE
    assert RedditProvider().policy.rate_per_sec == UNAUTHENTICATED_RATE < OAUTH_RATE


async def test_the_variants_are_asked_at_once(stub_api: StubApi, http: HttpClient) -> None:
    variants = url_variants("https://e.com/a")
    arrived: list[str] = []
    all_arrived = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        arrived.append(request.query["url"])
        if len(arrived) == len(variants):
            all_arrived.set()
        await asyncio.wait_for(all_arrived.wait(), 5)  # answers only once every variant is being asked
        return web.json_response({"kind": "Listing", "data": {"children": []}})

    collected = await collect(http, ProviderConfig(base_url=await stub_api(info(handler))),
                              {"url": "https://e.com/a"})
    assert sorted(arrived) == sorted(variants) and len(variants) > 1
    assert collected.signals["reddit.posts"] == 0


async def test_a_429_on_one_variant_is_the_error_reported(stub_api: StubApi, http: HttpClient) -> None:
    first = url_variants("https://e.com/a")[0]

    async def handler(request: web.Request) -> web.Response:
        if request.query["url"] == first:
            return web.Response(status=502, text="bad gateway")
        if request.query["url"].endswith("/"):
            return reddit_api.rate_limited_response(7.0)
        return web.json_response({"kind": "Listing", "data": {"children": []}})

    with pytest.raises(ProviderError) as caught:
        await collect(http, ProviderConfig(base_url=await stub_api(info(handler))), {"url": "https://e.com/a"})
    assert caught.value.rate_limited and caught.value.retry_after == 7.0


def rate_limited_with_retry_after() -> web.Response:
    response = reddit_api.rate_limited_response(42.0)
    response.headers["Retry-After"] = "5"
    return response


@pytest.mark.parametrize(("answer", "expected"), [
    pytest.param(lambda: reddit_api.rate_limited_response(42.0),
                 {"rate_limited": True, "retryable": True, "retry_after": 42.0},
                 id="429 waits for the ratelimit reset"),
    pytest.param(rate_limited_with_retry_after, {"retry_after": 5.0}, id="429 prefers retry-after when sent"),
    pytest.param(lambda: web.Response(status=502, text="<html>Bad Gateway</html>", content_type="text/html"),
                 {"retryable": True, "status": 502}, id="5xx is retryable"),
    pytest.param(lambda: web.Response(body=b"<!doctype html><p>blocked</p>", content_type="application/json"),
                 {"retryable": False}, id="invalid json is not retryable"),
    pytest.param(lambda: web.Response(body=b'{"kind": "t1", "data": {}}', content_type="application/json"),
                 {"retryable": False}, id="unexpected json is not retryable"),
])
async def test_an_upstream_failure_is_the_right_provider_error(
    answer: Answer, expected: dict[str, object], stub_api: StubApi, http: HttpClient
) -> None:
    base_url = await stub_api(info(answering(answer)))
    await raises_provider_error(collect(http, ProviderConfig(base_url=base_url), {"url": "https://e.com/"}), **expected)


def test_reference_payload() -> None:
    assert summarise(merge_listings([REFERENCE_LISTING])) == {
        "reddit.posts": 1,
        "reddit.score": 1520,
        "reddit.comments": 533,
        "reddit.subreddits": ["blog"],
        "reddit.first_posted": "2011-06-15T19:05:15Z",
        "reddit.top_permalink":
            "https://www.reddit.com/r/blog/comments/i0jf9/reddit_levels_up_with_three_new_programmers/",
    }


def test_an_empty_listing_and_non_post_children() -> None:
    empty = {"kind": "Listing", "data": {"modhash": "", "dist": 0, "children": [], "after": None, "before": None}}
    comment = {"kind": "Listing", "data": {"children": [{"kind": "t1", "data": {"id": "c1", "score": 99}}]}}

    assert merge_listings([empty, comment]) == []
