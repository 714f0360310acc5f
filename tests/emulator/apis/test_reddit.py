"""The emulated Reddit /api/info: Listing envelope, exact-URL lookup, auth, agents and rate-limit headers."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from linkmeter.emulator.apis import reddit as reddit_api
from linkmeter.emulator.world import World
from linkmeter.engine.urls import url_variants

API = reddit_api
SEED = 5
AGENT = {"User-Agent": "python:linkmeter-tests:0.1 (by /u/linkmeter)"}
RATE_HEADERS = ("X-Ratelimit-Used", "X-Ratelimit-Remaining", "X-Ratelimit-Reset")
T3_FIELDS = {"domain", "subreddit", "id", "author", "score", "over_18", "subreddit_id", "downs", "is_self",
             "permalink", "name", "created", "url", "title", "created_utc", "num_comments", "ups"}


def url_posted_under_two_variants(world: World) -> str:
    for i in range(5000):
        url = f"https://www.site{i}.com/a/{i}"
        if sum(1 for variant in url_variants(url) if reddit_api.posts(world, variant)) >= 2:
            return url
    raise AssertionError("no such URL in this world")


async def test_the_listing_envelope_and_t3_fields(client: TestClient[Any, Any], world: World) -> None:
    url = url_posted_under_two_variants(world)
    variant = next(v for v in url_variants(url) if reddit_api.posts(world, v))
    posts = reddit_api.posts(world, variant)

    response = await client.get("/api/info.json", params={"url": variant}, headers=AGENT)

    assert response.status == 200
    body = await response.json()
    assert body["kind"] == "Listing"
    assert body["data"]["after"] is None and body["data"]["before"] is None
    assert body["data"]["dist"] == len(posts) and isinstance(body["data"]["modhash"], str)
    children = body["data"]["children"]
    assert [child["kind"] for child in children] == ["t3"] * len(posts)
    for child, post in zip(children, posts, strict=True):
        data = child["data"]
        assert data.keys() >= T3_FIELDS
        assert (data["id"], data["name"], data["url"], data["score"], data["num_comments"]) == (
            post.id, f"t3_{post.id}", variant, post.score, post.num_comments)
        assert isinstance(data["created_utc"], float) and data["created_utc"] == post.created_utc
        assert data["permalink"].startswith(f"/r/{post.subreddit}/comments/{post.id}/")
        assert data["subreddit_id"].startswith("t5_")
    assert all(name in response.headers for name in RATE_HEADERS)


async def test_each_variant_is_looked_up_exactly(client: TestClient[Any, Any], world: World) -> None:
    url = url_posted_under_two_variants(world)
    ids: dict[str, set[str]] = {}

    for variant in url_variants(url):
        response = await client.get("/api/info.json", params={"url": variant}, headers=AGENT)
        body = await response.json()
        ids[variant] = {child["data"]["id"] for child in body["data"]["children"]}

    assert ids == {variant: {p.id for p in reddit_api.posts(world, variant)} for variant in url_variants(url)}
    assert sum(1 for found in ids.values() if found) >= 2


async def test_a_url_never_posted_is_an_empty_listing(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/info.json", params={"url": "https://unregistered-x.com/"}, headers=AGENT)
    missing = await client.get("/api/info.json", headers=AGENT)

    for answer in (response, missing):
        body = await answer.json()
        assert body["data"]["children"] == [] and body["data"]["dist"] == 0
        assert body["data"]["after"] is None and body["data"]["before"] is None


async def test_generic_user_agents_are_throttled(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/info.json", params={"url": "https://ex.com/"},
                                headers={"User-Agent": "Python/3.12 aiohttp/3.10"})

    assert response.status == 429
    assert await response.json() == {"message": "Too Many Requests", "error": 429}
    assert response.headers["X-Ratelimit-Remaining"] == "0.0"


async def test_the_oauth_path_needs_a_bearer_token(client: TestClient[Any, Any]) -> None:
    anonymous = await client.get("/api/info", params={"url": "https://ex.com/"}, headers=AGENT)
    malformed = await client.get("/api/info", params={"url": "https://ex.com/"},
                                 headers={**AGENT, "Authorization": "Basic abc"})
    bearer = await client.get("/api/info", params={"url": "https://ex.com/"},
                              headers={**AGENT, "Authorization": "bearer t0ken"})
    plain = await client.get("/api/info.json", params={"url": "https://ex.com/"}, headers=AGENT)

    assert anonymous.status == malformed.status == 401
    assert await anonymous.json() == {"message": "Unauthorized", "error": 401}
    assert all(name in anonymous.headers for name in RATE_HEADERS)
    assert bearer.status == 200
    assert float(bearer.headers["X-Ratelimit-Remaining"]) > float(plain.headers["X-Ratelimit-Remaining"])


def test_rate_limited_response_shape() -> None:
    response = reddit_api.rate_limited_response(30.2)

    assert response.status == 429
    assert response.text is not None and '"message": "Too Many Requests"' in response.text
    assert '"error": 429' in response.text
    assert response.headers["X-Ratelimit-Reset"] == "31"
    assert response.headers["X-Ratelimit-Remaining"] == "0.0"
    assert "Retry-After" not in response.headers


def test_error_response_shape() -> None:
    response = reddit_api.error_response(503)

    assert response.status == 503
    assert response.text is not None and '"error": 503' in response.text
    assert all(name in response.headers for name in RATE_HEADERS)
