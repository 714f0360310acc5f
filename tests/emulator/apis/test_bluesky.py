"""The emulated Bluesky PDS: createSession, refreshSession, signed tokens and searchPosts' refusals and shape."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from aiohttp.test_utils import TestClient

from linkmeter.emulator.apis import bluesky as bsky_api
from linkmeter.emulator.world import World

API = bsky_api
SEED = 4
POST_FIELDS = {"uri", "cid", "author", "record", "indexedAt"}  # what a postView requires (REFERENCE §11a)


async def login(client: TestClient[Any, Any], handle: str = "alice.bsky.social") -> dict[str, Any]:
    response = await client.post("/xrpc/com.atproto.server.createSession",
                                 json={"identifier": handle, "password": bsky_api.DEMO_PASSWORD})
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return result


async def search(client: TestClient[Any, Any], token: str | None, **params: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    response = await client.get("/xrpc/app.bsky.feed.searchPosts", params=params, headers=headers)
    body = await response.json() if response.content_type == "application/json" else await response.text()
    return response.status, body


async def test_create_session_answers_jwts_whose_access_token_lives_about_two_hours(
    client: TestClient[Any, Any]
) -> None:
    body = await login(client)

    assert {"did", "handle", "accessJwt", "refreshJwt", "active"} <= body.keys()
    assert body["did"].startswith("did:plc:") and body["handle"] == "alice.bsky.social"
    access, refresh = claims(body["accessJwt"]), claims(body["refreshJwt"])
    assert abs(access["exp"] - time.time() - bsky_api.ACCESS_LIFETIME) < 60
    assert access["scope"] == "com.atproto.appPass" and refresh["scope"] == "com.atproto.refresh"
    assert refresh["exp"] > access["exp"]


async def test_a_wrong_password_is_401_authentication_required(client: TestClient[Any, Any]) -> None:
    response = await client.post("/xrpc/com.atproto.server.createSession",
                                 json={"identifier": "alice.bsky.social", "password": "nope"})

    assert response.status == 401
    assert await response.json() == {"error": "AuthenticationRequired", "message": "Invalid identifier or password"}


async def test_refresh_session_takes_the_refresh_token_only(client: TestClient[Any, Any]) -> None:
    session = await login(client)
    url = "/xrpc/com.atproto.server.refreshSession"

    renewed = await client.post(url, headers={"Authorization": f"Bearer {session['refreshJwt']}"})
    wrong_type = await client.post(url, headers={"Authorization": f"Bearer {session['accessJwt']}"})
    forged = await client.post(url, headers={"Authorization": "Bearer a.b.c"})

    assert renewed.status == 200 and {"accessJwt", "refreshJwt"} <= (await renewed.json()).keys()
    assert (wrong_type.status, (await wrong_type.json())["error"]) == (400, "InvalidToken")
    assert (forged.status, (await forged.json())["error"]) == (400, "InvalidToken")


async def test_search_without_a_session_is_the_403_page_of_administrative_rules(
    client: TestClient[Any, Any]
) -> None:
    status, body = await search(client, None, q="https://www.site1.com/a", url="https://www.site1.com/a")

    assert status == 403 and "Request forbidden by administrative rules." in body


async def test_an_expired_access_token_is_400_expired_token(client: TestClient[Any, Any]) -> None:
    session = await login(client, "stale.bob.bsky.social")

    status, body = await search(client, session["accessJwt"], q="x")

    assert claims(session["accessJwt"])["exp"] < time.time()
    assert (status, body) == (400, {"error": "ExpiredToken", "message": "Token has expired"})


async def test_brief_handles_get_short_lived_tokens(client: TestClient[Any, Any]) -> None:
    session = await login(client, "brief.carol.bsky.social")

    assert claims(session["accessJwt"])["exp"] - time.time() <= bsky_api.BRIEF_LIFETIME


async def test_search_validates_q_and_limit(client: TestClient[Any, Any]) -> None:
    token = (await login(client))["accessJwt"]

    no_q = await search(client, token, url="https://www.site1.com/a")
    big = await search(client, token, q="x", limit="101")

    assert no_q[0] == 400 and no_q[1]["error"] == "InvalidRequest"
    assert big[0] == 400 and big[1]["error"] == "InvalidRequest"


async def test_posts_are_post_views_linking_the_url(client: TestClient[Any, Any], world: World) -> None:
    url = next(url for i in range(3000) if len(bsky_api.posts_for(world, url := f"https://www.site{i}.com/p")) > 2)
    token = (await login(client))["accessJwt"]

    status, body = await search(client, token, q=url, url=url, limit="100")

    assert status == 200 and body["hitsTotal"] == len(body["posts"]) == len(bsky_api.posts_for(world, url))
    for post in body["posts"]:
        assert post.keys() >= POST_FIELDS and post["uri"].startswith("at://did:plc:")
        assert post["indexedAt"].endswith("Z") and isinstance(post["likeCount"], int)
        link = post["record"]["facets"][0]["features"][0]
        start, end = (post["record"]["facets"][0]["index"][k] for k in ("byteStart", "byteEnd"))
        assert link["$type"] == "app.bsky.richtext.facet#link"
        assert link["uri"].split("://", 1)[1].startswith(post["record"]["text"].encode()[start:end].decode())
    assert [p["indexedAt"] for p in body["posts"]] == sorted((p["indexedAt"] for p in body["posts"]), reverse=True)


async def test_a_limit_below_the_hits_gives_a_cursor(client: TestClient[Any, Any], world: World) -> None:
    url = next(url for i in range(3000) if len(bsky_api.posts_for(world, url := f"https://www.site{i}.com/p")) > 2)
    token = (await login(client))["accessJwt"]

    _, body = await search(client, token, q=url, url=url, limit="1")

    assert len(body["posts"]) == 1 and body["cursor"] == "1" and body["hitsTotal"] > 1


def test_spam_is_almost_never_posted(world: World) -> None:
    def linked(url: str) -> bool:
        return any(not p["record"]["facets"][0]["features"][0]["uri"].endswith("/comments")
                   for p in bsky_api.posts_for(world, url))

    assert sum(linked(f"https://spam{i}.example/p") for i in range(300)) < 15
    assert sum(linked(f"https://www.site{i}.com/p") for i in range(300)) > 25


def test_the_knobs_answers_are_xrpc_shaped() -> None:
    limited = bsky_api.rate_limited_response(12.0)
    failed = bsky_api.error_response(503)

    assert limited.status == 429 and int(limited.headers["RateLimit-Reset"]) >= time.time() + 11
    assert json.loads(limited.text or "")["error"] == "RateLimitExceeded"
    assert (failed.status, json.loads(failed.text or "")["error"]) == (503, "InternalServerError")
