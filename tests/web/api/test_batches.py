"""GET /api/v1/batches/{id} (progress) and its results streamed as JSON, NDJSON and CSV, partial while running."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient, Client

from linkmeter.providers.registry import DEFAULT_NAMES
from linkmeter.web.api import batches
from linkmeter.web.api.exports import CSV_COLUMNS
from linkmeter.web.links.selectors.details import SIGNAL_COLUMNS
from linkmeter.web.links.selectors.workers import batch_webhook_summary
from linkmeter.web.links.services.queue import analysis_claim_ids, analysis_fail
from tests.web.api.conftest import complete_queued

pytestmark = pytest.mark.django_db(transaction=True)

URLS = ["https://example.org/1", "not a url", "https://example.org/2", "https://example.org/3"]


def submit(client: Client, urls: list[str]) -> dict[str, Any]:
    response = client.post("/api/v1/analyses", {"urls": urls}, content_type="application/json")
    assert response.status_code == 202
    body: dict[str, Any] = response.json()
    return body


def test_progress_counts_by_status_with_eta_and_invalid_lines(client: Client) -> None:
    submitted = submit(client, URLS)
    complete_queued(limit=1)
    analysis_fail(analysis_ids=[submitted["analysis_ids"][1]], reason="gave up")
    body = client.get(submitted["links"]["batch"]).json()
    assert body["id"] == submitted["batch_id"] and body["total"] == 3 and body["finished"] == 2
    assert body["counts"] == {"queued": 1, "running": 0, "done": 1, "partial": 0, "failed": 1}
    assert body["status"] == "running"
    assert body["progress"] == pytest.approx(2 / 3, abs=1e-3)
    assert body["eta_seconds"] is not None and body["finished_at"] is None
    assert [(i["index"], i["input"], i["code"]) for i in body["invalid"]] == [(1, "not a url", "unparseable")]
    assert body["links"]["results"] == submitted["links"]["results"]


def test_status_is_queued_then_running_then_finished(client: Client) -> None:
    submitted = submit(client, URLS)
    first, second, third = submitted["analysis_ids"]

    def status() -> str:
        body = client.get(submitted["links"]["batch"]).json()
        webhook = batch_webhook_summary(submitted["batch_id"])
        assert webhook is not None and webhook["status"] == body["status"]  # the webhook's body says the same
        return str(body["status"])

    assert status() == "queued"  # nothing started
    analysis_claim_ids(analysis_ids=[first], deadline_seconds=60)
    assert status() == "running"  # one started, none finished
    analysis_fail(analysis_ids=[first], reason="gave up")
    assert status() == "running"  # one ended, two still queued
    analysis_fail(analysis_ids=[second, third], reason="gave up")
    assert status() == "finished"  # every analysis ended, whatever its outcome


def test_the_schema_documents_the_status_values(client: Client) -> None:
    schema = client.get("/api/v1/openapi.json").json()["components"]["schemas"]["BatchOut"]
    assert schema["properties"]["status"]["enum"] == ["queued", "running", "finished"]
    assert "status" in schema["required"]


def test_a_finished_batch_shows_full_progress(client: Client) -> None:
    submitted = submit(client, URLS)
    complete_queued()
    body = client.get(submitted["links"]["batch"]).json()
    assert body["progress"] == 1.0 and body["eta_seconds"] == 0.0 and body["finished_at"] is not None
    assert body["status"] == "finished"


async def fetch(async_client: AsyncClient, path: str) -> tuple[Any, str]:
    response = await async_client.get(path)
    assert response.status_code == 200 and response.streaming
    text = b"".join([chunk async for chunk in response.streaming_content]).decode()
    return response, text


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two rows per chunk, so that the documents below span several chunks."""
    monkeypatch.setattr(batches, "CHUNK_ROWS", 2)


async def partly_done_batch(async_client: AsyncClient) -> dict[str, Any]:
    response = await async_client.post("/api/v1/analyses", {"urls": URLS}, content_type="application/json")
    await sync_to_async(complete_queued)(limit=1)
    body: dict[str, Any] = response.json()
    return body


async def test_json_results_are_one_array_partial_while_running(async_client: AsyncClient,
                                                                  small_chunks: None) -> None:
    submitted = await partly_done_batch(async_client)
    response, text = await fetch(async_client, submitted["links"]["results"])
    assert response["Content-Type"] == "application/json"
    rows = json.loads(text)
    assert [(r["position"], r["url"], r["status"]) for r in rows] == [
        (0, "https://example.org/1", "done"), (2, "https://example.org/2", "queued"),
        (3, "https://example.org/3", "queued")]
    assert rows[0]["signals"]["hackernews.points"] == 42 and rows[0]["analysis_id"] == submitted["analysis_ids"][0]
    assert rows[1]["signals"] == {} and rows[1]["finished_at"] is None
    assert response["Cache-Control"] == "no-store"


async def test_ndjson_results_are_one_object_per_line(async_client: AsyncClient, small_chunks: None) -> None:
    submitted = await partly_done_batch(async_client)
    response, text = await fetch(async_client, submitted["links"]["results"] + "?format=ndjson")
    assert response["Content-Type"] == "application/x-ndjson"
    assert text.endswith("\n")
    rows = [json.loads(line) for line in text.splitlines()]
    assert [r["status"] for r in rows] == ["done", "queued", "queued"]
    assert [r["analysis_id"] for r in rows] == submitted["analysis_ids"]


async def test_csv_results_have_every_signal_and_are_spreadsheet_safe(async_client: AsyncClient,
                                                                      small_chunks: None) -> None:
    submitted = await partly_done_batch(async_client)
    response, text = await fetch(async_client, submitted["links"]["results"] + "?format=csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="batch-{submitted["batch_id"]}.csv"'
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    assert list(CSV_COLUMNS[:4]) == ["position", "url", "status", "analysis_id"]
    assert set(SIGNAL_COLUMNS) <= set(CSV_COLUMNS)
    rows = list(reader)
    assert [(r["position"], r["status"]) for r in rows] == [("0", "done"), ("2", "queued"), ("3", "queued")]
    done = rows[0]
    assert done["analysis_id"] == str(submitted["analysis_ids"][0])
    assert done["page.title"] == "'=HYPERLINK(\"http://evil.example\")"  # a formula, defused
    assert done["reddit.subreddits"] == "python;django"
    assert done["rdap.registered"] == "true" and done["hackernews.points"] == "42"
    assert done["wayback.capture_count"] == ""  # not produced
    assert all(rows[1][s] == "" for s in SIGNAL_COLUMNS)


async def test_failed_analyses_are_rows_with_their_status(async_client: AsyncClient) -> None:
    submitted = await partly_done_batch(async_client)
    await sync_to_async(analysis_fail)(analysis_ids=submitted["analysis_ids"], reason="x")
    _, text = await fetch(async_client, submitted["links"]["results"])
    assert [r["status"] for r in json.loads(text)] == ["done", "failed", "failed"]


def test_a_batch_reports_its_providers(client: Client) -> None:
    default = client.post("/api/v1/analyses", {"urls": ["https://example.org/p1"]},
                          content_type="application/json").json()
    chosen = client.post("/api/v1/analyses", {"urls": ["https://example.org/p2"], "providers": ["page", "pagespeed"]},
                         content_type="application/json").json()
    body = client.get(f"/api/v1/batches/{default['batch_id']}").json()
    assert body["default_set"] is True and body["providers"] == list(DEFAULT_NAMES)
    assert "pagespeed" not in body["providers"]
    body = client.get(f"/api/v1/batches/{chosen['batch_id']}").json()
    assert body["default_set"] is False and body["providers"] == ["page", "pagespeed"]


async def test_the_exports_keep_the_links_flagged_spam_or_not(async_client: AsyncClient, small_chunks: None) -> None:
    response = await async_client.post("/api/v1/analyses", {"urls": URLS}, content_type="application/json")
    submitted = response.json()
    await sync_to_async(complete_queued)(limit=1, signals={"spam.score": 0.91, "spam.flag": True})
    await sync_to_async(complete_queued)(limit=1, signals={"spam.score": 0.12, "spam.flag": False})
    # the third stays queued: no verdict, so neither filter keeps it
    results = submitted["links"]["results"]
    _, text = await fetch(async_client, results + "?spam=flagged")
    assert [(r["url"], r["signals"]["spam.score"], r["signals"]["spam.flag"]) for r in json.loads(text)] == [
        ("https://example.org/1", 0.91, True)]
    _, text = await fetch(async_client, results + "?format=csv&spam=clear")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["url"], r["spam.score"], r["spam.flag"]) for r in rows] == [("https://example.org/2", "0.12", "false")]
    bad = await async_client.get(results + "?spam=maybe")
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_spam"
