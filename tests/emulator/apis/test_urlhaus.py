"""The emulated URLhaus API: Auth-Key, every query_status, string-typed numbers, malware domains listed."""

from __future__ import annotations

import re
from itertools import islice
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from linkmeter.emulator.apis import urlhaus as uh_api
from linkmeter.emulator.parts import api_app
from linkmeter.emulator.world import World
from tests.emulator.apis.conftest import ClientFactory

API = uh_api
SEED = 11
KEY = {"Auth-Key": uh_api.DEMO_KEY}
DATE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
MALWARE_URL = "http://malware-downloads.example/bins/x.exe"


async def post(client: TestClient[Any, Any], kind: str, form: dict[str, str],
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    response = await client.post(f"/v1/{kind}/", data=form, headers=KEY if headers is None else headers)
    return response.status, await response.json()


def domains_with(world: World, threat: str | None, count: int) -> list[str]:
    names = (f"site{i}.com" for i in range(100_000))
    return list(islice((d for d in names if world.domain(d).registered and world.domain(d).threat == threat), count))


@pytest.mark.parametrize("headers", [{}, {"Auth-Key": "not-the-key"}])
async def test_a_missing_or_unknown_auth_key_is_401(client: TestClient[Any, Any], headers: dict[str, str]) -> None:
    for kind, field in (("url", "url"), ("host", "host")):
        status, body = await post(client, kind, {field: MALWARE_URL}, headers=headers)
        assert (status, body) == (401, {"query_status": "unknown_auth_key"})


async def test_a_get_is_http_post_expected(client: TestClient[Any, Any]) -> None:
    response = await client.get("/v1/url/", headers=KEY)
    assert response.status == 200 and await response.json() == {"query_status": "http_post_expected"}


@pytest.mark.parametrize(("kind", "form", "expected"), [
    ("url", {}, "invalid_url"),
    ("url", {"url": "not a url"}, "invalid_url"),
    ("url", {"url": "ftp://files.example/x"}, "invalid_url"),
    ("host", {}, "invalid_host"),
    ("host", {"host": "bad host!"}, "invalid_host"),
])
async def test_invalid_queries_say_so(client: TestClient[Any, Any], kind: str, form: dict[str, str],
                                      expected: str) -> None:
    status, body = await post(client, kind, form)
    assert (status, body) == (200, {"query_status": expected})


async def test_a_listed_url_in_the_reference_shape_with_numbers_as_strings(client: TestClient[Any, Any]) -> None:
    status, body = await post(client, "url", {"url": MALWARE_URL})

    assert status == 200 and body["query_status"] == "ok"
    assert body["url"] == MALWARE_URL and body["host"] == "malware-downloads.example"
    assert body["id"].isdigit() and body["urlhaus_reference"] == f"https://urlhaus.abuse.ch/url/{body['id']}/"
    assert body["url_status"] in ("online", "offline", "unknown") and body["threat"] == "malware_download"
    assert DATE.match(body["date_added"]) and body["larted"] in ("true", "false")
    assert body["tags"] and all(isinstance(tag, str) for tag in body["tags"])
    assert set(body["blacklists"]) == {"spamhaus_dbl", "surbl"}
    [payload] = body["payloads"]
    assert payload["response_size"].isdigit() and len(payload["response_sha256"]) == 64


async def test_a_listed_host_counts_its_urls_as_a_string(client: TestClient[Any, Any]) -> None:
    status, body = await post(client, "host", {"host": "malware-downloads.example"})

    assert status == 200 and body["query_status"] == "ok" and body["host"] == "malware-downloads.example"
    assert body["url_count"].isdigit()
    assert len(body["urls"]) == min(int(body["url_count"]), uh_api.MAX_HOST_URLS)
    assert DATE.match(body["firstseen"])
    for item in body["urls"]:
        assert {"id", "urlhaus_reference", "url", "url_status", "date_added", "threat", "reporter", "larted",
                "takedown_time_seconds", "tags"} <= item.keys()
        assert item["url"].startswith("http://malware-downloads.example/")


async def test_clean_urls_and_hosts_are_no_results(client: TestClient[Any, Any], world: World) -> None:
    clean = next(d for d in domains_with(world, None, 50) if uh_api.listed_domain(world, d) is None)
    assert await post(client, "url", {"url": f"https://{clean}/a/1"}) == (200, {"query_status": "no_results"})
    assert await post(client, "host", {"host": clean}) == (200, {"query_status": "no_results"})


def test_urlhaus_lists_most_malware_domains_and_hardly_anything_else(world: World) -> None:
    def share(domains: list[str]) -> float:
        return sum(uh_api.listed_domain(world, d) is not None for d in domains) / len(domains)

    assert 0.7 < share(domains_with(world, "malware", 300)) < 0.95
    assert share(domains_with(world, "phishing", 300)) < 0.1
    assert share(domains_with(world, "spam", 300)) < 0.1
    assert share(domains_with(world, None, 3000)) < 0.01


async def test_answers_depend_only_on_the_seed(aiohttp_client: ClientFactory) -> None:
    one = await aiohttp_client(api_app(uh_api, World(4)))
    two = await aiohttp_client(api_app(uh_api, World(4)))
    assert await post(one, "host", {"host": "malware-downloads.example"}) == await post(
        two, "host", {"host": "malware-downloads.example"})


def test_the_knobs_answer_as_a_web_front_end() -> None:
    assert uh_api.error_response(503).status == 503
    limited = uh_api.rate_limited_response(4)
    assert limited.status == 429 and limited.headers["Retry-After"] == "4"
