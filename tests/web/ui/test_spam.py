"""The link page opens with the verdict and its reasons (escaped), then the feedback buttons showing the current
label; the spam model page shows the active model, its ROC curve, label counts and versions, and its buttons
work (CSRF protected)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from linkmeter.web.links.models import Feedback, Link, SpamModel
from linkmeter.web.links.services import spam_learning
from linkmeter.web.links.services.feedback import feedback_bulk_create
from tests.web.ui.conftest import Finish

pytestmark = pytest.mark.django_db(transaction=True)

PAYLOAD = "<script>alert(1)</script>"


def test_the_link_page_opens_with_the_verdict_and_escaped_reasons(client: Client, finished_batch: Finish) -> None:
    finished_batch(["https://verdict.example.com/a"], [{
        "page.status": 200, "spam.score": 0.91, "spam.flag": True, "spam.model": "1",
        "spam.reasons": [{"feature": "rule.x", "value": 1, "contribution": 2.0, "text": f"listed {PAYLOAD}"}]}])
    link = Link.objects.get()
    html = client.get(f"/links/{link.pk}/").content.decode()
    assert "likely spam" in html and "model 1" in html
    assert PAYLOAD not in html and "listed &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.index('id="verdict"') < html.index('id="feedback-spam"') < html.index("history-data")


def test_the_feedback_buttons_show_the_current_label_which_a_second_click_replaces(client: Client,
                                                                                 finished_batch: Finish) -> None:
    finished_batch(["https://label.example.com/a"], [{"page.status": 200}])
    link = Link.objects.get()
    client.force_login(User.objects.create_user("carol"))
    client.post(f"/links/{link.pk}/feedback/", {"label": "spam"})
    assert 'you said: spam' in client.get(f"/links/{link.pk}/").content.decode()
    client.post(f"/links/{link.pk}/feedback/", {"label": "ham"})
    assert 'you said: not spam' in client.get(f"/links/{link.pk}/").content.decode()
    assert list(Feedback.objects.values_list("label", "source")) == [("ham", "ui")]


def test_the_spam_page_shows_the_model_roc_and_labels_and_promotes_and_rolls_back(client: Client) -> None:
    feedback_bulk_create(items=[{"url": "http://secure-login-verify.xyz/account/update.php", "label": "spam"},
                                {"url": "https://www.python.org/", "label": "ham"}])
    first = spam_learning.spam_model_active()
    SpamModel.objects.create(version=2, parent=first, algorithm=first.algorithm, artifact=first.artifact,
                             check_passed=True, check_message="passed")
    html = client.get("/spam/").content.decode()
    assert "version 1 is active" in html and 'id="spam-roc"' in html and "<polyline" in html
    assert "bulk" in html and "csrfmiddlewaretoken" in html
    client.post("/spam/promote/", {"version": "2"})
    assert SpamModel.objects.get(active=True).version == 2
    client.post("/spam/rollback/")
    assert SpamModel.objects.get(active=True).version == 1


def test_the_spam_buttons_need_the_csrf_token() -> None:
    strict = Client(enforce_csrf_checks=True)
    spam_learning.spam_model_active()
    assert strict.post("/spam/rollback/").status_code == 403
