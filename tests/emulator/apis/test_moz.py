"""The emulated Moz Links API v2: Basic auth, url_metrics' shape and limits, facts that follow the World."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from linkmeter.emulator.apis import moz as moz_api
from linkmeter.emulator.world import World

API = moz_api
SEED = 4
MOUNT = "/moz"
PATH = "/moz/v2/url_metrics"
RESULT_KEYS = {"page", "subdomain", "root_domain", "title", "last_crawled", "http_code", "page_authority",
               "domain_authority", "spam_score", "link_propensity", "pages_to_page", "external_pages_to_page",
               "root_domains_to_page", "root_domains_to_root_domain", "external_pages_to_root_domain",
               "nofollow_pages_to_page", "deleted_pages_to_page"}


def basic(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


AUTH = basic(moz_api.DEMO_KEY)


async def test_results_come_in_the_order_of_the_targets_in_mozs_shape(client: TestClient[Any, Any]) -> None:
    targets = ["moz.com", "https://www.site1.com/a/1?x=2", "http://Site2.ORG:8080/b#frag"]

    response = await client.post(PATH, json={"targets": targets}, headers=AUTH)

    assert response.status == 200
    results = (await response.json())["results"]
    assert [result.keys() for result in results] == [RESULT_KEYS] * 3
    assert [(r["page"], r["subdomain"], r["root_domain"]) for r in results] == [
        ("moz.com/", "moz.com", "moz.com"), ("www.site1.com/a/1?x=2", "www.site1.com", "site1.com"),
        ("site2.org/b", "site2.org", "site2.org")]


@pytest.mark.parametrize("headers", [{}, basic("someone:else"), {"Authorization": "Bearer token"},
                                     {"Authorization": "Basic !!!"}])
async def test_wrong_or_missing_credentials_are_a_401(client: TestClient[Any, Any], headers: dict[str, str]) -> None:
    response = await client.post(PATH, json={"targets": ["moz.com"]}, headers=headers)

    assert response.status == 401
    body = await response.json()
    assert body["status"] == "401" and "Authentication failed" in body["error_message"]


@pytest.mark.parametrize("body", [{"targets": []}, {"targets": "moz.com"}, {"nothing": 1},
                                  {"targets": [f"site{i}.com" for i in range(51)]}])
async def test_bad_target_lists_are_a_400(client: TestClient[Any, Any], body: dict[str, Any]) -> None:
    response = await client.post(PATH, json=body, headers=AUTH)

    assert response.status == 400 and "error_message" in await response.json()


def test_domain_figures_follow_popularity_and_spam_looks_like_spam(world: World) -> None:
    clean = [(facts.popularity, moz_api.metrics(world, f"https://site{i}.com/")) for i in range(300)
             if not (facts := world.domain(f"site{i}.com")).spam and facts.registered]
    spam = [moz_api.metrics(world, f"https://spam-offer{i}.example/") for i in range(50)]

    popular = [m["domain_authority"] for p, m in clean if p > 0.8]
    obscure = [m["domain_authority"] for p, m in clean if p < 0.05]
    assert popular and obscure and min(popular) > max(obscure)
    assert all(m["spam_score"] >= 45 and m["domain_authority"] <= 12 for m in spam)
    assert max(m["spam_score"] for _, m in clean) < min(m["spam_score"] for m in spam)
    for _, m in clean:
        assert 1 <= m["page_authority"] <= m["domain_authority"] <= 100


def test_an_unregistered_domain_has_no_scores(world: World) -> None:
    result = moz_api.metrics(world, "https://unregistered-store.com/")

    assert result["domain_authority"] == 0 and result["page_authority"] == 0 and result["spam_score"] == -1
    assert result["http_code"] == 0 and result["last_crawled"] is None


def test_the_same_seed_gives_the_same_figures() -> None:
    assert moz_api.metrics(World(1), "https://site7.com/x") == moz_api.metrics(World(1), "https://site7.com/x")
    assert moz_api.metrics(World(1), "https://site7.com/x") != moz_api.metrics(World(2), "https://site7.com/x")


def test_knob_answers_are_in_mozs_error_shape() -> None:
    limited = moz_api.rate_limited_response(0.2)
    failed = moz_api.error_response(500)

    assert limited.status == 429 and limited.headers["Retry-After"] == "1"
    assert failed.status == 500 and failed.content_type == "application/json"
