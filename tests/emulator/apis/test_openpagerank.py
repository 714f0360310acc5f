"""The emulated Open PageRank: the getPageRank envelope, per-item 404s, the bad-key body and the World's facts."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from linkmeter.emulator.apis import openpagerank as opr_api
from linkmeter.emulator.world import World

API = opr_api
SEED = 3
MOUNT = "/openpagerank"
PATH = "/openpagerank/api/v1.0/getPageRank"
KEY = {"API-OPR": opr_api.DEMO_KEY}


async def ask(client: TestClient[Any, Any], domains: list[str], headers: dict[str, str] = KEY) -> Any:
    response = await client.get(PATH, params=[("domains[]", domain) for domain in domains], headers=headers)
    assert response.status == 200
    return await response.json()


async def test_the_envelope_holds_one_item_per_domain_in_order_with_the_rank_as_a_string(
    client: TestClient[Any, Any], world: World
) -> None:
    domains = ["site1.com", "site2.org", "unregistered-thing.com", "Site3.NET"]

    body = await ask(client, domains)

    assert body.keys() == {"status_code", "response", "last_updated"} and body["status_code"] == 200
    assert [item["domain"] for item in body["response"]] == domains  # echoed as sent
    for item in body["response"]:
        assert item.keys() == {"status_code", "error", "page_rank_integer", "page_rank_decimal", "rank", "domain"}
        facts = opr_api.page_rank(world, item["domain"])
        if facts is None:
            assert item == {"status_code": 404, "error": "Domain not found", "page_rank_integer": 0,
                            "page_rank_decimal": 0, "rank": None, "domain": item["domain"]}
        else:
            assert item["status_code"] == 200 and item["error"] == ""
            assert item["rank"] == str(facts.rank) and item["page_rank_decimal"] == facts.page_rank
            assert item["page_rank_integer"] == round(facts.page_rank)
    assert body["response"][2]["status_code"] == 404


async def test_the_indexed_form_of_the_parameter_is_accepted(client: TestClient[Any, Any]) -> None:
    response = await client.get(PATH, params={"domains[0]": "site1.com", "domains[1]": "site2.com"}, headers=KEY)

    assert [item["domain"] for item in (await response.json())["response"]] == ["site1.com", "site2.com"]


@pytest.mark.parametrize("headers", [{}, {"API-OPR": "someone-elses-key"}])
async def test_a_missing_or_wrong_key_gets_the_bad_key_body(client: TestClient[Any, Any],
                                                            headers: dict[str, str]) -> None:
    response = await client.get(PATH, params={"domains[]": "site1.com"}, headers=headers)

    assert response.status == 403
    assert await response.json() == {"status": False, "error": "Invalid API key "}


async def test_more_than_100_domains_or_none_is_a_400(client: TestClient[Any, Any]) -> None:
    too_many = await client.get(PATH, params=[("domains[]", f"site{i}.com") for i in range(101)], headers=KEY)
    none = await client.get(PATH, headers=KEY)

    assert too_many.status == 400 and none.status == 400
    assert "100" in (await too_many.json())["error"]


def test_scores_follow_the_worlds_ranks_and_spam_sits_at_the_bottom(world: World) -> None:
    ranked = [(facts.rank, found.page_rank) for name in (f"site{i}.com" for i in range(400))
              if (facts := world.domain(name)).rank and (found := opr_api.page_rank(world, name))]
    spam = [found for name in (f"spam-site{i}.com" for i in range(100)) if (found := opr_api.page_rank(world, name))]

    assert len(ranked) > 50 and len(spam) > 30
    top = [score for rank, score in ranked if rank <= 1000]
    bottom = [score for rank, score in ranked if rank >= 500_000]
    assert top and bottom and min(top) > max(bottom)
    assert max(found.page_rank for found in spam) < min(score for _, score in ranked)
    assert len(spam) < 100  # some spam domains are too new for the index: per-item 404s
    assert opr_api.page_rank(world, "unregistered-place.com") is None
    assert opr_api.page_rank(world, "not a domain") is None


async def test_knob_answers_are_in_oprs_shape() -> None:
    limited = opr_api.rate_limited_response(2.5)
    failed = opr_api.error_response(503)

    assert limited.status == 429 and limited.headers["Retry-After"] == "3"
    assert failed.status == 503 and failed.content_type == "application/json"
