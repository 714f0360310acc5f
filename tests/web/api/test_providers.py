"""GET /api/v1/providers: every provider's health from stored results and the engine's view."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client

from linkmeter.assembly import build_engine
from linkmeter.providers.registry import PROVIDER_CLASSES
from linkmeter.web.jobs.health import register_engine
from tests.web.api.conftest import complete_queued

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def no_engine() -> Iterator[None]:
    register_engine(None)
    yield
    register_engine(None)


def test_every_provider_is_reported_with_its_recent_numbers(client: Client, no_engine: None,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKMETER_REDDIT_ENABLED", "false")
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


async def test_breaker_states_come_from_the_running_engine(async_client: Client) -> None:
    engine = build_engine({})
    register_engine(engine)
    try:
        response = await async_client.get("/api/v1/providers")
    finally:
        register_engine(None)
        await engine.close()
    assert response.status_code == 200
    assert {p["name"]: p["breaker"] for p in response.json()["providers"]}["page"] == "closed"
