"""The Hacker News provider against the emulated Algolia API and the reference payloads."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from linkmeter.emulator.apis import hackernews as hn_api
from linkmeter.emulator.apis.hackernews import Story
from linkmeter.emulator.world import World
from linkmeter.engine.http import HttpClient
from linkmeter.engine.provider import Collected, ProviderConfig
from linkmeter.engine.urls import url_variants
from linkmeter.providers.hackernews import (
    HackerNewsProvider,
    match_key,
    matching_hits,
    search_query,
    summarise,
)
from tests.providers.conftest import Answer, EmulateApi, StubApi, answering, collect_from, raises_provider_error

SEED = 7
SEARCH = "/api/v1/search"

# The official example response of the HN Search API page (REFERENCE.md section 1).
REFERENCE_RESPONSE: dict[str, Any] = {
    "hits": [{"title": "Y Combinator", "url": "http://ycombinator.com", "author": "pg", "points": 57,
              "story_text": None, "comment_text": None, "_tags": ["story"], "num_comments": 2, "objectID": "1",
              "_highlightResult": {"title": {"value": "Y Combinator", "matchLevel": "none",
                                             "matchedWords": []}}}],
    "page": 0, "nbHits": 11, "nbPages": 1, "hitsPerPage": 20, "processingTimeMS": 1, "query": "pg",
    "params": "query=pg",
}


@pytest.fixture
async def emulator(emulated_api: EmulateApi) -> str:
    return (await emulated_api(hn_api)).base_url


async def collect(http: HttpClient, base_url: str, signals: dict[str, Any]) -> Collected:
    return await collect_from(HackerNewsProvider(ProviderConfig(base_url=base_url)), http, signals)


def candidate_urls() -> Iterator[str]:
    for i in range(5000):
        yield f"https://www.site{i}.com/post/{i}"


def world_stories(world: World, url: str) -> list[Story]:
    found: dict[str, Story] = {}
    for variant in url_variants(url):
        for story in hn_api.stories(world, variant):
            found.setdefault(story.object_id, story)
    return list(found.values())


def find_url(world: World, predicate: Callable[[list[Story]], bool]) -> str:
    return next(url for url in candidate_urls() if predicate(world_stories(world, url)))


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_signals_sum_the_worlds_stories_across_scheme_and_slash_spellings(
    http: HttpClient, emulator: str, world: World
) -> None:
    # Stories submitted under more than one spelling (http/https, with/without trailing slash).
    url = find_url(world, lambda stories: len({s.url for s in stories}) >= 2)
    stories = world_stories(world, url)
    top = max(stories, key=lambda s: (s.points or 0, -s.created_at_i))

    result = await collect(http, emulator, {"url": url})

    assert result.signals == {
        "hackernews.stories": len(stories),
        "hackernews.points": sum(s.points or 0 for s in stories),
        "hackernews.max_points": top.points or 0,
        "hackernews.comments": sum(s.num_comments or 0 for s in stories),
        "hackernews.first_posted": iso(min(s.created_at_i for s in stories)),
        "hackernews.top_story_url": f"https://news.ycombinator.com/item?id={top.object_id}",
    }
    assert result.raw["nbHits"] > len(stories)  # the decoys came back too, and were dropped


async def test_decoys_sharing_the_prefix_are_not_counted(http: HttpClient, emulator: str, world: World) -> None:
    url = find_url(world, lambda stories: not stories)

    result = await collect(http, emulator, {"url": url})

    hit_urls = [hit["url"] for hit in result.raw["hits"]]
    assert any(hit_url.startswith(url) for hit_url in hit_urls), "decoys share the URL's prefix"
    assert all(match_key(hit_url) != match_key(url) for hit_url in hit_urls)
    assert result.signals == {
        "hackernews.stories": 0,
        "hackernews.points": 0,
        "hackernews.max_points": None,
        "hackernews.comments": 0,
        "hackernews.first_posted": None,
        "hackernews.top_story_url": None,
    }


async def test_null_points_and_comments_count_as_zero(http: HttpClient, emulator: str, world: World) -> None:
    url = find_url(world, lambda stories: any(s.points is None for s in stories))
    stories = world_stories(world, url)

    result = await collect(http, emulator, {"url": url})

    assert any(hit["points"] is None for hit in result.raw["hits"])
    assert result.signals["hackernews.stories"] == len(stories)
    assert result.signals["hackernews.points"] == sum(s.points or 0 for s in stories)
    assert result.signals["hackernews.comments"] == sum(s.num_comments or 0 for s in stories)


async def test_the_canonical_url_is_searched_when_the_page_gave_one(
    http: HttpClient, emulator: str, world: World
) -> None:
    canonical = find_url(world, lambda stories: len(stories) >= 1)
    provider = HackerNewsProvider()
    signals = {"url": "https://elsewhere.example/x", "page.canonical_url": canonical}

    result = await collect(http, emulator, signals)

    assert provider.key(signals) == canonical
    assert provider.key({"url": "https://elsewhere.example/x"}) == "https://elsewhere.example/x"
    assert result.signals["hackernews.stories"] == len(world_stories(world, canonical))


async def test_the_request_is_algolias_url_search(stub_api: StubApi, http: HttpClient) -> None:
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        return web.json_response({"hits": [], "nbHits": 0})

    await collect(http, await stub_api({SEARCH: handler}), {"url": "https://example.com/post/"})

    assert seen == [{"query": "example.com/post", "restrictSearchableAttributes": "url", "tags": "story",
                     "hitsPerPage": "100"}]


def test_http_https_and_a_trailing_slash_are_one_url() -> None:
    assert match_key("http://Example.com/a/") == match_key("https://example.com/a") == "example.com/a"
    assert match_key("https://example.com") == match_key("http://example.com/")
    assert match_key("https://example.com/a?x=1") != match_key("https://example.com/a")
    assert match_key("https://www.example.com/a") != match_key("https://example.com/a")
    assert match_key("not a url") is None
    assert search_query("https://example.com/") == "example.com"


def test_reference_payload() -> None:
    hits = matching_hits(REFERENCE_RESPONSE, "https://ycombinator.com/")

    assert summarise(hits) == {
        "hackernews.stories": 1,
        "hackernews.points": 57,
        "hackernews.max_points": 57,
        "hackernews.comments": 2,
        "hackernews.first_posted": None,  # the trimmed example has no created_at_i
        "hackernews.top_story_url": "https://news.ycombinator.com/item?id=1",
    }


def test_hits_without_a_valid_url_and_repeated_ids_are_skipped() -> None:
    payload = {"hits": [
        {"objectID": "1", "url": None, "points": 5},
        {"objectID": "2", "points": 5},
        {"objectID": "3", "url": "javascript:alert(1)", "points": 5},
        {"objectID": "4", "url": "https://ex.com/a", "points": 3, "num_comments": None, "created_at_i": 100},
        {"objectID": "4", "url": "https://ex.com/a", "points": 3, "num_comments": None, "created_at_i": 100},
        {"objectID": "5", "url": "https://ex.com/a/", "points": None, "num_comments": 4, "created_at_i": 50},
    ]}

    signals = summarise(matching_hits(payload, "https://ex.com/a"))

    assert signals["hackernews.stories"] == 2
    assert signals["hackernews.points"] == 3
    assert signals["hackernews.comments"] == 4
    assert signals["hackernews.first_posted"] == "1970-01-01T00:00:50Z"
    assert signals["hackernews.top_story_url"] == "https://news.ycombinator.com/item?id=4"


@pytest.mark.parametrize(("answer", "expected"), [
    pytest.param(lambda: hn_api.rate_limited_response(7.0),
                 {"rate_limited": True, "retryable": True, "retry_after": 7.0},
                 id="429 is a rate-limited error with retry-after"),
    pytest.param(lambda: web.json_response({"message": "Internal error", "status": 503}, status=503),
                 {"retryable": True, "status": 503, "rate_limited": False}, id="5xx is retryable"),
    pytest.param(lambda: web.Response(body=b"<html>oops</html>", content_type="application/json"),
                 {"retryable": False}, id="invalid json is not retryable"),
    pytest.param(lambda: web.Response(body=b'{"message": "no hits here"}', content_type="application/json"),
                 {"retryable": False}, id="unexpected json is not retryable"),
])
async def test_an_upstream_failure_is_the_right_provider_error(
    answer: Answer, expected: dict[str, object], stub_api: StubApi, http: HttpClient
) -> None:
    base_url = await stub_api({SEARCH: answering(answer)})
    await raises_provider_error(collect(http, base_url, {"url": "https://example.com/"}), **expected)
