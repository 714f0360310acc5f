"""The crt.sh provider: the REFERENCE row, precertificate/final deduplication, the emulated search, big
domains (crt.sh giving up, or a timeout that costs only this cell) and error mapping."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from linkmeter.assembly import build_engine
from linkmeter.emulator.apis import crtsh as crtsh_api
from linkmeter.emulator.client import environment, write_ca
from linkmeter.emulator.knobs import Knobs
from linkmeter.emulator.parts import api_app
from linkmeter.emulator.world import World
from linkmeter.engine.dns import DnsClient
from linkmeter.engine.http import HttpClient
from linkmeter.engine.provider import CallContext, Collected, ProviderConfig, ProviderError
from linkmeter.engine.results import CallStatus, UrlStatus
from linkmeter.providers.crtsh import CrtshProvider, certificates, organisation, parse_timestamp, summarise
from tests.conftest import MakeEmulator

SEED = 31
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# REFERENCE.md section 9.
REFERENCE_ROW: dict[str, Any] = {
    "issuer_ca_id": 16418, "issuer_name": "C=US, O=Let's Encrypt, CN=Let's Encrypt Authority X3",
    "common_name": "insecure.com", "name_value": "issues.nmap.org\nnmap.org\nsvn.nmap.org", "id": 2549490984,
    "entry_timestamp": "2020-03-07T00:14:48.255", "not_before": "2020-03-06T23:14:48",
    "not_after": "2020-06-04T23:14:48", "serial_number": "03b5914e5f28724457a5a51ad2c494d040f6", "result_count": 4,
}
NOTHING = {"crtsh.certificates": 0, "crtsh.first_certificate": None, "crtsh.latest_expiry": None,
           "crtsh.issuers": 0, "crtsh.issuer_names": [], "crtsh.hostnames": 0}


class Emulator:
    def __init__(self, base_url: str, requests: list[web.Request]) -> None:
        self.base_url = base_url
        self.requests = requests


@pytest.fixture
def world() -> World:
    return World(SEED)


@pytest.fixture
async def emulator(aiohttp_server: ServerFactory, world: World) -> Emulator:
    seen: list[web.Request] = []

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        seen.append(request)
        return await handler(request)

    root = web.Application(middlewares=[record])
    root.add_subapp("/crtsh", api_app(crtsh_api, world))
    server = await aiohttp_server(root)
    return Emulator(str(server.make_url("/crtsh")), seen)


async def serve(aiohttp_server: ServerFactory, handler: Handler) -> str:
    app = web.Application()
    app.router.add_get("/", handler)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def collect(http: HttpClient, base_url: str, signals: dict[str, Any]) -> Collected:
    provider = CrtshProvider(ProviderConfig(base_url=base_url))
    ctx = CallContext(http=http, dns=DnsClient([("127.0.0.1", 53)]), config=provider.config)
    return await provider.collect(ctx, signals)


def find_domain(world: World, predicate: Callable[[list[crtsh_api.Cert]], bool]) -> str:
    for i in range(3000):
        domain = f"site{i}.com"
        if predicate(crtsh_api.certificates(world, domain)):
            return domain
    raise AssertionError("no such domain in this world")


def iso(cert_time: Any) -> str:
    return str(cert_time.strftime("%Y-%m-%dT%H:%M:%SZ"))


def test_the_reference_row() -> None:
    found = certificates([REFERENCE_ROW])

    assert summarise(found, "nmap.org") == {
        "crtsh.certificates": 1, "crtsh.first_certificate": "2020-03-06T23:14:48Z",
        "crtsh.latest_expiry": "2020-06-04T23:14:48Z", "crtsh.issuers": 1, "crtsh.issuer_names": ["Let's Encrypt"],
        "crtsh.hostnames": 3,
    }


def test_a_precertificate_and_its_final_certificate_count_once() -> None:
    final = {**REFERENCE_ROW, "id": 2549490999, "entry_timestamp": "2020-03-07T01:02:03.4",
             "serial_number": "3B5914E5F28724457A5A51AD2C494D040F6"}  # the same serial, spelled otherwise
    other_issuer = {**REFERENCE_ROW, "id": 2549491000, "issuer_ca_id": 183267, "issuer_name": "C=US, O=Let's "
                    "Encrypt, CN=R3"}
    wildcard = {**REFERENCE_ROW, "id": 5, "serial_number": "04aa", "name_value": "*.nmap.org\nNMAP.org\nnmap.org.evil"}

    signals = summarise(certificates([REFERENCE_ROW, final, other_issuer, wildcard]), "nmap.org")

    assert signals["crtsh.certificates"] == 3  # the same serial under another CA is another certificate
    assert signals["crtsh.issuers"] == 2
    assert signals["crtsh.issuer_names"] == ["Let's Encrypt"]
    # issues., svn., the apex and the wildcard (one name of its own); a name outside the domain is left out
    assert signals["crtsh.hostnames"] == 4


def test_timestamps_without_a_zone_are_utc() -> None:
    assert iso(parse_timestamp("2020-03-06T23:14:48")) == "2020-03-06T23:14:48Z"
    assert iso(parse_timestamp("2020-03-07T00:14:48.255")) == "2020-03-07T00:14:48Z"
    assert iso(parse_timestamp("2020-03-07T02:14:48+02:00")) == "2020-03-07T00:14:48Z"
    assert parse_timestamp("yesterday") is None and parse_timestamp(None) is None


def test_issuer_organisations() -> None:
    assert organisation("C=US, O=Let's Encrypt, CN=R3") == "Let's Encrypt"
    assert organisation('C=US, O="DigiCert, Inc.", CN=x') == "DigiCert, Inc."
    assert organisation("CN=Some Root") == "CN=Some Root"


async def test_signals_match_the_worlds_certificates(http: HttpClient, emulator: Emulator, world: World) -> None:
    domain = find_domain(world, lambda certs: len(certs) >= 5 and any(c.final_id for c in certs))
    certs = crtsh_api.certificates(world, domain)

    result = await collect(http, emulator.base_url, {"domain": domain})

    assert len(result.raw["first_rows"]) <= 20 and result.raw["rows"] > len(certs)  # final certificates too
    assert result.signals == {
        "crtsh.certificates": len(certs),
        "crtsh.first_certificate": iso(min(c.not_before for c in certs)),
        "crtsh.latest_expiry": iso(max(c.not_after for c in certs)),
        "crtsh.issuers": len({c.issuer.ca_id for c in certs}),
        "crtsh.issuer_names": result.signals["crtsh.issuer_names"],
        "crtsh.hostnames": len({name for c in certs for name in c.names}),
    }
    assert set(result.signals["crtsh.issuer_names"]) == {organisation(c.issuer.name) for c in certs}
    [request] = emulator.requests
    assert request.method == "GET" and request.path == "/crtsh/"
    assert dict(request.query) == {"q": domain, "output": "json"}


async def test_the_final_domain_is_asked_as_its_registered_domain(
        http: HttpClient, emulator: Emulator, world: World) -> None:
    provider = CrtshProvider()
    signals = {"domain": "short.example", "page.final_domain": "Blog.Site3.CO.UK."}

    result = await collect(http, emulator.base_url, signals)

    assert provider.key(signals) == "site3.co.uk"
    assert emulator.requests[0].query["q"] == "site3.co.uk"
    assert result.signals["crtsh.certificates"] == len(crtsh_api.certificates(world, "site3.co.uk"))


async def test_no_certificates_is_an_answer(http: HttpClient, emulator: Emulator) -> None:
    result = await collect(http, emulator.base_url, {"domain": "unregistered-shop.com"})

    assert result.signals == NOTHING
    assert result.raw == {"domain": "unregistered-shop.com", "rows": 0, "first_rows": []}


async def test_an_empty_body_is_no_certificates(aiohttp_server: ServerFactory, http: HttpClient) -> None:
    async def empty(_request: web.Request) -> web.Response:
        return web.Response(text="", content_type="application/json")

    result = await collect(http, await serve(aiohttp_server, empty), {"domain": "example.com"})

    assert result.signals == NOTHING


async def test_spam_domains_have_a_couple_of_recent_free_certificates(
        http: HttpClient, emulator: Emulator, world: World) -> None:
    domain = "spam-deals.example"
    registered = world.domain(domain).registration

    result = await collect(http, emulator.base_url, {"domain": domain})

    assert result.signals["crtsh.certificates"] <= 2
    assert result.signals["crtsh.issuer_names"] in ([], ["Let's Encrypt"])
    for cert in crtsh_api.certificates(world, domain):
        assert cert.not_before >= registered


async def test_a_big_domain_makes_crtsh_give_up_for_good(
        http: HttpClient, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crtsh_api, "BIG_DOMAIN_SECONDS", 0.0)

    with pytest.raises(ProviderError) as caught:
        await collect(http, emulator.base_url, {"domain": "bigcorp.example"})

    assert caught.value.status == 503 and not caught.value.retryable
    assert caught.value.message == ("crt.sh gave up on bigcorp.example after 0 s: too many certificates (its "
                                    "database cancelled the query)")


@pytest.mark.parametrize(("status", "retryable"), [(503, True), (500, True)])
async def test_other_5xx_are_retried(aiohttp_server: ServerFactory, http: HttpClient, status: int,
                                     retryable: bool) -> None:
    async def failing(_request: web.Request) -> web.Response:
        return crtsh_api.error_response(status)

    with pytest.raises(ProviderError) as caught:
        await collect(http, await serve(aiohttp_server, failing), {"domain": "example.com"})

    assert caught.value.status == status and caught.value.retryable is retryable
    assert "<" not in caught.value.message  # the page's text, not its markup
    if status == 503:
        assert "conflict with recovery" in caught.value.message


async def test_429_is_rate_limited_with_retry_after(aiohttp_server: ServerFactory, http: HttpClient) -> None:
    async def limited(_request: web.Request) -> web.Response:
        return crtsh_api.rate_limited_response(7)

    with pytest.raises(ProviderError) as caught:
        await collect(http, await serve(aiohttp_server, limited), {"domain": "example.com"})

    assert caught.value.rate_limited and caught.value.retryable and caught.value.retry_after == 7


@pytest.mark.parametrize("body", ["<HTML><BODY>Sorry</BODY></HTML>", '{"rows": []}'])
async def test_a_200_that_is_no_json_array_is_an_error(aiohttp_server: ServerFactory, http: HttpClient,
                                                       body: str) -> None:
    async def odd(_request: web.Request) -> web.Response:
        return web.Response(text=body, content_type="text/html")

    with pytest.raises(ProviderError) as caught:
        await collect(http, await serve(aiohttp_server, odd), {"domain": "example.com"})

    assert not caught.value.retryable


async def test_a_big_domain_that_outlives_the_timeout_costs_only_its_own_cell(
        emulator_factory: MakeEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crtsh_api, "BIG_DOMAIN_SECONDS", 1.0)  # longer than the timeout below
    emulator = await emulator_factory(knobs=Knobs(seed=SEED))
    ca_file = write_ca(emulator.info(), tmp_path)
    environ = {**environment(emulator.info(), ca_file=ca_file),
               "LINKMETER_CRTSH_TIMEOUT": "0.2", "LINKMETER_CRTSH_RETRIES": "0"}
    engine = build_engine(environ, select=["page", "rdap", "crtsh", "wayback"], relax_rate_limits=True)
    try:
        results = {r.url: r async for r in engine.analyze_many(
            ["https://bigcorp.example/", "https://news.example.org/a/1"], concurrency=2)}
    finally:
        await engine.close()
        await engine.http.close()

    big, other = results["https://bigcorp.example/"], results["https://news.example.org/a/1"]
    assert big.providers["crtsh"].status is CallStatus.TIMEOUT
    assert {name: call.status for name, call in big.providers.items() if name != "crtsh"} == {
        "page": CallStatus.OK, "rdap": CallStatus.OK, "wayback": CallStatus.OK}
    assert big.status is UrlStatus.PARTIAL and big.signals["rdap.registered"] is True
    assert "crtsh.certificates" not in big.signals
    assert other.status is UrlStatus.DONE and other.signals["crtsh.certificates"] >= 0
