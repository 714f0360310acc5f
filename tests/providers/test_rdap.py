"""The RDAP provider: bootstrap, registry choice, domain answers and errors, against the emulated RDAP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from linkmeter.emulator.apis import rdap as rdap_api
from linkmeter.emulator.world import World
from linkmeter.engine.http import HttpClient
from linkmeter.engine.provider import Collected, ProviderError
from linkmeter.engine.provider import ProviderConfig as Config
from linkmeter.providers.rdap import (
    RdapProvider,
    join_url,
    parse_bootstrap,
    parse_domain,
    select_service,
)
from tests.providers.conftest import (
    Answer,
    EmulateApi,
    EmulatedApi,
    Handler,
    StubApi,
    answering,
    collect_from,
    raises_provider_error,
)

SEED = 17
NOW = datetime(2026, 1, 1, tzinfo=UTC)

# The IANA bootstrap fixture and the Verisign GOOGLE.COM answer (REFERENCE.md section 4).
REFERENCE_BOOTSTRAP: dict[str, Any] = {
    "description": "RDAP bootstrap file for Domain Name System registrations",
    "publication": "2017-03-15T21:26:24Z", "version": "1.0",
    "services": [[["ar"], ["https://rdap.nic.ar"]], [["cz"], ["https://rdap.nic.cz"]],
                 [["com", "net"], ["https://rdap.verisign.com/com/v1/"]]],
}
REFERENCE_DOMAIN: dict[str, Any] = {
    "objectClassName": "domain", "handle": "2138514_DOMAIN_COM-VRSN", "ldhName": "GOOGLE.COM",
    "links": [{"value": "https://rdap.verisign.com/com/v1/domain/GOOGLE.COM", "rel": "self",
               "href": "https://rdap.verisign.com/com/v1/domain/GOOGLE.COM", "type": "application/rdap+json"},
              {"rel": "related", "href": "https://rdap.markmonitor.com/rdap/domain/GOOGLE.COM",
               "type": "application/rdap+json"}],
    "status": ["client delete prohibited", "client transfer prohibited", "server update prohibited"],
    "entities": [{"objectClassName": "entity", "handle": "292", "roles": ["registrar"],
                  "publicIds": [{"type": "IANA Registrar ID", "identifier": "292"}],
                  "vcardArray": ["vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", "MarkMonitor Inc."]]],
                  "entities": [{"objectClassName": "entity", "roles": ["abuse"],
                                "vcardArray": ["vcard", [["email", {}, "text", "abusecomplaints@markmonitor.com"]]]}]}],
    "events": [{"eventAction": "registration", "eventDate": "1997-09-15T04:00:00Z"},
               {"eventAction": "expiration", "eventDate": "2028-09-14T04:00:00Z"},
               {"eventAction": "last changed", "eventDate": "2019-09-09T15:39:04Z"},
               {"eventAction": "last update of RDAP database", "eventDate": "2023-02-07T19:46:53Z"}],
    "secureDNS": {"delegationSigned": False},
    "nameservers": [{"objectClassName": "nameserver", "ldhName": "NS1.GOOGLE.COM"}],
    "rdapConformance": ["rdap_level_0", "icann_rdap_technical_implementation_guide_0",
                        "icann_rdap_response_profile_0"],
    "notices": [{"title": "Terms of Use", "description": ["Service subject to Terms of Use."], "links": []}],
}


@pytest.fixture
async def emulator(emulated_api: EmulateApi) -> EmulatedApi:
    return await emulated_api(rdap_api)


def provider(base_url: str, **clocks: Any) -> RdapProvider:
    return RdapProvider(Config(base_url=base_url), now=lambda: NOW, **clocks)


async def collect(http: HttpClient, rdap: RdapProvider, signals: dict[str, Any]) -> Collected:
    return await collect_from(rdap, http, signals)


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("domain", ["site1.com", "site2.org", "site1.example", "shop.uk"])
@pytest.mark.parametrize("slash", ["", "/"])
async def test_registered_domains_match_the_world(
    http: HttpClient, emulator: EmulatedApi, world: World, domain: str, slash: str
) -> None:
    facts = world.domain(domain)

    result = await collect(http, provider(emulator.base_url + slash), {"domain": domain})

    assert result.signals == {
        "rdap.registered": True,
        "rdap.registration_date": iso(facts.registration),
        "rdap.domain_age_days": (NOW - facts.registration).days,
        "rdap.expiration_date": iso(facts.expiration),
        "rdap.registrar": facts.registrar,
        "rdap.registrar_iana_id": facts.registrar_iana_id,
    }
    assert result.raw["ldhName"] == domain.upper()


async def test_an_unregistered_domain_is_an_answer(http: HttpClient, emulator: EmulatedApi) -> None:
    result = await collect(http, provider(emulator.base_url), {"domain": "unregistered-shop.com"})

    assert result.signals == {"rdap.registered": False, "rdap.registration_date": None,
                              "rdap.domain_age_days": None, "rdap.expiration_date": None,
                              "rdap.registrar": None, "rdap.registrar_iana_id": None}
    assert result.raw["errorCode"] == 404


async def test_the_longest_label_match_picks_the_registry(http: HttpClient, emulator: EmulatedApi) -> None:
    result = await collect(http, provider(emulator.base_url), {"domain": "shop.co.uk"})

    assert result.signals["rdap.registered"] is True
    assert "/registry/co.uk/domain/SHOP.CO.UK" in result.raw["links"][0]["href"]
    assert emulator.hits["/rdap/registry/co.uk/domain/shop.co.uk"] == 1


async def test_the_final_domain_is_preferred_and_reduced_to_the_registered_domain(
    http: HttpClient, emulator: EmulatedApi, world: World
) -> None:
    rdap = provider(emulator.base_url)
    signals = {"domain": "short.example", "page.final_domain": "www.Site1.com."}

    result = await collect(http, rdap, signals)

    assert rdap.key(signals) == "site1.com"
    assert result.signals["rdap.registrar"] == world.domain("site1.com").registrar


async def test_the_bootstrap_is_fetched_once_for_many_concurrent_calls(
    http: HttpClient, emulator: EmulatedApi
) -> None:
    clock = [1000.0]
    rdap = provider(emulator.base_url, monotonic=lambda: clock[0])
    domains = [f"site{i}.com" for i in range(20)]

    await asyncio.gather(*(collect(http, rdap, {"domain": d}) for d in domains))
    await collect(http, rdap, {"domain": "site1.org"})
    fetched_within_a_day = emulator.hits["/rdap/dns.json"]
    clock[0] += 24 * 3600
    await collect(http, rdap, {"domain": "site1.org"})

    assert fetched_within_a_day == 1
    assert emulator.hits["/rdap/dns.json"] == 2
    assert sum(n for path, n in emulator.hits.items() if "/domain/" in path) == 22


async def test_a_tld_without_rdap_service_is_a_final_error(http: HttpClient, emulator: EmulatedApi) -> None:
    with pytest.raises(ProviderError) as caught:
        await collect(http, provider(emulator.base_url), {"domain": "shop.nosuchtld"})

    assert not caught.value.retryable
    assert "no RDAP service for TLD 'nosuchtld'" in caught.value.message


async def test_a_failed_bootstrap_is_not_cached(stub_api: StubApi, http: HttpClient) -> None:
    answers = iter([web.Response(status=503, text="busy")])
    accepts: list[str] = []

    async def bootstrap(request: web.Request) -> web.Response:
        root = str(request.url.with_path("/nic-ar"))  # no trailing slash, like rdap.nic.ar
        return next(answers, web.json_response({"services": [[["ar"], [root]]]}))

    async def domain(request: web.Request) -> web.Response:
        accepts.append(request.headers["Accept"])
        return web.json_response(REFERENCE_DOMAIN, content_type="application/rdap+json")

    rdap = provider(await stub_api({"/dns.json": bootstrap, "/nic-ar/domain/{name}": domain}) + "/")

    with pytest.raises(ProviderError) as caught:
        await collect(http, rdap, {"domain": "shop.com.ar"})
    result = await collect(http, rdap, {"domain": "shop.com.ar"})

    assert caught.value.retryable and caught.value.status == 503
    assert result.signals["rdap.registrar"] == "MarkMonitor Inc."
    assert accepts == ["application/rdap+json"]


async def serve_registry(stub_api: StubApi, handler: Handler) -> str:
    async def bootstrap(request: web.Request) -> web.Response:
        return web.json_response({"services": [[["com"], [str(request.url.with_path("/com/"))]]]})

    return await stub_api({"/dns.json": bootstrap, "/com/domain/{name}": handler}) + "/"


@pytest.mark.parametrize(("answer", "expected"), [
    pytest.param(lambda: rdap_api.rate_limited_response(12.0),
                 {"rate_limited": True, "retryable": True, "retry_after": 12.0},
                 id="429 is rate-limited with retry-after"),
    pytest.param(lambda: web.Response(status=500, text="oops"), {"retryable": True, "status": 500},
                 id="5xx is retryable"),
    pytest.param(lambda: web.Response(body=b"<html>maintenance</html>", content_type="application/rdap+json"),
                 {"retryable": False}, id="invalid json is not retryable"),
    pytest.param(lambda: web.Response(body=b'["not", "an", "object"]', content_type="application/rdap+json"),
                 {"retryable": False}, id="unexpected json is not retryable"),
])
async def test_an_upstream_failure_is_the_right_provider_error(
    answer: Answer, expected: dict[str, object], stub_api: StubApi, http: HttpClient
) -> None:
    base_url = await serve_registry(stub_api, answering(answer))
    await raises_provider_error(collect(http, provider(base_url), {"domain": "x.com"}), **expected)


def test_reference_bootstrap() -> None:
    services = parse_bootstrap(REFERENCE_BOOTSTRAP)

    assert select_service(services, "google.com") == "https://rdap.verisign.com/com/v1/"
    assert select_service(services, "shop.com.ar") == "https://rdap.nic.ar"
    assert select_service(services, "x.org") is None
    assert join_url("https://rdap.nic.ar", "domain/shop.com.ar") == "https://rdap.nic.ar/domain/shop.com.ar"
    assert join_url("https://rdap.verisign.com/com/v1/", "domain/google.com") == \
        "https://rdap.verisign.com/com/v1/domain/google.com"


def test_longest_label_match_and_https_preference() -> None:
    services = {"uk": ["https://uk.example/"], "co.uk": ["http://co-uk.example/", "https://co-uk.example/"]}

    assert select_service(services, "shop.co.uk") == "https://co-uk.example/"
    assert select_service(services, "shop.uk") == "https://uk.example/"
    assert select_service({"uk": ["http://only-http.example/"]}, "x.uk") == "http://only-http.example/"


def test_reference_domain_answer() -> None:
    assert parse_domain(REFERENCE_DOMAIN, NOW) == {
        "rdap.registered": True,
        "rdap.registration_date": "1997-09-15T04:00:00Z",
        "rdap.domain_age_days": 10334,
        "rdap.expiration_date": "2028-09-14T04:00:00Z",
        "rdap.registrar": "MarkMonitor Inc.",
        "rdap.registrar_iana_id": "292",
    }


def test_a_sparse_answer_gives_what_it_has() -> None:
    sparse = {"objectClassName": "domain", "events": [{"eventAction": "registration",
                                                       "eventDate": "2001-02-03T04:05:06.789+02:00"}]}

    signals = parse_domain(sparse, NOW)

    assert signals["rdap.registration_date"] == "2001-02-03T02:05:06Z"
    assert signals["rdap.expiration_date"] is None and signals["rdap.registrar"] is None
    assert signals["rdap.registrar_iana_id"] is None
