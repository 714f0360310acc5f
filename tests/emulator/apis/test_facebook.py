"""The emulated Graph URL node: its answers, its error envelope, the several-ids form and the per-URL limit."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient

from linkmeter.emulator.apis import facebook as fb_api
from linkmeter.emulator.knobs import Knobs
from linkmeter.emulator.parts import api_app
from linkmeter.emulator.world import World
from tests.emulator.apis.conftest import ClientFactory

API = fb_api
SEED = 2
AUTH = {"Authorization": f"Bearer {fb_api.DEMO_KEY}"}
ENVELOPE_FIELDS = {"message", "type", "code", "fbtrace_id"}


async def get(client: TestClient[Any, Any], status: int = 200, headers: dict[str, str] | None = None,
              **params: str) -> Any:
    response = await client.get("/v24.0/", params=params, headers=AUTH if headers is None else headers)
    assert response.status == status, await response.text()
    return await response.json()


async def test_a_url_node_has_integer_engagement_counts_and_its_id(client: TestClient[Any, Any]) -> None:
    body = await get(client, id="https://www.site3.com/a", fields="engagement")

    assert body["id"] == "https://www.site3.com/a"
    assert set(body["engagement"]) == {"reaction_count", "comment_count", "share_count", "comment_plugin_count"}
    assert all(isinstance(value, int) for value in body["engagement"].values())


async def test_without_fields_only_the_id_comes_back(client: TestClient[Any, Any]) -> None:
    assert await get(client, id="https://www.site3.com/a") == {"id": "https://www.site3.com/a"}


async def test_several_ids_answer_an_object_keyed_by_each_id(client: TestClient[Any, Any], world: World) -> None:
    ids = ["https://www.site1.com/a", "http://www.site2.com/b/"]

    body = await get(client, ids=",".join(ids), fields="engagement")

    assert list(body) == ids
    assert [body[url]["engagement"] for url in ids] == [fb_api.engagement(world, url) for url in ids]


async def test_more_than_50_ids_is_graph_error_100(client: TestClient[Any, Any]) -> None:
    body = await get(client, 400, ids=",".join(f"https://e.com/{i}" for i in range(51)), fields="engagement")

    assert set(body["error"]) >= ENVELOPE_FIELDS and body["error"]["code"] == 100
    assert "Maximum: 50" in body["error"]["message"]


async def test_no_token_is_code_104_and_a_wrong_one_code_190(client: TestClient[Any, Any]) -> None:
    missing = await get(client, 400, headers={}, id="https://e.com/")
    wrong = await get(client, 400, headers={"Authorization": "Bearer nope"}, id="https://e.com/")
    in_query = await get(client, 200, headers={}, id="https://e.com/", access_token=fb_api.DEMO_KEY)

    assert (missing["error"]["code"], wrong["error"]["code"]) == (104, 190)
    assert wrong["error"]["type"] == "OAuthException" and set(wrong["error"]) >= ENVELOPE_FIELDS
    assert in_query == {"id": "https://e.com/"}


async def test_an_id_that_is_no_url_is_code_803(client: TestClient[Any, Any]) -> None:
    body = await get(client, 404, id="not-a-page", fields="engagement")

    assert body["error"]["code"] == 803


async def test_the_eleventh_request_for_a_url_within_the_hour_is_throttled(client: TestClient[Any, Any]) -> None:
    for _ in range(fb_api.URL_REQUESTS_PER_HOUR):
        await get(client, id="https://limit.example/x", fields="engagement")

    body = await get(client, 403, id="http://limit.example/x/", fields="engagement")  # the same URL
    other = await get(client, 200, id="https://limit.example/y", fields="engagement")

    assert body["error"]["code"] == 4 and body["error"]["is_transient"] is True
    assert "engagement" in other


def test_http_https_and_a_trailing_slash_share_their_counts(world: World) -> None:
    assert fb_api.engagement(world, "http://www.site1.com/a/") == fb_api.engagement(world, "https://www.site1.com/a")


def test_spam_domains_get_almost_no_engagement_and_popular_ones_some(world: World) -> None:
    spam = [fb_api.engagement(world, f"https://spam{i}.example/offer")["share_count"] for i in range(300)]
    clean = [fb_api.engagement(world, f"https://www.site{i}.com/post")["share_count"] for i in range(300)]

    assert sum(1 for shares in spam if shares) < 30
    assert sum(1 for shares in clean if shares) > 60


def test_the_knobs_answers_are_graph_shaped() -> None:
    throttled = fb_api.rate_limited_response(3.0)
    failed = fb_api.error_response(503)

    assert throttled.status == 403 and "X-App-Usage" in throttled.headers
    assert failed.status == 503
    assert json.loads(failed.text or "")["error"]["code"] == 2
    assert json.loads(throttled.text or "")["error"]["code"] == 4


async def test_without_the_published_limits_a_url_is_never_throttled(aiohttp_client: ClientFactory,
                                                                     world: World) -> None:
    client = await aiohttp_client(api_app(fb_api, world, Knobs(published_limits=False)))  # the benchmark's
    for _ in range(fb_api.URL_REQUESTS_PER_HOUR + 5):
        body = await get(client, id="https://limit.example/x", fields="engagement")
        assert "engagement" in body
