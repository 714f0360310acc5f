"""The emulated PhishTank checkurl: JSON and XML answers, request counts per client, 509 over the limit."""

from __future__ import annotations

import base64
from itertools import islice
from typing import Any

from aiohttp.test_utils import TestClient

from linkmeter.emulator.apis import phishtank as pt_api
from linkmeter.emulator.knobs import Knobs
from linkmeter.emulator.parts import api_app
from linkmeter.emulator.world import World
from tests.emulator.apis.conftest import ClientFactory

API = pt_api
SEED = 13
AGENT = {"User-Agent": "phishtank/tester"}
PHISH = "https://phish-login.example/signin"


async def check(client: TestClient[Any, Any], form: dict[str, str],
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    response = await client.post("/checkurl/", data=form, headers=AGENT if headers is None else headers)
    body = await response.json() if response.content_type == "application/json" else await response.text()
    return response.status, dict(response.headers), body


def domains_with(world: World, threat: str | None, count: int) -> list[str]:
    names = (f"site{i}.com" for i in range(100_000))
    return list(islice((d for d in names if world.domain(d).registered and world.domain(d).threat == threat), count))


async def test_a_phish_in_the_database(client: TestClient[Any, Any]) -> None:
    status, headers, body = await check(client, {"url": PHISH, "format": "json"})

    assert status == 200
    assert body["meta"]["status"] == "success" and {"timestamp", "serverid", "requestid"} <= body["meta"].keys()
    results = body["results"]
    assert results["url"] == PHISH and results["in_database"] is True
    assert isinstance(results["phish_id"], str | int)
    assert results["phish_detail_page"].endswith(f"phish_id={results['phish_id']}")
    assert isinstance(results["verified"], bool) and isinstance(results["valid"], bool)
    assert results["valid"] <= results["verified"]
    assert (results["verified_at"] is not None) == results["verified"]
    assert headers["X-Request-Limit-Interval"] == "300 Seconds"


async def test_a_url_not_in_the_database(client: TestClient[Any, Any], world: World) -> None:
    clean = next(d for d in domains_with(world, None, 50) if pt_api.lookup(world, f"https://{d}/")["in_database"]
                 is False)
    status, _, body = await check(client, {"url": f"https://{clean}/login", "format": "json"})
    assert status == 200 and body["results"] == {"url": f"https://{clean}/login", "in_database": False}


async def test_a_base64_url_is_read_and_xml_is_the_default_format(client: TestClient[Any, Any]) -> None:
    encoded = base64.b64encode(PHISH.encode()).decode()
    status, _, body = await check(client, {"url": encoded, "format": "json"})
    assert status == 200 and body["results"]["url"] == PHISH

    status, _, xml = await check(client, {"url": PHISH})
    assert status == 200 and xml.startswith('<?xml version="1.0"')
    assert f"<url>{PHISH}</url>" in xml and "<in_database>true</in_database>" in xml


async def test_a_missing_url_is_an_errortext(client: TestClient[Any, Any]) -> None:
    status, _, body = await check(client, {"format": "json"})
    assert status == 200 and body["meta"]["status"] == "error" and "supply a URL" in body["errortext"]


async def test_every_answer_counts_the_clients_requests_and_509_ends_the_window(
        client: TestClient[Any, Any]) -> None:
    for n in range(1, pt_api.ANONYMOUS_LIMIT + 1):
        status, headers, _ = await check(client, {"url": f"{PHISH}?{n}", "format": "json"})
        assert status == 200
        assert (headers["X-Request-Limit"], headers["X-Request-Count"]) == (str(pt_api.ANONYMOUS_LIMIT), str(n))

    status, headers, text = await check(client, {"url": PHISH, "format": "json"})
    assert status == 509 and "Limit Exceeded" in text
    assert headers["X-Request-Count"] == str(pt_api.ANONYMOUS_LIMIT + 1)
    assert headers["X-Request-Limit-Interval"] == "300 Seconds"

    # Another client (an app key) has its own, larger allowance.
    status, headers, _ = await check(client, {"url": PHISH, "format": "json", "app_key": "abc"})
    assert status == 200
    assert (headers["X-Request-Limit"], headers["X-Request-Count"]) == (str(pt_api.KEYED_LIMIT), "1")


def test_a_blank_or_generic_user_agent_gets_a_tenth_and_windows_restart(world: World) -> None:
    assert pt_api.limit_for("", "") == pt_api.limit_for("", "python-requests/2.31") == pt_api.ANONYMOUS_LIMIT // 10
    assert pt_api.limit_for("key", "phishtank/someone") == pt_api.KEYED_LIMIT
    assert pt_api.count_request(world, "c", "", "x", now=0.0)[1] == 1
    assert pt_api.count_request(world, "c", "", "x", now=299.0)[1] == 2
    assert pt_api.count_request(world, "c", "", "x", now=300.0)[1] == 1


def test_phishtank_holds_most_phishing_domains_and_hardly_anything_else(world: World) -> None:
    def share(domains: list[str]) -> float:
        return sum(bool(pt_api.lookup(world, f"https://{d}/x")["in_database"]) for d in domains) / len(domains)

    assert 0.55 < share(domains_with(world, "phishing", 300)) < 0.85
    assert share(domains_with(world, "malware", 300)) < 0.1
    assert share(domains_with(world, None, 3000)) < 0.01


async def test_answers_depend_only_on_the_seed(aiohttp_client: ClientFactory) -> None:
    one = await aiohttp_client(api_app(pt_api, World(2)))
    two = await aiohttp_client(api_app(pt_api, World(2)))
    assert (await check(one, {"url": PHISH, "format": "json"}))[2] == (await check(two, {"url": PHISH,
                                                                                          "format": "json"}))[2]


def test_the_knobs_rate_limit_is_a_509_naming_its_wait() -> None:
    limited = pt_api.rate_limited_response(7.2)
    assert limited.status == 509 and limited.headers["X-Request-Limit-Interval"] == "8 Seconds"
    assert int(limited.headers["X-Request-Count"]) > int(limited.headers["X-Request-Limit"])
    assert pt_api.error_response(500).status == 500


async def test_without_the_published_limits_no_request_is_counted(aiohttp_client: ClientFactory,
                                                                  world: World) -> None:
    client = await aiohttp_client(api_app(pt_api, world, Knobs(published_limits=False)))  # the benchmark's
    for n in range(pt_api.ANONYMOUS_LIMIT + 5):
        status, headers, _ = await check(client, {"url": f"{PHISH}?{n}", "format": "json"})
        assert status == 200 and headers["X-Request-Count"] == "1"
