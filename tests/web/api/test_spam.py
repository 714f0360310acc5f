"""POST /api/v1/feedback (bad items reported by index, the rest kept), GET /api/v1/spam/models, POST /spam/train."""

from __future__ import annotations

import pytest
from django.test import Client

from linkmeter.web.accounts import authn
from linkmeter.web.links.models import Feedback, SpamJob, SpamJobKind
from tests.web.accounts.conftest import holder

pytestmark = pytest.mark.django_db(transaction=True)


def test_bulk_feedback_keeps_good_items_and_reports_bad_ones_by_index(client: Client) -> None:
    items = [
        {"url": "https://example.org/a", "label": "spam"},
        {"url": "not a url", "label": "spam"},
        {"url": "https://example.org/b", "label": "maybe"},
        {"label": "ham"},
        {"url": "https://example.net/", "label": "not_spam"},
    ]
    response = client.post("/api/v1/feedback", {"items": items}, content_type="application/json")
    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["replaced"]) == (2, 0)
    assert [(e["index"], e["code"]) for e in body["errors"]] == [
        (1, "invalid_url"), (2, "invalid_label"), (3, "missing_url")]
    stored = dict(Feedback.objects.values_list("link__url", "label"))
    assert stored == {"https://example.org/a": "spam", "https://example.net/": "ham"}
    assert set(Feedback.objects.values_list("source", flat=True)) == {"bulk"}


def test_a_later_label_of_the_same_person_replaces_theirs_and_others_stay(
        client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKMETER_AUTH", "required")  # each person with their own key
    authn.reset()
    alice, bob = holder("alice"), holder("bob")
    for person, label in ((alice, "spam"), (bob, "spam"), (alice, "ham")):
        response = client.post("/api/v1/feedback", {"items": [{"url": "https://example.org/a", "label": label}]},
                               content_type="application/json", **person.headers())
        assert response.status_code < 300, response.content
    rows = sorted(Feedback.objects.values_list("user__username", "label", "labeller"))
    assert rows == [("alice", "ham", f"user:{alice.user.pk}"), ("bob", "spam", f"user:{bob.user.pk}")]
    authn.reset()


def test_models_lists_the_shipped_model_active_and_label_counts(client: Client) -> None:
    client.post("/api/v1/feedback", {"items": [{"url": "https://example.org/a", "label": "spam"}]},
                content_type="application/json")
    body = client.get("/api/v1/spam/models").json()
    assert [(m["version"], m["active"]) for m in body["models"]] == [(1, True)]
    assert body["models"][0]["figures"]  # the shipped model's evaluation
    assert body["labels"] == {"bulk": {"spam": 1}}


def test_train_refuses_a_second_training_while_one_runs(client: Client) -> None:
    SpamJob.objects.create(kind=SpamJobKind.TRAIN, trigger="demand")
    response = client.post("/api/v1/spam/train", {}, content_type="application/json")
    assert response.status_code == 409 and response.json()["code"] == "job_running"
