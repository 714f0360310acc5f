"""Every API answer of an account carries the rate-limit headers; too many requests are 429 rate_limited with
Retry-After; the plan's refusals have their own codes and consume nothing; local mode has no limits."""

from __future__ import annotations

from typing import Any

import http_sf
import pytest
from django.contrib.auth.models import User
from django.test import Client

from linkmeter.web.accounts.services import key_create
from linkmeter.web.links.models import Analysis, Batch
from linkmeter.web.plans.models import QuotaCounter
from tests.web.plans.conftest import MakeAccount

pytestmark = pytest.mark.django_db(transaction=True)

SUBMIT = "/api/v1/analyses"


def keyed(user: User) -> Client:
    """A client calling the API with a key of ``user``'s (the accounts app's)."""
    _, secret = key_create(user=user, name="tests")
    return Client(headers={"Authorization": f"Bearer {secret}"})


def submit(client: Client, urls: list[str], **body: Any) -> Any:
    return client.post(SUBMIT, {"urls": urls, **body}, content_type="application/json")


def parsed(response: Any, header: str) -> dict[str, dict[str, Any]]:
    """A list of named items (the draft's form) as {name: params}."""
    return {name: dict(params) for name, params in http_sf.parse(response[header].encode(), tltype="list")}


def test_headers_parse_as_structured_fields_and_agree_with_the_counters(account: MakeAccount) -> None:
    user = account(rate_per_second=50, rate_per_minute=100, daily_urls=20, monthly_urls=200)
    client = keyed(user)
    first = client.get("/api/v1/providers")
    assert first.status_code == 200
    policy = parsed(first, "RateLimit-Policy")
    assert policy["second"] == {"q": 50, "w": 1} and policy["minute"] == {"q": 100, "w": 60}
    assert policy["urls-day"] == {"q": 20, "qu": "urls", "w": 86400}
    assert policy["urls-month"]["q"] == 200
    state = parsed(first, "RateLimit")
    assert state["second"]["r"] == 49 and state["minute"]["r"] == 99 and 0 < state["minute"]["t"] <= 60
    answer = submit(client, [f"https://example.org/{i}" for i in range(3)])
    assert answer.status_code == 202
    state = parsed(answer, "RateLimit")
    assert state["minute"]["r"] == 98
    assert state["urls-day"]["r"] == 17 and state["urls-month"]["r"] == 197  # the reservation just made
    usage = client.get("/api/v1/usage")
    day = {q["period"]: q for q in usage.json()["quotas"]}["day"]
    assert (day["used"], day["remaining"]) == (3, 17) == (3, parsed(usage, "RateLimit")["urls-day"]["r"])
    assert parsed(usage, "RateLimit")["minute"]["r"] == 98  # GET /usage is not counted


def test_too_many_requests_are_429_rate_limited_with_retry_after(account: MakeAccount) -> None:
    user = account(rate_per_minute=3)
    client = keyed(user)
    assert [client.get("/api/v1/providers").status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get("/api/v1/providers")
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert parsed(refused, "RateLimit")["minute"]["r"] == 0
    assert client.get("/api/v1/usage").status_code == 200  # still answers: it counts nothing


def test_a_batch_over_the_plans_size_is_422_and_nothing_is_kept(account: MakeAccount) -> None:
    user = account(max_batch=5, daily_urls=100)
    client = keyed(user)
    answer = submit(client, [f"https://example.org/{i}" for i in range(6)])
    assert answer.status_code == 422
    assert answer.json()["code"] == "batch_too_large" and answer.json()["details"]["limit"] == 5
    assert not Batch.objects.exists() and not QuotaCounter.objects.exists()


def test_a_provider_outside_the_plan_is_403_provider_not_allowed(account: MakeAccount) -> None:
    user = account("bo", plan_code="free")
    client = keyed(user)
    answer = submit(client, ["https://example.org/"], providers=["pagespeed"])
    assert answer.status_code == 403
    assert answer.json()["code"] == "provider_not_allowed" and answer.json()["details"]["refused"] == ["pagespeed"]
    assert submit(client, ["https://example.org/"], providers=["page"]).status_code == 202


def test_an_exhausted_quota_is_429_with_resets_at_and_refused_work_is_free(account: MakeAccount) -> None:
    user = account(daily_urls=4)
    client = keyed(user)
    assert submit(client, ["https://example.org/1", "https://example.org/2", "https://example.org/3"]).status_code \
        == 202
    refused = submit(client, ["https://example.org/4", "https://example.org/5"])
    assert refused.status_code == 429
    body = refused.json()
    assert body["code"] == "quota_exhausted" and body["details"]["resets_at"].endswith("T00:00:00Z")
    assert int(refused["Retry-After"]) >= 1
    assert Analysis.objects.count() == 3 and Batch.objects.count() == 1  # the refused batch left nothing
    assert submit(client, ["https://example.org/4"]).status_code == 202  # the last URL is still there


def test_local_mode_serves_the_local_owner_unlimited_with_no_headers() -> None:
    client = Client()
    answer = submit(client, [f"https://example.org/{i}" for i in range(2000 // 2)])
    assert answer.status_code == 202
    assert "RateLimit-Policy" not in answer and "RateLimit" not in answer
    usage = client.get("/api/v1/usage").json()
    assert usage["plan"]["code"] == "unlimited"  # the local owner (or no account at all)
    assert all(q["limit"] is None for q in usage["quotas"])
    assert Analysis.objects.order_by("id").first().priority == 8  # type: ignore[union-attr]  # unlimited, bulk
