"""GET /api/v1/links and GET /api/v1/batches: each account's own rows, filters, sorts, cursor pages, 422s that
name the parameter, and the same rows exported as CSV, JSON and NDJSON, streamed."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from linkmeter.engine.results import UrlStatus
from linkmeter.web.plans.services.assign import account_plan_set
from tests.web.accounts.conftest import Holder
from tests.web.accounts.conftest import holder as plain_holder
from tests.web.api.conftest import complete_queued
from tests.web.plans.conftest import seed_plans

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("required")]


@pytest.fixture
def required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKMETER_AUTH", "required")


def holder(username: str) -> Holder:
    """An account on the unlimited plan: these tests read many pages in a second."""
    seed_plans()  # a transactional test starts with empty tables
    made = plain_holder(username)
    account_plan_set(user=made.user, code="unlimited")
    return made


def submit(client: Client, who: Holder, urls: list[str], **extra: Any) -> dict[str, Any]:
    response = client.post("/api/v1/analyses", json.dumps({"urls": urls, **extra}),
                           content_type="application/json", **who.headers())
    assert response.status_code == 202, response.content
    body: dict[str, Any] = response.json()
    return body


def listed(client: Client, who: Holder, path: str = "/api/v1/links", **params: Any) -> dict[str, Any]:
    response = client.get(path, params, **who.headers())
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def every_page(client: Client, who: Holder, path: str = "/api/v1/links", **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = ""
    while True:
        body = listed(client, who, path, **params, **({"cursor": cursor} if cursor else {}))
        rows += body["items"]
        if body["next_cursor"] is None:
            return rows
        cursor = body["next_cursor"]


@pytest.fixture
def two_accounts(client: Client) -> tuple[Holder, Holder]:
    alice, bob = holder("alice"), holder("bob")
    for number, points in enumerate((5, 150, 42, 150, 1000)):
        submit(client, alice, [f"https://news.example/{number}"])
        complete_queued(signals={"hackernews.points": points, "page.title": f"<b>Story</b> {points}",
                                 "spam.score": points / 1000, "spam.flag": points >= 500})
    submit(client, bob, ["https://news.example/0", "https://bob.example/x"])
    complete_queued(status=UrlStatus.FAILED, signals={"hackernews.points": 9999})
    submit(client, alice, ["https://shop.example.org/still-queued"])
    return alice, bob


def test_each_account_lists_only_its_own_links(client: Client, two_accounts: tuple[Holder, Holder]) -> None:
    alice, bob = two_accounts
    alice_urls = {row["url"] for row in every_page(client, alice)}
    bob_rows = every_page(client, bob)
    assert len(alice_urls) == 6 and "https://bob.example/x" not in alice_urls
    assert {row["url"] for row in bob_rows} == {"https://news.example/0", "https://bob.example/x"}
    # alice's young analysis of the shared URL was reused for bob: he sees it too, and his own failure
    assert {row["url"]: row["status"] for row in bob_rows} == {"https://news.example/0": "done",
                                                               "https://bob.example/x": "failed"}
    assert client.get("/api/v1/links").status_code == 401


def test_filters_sorts_and_cursors(client: Client, two_accounts: tuple[Holder, Holder]) -> None:
    alice, _ = two_accounts
    rows = every_page(client, alice, sort="-hackernews.points", limit=2)
    assert [row["signals"].get("hackernews.points") for row in rows] == [1000, 150, 150, 42, 5, None]
    assert rows[1]["analysis_id"] > rows[2]["analysis_id"]  # the tie goes by the newest entry first
    assert rows[-1]["status"] == "queued"  # no signal: last
    hot = every_page(client, alice, filter="hackernews.points>100", sort="hackernews.points")
    assert [row["signals"]["hackernews.points"] for row in hot] == [150, 150, 1000]
    both = listed(client, alice, filter=["hackernews.points>=42", "spam.flag=false"])["items"]
    assert sorted(row["signals"]["hackernews.points"] for row in both) == [42, 150, 150]
    assert [row["url"] for row in listed(client, alice, q="SHOP")["items"]] == ["https://shop.example.org/still-queued"]
    assert len(listed(client, alice, domain="news.example", status="done")["items"]) == 5
    assert len(listed(client, alice, provider="rdap:error")["items"]) == 5  # the completed ones' rdap call
    assert listed(client, alice, after="2999-01-01")["items"] == []


@pytest.mark.parametrize(("params", "code", "parameter"), [
    ({"filter": "nosuch.signal>1"}, "unknown_signal", "filter"),
    ({"filter": "hackernews.points=>1"}, "invalid_operator", "filter"),
    ({"filter": "spam.score>=high"}, "invalid_value", "filter"),
    ({"sort": "colour"}, "invalid_sort", "sort"),
    ({"cursor": "bm9wZQ"}, "invalid_cursor", "cursor"),
    ({"limit": "501"}, "invalid_limit", "limit"),
])
def test_a_bad_parameter_is_a_422_naming_it(client: Client, params: dict[str, str], code: str,
                                            parameter: str) -> None:
    alice = holder("alice")
    response = client.get("/api/v1/links", params, **alice.headers())
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == code and body["details"]["parameter"] == parameter
    assert body["details"]["given"] == next(iter(params.values()))


async def _joined(chunks: Any) -> bytes:
    return b"".join([chunk async for chunk in chunks])


def _content(response: Any) -> str:
    """The streamed body (an async iterator: the response never holds the whole result)."""
    assert response.status_code == 200 and response.streaming
    return async_to_sync(_joined)(response.streaming_content).decode()


def test_exports_stream_the_same_rows_as_the_pages(client: Client, two_accounts: tuple[Holder, Holder]) -> None:
    alice, _ = two_accounts
    params = {"filter": "hackernews.points>=5", "sort": "-spam.score"}
    urls = [row["url"] for row in every_page(client, alice, **params, limit=2)]
    assert len(urls) == 5
    as_json = json.loads(_content(client.get("/api/v1/links", {**params, "format": "json"}, **alice.headers())))
    lines = _content(client.get("/api/v1/links", {**params, "format": "ndjson"}, **alice.headers())).splitlines()
    response = client.get("/api/v1/links", {**params, "format": "csv"}, **alice.headers())
    assert response["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(_content(response))))
    assert [row["url"] for row in as_json] == [json.loads(line)["url"] for line in lines] == urls
    assert [row["url"] for row in table] == urls
    assert table[0]["title"] == "<b>Story</b> 1000" and table[0]["hackernews.points"] == "1000"
    assert client.get("/api/v1/links", {"format": "xml"}, **alice.headers()).json()["code"] == "invalid_format"


def test_batches_list_with_progress_filters_and_export(client: Client, two_accounts: tuple[Holder, Holder]) -> None:
    alice, bob = two_accounts
    batches = every_page(client, alice, "/api/v1/batches", limit=4)
    assert len(batches) == 6
    assert [b["id"] for b in batches] == sorted((b["id"] for b in batches), reverse=True)
    assert batches[0]["status"] == "queued" and batches[0]["counts"]["queued"] == 1
    assert {b["status"] for b in batches[1:]} == {"finished"} and all(b["progress"] == 1.0 for b in batches[1:])
    assert len(every_page(client, alice, "/api/v1/batches", status="open")) == 1
    assert len(every_page(client, bob, "/api/v1/batches")) == 1
    oldest = every_page(client, alice, "/api/v1/batches", sort="created_at", limit=5)
    assert [b["id"] for b in oldest] == [b["id"] for b in reversed(batches)]
    exported = list(csv.DictReader(io.StringIO(_content(
        client.get("/api/v1/batches", {"format": "csv"}, **alice.headers())))))
    assert [int(row["id"]) for row in exported] == [b["id"] for b in batches]
    assert exported[0]["queued"] == "1" and exported[-1]["done"] == "1"
    bad = client.get("/api/v1/batches", {"status": "nearly"}, **alice.headers())
    assert bad.status_code == 422 and bad.json()["details"]["parameter"] == "status"
