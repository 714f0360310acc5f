"""The emulated Mastodon instances: Status and PreviewCard shapes, string history, rate headers, odd instances."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from linkmeter.emulator.apis import mastodon as masto_api
from linkmeter.emulator.world import World

API = masto_api
SEED = 8
STATUS_FIELDS = {"id", "uri", "url", "created_at", "content", "reblogs_count", "favourites_count", "replies_count",
                 "account", "card", "visibility", "media_attachments", "mentions", "tags", "emojis", "reblog"}


def searchable_instance(world: World) -> str:
    return next(host for i in range(50) if masto_api.searchable(world, host := f"i{i}.example"))


def url_with_statuses(world: World, instance: str) -> str:
    return next(url for i in range(5000)
                if len(masto_api.statuses_on(world, instance, url := f"https://www.site{i}.com/p")) >= 2)


async def test_search_answers_statuses_in_mastodons_shape(client: TestClient[Any, Any], world: World) -> None:
    instance = searchable_instance(world)
    url = url_with_statuses(world, instance)

    response = await client.get(f"/{instance}/api/v2/search", params={"q": url, "type": "statuses", "limit": "40"})
    body = await response.json()

    assert response.status == 200 and set(body) == {"accounts", "statuses", "hashtags"}
    assert body["statuses"] and body["accounts"] == body["hashtags"] == []
    for status in body["statuses"]:
        assert status.keys() >= STATUS_FIELDS
        assert all(isinstance(status[k], int) for k in ("reblogs_count", "favourites_count", "replies_count"))
        assert '<a href="http' in status["content"] and status["uri"].startswith("https://")
        datetime.fromisoformat(status["created_at"])


async def test_statuses_federate_with_one_uri_and_fewer_interactions_away_from_home(world: World) -> None:
    for i in range(5000):
        url = f"https://www.site{i}.com/p"
        for toot in masto_api.toots(world, url):
            elsewhere = next((seen for host in ("a.example", "b.example", "c.example")
                              if (seen := masto_api.seen_by(world, host, toot)) is not None), None)
            if elsewhere is not None and toot.favourites > 10:
                assert elsewhere.uri == toot.uri and elsewhere.local_id != toot.local_id
                assert elsewhere.favourites <= toot.favourites
                return
    raise AssertionError("no federated status")


async def test_trending_links_have_string_history(client: TestClient[Any, Any]) -> None:
    response = await client.get("/mastodon.social/api/v1/trends/links", params={"limit": "5"})
    cards = await response.json()

    assert response.status == 200 and len(cards) == 5
    for card in cards:
        assert {"url", "title", "provider_name", "history", "type"} <= card.keys()
        assert len(card["history"]) == 7
        assert all(isinstance(day[k], str) and day[k].isdigit() for day in card["history"]
                   for k in ("day", "accounts", "uses"))


async def test_every_answer_carries_the_rate_limit_headers(client: TestClient[Any, Any]) -> None:
    response = await client.get("/mastodon.social/api/v2/search", params={"q": "https://e.com/", "type": "statuses"})

    assert response.headers["X-RateLimit-Limit"] == "300"
    assert int(response.headers["X-RateLimit-Remaining"]) > 0
    assert datetime.fromisoformat(response.headers["X-RateLimit-Reset"]).timestamp() > time.time()


async def test_limited_instances_answer_429_and_exhausted_ones_say_nothing_is_left(
    client: TestClient[Any, Any]
) -> None:
    limited = await client.get("/limited.example/api/v2/search", params={"q": "x"})
    exhausted = await client.get("/exhausted.example/api/v2/search", params={"q": "x"})

    assert limited.status == 429 and await limited.json() == {"error": "Too many requests"}
    assert limited.headers["X-RateLimit-Remaining"] == "0" and "Retry-After" not in limited.headers
    assert exhausted.status == 200 and exhausted.headers["X-RateLimit-Remaining"] == "0"


async def test_a_dead_instance_drops_the_connection(client: TestClient[Any, Any]) -> None:
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.get("/dead.example/api/v2/search", params={"q": "x"})


async def test_quiet_instances_find_nothing_and_old_ones_have_no_trends(client: TestClient[Any, Any],
                                                                        world: World) -> None:
    url = url_with_statuses(world, searchable_instance(world))

    quiet = await (await client.get("/quiet.example/api/v2/search", params={"q": url})).json()
    old = await client.get("/old.example/api/v1/trends/links")

    assert quiet["statuses"] == []
    assert old.status == 404 and await old.json() == {"error": "Record not found"}


async def test_resolve_needs_a_user_token(client: TestClient[Any, Any]) -> None:
    response = await client.get("/mastodon.social/api/v2/search", params={"q": "x", "resolve": "true"})

    assert response.status == 401 and await response.json() == {"error": "The access token is invalid"}


def test_search_is_often_empty_and_spam_is_almost_never_tooted(world: World) -> None:
    instances = [f"i{i}.example" for i in range(30)]
    assert 3 <= sum(not masto_api.searchable(world, host) for host in instances) <= 20
    spam = sum(bool(masto_api.toots(world, f"https://spam{i}.example/x")) for i in range(300))
    clean = sum(bool(masto_api.toots(world, f"https://www.site{i}.com/x")) for i in range(300))
    assert spam < 10 < clean


def test_the_knobs_answers_are_mastodon_shaped() -> None:
    limited = masto_api.rate_limited_response(30.0)
    failed = masto_api.error_response(503)

    assert limited.status == 429 and limited.headers["X-RateLimit-Remaining"] == "0"
    assert datetime.fromisoformat(limited.headers["X-RateLimit-Reset"]).timestamp() >= time.time() + 29
    assert (failed.status, json.loads(failed.text or "")) == (503, {"error": "Service Unavailable"})
