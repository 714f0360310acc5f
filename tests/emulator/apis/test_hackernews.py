"""The emulated Algolia HN Search API: envelope, hits, decoys, paging and tag filters."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from linkmeter.emulator.apis import hackernews as hn_api
from linkmeter.emulator.world import World

API = hn_api
SEED = 3
HIT_FIELDS = {"_highlightResult", "_tags", "author", "children", "comment_text", "created_at", "created_at_i",
              "num_comments", "objectID", "parent_id", "points", "story_id", "story_text", "title", "updated_at",
              "url"}


def url_with_stories(world: World) -> str:
    return next(url for i in range(5000) if hn_api.stories_for(world, url := f"https://www.site{i}.com/p/{i}"))


async def search(client: TestClient[Any, Any], path: str = "/api/v1/search", **params: str) -> Any:
    response = await client.get(path, params=params)
    assert response.status == 200
    return await response.json()


async def test_the_envelope_and_hits_have_algolias_fields(client: TestClient[Any, Any], world: World) -> None:
    url = url_with_stories(world)
    query = url.removeprefix("https://")

    body = await search(client, query=query, restrictSearchableAttributes="url", tags="story", hitsPerPage="100")

    assert {"hits", "page", "nbHits", "nbPages", "hitsPerPage", "processingTimeMS", "query", "params",
            "exhaustive", "exhaustiveNbHits", "exhaustiveTypo"} <= body.keys()
    assert body["query"] == query and body["page"] == 0 and body["hitsPerPage"] == 100
    assert body["params"].startswith("query=") and "hitsPerPage=100" in body["params"]
    assert body["nbHits"] == len(body["hits"]) and body["nbPages"] == 1
    for hit in body["hits"]:
        assert set(hit) == HIT_FIELDS
        assert isinstance(hit["objectID"], str) and hit["story_id"] == int(hit["objectID"])
        assert hit["created_at"].endswith(".000Z") and isinstance(hit["created_at_i"], int)
        assert "story" in hit["_tags"]
        assert "<em>" in hit["_highlightResult"]["url"]["value"]


async def test_the_worlds_stories_come_with_prefix_decoys(client: TestClient[Any, Any], world: World) -> None:
    url = url_with_stories(world)
    expected = {s.object_id: s for s in hn_api.stories_for(world, url)}

    body = await search(client, query=url.removeprefix("https://"), hitsPerPage="100")

    real = {hit["objectID"]: hit for hit in body["hits"] if hit["objectID"] in expected}
    assert real.keys() == expected.keys()
    for object_id, hit in real.items():
        story = expected[object_id]
        assert (hit["url"], hit["points"], hit["num_comments"]) == (story.url, story.points, story.num_comments)
    decoys = [hit["url"] for hit in body["hits"] if hit["objectID"] not in expected]
    assert set(decoys) == set(hn_api.decoy_urls(url))
    assert all(decoy.startswith(url) for decoy in decoys)


async def test_paging(client: TestClient[Any, Any]) -> None:
    everything = await search(client, query="example.org/a", hitsPerPage="100")

    second = await search(client, query="example.org/a", hitsPerPage="1", page="1")

    assert second["nbPages"] == everything["nbHits"] and second["nbHits"] == everything["nbHits"]
    assert second["hits"] == everything["hits"][1:2]


async def test_search_by_date_is_newest_first(client: TestClient[Any, Any]) -> None:
    body = await search(client, "/api/v1/search_by_date", query="example.org/a")

    times = [hit["created_at_i"] for hit in body["hits"]]
    assert len(times) >= 2 and times == sorted(times, reverse=True)


async def test_tag_filters(client: TestClient[Any, Any]) -> None:
    everything = await search(client, query="example.org/a")
    author = everything["hits"][0]["author"]

    comments = await search(client, query="example.org/a", tags="comment")
    by_author = await search(client, query="example.org/a", tags=f"story,author_{author}")
    either = await search(client, query="example.org/a", tags="(comment,story)")

    assert comments["hits"] == [] and comments["nbHits"] == 0
    assert by_author["hits"] and all(hit["author"] == author for hit in by_author["hits"])
    assert either["nbHits"] == everything["nbHits"]


async def test_a_query_that_names_no_url_finds_nothing(client: TestClient[Any, Any]) -> None:
    body = await search(client, query="")

    assert body["hits"] == [] and body["nbHits"] == 0 and body["nbPages"] == 0


async def test_bad_parameters_get_algolias_error_body(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/v1/search", params={"query": "x.com", "hitsPerPage": "lots"})

    assert response.status == 400
    body = await response.json()
    assert body["status"] == 400 and body["message"]


def test_rate_limited_response_is_algolias_json() -> None:
    response = hn_api.rate_limited_response(2.2)

    assert response.status == 429
    assert response.headers["Retry-After"] == "3"
    assert response.content_type == "application/json"
    assert response.text is not None and '"status": 429' in response.text and '"message"' in response.text
