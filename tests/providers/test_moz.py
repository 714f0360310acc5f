"""The Moz provider against the emulated Links API v2 and REFERENCE §8b's payload."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from aiohttp import web

from linkmeter.emulator.apis import moz as moz_api
from linkmeter.emulator.world import World
from linkmeter.engine.http import HttpClient
from linkmeter.engine.provider import Collected, ProviderConfig, ProviderError
from linkmeter.providers.moz import MozProvider, outcome, signals_of
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

SEED = 9
URL_METRICS = "/v2/url_metrics"

# REFERENCE §8b, real output (trimmed).
REFERENCE_RESULT: dict[str, Any] = {
    "page": "moz.com/", "subdomain": "moz.com", "root_domain": "moz.com",
    "title": "Moz - SEO Software for Smarter Marketing", "last_crawled": "2023-04-01", "http_code": 200,
    "page_authority": 74, "domain_authority": 91, "spam_score": 1, "link_propensity": 0.008849279955,
    "pages_to_page": 15343034, "external_pages_to_page": 14981546, "root_domains_to_page": 41190,
    "root_domains_to_root_domain": 179884, "external_pages_to_root_domain": 69376449,
    "nofollow_pages_to_page": 9684724, "deleted_pages_to_page": 1963527}


@pytest.fixture
async def emulator(emulated_api: EmulateApi) -> str:
    return (await emulated_api(moz_api)).base_url


async def serve(stub_api: StubApi, handler: Handler) -> str:
    return await stub_api({URL_METRICS: handler}, method="POST")


async def collect_many(http: HttpClient, base_url: str, urls: list[str],
                       key: str = moz_api.DEMO_KEY) -> list[Collected | ProviderError]:
    provider = MozProvider(ProviderConfig(base_url=base_url, api_key=key))
    return await collect_many_from(provider, http, [{"url": url} for url in urls])


def test_the_reference_result_gives_every_signal() -> None:
    assert answered(outcome("moz.com", REFERENCE_RESULT)) == {
        "moz.domain_authority": 91, "moz.page_authority": 74, "moz.spam_score": 1,
        "moz.linking_root_domains": 179884, "moz.linking_pages": 14981546}


def test_scores_below_the_scale_and_negative_spam_scores_mean_moz_has_none() -> None:
    empty = {"page": "nobody.example/", "subdomain": "nobody.example", "domain_authority": 0, "page_authority": 0,
             "spam_score": -1, "root_domains_to_root_domain": 0, "external_pages_to_page": 0}

    assert signals_of(empty) == {"moz.domain_authority": None, "moz.page_authority": None, "moz.spam_score": None,
                                 "moz.linking_root_domains": 0, "moz.linking_pages": 0}
    assert signals_of({"domain_authority": "57.6", "spam_score": "3"})["moz.domain_authority"] == 58


async def test_one_request_answers_every_url_as_the_world_says(http: HttpClient, emulator: str,
                                                               world: World) -> None:
    urls = [f"https://www.site{i}.com/a/{i}" for i in range(20)]
    urls += ["https://spam-pills.example/offer", "http://unregistered-co.com/", "https://site3.org"]

    results = await collect_many(http, emulator, urls)

    for url, result in zip(urls, results, strict=True):
        assert answered(result) == signals_of(moz_api.metrics(world, url)), url
    spam = answered(results[20])
    assert spam["moz.spam_score"] is not None and spam["moz.spam_score"] >= 45
    assert spam["moz.domain_authority"] is not None and spam["moz.domain_authority"] <= 12
    # Moz knows nothing of it: no score, not 0.
    assert answered(results[21])["moz.domain_authority"] is None


async def test_the_request_is_a_basic_auth_post_of_the_targets(stub_api: StubApi,
                                                               http: HttpClient) -> None:
    seen: list[tuple[web.Request, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        seen.append((request, body))
        return web.json_response({"results": [{**REFERENCE_RESULT, "subdomain": moz_api.page_of(t)[0]}
                                              for t in body["targets"]]})

    urls = ["https://moz.com/blog", "https://example.org/a?b=1"]
    await collect_many(http, await serve(stub_api, handler), urls, key="my-id:my-secret")

    request, body = seen[0]
    assert len(seen) == 1 and request.method == "POST" and body == {"targets": urls}
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"my-id:my-secret").decode()


async def test_a_result_naming_another_host_fails_only_its_url(stub_api: StubApi,
                                                               http: HttpClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        targets = json.loads(await request.read())["targets"]
        results = [{**REFERENCE_RESULT, "subdomain": moz_api.page_of(t)[0]} for t in targets]
        results[1]["subdomain"] = "elsewhere.example"
        return web.json_response({"results": results})

    results = await collect_many(http, await serve(stub_api, handler),
                                 ["https://www.a.com/", "https://b.com/", "https://c.com/"])

    assert isinstance(results[0], Collected) and isinstance(results[2], Collected)
    assert isinstance(results[1], ProviderError) and "elsewhere.example" in results[1].message


async def test_a_result_count_other_than_the_targets_fails_the_request(stub_api: StubApi,
                                                                       http: HttpClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"results": [REFERENCE_RESULT]})

    with pytest.raises(ProviderError) as caught:
        await collect_many(http, await serve(stub_api, handler), ["https://moz.com/", "https://a.com/"])

    assert "1 results for 2 targets" in caught.value.message


async def test_refused_credentials_are_an_error_naming_the_variable(http: HttpClient, emulator: str) -> None:
    with pytest.raises(ProviderError) as caught:
        await collect_many(http, emulator, ["https://site1.com/"], key="someone:else")

    assert caught.value.status == 401 and not caught.value.retryable
    assert "LINKMETER_MOZ_API_KEY" in caught.value.message and "Authentication failed" in caught.value.message


@pytest.mark.parametrize("key", ["no-colon-here", ":secret", "access-id:", "  :  "])
def test_a_key_without_both_parts_is_a_clear_disabled_reason(key: str) -> None:
    reason = MozProvider(ProviderConfig(base_url="http://127.0.0.1:9", api_key=key)).disabled_reason()

    assert reason is not None and "LINKMETER_MOZ_API_KEY must be access_id:secret_key" in reason


def test_without_a_key_the_provider_is_disabled_and_a_full_key_enables_it() -> None:
    assert MozProvider().disabled_reason() == "no API key: set LINKMETER_MOZ_API_KEY"
    assert MozProvider(ProviderConfig(base_url="", api_key="id:secret")).disabled_reason() is None


def test_the_key_is_the_canonical_then_the_final_then_the_submitted_url() -> None:
    provider = MozProvider()

    assert provider.key({"url": "u", "page.final_url": "f", "page.canonical_url": "c"}) == "c"
    assert provider.key({"url": "u", "page.final_url": "f"}) == "f"
    assert provider.key({"url": "u"}) == "u"


async def test_collect_answers_one_url(http: HttpClient, emulator: str, world: World) -> None:
    instance = MozProvider(ProviderConfig(base_url=emulator, api_key=moz_api.DEMO_KEY))

    result = await collect_from(instance, http, {"url": "https://lnk.example/x",
                                                 "page.final_url": "https://site5.net/p"})

    assert result.signals == signals_of(moz_api.metrics(world, "https://site5.net/p"))
    assert result.raw["page"] == "site5.net/p"


@pytest.mark.parametrize(("answer", "expected"), [
    pytest.param(lambda: moz_api.rate_limited_response(4.0), {"rate_limited": True, "retry_after": 4.0},
                 id="429 is rate limited"),
    pytest.param(lambda: moz_api.error_response(500), {"retryable": True, "status": 500, "rate_limited": False},
                 id="5xx is retryable"),
])
async def test_an_upstream_failure_is_the_right_provider_error(answer: Answer, expected: dict[str, object],
                                                               stub_api: StubApi, http: HttpClient) -> None:
    base = await serve(stub_api, answering(answer))
    await raises_provider_error(collect_many(http, base, ["https://a.com/"]), **expected)


async def test_a_full_batch_of_50_urls_is_one_request(emulated_api: EmulateApi, http: HttpClient,
                                                      world: World) -> None:
    api = await emulated_api(moz_api)
    urls = [f"https://site{i}.org/story/{i}" for i in range(MozProvider.max_batch)]

    results = await collect_many(http, api.base_url, urls)

    assert MozProvider.max_batch == 50 and sum(api.hits.values()) == 1
    assert [answered(result) for result in results] == [signals_of(moz_api.metrics(world, url))
                                                                     for url in urls]
