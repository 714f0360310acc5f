"""The link page's buttons: re-analyse (a new batch) and spam / not-spam feedback (stored, confirmed)."""

from __future__ import annotations

import pytest
from django.test import Client

from linkmeter.web.links.models import Analysis, Batch, Feedback, Link
from tests.web.ui.conftest import Finish

pytestmark = pytest.mark.django_db


def test_reanalyse_queues_a_fresh_analysis_and_opens_its_batch(client: Client, finished_batch: Finish) -> None:
    finished_batch(["https://a.example.org/1"], [{"page.status": 200}])
    link = Link.objects.get()
    response = client.post(f"/links/{link.pk}/reanalyse/")
    batch = Batch.objects.order_by("-id").first()
    assert batch is not None and response.status_code == 302
    assert response.headers["Location"] == f"/batches/{batch.pk}/"
    assert batch.fresh and Analysis.objects.filter(link=link, status="queued").count() == 1
    page = client.get(f"/links/{link.pk}/").content.decode()
    assert "A newer analysis is queued" in page


@pytest.mark.parametrize(("label", "shown"), [("spam", "recorded as spam"), ("ham", "recorded as not spam")])
def test_feedback_is_stored_and_confirmed(client: Client, finished_batch: Finish, label: str, shown: str) -> None:
    finished_batch(["https://a.example.org/1"], [{"page.status": 200}])
    link = Link.objects.get()
    response = client.post(f"/links/{link.pk}/feedback/", {"label": label}, follow=True)
    assert response.redirect_chain == [(f"/links/{link.pk}/#feedback", 302)]
    assert shown in response.content.decode()
    feedback = Feedback.objects.get()
    assert (feedback.link_id, feedback.label, feedback.analysis_id) == (link.pk, label, link.latest_analysis_id)


def test_an_unknown_feedback_label_is_an_error_message_not_a_500(client: Client, finished_batch: Finish) -> None:
    finished_batch(["https://a.example.org/1"], [{"page.status": 200}])
    link = Link.objects.get()
    response = client.post(f"/links/{link.pk}/feedback/", {"label": "maybe"}, follow=True)
    assert response.status_code == 200 and "label must be one of spam, ham" in response.content.decode()
    assert Feedback.objects.count() == 0
