"""GET /api/v1/links?url=..., GET /api/v1/links/{id}/history and POST /api/v1/links/{id}/feedback."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from linkmeter.web.links.models import Feedback
from tests.web.api.conftest import complete_queued

pytestmark = pytest.mark.django_db(transaction=True)


def submit(client: Client, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = client.post("/api/v1/analyses", {"urls": ["https://Example.org/a#top"], **extra},
                                       content_type="application/json").json()
    return body


def test_a_link_is_found_by_any_spelling_of_its_url(client: Client) -> None:
    submitted = submit(client)
    body = client.get("/api/v1/links", {"url": "HTTPS://EXAMPLE.ORG:443/a"}).json()
    assert body["url"] == "https://example.org/a" and body["domain"] == "example.org"
    assert body["latest_analysis"] is None  # queued: nothing final yet
    assert body["history"] == {"count": 0, "first_at": None, "last_at": None, "recent": []}
    assert body["links"] == {"history": f"/api/v1/links/{body['id']}/history",
                             "feedback": f"/api/v1/links/{body['id']}/feedback"}
    complete_queued()
    body = client.get("/api/v1/links", {"url": "https://example.org/a"}).json()
    latest = body["latest_analysis"]
    assert latest["analysis_id"] == submitted["analysis_ids"][0] and latest["status"] == "done"
    assert latest["providers"]["page"]["status"] == "ok"
    assert body["history"]["count"] == 1 and body["history"]["last_at"] == latest["finished_at"]


def test_history_lists_final_analyses_oldest_first_with_signals(client: Client) -> None:
    first = submit(client)["analysis_ids"][0]
    complete_queued(signals={"hackernews.points": 5})
    second = submit(client, fresh=True)["analysis_ids"][0]
    complete_queued(signals={"hackernews.points": 9, "page.title": "Hello"})
    submit(client, fresh=True)  # still queued: not history yet
    link = client.get("/api/v1/links?url=https://example.org/a").json()
    assert link["latest_analysis"]["analysis_id"] == second
    assert link["history"]["count"] == 2
    assert [r["analysis_id"] for r in link["history"]["recent"]] == [second, first]
    assert link["history"]["first_at"] <= link["history"]["last_at"]
    history = client.get(link["links"]["history"]).json()
    assert history["link_id"] == link["id"] and history["url"] == "https://example.org/a"
    assert [(a["analysis_id"], a["status"]) for a in history["analyses"]] == [(first, "done"), (second, "done")]
    assert history["analyses"][1]["signals"]["page.title"] == "Hello"
    assert all(a["finished_at"] and a["queued_at"] for a in history["analyses"])
    assert [point["v"] for point in history["series"]["hackernews.points"]] == [5, 9]


def test_feedback_is_stored_against_the_latest_analysis(client: Client) -> None:
    analysis_id = submit(client)["analysis_ids"][0]
    complete_queued()
    link_id = client.get("/api/v1/links?url=https://example.org/a").json()["id"]
    response = client.post(f"/api/v1/links/{link_id}/feedback", {"label": "spam"}, content_type="application/json")
    assert response.status_code == 201
    body = response.json()
    assert body["label"] == "spam" and body["link_id"] == link_id and body["analysis_id"] == analysis_id
    client.post(f"/api/v1/links/{link_id}/feedback", {"label": "ham"}, content_type="application/json")
    # The same labeller (here: the local owner, local mode) changed their mind: the later label replaces theirs.
    owner = User.objects.get(account__is_local_owner=True)
    assert list(Feedback.objects.order_by("id").values_list("label", "analysis_id", "source", "labeller")) == [
        ("ham", analysis_id, "api", f"user:{owner.pk}")]
