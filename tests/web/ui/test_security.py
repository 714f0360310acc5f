"""Scraped text is escaped everywhere it shows; every form needs its CSRF token."""

from __future__ import annotations

import pytest
from django.test import Client

from linkmeter.web.links.models import Feedback, Link
from tests.web.ui.conftest import Finish

pytestmark = pytest.mark.django_db

PAYLOAD = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def test_a_scraped_title_is_escaped_in_the_batch_table_and_on_the_link_page(client: Client,
                                                                            finished_batch: Finish) -> None:
    batch = finished_batch(["https://xss.example.com/a/1"],
                           [{"page.status": 200, "page.title": f"Normal {PAYLOAD}",
                             "page.description": '"><img src=x onerror=alert(2)>'}])
    link = Link.objects.get()
    for path in (f"/batches/{batch.pk}/", f"/batches/{batch.pk}/table/", f"/links/{link.pk}/"):
        html = client.get(path).content.decode()
        assert PAYLOAD not in html and "<img src=x" not in html, path
        assert f"Normal {ESCAPED}" in html, path
    link_html = client.get(f"/links/{link.pk}/").content.decode()
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in link_html
    # the history data for the charts is JSON in a non-executable script element, with < escaped
    assert "<script id=\"history-data\" type=\"application/json\">" in link_html


def test_a_url_with_markup_is_escaped_in_invalid_lines(client: Client) -> None:
    response = client.post("/", {"urls": f"https://a.example.org/1\n{PAYLOAD}",
                                 "providers": ["page"]})
    html = client.get(response.headers["Location"]).content.decode()
    assert PAYLOAD not in html and ESCAPED in html


@pytest.mark.parametrize("path", ["/", "/links/{link}/reanalyse/", "/links/{link}/feedback/"])
def test_every_form_refuses_a_post_without_its_csrf_token(path: str, finished_batch: Finish) -> None:
    finished_batch(["https://a.example.org/1"], [{"page.status": 200}])
    link = Link.objects.get()
    strict = Client(enforce_csrf_checks=True)
    response = strict.post(path.format(link=link.pk), {"urls": "https://a.example.org/2", "label": "spam",
                                                       "providers": ["page"]})
    assert response.status_code == 403
    assert "The form could not be verified" in response.content.decode()
    assert Feedback.objects.count() == 0 and Link.objects.get().analyses.count() == 1


def test_a_post_with_the_token_from_the_form_is_accepted() -> None:
    strict = Client(enforce_csrf_checks=True)
    strict.get("/")
    token = strict.cookies["csrftoken"].value
    response = strict.post("/", {"urls": "https://a.example.org/1", "providers": ["page"],
                                 "csrfmiddlewaretoken": token})
    assert response.status_code == 302


def test_state_changing_views_refuse_get(client: Client, finished_batch: Finish) -> None:
    finished_batch(["https://a.example.org/1"], [{"page.status": 200}])
    link = Link.objects.get()
    assert client.get(f"/links/{link.pk}/reanalyse/").status_code == 405
    assert client.get(f"/links/{link.pk}/feedback/").status_code == 405
    assert client.post("/providers/").status_code == 405
