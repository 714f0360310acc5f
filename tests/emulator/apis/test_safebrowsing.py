"""The emulated Safe Browsing Lookup API: matches by the world's threats, {} and [] for clean, Google's errors."""

from __future__ import annotations

import json
from itertools import islice
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from linkmeter.emulator.apis import safebrowsing as sb_api
from linkmeter.emulator.parts import api_app
from linkmeter.emulator.world import World
from tests.emulator.apis.conftest import ClientFactory

API = sb_api
SEED = 3
PATH = "/v4/threatMatches:find"
BY_THREAT = {"phishing": "SOCIAL_ENGINEERING", "malware": "MALWARE", "spam": "UNWANTED_SOFTWARE"}
ALL_TYPES = ["MALWARE", "SOCIAL_ENGINEERING", "UNWANTED_SOFTWARE", "POTENTIALLY_HARMFUL_APPLICATION"]


def body(urls: list[str], types: list[str] | None = None) -> dict[str, Any]:
    return {"client": {"clientId": "test", "clientVersion": "1"},
            "threatInfo": {"threatTypes": types or ALL_TYPES, "platformTypes": ["ANY_PLATFORM"],
                           "threatEntryTypes": ["URL"], "threatEntries": [{"url": url} for url in urls]}}


async def find(client: TestClient[Any, Any], payload: Any, key: str = sb_api.DEMO_KEY) -> tuple[int, Any]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    response = await client.post(PATH, params={"key": key} if key else {}, data=data,
                                 headers={"Content-Type": "application/json"})
    return response.status, await response.json()


def domains_with(world: World, threat: str | None, count: int = 400) -> list[str]:
    names = (f"site{i}.com" for i in range(100_000))
    return list(islice((d for d in names if world.domain(d).registered and world.domain(d).threat == threat), count))


async def test_the_named_test_points_match_by_their_threat(client: TestClient[Any, Any], world: World) -> None:
    urls = ["https://phish-login.example/signin", "https://malware-downloads.example/a.exe",
            "https://spam-deals.example/offer"]
    status, answer = await find(client, body(urls))

    assert status == 200
    types = {(m["threat"]["url"], m["threatType"]) for m in answer["matches"]}
    # A named domain is spam of the world's drawn kind (spam-deals.example may be phishing under this seed).
    for url in urls:
        threat = world.domain(url.split("/")[2]).threat
        assert (url, BY_THREAT[threat or ""]) in types
    for match in answer["matches"]:
        assert match["platformType"] == "ANY_PLATFORM" and match["threatEntryType"] == "URL"
        assert match["cacheDuration"] in sb_api.CACHE_DURATIONS
        if match["threatType"] == "MALWARE":
            entry = match["threatEntryMetadata"]["entries"][0]
            assert entry["key"] == "malware_threat_type" and entry["value"] in ("landing", "distribution")


async def test_only_the_threat_types_asked_for_match(client: TestClient[Any, Any]) -> None:
    status, answer = await find(client, body(["https://phish-login.example/signin"], types=["MALWARE"]))
    assert status == 200 and not answer.get("matches")


async def test_clean_answers_are_empty_objects_or_empty_lists(client: TestClient[Any, Any]) -> None:
    shapes = set()
    for i in range(40):
        status, answer = await find(client, body([f"https://news.example.org/a/{i}"]))
        assert status == 200 and not answer.get("matches")
        shapes.add(json.dumps(answer))
    assert shapes == {"{}", '{"matches": []}'}


def test_each_list_sees_part_of_the_spam_population_and_hardly_any_clean_site(world: World) -> None:
    def share(domains: list[str], threat: str) -> float:
        return sum(threat in sb_api.threat_types(world, d) for d in domains) / len(domains)

    assert 0.6 < share(domains_with(world, "phishing"), "SOCIAL_ENGINEERING") < 0.95
    assert 0.6 < share(domains_with(world, "malware"), "MALWARE") < 0.9
    assert 0.05 < share(domains_with(world, "spam"), "UNWANTED_SOFTWARE") < 0.35
    clean = domains_with(world, None, count=3000)
    assert sum(bool(sb_api.threat_types(world, d)) for d in clean) <= 15


async def test_answers_depend_only_on_the_seed(aiohttp_client: ClientFactory, world: World) -> None:
    urls = [f"https://{d}/x" for d in domains_with(world, "malware", 20)]
    one = await find(await aiohttp_client(api_app(sb_api, World(3))), body(urls))
    two = await find(await aiohttp_client(api_app(sb_api, World(3))), body(urls))
    assert one == two and one[1]["matches"]


@pytest.mark.parametrize(("key", "status", "google_status", "reason"), [
    ("", 403, "PERMISSION_DENIED", None),
    ("AIza-not-a-key", 400, "INVALID_ARGUMENT", "API_KEY_INVALID"),
    (sb_api.DISABLED_KEY, 403, "PERMISSION_DENIED", "SERVICE_DISABLED"),
])
async def test_keys_are_checked_first_in_googles_error_envelope(
        client: TestClient[Any, Any], key: str, status: int, google_status: str, reason: str | None) -> None:
    got, answer = await find(client, b"not even json", key=key)

    assert got == status
    assert answer["error"]["code"] == status and answer["error"]["status"] == google_status
    assert answer["error"]["message"]
    if reason:
        assert answer["error"]["details"][0]["reason"] == reason


async def test_bad_requests_are_invalid_argument(client: TestClient[Any, Any]) -> None:
    status, answer = await find(client, b"{not json")
    assert status == 400 and answer["error"]["status"] == "INVALID_ARGUMENT"
    assert answer["error"]["message"].startswith("Invalid JSON payload received.")

    status, answer = await find(client, body(["https://a.example/"], types=["PHISHING"]))
    assert status == 400 and "threat_info.threat_types[0]" in answer["error"]["message"]
    assert '"PHISHING"' in answer["error"]["message"]


async def test_at_most_500_entries_a_request(client: TestClient[Any, Any]) -> None:
    urls = [f"https://site{i}.example/" for i in range(501)]
    status, answer = await find(client, body(urls[:500]))
    assert status == 200

    status, answer = await find(client, body(urls))
    assert status == 400 and answer["error"]["status"] == "INVALID_ARGUMENT"
    violation = answer["error"]["details"][0]["fieldViolations"][0]
    assert violation["field"] == "threat_info.threat_entries"


async def test_the_knobs_answer_in_googles_envelope() -> None:
    limited = sb_api.rate_limited_response(3)
    assert limited.status == 429 and "Retry-After" not in limited.headers
    error = json.loads(limited.text or "")["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED" and error["errors"][0]["reason"] == "rateLimitExceeded"
    assert "Quota exceeded" in error["message"]

    unavailable = sb_api.error_response(503)
    assert unavailable.status == 503 and json.loads(unavailable.text or "")["error"]["status"] == "UNAVAILABLE"
    assert json.loads(sb_api.error_response(500).text or "")["error"]["status"] == "INTERNAL"
