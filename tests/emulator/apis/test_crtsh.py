"""The emulated crt.sh: JSON rows in crt.sh's shape, identity matching, duplicates, options, big domains."""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from linkmeter.emulator.apis import crtsh as crtsh_api
from linkmeter.emulator.knobs import Knobs
from linkmeter.emulator.parts import api_app
from linkmeter.emulator.world import EPOCH, World
from tests.emulator.apis.conftest import ClientFactory

API = crtsh_api
SEED = 5
ROW_KEYS = ["issuer_ca_id", "issuer_name", "common_name", "name_value", "id", "entry_timestamp", "not_before",
            "not_after", "serial_number", "result_count"]


async def rows(client: TestClient[Any, Any], **params: str) -> list[dict[str, Any]]:
    response = await client.get("/", params={"output": "json", **params})
    assert response.status == 200 and response.content_type == "application/json"
    body: list[dict[str, Any]] = await response.json()
    return body


def busy_domain(world: World) -> str:
    """A domain with subdomain certificates, a wildcard line and logged final certificates."""
    for i in range(3000):
        certs = crtsh_api.certificates(world, f"site{i}.com")
        names = {name for cert in certs for name in cert.names}
        if any(n.startswith("*.") for n in names) and len(names) >= 4 and any(c.final_id for c in certs):
            return f"site{i}.com"
    raise AssertionError("no such domain")


async def test_rows_have_crtshs_fields_and_types(client: TestClient[Any, Any], world: World) -> None:
    domain = busy_domain(world)

    found = await rows(client, q=domain)

    assert found and all(list(row) == ROW_KEYS for row in found)
    for row in found:
        assert isinstance(row["id"], int) and isinstance(row["issuer_ca_id"], int)
        assert isinstance(row["result_count"], int) and row["result_count"] >= 1
        for name in ("entry_timestamp", "not_before", "not_after"):
            parsed = datetime.fromisoformat(row[name])
            assert parsed.tzinfo is None  # crt.sh timestamps carry no zone
        assert "." in row["entry_timestamp"] and "." not in row["not_before"]
        assert all(name == domain or name.endswith("." + domain) for name in row["name_value"].split("\n"))
        assert int(row["serial_number"], 16) > 0
    assert len({row["id"] for row in found}) == len(found)


async def test_a_precertificate_and_its_final_certificate_are_two_rows(
        client: TestClient[Any, Any], world: World) -> None:
    domain = busy_domain(world)
    certs = crtsh_api.certificates(world, domain)

    found = await rows(client, q=domain)
    deduplicated = await rows(client, q=domain, deduplicate="Y")

    per_cert = Counter((row["issuer_ca_id"], row["serial_number"]) for row in found)
    assert len(per_cert) == len(certs) == len(deduplicated)
    assert set(per_cert.values()) == {1, 2}
    assert len(found) == len(certs) + sum(1 for cert in certs if cert.final_id)


async def test_percent_dot_and_the_bare_domain_are_one_search(client: TestClient[Any, Any], world: World) -> None:
    domain = busy_domain(world)

    assert await rows(client, q="%." + domain) == await rows(client, q=domain)
    assert await rows(client, Q=domain.upper(), OUTPUT="json") == await rows(client, q=domain)  # names ignore case


async def test_a_host_matches_its_own_names_and_the_wildcard_only_its_parent(
        client: TestClient[Any, Any], world: World) -> None:
    domain = busy_domain(world)
    certs = crtsh_api.certificates(world, domain)
    sub = next(name for cert in certs for name in cert.names if not name.startswith(("*.", "www.")) and name != domain)

    found = await rows(client, q=sub)

    assert found and {row["name_value"] for row in found} == {sub}
    apex = await rows(client, q=domain)
    assert any("*." + domain in row["name_value"].split("\n") for row in apex)


async def test_exclude_expired(client: TestClient[Any, Any], world: World) -> None:
    domain = busy_domain(world)

    found = await rows(client, q=domain, exclude="expired")

    assert found and all(datetime.fromisoformat(row["not_after"]) >= EPOCH.replace(tzinfo=None) for row in found)
    assert len(found) < len(await rows(client, q=domain))


async def test_nothing_found_is_an_empty_array(client: TestClient[Any, Any]) -> None:
    assert await rows(client, q="unregistered-thing.com") == []
    assert await rows(client, q="") == []


async def test_html_without_json_output_and_for_unsupported_wildcards(client: TestClient[Any, Any]) -> None:
    page = await client.get("/", params={"q": "site1.com"})
    odd = await client.get("/", params={"q": "si%te.com", "output": "json"})

    assert page.status == 200 and page.content_type == "text/html"
    assert odd.status == 200 and odd.content_type == "text/html"
    assert "Unsupported use of '%'" in await odd.text()


async def test_a_big_domain_answers_slowly_with_the_statement_timeout_page(
        client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crtsh_api, "BIG_DOMAIN_SECONDS", 0.0)

    response = await client.get("/", params={"q": "%.bigcorp.example", "output": "json"})

    assert response.status == 503 and response.content_type == "text/html"
    text = await response.text()
    assert "<TITLE>crt.sh | ERROR!</TITLE>" in text
    assert "terminated by the crt.sh database server after <B>0</B> seconds" in text
    assert "canceling statement due to statement timeout" in text


def test_spam_domains_have_at_most_two_recent_lets_encrypt_certificates(world: World) -> None:
    for domain in (f"spam{i}.example" for i in range(40)):
        certs = crtsh_api.certificates(world, domain)
        assert len(certs) <= 2
        assert all(cert.issuer in crtsh_api.LETS_ENCRYPT for cert in certs)
        assert all(cert.not_before >= world.domain(domain).registration for cert in certs)


def test_popular_and_old_domains_have_more_certificates(world: World) -> None:
    counts: dict[bool, list[int]] = {True: [], False: []}
    for i in range(600):
        facts = world.domain(f"site{i}.org")
        if facts.spam or not facts.registered:
            continue
        if facts.popularity > 0.5 or facts.popularity < 0.05:
            counts[facts.popularity > 0.5].append(len(crtsh_api.certificates(world, facts.domain)))

    assert statistics.mean(counts[True]) > 2 * statistics.mean(counts[False])


async def test_answers_depend_only_on_the_seed(aiohttp_client: ClientFactory, world: World) -> None:
    domain = busy_domain(world)
    one = await rows(await aiohttp_client(api_app(crtsh_api, World(5))), q=domain)
    again = await rows(await aiohttp_client(api_app(crtsh_api, World(5))), q=domain)
    other = await rows(await aiohttp_client(api_app(crtsh_api, World(6))), q=domain)

    assert one == again != other


def test_knob_answers_are_crtsh_shaped() -> None:
    assert crtsh_api.error_response(503).status == 503
    assert "conflict with recovery" in str(crtsh_api.error_response(503).text)
    assert crtsh_api.error_response(500).content_type == "text/html"
    limited = crtsh_api.rate_limited_response(2.5)
    assert limited.status == 429 and limited.headers["Retry-After"] == "3"


async def test_slow_scale_shortens_a_big_domains_wait(aiohttp_client: ClientFactory, world: World,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crtsh_api, "BIG_DOMAIN_SECONDS", 60.0)  # a test that waited for it would time out
    client = await aiohttp_client(api_app(crtsh_api, world, Knobs(slow_scale=0.0)))  # the benchmark's

    async with asyncio.timeout(5):
        response = await client.get("/", params={"q": "%.bigcorp.example", "output": "json"})

    assert response.status == 503 and "after <B>0</B> seconds" in await response.text()
