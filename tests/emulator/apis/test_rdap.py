"""The emulated RDAP: the bootstrap file, Verisign-shaped domain answers and RFC 7483 errors."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from linkmeter.emulator.apis import rdap as rdap_api
from linkmeter.emulator.world import World

API = rdap_api
SEED = 21
MOUNT = "/rdap"
DOMAIN_KEYS = {"objectClassName", "handle", "ldhName", "links", "status", "entities", "events", "secureDNS",
               "nameservers", "rdapConformance", "notices"}


async def services(client: TestClient[Any, Any]) -> dict[str, str]:
    response = await client.get("/rdap/dns.json")
    assert response.status == 200
    body = await response.json()
    assert {"description", "publication", "version", "services"} <= body.keys()
    return {label: urls[0] for labels, urls in body["services"] for label in labels}


async def test_the_bootstrap_points_back_at_the_mounted_emulator(client: TestClient[Any, Any]) -> None:
    table = await services(client)
    root = str(client.make_url("/rdap/registry/"))

    assert {"com", "net", "org", "io", "de", "uk", "co.uk", "example", "test", "xyz", "dev"} <= table.keys()
    assert table["com"] == table["net"] == root + "com/"
    assert table["org"] == root + "org"  # some base URLs lack the trailing slash, as rdap.nic.ar does
    assert all(url.startswith(root) for url in table.values())
    assert len(table) > 1000  # every ICANN TLD resolves


async def test_a_registered_domain_in_verisigns_shape(client: TestClient[Any, Any], world: World) -> None:
    facts = world.domain("site1.com")
    assert facts.registered

    response = await client.get("/rdap/registry/com/domain/SITE1.COM")

    assert response.status == 200 and response.content_type == "application/rdap+json"
    body = await response.json()
    assert body.keys() >= DOMAIN_KEYS
    assert body["objectClassName"] == "domain" and body["ldhName"] == "SITE1.COM"
    assert body["handle"].endswith("_DOMAIN_COM-VRSN")
    assert body["links"][0]["rel"] == "self" and body["links"][0]["href"].endswith("/domain/SITE1.COM")
    registrar = body["entities"][0]
    assert registrar["roles"] == ["registrar"]
    assert registrar["vcardArray"][0] == "vcard"
    assert ["fn", {}, "text", facts.registrar] in registrar["vcardArray"][1]
    assert registrar["publicIds"] == [{"type": "IANA Registrar ID", "identifier": facts.registrar_iana_id}]
    events = {event["eventAction"]: event["eventDate"] for event in body["events"]}
    assert events["registration"] == facts.registration.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert events["expiration"] == facts.expiration.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(body["nameservers"]) == facts.ns_count


@pytest.mark.parametrize(("path", "why"), [
    ("/rdap/registry/com/domain/unregistered-shop.com", "not registered"),
    ("/rdap/registry/org/domain/site1.com", "another registry's TLD"),
    ("/rdap/registry/uk/domain/shop.co.uk", "a longer label match exists"),
    ("/rdap/registry/com/domain/www.site1.com", "a host, not a registered domain"),
    ("/rdap/registry/nope/domain/site1.com", "no such registry"),
])
async def test_not_found_is_an_rfc7483_error(client: TestClient[Any, Any], path: str, why: str) -> None:
    response = await client.get(path)

    assert response.status == 404, why
    assert response.content_type == "application/rdap+json"
    body = await response.json()
    assert body["errorCode"] == 404 and body["title"] == "Not Found" and isinstance(body["description"], list)


async def test_an_invalid_name_is_400(client: TestClient[Any, Any]) -> None:
    response = await client.get("/rdap/registry/com/domain/bad_name!.com")

    assert response.status == 400
    assert (await response.json())["errorCode"] == 400


def test_rate_limited_response() -> None:
    response = rdap_api.rate_limited_response(3.5)

    assert response.status == 429 and response.headers["Retry-After"] == "4"
    assert response.content_type == "application/rdap+json"
    assert response.text is not None and '"errorCode": 429' in response.text


def test_registry_for_uses_the_longest_label_match() -> None:
    assert rdap_api.registry_for("shop.co.uk") == "co.uk"
    assert rdap_api.registry_for("shop.uk") == "uk"
    assert rdap_api.registry_for("site.net") == "com"
    assert rdap_api.registry_for("site.xyz") == rdap_api.CATCH_ALL
    assert rdap_api.registry_for("site.nosuchtld") is None
