"""Bad input of every kind: each answered with the right 4xx and a JSON {code, message, details}, nothing stored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from linkmeter.web.links.models import Batch, Feedback

pytestmark = pytest.mark.django_db(transaction=True)

SUBMIT = "/api/v1/analyses"


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code and body["message"]
    return body


@pytest.mark.parametrize(("raw", "loc"), [
    (b'{"urls": [', None),  # invalid JSON
    (b"\xff\xfe{}", None),  # not UTF-8
    (b"", ["body"]),  # no body at all
    (b'["https://example.org/"]', ["body"]),  # an array, not an object
    (b'{"urls": "https://example.org/"}', ["body", "urls"]),  # urls not a list
    (b'{"urls": [1, "https://example.org/"]}', ["body", "urls", 0]),  # a URL that is not a string
    (b'{"urls": null}', ["body", "urls"]),
    (b'{"providers": ["page"]}', ["body", "urls"]),  # urls missing
    (b'{"urls": ["https://example.org/"], "fresh": "maybe"}', ["body", "fresh"]),
    (b'{"urls": ["https://example.org/"], "providers": "page"}', ["body", "providers"]),
    (b'{"urls": ["https://example.org/"], "max_age": -1}', ["body", "max_age"]),
    (b'{"urls": ["https://example.org/"], "max_age": "old"}', ["body", "max_age"]),
    (b'{"urls": ["https://example.org/"], "name": ["x"]}', ["body", "name"]),
    (b'{"url": "https://example.org/"}', ["body", "url"]),  # an unknown field (a typo) is refused, not ignored
])
def test_malformed_submissions_are_invalid_request(client: Client, raw: bytes, loc: list[Any] | None) -> None:
    body = assert_error(client.post(SUBMIT, raw, content_type="application/json"), 422, "invalid_request")
    if loc is not None:
        assert loc in [error["loc"] for error in body["details"]], body
        assert ".".join(map(str, loc)) in body["message"]
    assert Batch.objects.count() == 0


@pytest.mark.parametrize(("payload", "code"), [
    ({"urls": []}, "no_urls"),
    ({"urls": ["nope", "", "ftp://example.org/"]}, "no_valid_urls"),
    ({"urls": ["https://example.org/" + "a" * 3000]}, "no_valid_urls"),
    ({"urls": ["https://example.org/"], "providers": ["page", "telepathy"]}, "unknown_provider"),
])
def test_unusable_submissions_are_refused_with_the_service_code(client: Client, payload: dict[str, Any],
                                                                code: str) -> None:
    assert_error(client.post(SUBMIT, payload, content_type="application/json"), 422, code)
    assert Batch.objects.count() == 0


def test_no_valid_urls_details_each_line(client: Client) -> None:
    body = assert_error(client.post(SUBMIT, {"urls": ["nope", "https://example.org/" + "a" * 3000]},
                                    content_type="application/json"), 422, "no_valid_urls")
    assert [(d["index"], d["code"]) for d in body["details"]] == [(0, "no_scheme"), (1, "too_long")]


def test_unknown_provider_names_the_known_ones(client: Client) -> None:
    body = assert_error(client.post(SUBMIT, {"urls": ["https://example.org/"], "providers": ["telepathy"]},
                                    content_type="application/json"), 422, "unknown_provider")
    assert body["details"]["unknown"] == ["telepathy"] and "page" in body["details"]["known"]


def test_too_many_urls(client: Client, settings: Any) -> None:
    settings.LINKMETER = {**settings.LINKMETER, "MAX_URLS_PER_REQUEST": 3}
    urls = [f"https://example.org/{i}" for i in range(4)]
    body = assert_error(client.post(SUBMIT, {"urls": urls}, content_type="application/json"), 422, "too_many_urls")
    assert body["details"] == {"limit": 3, "given": 4}


def test_a_too_long_url_is_listed_and_the_rest_accepted(client: Client, settings: Any) -> None:
    settings.LINKMETER = {**settings.LINKMETER, "MAX_URL_LENGTH": 40}
    response = client.post(SUBMIT, {"urls": ["https://example.org/" + "a" * 40, "https://example.org/ok"]},
                           content_type="application/json")
    assert response.status_code == 202
    assert [(i["index"], i["code"]) for i in response.json()["invalid"]] == [(0, "too_long")]
    assert len(response.json()["analysis_ids"]) == 1


@pytest.mark.parametrize("wait", ["31", "-1", "nan", "inf", "1e9"])
def test_wait_out_of_range(client: Client, wait: str) -> None:
    body = assert_error(client.post(f"{SUBMIT}?wait={wait}", {"urls": ["https://example.org/"]},
                                    content_type="application/json"), 422, "invalid_wait")
    assert body["details"]["max"] == 30
    assert Batch.objects.count() == 0


def test_wait_not_a_number(client: Client) -> None:
    assert_error(client.post(f"{SUBMIT}?wait=soon", {"urls": ["https://example.org/"]},
                             content_type="application/json"), 422, "invalid_request")


def test_an_oversized_body_is_413(client: Client, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    urls = [f"https://example.org/{i}" for i in range(100)]
    body = assert_error(client.post(SUBMIT, {"urls": urls}, content_type="application/json"), 413,
                        "payload_too_large")
    assert body["details"] == {"limit_bytes": 1000}
    assert Batch.objects.count() == 0


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("get", SUBMIT, "POST"),
    ("delete", "/api/v1/analyses/1", "GET"),
    ("put", "/api/v1/providers", "GET"),
    ("post", "/api/v1/batches/1/results", "GET"),
    ("get", "/api/v1/links/1/feedback", "POST"),
])
def test_a_wrong_method_is_405_with_allow(client: Client, method: str, path: str, allowed: str) -> None:
    response = getattr(client, method)(path)
    body = assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == allowed and body["details"] == {"allowed": [allowed]}


@pytest.mark.parametrize("path", [
    "/api/v1/analyses/999",
    "/api/v1/analyses/99999999999999999999999",  # beyond any id the database can hold
    "/api/v1/analyses/abc",
    "/api/v1/batches/999",
    "/api/v1/batches/999/results",
    "/api/v1/batches/999/results?format=csv",
    "/api/v1/links/999/history",
    "/api/v1/nothing-here",
    "/api/v1/",
    "/api/elsewhere",
])
def test_unknown_ids_and_paths_are_404_not_found(client: Client, path: str) -> None:
    assert_error(client.get(path), 404, "not_found")


def test_feedback_for_an_unknown_link_is_404(client: Client) -> None:
    assert_error(client.post("/api/v1/links/999/feedback", {"label": "spam"}, content_type="application/json"),
                 404, "not_found")
    assert Feedback.objects.count() == 0


def test_an_unknown_results_format_is_refused(client: Client) -> None:
    batch_id = client.post(SUBMIT, {"urls": ["https://example.org/"]}, content_type="application/json").json()[
        "batch_id"]
    body = assert_error(client.get(f"/api/v1/batches/{batch_id}/results?format=xlsx"), 422, "invalid_format")
    assert body["details"]["allowed"] == ["json", "ndjson", "csv"]


@pytest.mark.parametrize(("payload", "code"), [
    ({"label": "maybe"}, "invalid_label"),
    ({"label": 1}, "invalid_request"),
    ({}, "invalid_request"),
    ({"label": "spam", "why": "x"}, "invalid_request"),
])
def test_bad_feedback_labels_are_refused(client: Client, payload: dict[str, Any], code: str) -> None:
    client.post(SUBMIT, {"urls": ["https://example.org/"]}, content_type="application/json")
    link_id = client.get("/api/v1/links?url=https://example.org/").json()["id"]
    assert_error(client.post(f"/api/v1/links/{link_id}/feedback", json.dumps(payload),
                             content_type="application/json"), 422, code)
    assert Feedback.objects.count() == 0


@pytest.mark.parametrize(("query", "status", "code"), [
    ("?url=example.org/a", 422, "invalid_url"),
    ("?url=javascript:alert(1)", 422, "invalid_url"),
    ("?url=", 422, "invalid_url"),  # without url at all it is the list (test_lists.py)
    ("?url=https://never-submitted.example/", 404, "not_found"),
])
def test_bad_or_unknown_link_urls(client: Client, query: str, status: int, code: str) -> None:
    assert_error(client.get(f"/api/v1/links{query}"), status, code)


def test_invalid_url_says_why(client: Client) -> None:
    body = assert_error(client.get("/api/v1/links?url=ftp://example.org/"), 422, "invalid_url")
    assert body["details"] == {"reason": "unsupported_scheme"}


def test_a_bad_boolean_query_is_invalid_request(client: Client) -> None:
    assert_error(client.get("/api/v1/analyses/1?raw=perhaps"), 422, "invalid_request")


def test_json_calls_need_no_csrf_token() -> None:
    strict = Client(enforce_csrf_checks=True)
    response = strict.post(SUBMIT, {"urls": ["https://example.org/"]}, content_type="application/json")
    assert response.status_code == 202
