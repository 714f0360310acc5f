"""The Open PageRank provider against the emulated API and REFERENCE §8a's payloads."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from linkmeter.emulator.apis import openpagerank as opr_api
from linkmeter.emulator.world import World
from linkmeter.engine.http import HttpClient
from linkmeter.engine.provider import Collected, ProviderConfig, ProviderError
from linkmeter.providers.openpagerank import OpenPageRankProvider, outcome, parse_response
from tests.providers.conftest import (
    Answer,
    EmulateApi,
    Handler,
    StubApi,
    answered,
    answering,
    collect_from,
    collect_many_from,
    raises_provider_error,
)

SEED = 5
GET_PAGE_RANK = "/api/v1.0/getPageRank"

# REFERENCE §8a: a 200 item, a per-item 404 inside the 200, and the bad-key body.
REFERENCE_RESPONSE: dict[str, Any] = {"status_code": 200, "response": [
    {"status_code": 200, "error": "", "page_rank_integer": 10, "page_rank_decimal": 10, "rank": "3",
     "domain": "google.com"},
    {"status_code": 404, "error": "Domain not found", "page_rank_integer": 0, "page_rank_decimal": 0, "rank": None,
     "domain": "nobody.com"}], "last_updated": "19th Mar 2022"}
BAD_KEY = {"status": False, "error": "Invalid API key "}


@pytest.fixture
async def emulator(emulated_api: EmulateApi) -> str:
    return (await emulated_api(opr_api)).base_url


async def serve(stub_api: StubApi, handler: Handler) -> str:
    return await stub_api({GET_PAGE_RANK: handler})


async def collect_many(http: HttpClient, base_url: str, domains: list[str],
                       key: str | None = opr_api.DEMO_KEY) -> list[Collected | ProviderError]:
    provider = OpenPageRankProvider(ProviderConfig(base_url=base_url, api_key=key))
    return await collect_many_from(provider, http, [{"domain": domain} for domain in domains])


def test_the_reference_items_give_a_rank_from_its_string_and_no_score_for_a_404() -> None:
    items = parse_response(REFERENCE_RESPONSE)

    google = outcome("google.com", items["google.com"], REFERENCE_RESPONSE["last_updated"])
    nobody = outcome("nobody.com", items["nobody.com"])

    assert answered(google) == {"openpagerank.found": True, "openpagerank.page_rank": 10.0, "openpagerank.rank": 3}
    assert isinstance(google, Collected) and google.raw["last_updated"] == "19th Mar 2022"
    # "Domain not found" is an answer for that domain: no score and no rank, never the 0 the item carries.
    assert answered(nobody) == {"openpagerank.found": False, "openpagerank.page_rank": None, "openpagerank.rank": None}


@pytest.mark.parametrize("status", [200, 403])
def test_the_bad_key_body_is_an_error_naming_the_variable(status: int) -> None:
    with pytest.raises(ProviderError) as caught:
        parse_response(BAD_KEY, status)

    assert "LINKMETER_OPENPAGERANK_API_KEY" in caught.value.message and "Invalid API key" in caught.value.message
    assert not caught.value.retryable


def test_other_item_statuses_and_missing_items_fail_only_their_domain() -> None:
    odd = {"status_code": 400, "error": "Invalid domain", "domain": "bad..name"}

    assert isinstance(outcome("bad..name", odd), ProviderError)
    missing = outcome("absent.com", None)
    assert isinstance(missing, ProviderError) and "absent.com" in missing.message


async def test_one_request_answers_every_domain_as_the_world_says(
    http: HttpClient, emulator: str, world: World
) -> None:
    domains = [f"site{i}.com" for i in range(40)] + ["spam-offers.example", "unregistered-shop.com"]

    results = await collect_many(http, emulator, domains)

    assert len(results) == len(domains)
    for domain, result in zip(domains, results, strict=True):
        expected = opr_api.page_rank(world, domain)
        if expected is None:
            assert answered(result) == {"openpagerank.found": False, "openpagerank.page_rank": None,
                                       "openpagerank.rank": None}, domain
        else:
            assert answered(result) == {"openpagerank.found": True, "openpagerank.page_rank": expected.page_rank,
                                       "openpagerank.rank": expected.rank}, domain
    found = [answered(result) for result in results if answered(result)["openpagerank.found"]]
    missing = [answered(result) for result in results if not answered(result)["openpagerank.found"]]
    assert found and missing  # a 404 item inside the 200 answered only its own domain


async def test_the_request_sends_every_domain_and_the_key_header(stub_api: StubApi,
                                                                 http: HttpClient) -> None:
    seen: list[web.Request] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response({"status_code": 200, "last_updated": "1st Jan 2026", "response": [
            {"status_code": 200, "error": "", "page_rank_integer": 4, "page_rank_decimal": 4.27, "rank": "1234",
             "domain": domain} for domain in reversed(request.query.getall("domains[]"))]})

    results = await collect_many(http, await serve(stub_api, handler), ["a.com", "b.org", "c.net"])

    assert len(seen) == 1 and seen[0].method == "GET"
    assert seen[0].query.getall("domains[]") == ["a.com", "b.org", "c.net"]
    assert seen[0].headers["API-OPR"] == opr_api.DEMO_KEY
    # Items are matched by the domain they echo, not by position.
    assert [answered(result)["openpagerank.rank"] for result in results] == [1234, 1234, 1234]
    assert answered(results[0])["openpagerank.page_rank"] == 4.27


async def test_collect_keys_on_the_registered_domain_of_the_final_domain(http: HttpClient, emulator: str,
                                                                         world: World) -> None:
    instance = OpenPageRankProvider(ProviderConfig(base_url=emulator, api_key=opr_api.DEMO_KEY))
    found = next(f"site{i}.org" for i in range(100) if opr_api.page_rank(world, f"site{i}.org"))

    result = await collect_from(instance, http, {"domain": "lnk.example", "page.final_domain": f"www.{found}"})

    assert instance.key({"domain": "lnk.example", "page.final_domain": f"WWW.{found}."}) == found
    assert result.signals["openpagerank.rank"] == opr_api.page_rank(world, found).rank


async def test_a_wrong_key_fails_the_whole_request_naming_the_variable(http: HttpClient, emulator: str) -> None:
    with pytest.raises(ProviderError) as caught:
        await collect_many(http, emulator, ["site1.com", "site2.com"], key="not-a-real-key")

    assert "LINKMETER_OPENPAGERANK_API_KEY" in caught.value.message
    assert caught.value.status == 403 and not caught.value.retryable


def test_without_a_key_the_provider_is_disabled() -> None:
    instance = OpenPageRankProvider(ProviderConfig(base_url="http://127.0.0.1:9"))

    assert instance.disabled_reason() == "no API key: set LINKMETER_OPENPAGERANK_API_KEY"


@pytest.mark.parametrize(("answer", "expected"), [
    pytest.param(lambda: opr_api.rate_limited_response(12.0),
                 {"rate_limited": True, "retryable": True, "retry_after": 12.0}, id="429 is rate limited"),
    pytest.param(lambda: opr_api.error_response(503), {"retryable": True, "status": 503}, id="5xx is retryable"),
    pytest.param(lambda: web.Response(body=b"<html>oops</html>", content_type="application/json"),
                 {"retryable": False}, id="invalid json is not retryable"),
    pytest.param(lambda: web.Response(body=b'{"status_code": 200}', content_type="application/json"),
                 {"retryable": False}, id="json without the envelope is not retryable"),
])
async def test_an_upstream_failure_is_the_right_provider_error(answer: Answer, expected: dict[str, object],
                                                               stub_api: StubApi, http: HttpClient) -> None:
    base = await serve(stub_api, answering(answer))
    await raises_provider_error(collect_many(http, base, ["a.com"]), **expected)


@pytest.mark.parametrize(("rank", "expected"), [("17", 17), ("1,234", 1234), (None, None), ("", None), (42, 42)])
def test_rank_strings_become_integers(rank: object, expected: int | None) -> None:
    item = {"status_code": 200, "error": "", "page_rank_decimal": "3.5", "rank": rank, "domain": "x.com"}

    assert answered(outcome("x.com", item)) == {"openpagerank.found": True, "openpagerank.page_rank": 3.5,
                                               "openpagerank.rank": expected}


async def test_a_full_batch_of_100_domains_is_one_request(emulated_api: EmulateApi, http: HttpClient) -> None:
    api = await emulated_api(opr_api)
    domains = [f"site{i}.net" for i in range(OpenPageRankProvider.max_batch)]

    results = await collect_many(http, api.base_url, domains)

    assert OpenPageRankProvider.max_batch == 100 and sum(api.hits.values()) == 1
    assert all(isinstance(result, Collected) for result in results)
