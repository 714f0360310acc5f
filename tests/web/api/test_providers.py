"""GET /api/v1/providers: every provider's health from stored results and the engine's view."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from linkmeter.assembly import build_engine
from linkmeter.engine.cache import CacheEntry
from linkmeter.providers.registry import PROVIDER_CLASSES
from linkmeter.web.jobs import health
from linkmeter.web.jobs.health import forget_counts
from linkmeter.web.links.models import Analysis, ProviderResult
from tests.web.api.conftest import complete_queued
from tests.web.conftest import UNREACHABLE_REDIS_URL, SharedRedis, use_engine

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def no_engine() -> Iterator[None]:
    use_engine(None)
    yield
    use_engine(None)


def by_name(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in body["providers"]}


def test_every_provider_is_reported_with_its_recent_numbers(client: Client, no_engine: None,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKMETER_REDDIT_ENABLED", "false")
    monkeypatch.delenv("LINKMETER_REDIS_URL", raising=False)
    client.post("/api/v1/analyses", {"urls": ["https://example.org/a"]}, content_type="application/json")
    complete_queued()
    body = client.get("/api/v1/providers").json()
    assert body["window_minutes"] == 15
    health = {p["name"]: p for p in body["providers"]}
    assert set(health) == {cls.name for cls in PROVIDER_CLASSES}
    page, rdap, reddit = health["page"], health["rdap"], health["reddit"]
    assert page["calls"] == 1 and page["success_rate"] == 1.0 and page["p50_ms"] == 12.5
    assert page["statuses"] == {"ok": 1} and page["last_error"] is None and page["enabled"] is True
    assert rdap["success_rate"] == 0.0 and rdap["last_error"] == "error: HTTP 503"
    assert rdap["last_error_at"] is not None and rdap["p95_ms"] is None
    assert reddit["enabled"] is False and "LINKMETER_REDDIT_ENABLED" in reddit["disabled_reason"]
    assert health["wayback"]["calls"] == 0 and health["wayback"]["success_rate"] is None
    assert {p["breaker"] for p in body["providers"]} == {"unknown"}  # no engine running in this process
    assert page["hit_ratio"] == 0.0 and rdap["hit_ratio"] is None  # ok 1, cached 0; no success at all
    assert rdap["cache"] == {"ttl_seconds": 86400.0, "store": "unknown", "entries": None, "entries_more": False}


async def test_breaker_states_come_from_the_running_engine(async_client: Client) -> None:
    engine = build_engine({})
    use_engine(engine)
    try:
        response = await async_client.get("/api/v1/providers")
    finally:
        use_engine(None)
        await engine.close()
    assert response.status_code == 200
    assert {p["name"]: p["breaker"] for p in response.json()["providers"]}["page"] == "closed"


async def test_the_cache_of_the_running_engine_is_counted(async_client: Client,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "ENTRIES_LIMIT", 10)
    engine = build_engine({})
    use_engine(engine)
    try:
        for number in range(11):
            await engine.state.cache.set(f"rdap:key-{number}", CacheEntry({}, None, 0.0), 600.0)
        await engine.state.cache.set("page:key", CacheEntry({}, None, 0.0), 600.0)
        response = await async_client.get("/api/v1/providers")
    finally:
        use_engine(None)
        await engine.close()
    health_ = by_name(response.json())
    assert health_["page"]["cache"] == {"ttl_seconds": 60.0, "store": "memory", "entries": 1, "entries_more": False}
    assert health_["rdap"]["cache"] == {"ttl_seconds": 86400.0, "store": "memory", "entries": 10,
                                        "entries_more": True}  # more than 10
    assert health_["wayback"]["cache"]["entries"] == 0


def test_the_hit_ratio_is_over_the_stored_results_of_the_window(client: Client, no_engine: None) -> None:
    client.post("/api/v1/analyses", {"urls": [f"https://example.org/{i}" for i in range(3)]},
                content_type="application/json")
    complete_queued()  # page: ok, rdap: error (three of each)
    first = Analysis.objects.order_by("id").first()
    ProviderResult.objects.filter(analysis=first, provider="page").update(status="cached")
    ProviderResult.objects.filter(analysis=first, provider="rdap").update(status="cached")
    health_ = by_name(client.get("/api/v1/providers").json())
    assert health_["page"]["hit_ratio"] == round(1 / 3, 4)
    assert health_["rdap"]["hit_ratio"] == 1.0  # one cached, the other calls failed
    assert health_["dns"]["hit_ratio"] is None  # nothing ran


def test_celery_mode_counts_the_cache_the_workers_share(client: Client, no_engine: None,
                                                        worker_redis: SharedRedis) -> None:
    async_to_sync(worker_redis.fill)("hackernews", 5)
    health_ = by_name(client.get("/api/v1/providers").json())
    assert health_["hackernews"]["cache"] == {"ttl_seconds": 3600.0, "store": "redis", "entries": 5,
                                              "entries_more": False}
    assert health_["page"]["cache"]["entries"] == 0 and health_["page"]["breaker"] == "closed"


def test_an_unreachable_redis_leaves_the_counts_unknown(client: Client, no_engine: None,
                                                        worker_redis: SharedRedis,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKMETER_REDIS_URL", UNREACHABLE_REDIS_URL)
    forget_counts()
    started = time.monotonic()
    response = client.get("/api/v1/providers")
    assert time.monotonic() - started < 2.0 and response.status_code == 200
    caches = [p["cache"] for p in response.json()["providers"]]
    assert {c["entries"] for c in caches} == {None} and {c["store"] for c in caches} == {"redis"}


def test_the_openapi_document_describes_the_cache_fields(client: Client) -> None:
    schemas = client.get("/api/v1/openapi.json").json()["components"]["schemas"]
    health_ = schemas["ProviderHealthOut"]["properties"]
    assert {"hit_ratio", "cache", "breaker", "success_rate", "last_error_at"} <= set(health_)
    cache = schemas["ProviderCacheOut"]["properties"]
    assert set(cache) == {"ttl_seconds", "store", "entries", "entries_more"}
    assert all(field.get("description") for field in cache.values())
    assert "redis" in cache["store"]["description"] and "memory" in cache["store"]["description"]


def test_each_provider_says_its_group_default_set_key_and_limits(client: Client, no_engine: None,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LINKMETER_SAFEBROWSING_API_KEY", raising=False)
    monkeypatch.setenv("LINKMETER_OPENPAGERANK_API_KEY", "secret-opr-key")
    monkeypatch.delenv("LINKMETER_REDIS_URL", raising=False)
    response = client.get("/api/v1/providers")
    assert "secret-opr-key" not in response.content.decode()  # whether a key is set, never the key
    health = by_name(response.json())
    safebrowsing, opr, pagespeed, tranco = (health[n] for n in ("safebrowsing", "openpagerank", "pagespeed", "tranco"))
    assert safebrowsing["group"] == "threat" and safebrowsing["keyed"] is True and safebrowsing["key"] == "required"
    assert safebrowsing["key_set"] is False and safebrowsing["enabled"] is False
    assert safebrowsing["key_variable"] == "LINKMETER_SAFEBROWSING_API_KEY"
    assert "LINKMETER_SAFEBROWSING_API_KEY" in safebrowsing["disabled_reason"]
    assert safebrowsing["key_url"].startswith("https://") and "500 URLs" in safebrowsing["published_limits"]
    assert opr["key_set"] is True and opr["enabled"] is True and opr["group"] == "authority"
    assert pagespeed["in_default_set"] is False and pagespeed["group"] == "page"
    assert tranco["keyed"] is False and tranco["key"] == "none" and tranco["key_variable"] is None
    assert tranco["key_set"] is False and tranco["in_default_set"] is True
    assert health["phishtank"]["key"] == "optional" and health["phishtank"]["enabled"] is True
    assert health["safebrowsing"]["docs"] == "docs/providers.md#safebrowsing"
    assert health["authority"]["docs"] == "docs/providers.md#authority-indicator"
    assert {p["group"] for p in health.values()} == {"page", "domain", "threat", "authority", "social", "archive",
                                                     "indicator"}


def test_the_openapi_documents_the_provider_fields(client: Client) -> None:
    schema = client.get("/api/v1/openapi.json").json()["components"]["schemas"]
    fields = schema["ProviderHealthOut"]["properties"]
    for name in ("group", "in_default_set", "keyed", "key", "key_variable", "key_set", "key_url",
                 "published_limits", "docs"):
        assert fields[name].get("description") or "$ref" in fields[name] or "anyOf" in fields[name], name
    assert "in_default_set" in schema["ProviderHealthOut"]["required"]
    assert {"providers", "default_set"} <= set(schema["BatchOut"]["properties"])
