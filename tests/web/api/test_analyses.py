"""POST /api/v1/analyses (accept, list invalid lines, reuse, wait) and GET /api/v1/analyses/{id}."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import aiohttp
import pytest
from django.db import connection
from django.test import AsyncClient, Client

from linkmeter.web.links.models import Analysis, AnalysisStatus, Batch
from tests.web.api.conftest import SignallingDispatcher, complete_queued

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/analyses"


def finish_after_commit(committed: threading.Event, delay: float) -> None:
    """A runner in its own thread: once the submission is committed, wait ``delay`` s and finish it."""
    try:
        assert committed.wait(10)
        time.sleep(delay)
        complete_queued()
    finally:
        connection.close()


def submit(client: Client, body: dict[str, Any], query: str = "") -> Any:
    return client.post(URL + query, body, content_type="application/json")


def test_valid_urls_are_accepted_and_invalid_ones_listed_with_their_index(client: Client) -> None:
    response = submit(client, {"urls": ["https://Example.org/a", "example.org/nope", "https://example.org/b",
                                        "ftp://example.org/", "https://example.org/a#again"], "name": "mixed"})
    assert response.status_code == 202
    body = response.json()
    assert [(i["index"], i["input"], i["code"]) for i in body["invalid"]] == [
        (1, "example.org/nope", "no_scheme"), (3, "ftp://example.org/", "unsupported_scheme")]
    assert all(i["message"] for i in body["invalid"])
    analyses = {a.pk: a.link.url for a in Analysis.objects.select_related("link")}
    assert [analyses[pk] for pk in body["analysis_ids"]] == [
        "https://example.org/a", "https://example.org/b", "https://example.org/a"]
    assert body["reused"] == 0 and body["queued"] == 2
    assert body["links"] == {"batch": f"/api/v1/batches/{body['batch_id']}",
                             "results": f"/api/v1/batches/{body['batch_id']}/results"}
    assert "results" not in body
    assert Batch.objects.get(pk=body["batch_id"]).name == "mixed"


def test_a_young_analysis_is_reused_unless_fresh(client: Client) -> None:
    first = submit(client, {"urls": ["https://example.org/a"]}).json()
    complete_queued()
    again = submit(client, {"urls": ["https://example.org/a", "https://example.org/b"]}).json()
    assert again["reused"] == 1 and again["queued"] == 1
    assert again["analysis_ids"][0] == first["analysis_ids"][0]
    fresh = submit(client, {"urls": ["https://example.org/a"], "fresh": True}).json()
    assert fresh["reused"] == 0 and fresh["analysis_ids"][0] != first["analysis_ids"][0]


def test_max_age_zero_never_reuses(client: Client) -> None:
    first = submit(client, {"urls": ["https://example.org/a"]}).json()
    complete_queued()
    again = submit(client, {"urls": ["https://example.org/a"], "max_age": 0}).json()
    assert again["reused"] == 0 and again["analysis_ids"] != first["analysis_ids"]


def test_providers_are_recorded_on_the_analyses(client: Client) -> None:
    body = submit(client, {"urls": ["https://example.org/a"], "providers": ["Page", "rdap"]}).json()
    assert Analysis.objects.get(pk=body["analysis_ids"][0]).providers == ["page", "rdap"]


def test_wait_answers_200_with_results_when_everything_is_already_final(client: Client,
                                                                         instant_runner: None) -> None:
    response = submit(client, {"urls": ["https://example.org/a", "bad", "https://example.org/b"]}, "?wait=5")
    assert response.status_code == 200
    body = response.json()
    assert [r["url"] for r in body["results"]] == ["https://example.org/a", "https://example.org/b"]
    assert [r["analysis_id"] for r in body["results"]] == body["analysis_ids"]
    result = body["results"][0]
    assert result["status"] == "done" and result["signals"]["hackernews.points"] == 42
    assert result["providers"]["rdap"] == {"status": "error", "latency_ms": 3.0, "attempts": 3,
                                           "message": "HTTP 503", "signals": {}, "raw": None,
                                           "deferred": None, "refilled_at": None}  # an error is not deferred
    assert body["invalid"][0]["index"] == 1


def test_without_wait_the_answer_is_202_even_when_everything_is_final(client: Client,
                                                                      instant_runner: None) -> None:
    response = submit(client, {"urls": ["https://example.org/a"]})
    assert response.status_code == 202 and "results" not in response.json()


def test_wait_zero_answers_at_once_with_reused_results(client: Client) -> None:
    submit(client, {"urls": ["https://example.org/a"]})
    complete_queued()
    response = submit(client, {"urls": ["https://example.org/a"]}, "?wait=0")
    assert response.status_code == 200 and response.json()["reused"] == 1
    assert response.json()["results"][0]["status"] == "done"


async def test_wait_returns_200_when_the_analyses_finish_while_it_waits(
        async_client: AsyncClient, signalling_dispatcher: SignallingDispatcher, concurrent_sqlite: None) -> None:
    runner = threading.Thread(target=finish_after_commit, args=(signalling_dispatcher.committed, 0.3))
    runner.start()
    try:
        response = await async_client.post(URL + "?wait=10",
                                           {"urls": ["https://example.org/a", "https://example.org/b"]},
                                           content_type="application/json")
    finally:
        runner.join()
    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == ["done", "done"]
    assert await Analysis.objects.filter(status=AnalysisStatus.DONE).acount() == 2


async def test_wait_returns_202_when_the_analyses_do_not_finish_in_time(async_client: AsyncClient) -> None:
    response = await async_client.post(URL + "?wait=0.3", {"urls": ["https://example.org/a"]},
                                       content_type="application/json")
    assert response.status_code == 202
    body = response.json()
    assert "results" not in body and len(body["analysis_ids"]) == 1
    assert await Analysis.objects.filter(status=AnalysisStatus.QUEUED).acount() == 1


async def test_a_waiting_request_does_not_block_the_server(live_api: str) -> None:
    async with aiohttp.ClientSession() as session:
        waiting = asyncio.create_task(session.post(f"{live_api}{URL}?wait=3", json={"urls": ["https://example.org/a"]}))
        await asyncio.sleep(0.5)
        async with session.get(f"{live_api}/api/v1/providers") as other:
            assert other.status == 200
        assert not waiting.done()  # answered while the submission was still waiting
        async with await waiting as response:
            assert response.status == 202
            assert len((await response.json())["analysis_ids"]) == 1


def test_an_analysis_is_read_by_id_with_raw_responses_on_request(client: Client) -> None:
    analysis_id = submit(client, {"urls": ["https://example.org/a"]}).json()["analysis_ids"][0]
    queued = client.get(f"{URL}/{analysis_id}").json()
    assert queued["status"] == "queued" and queued["signals"] == {} and queued["providers"] == {}
    complete_queued()
    done = client.get(f"{URL}/{analysis_id}").json()
    assert done["status"] == "done" and done["url"] == "https://example.org/a"
    assert done["signals"]["page.status"] == 200 and done["finished_at"] is not None
    assert done["providers"]["page"]["signals"] == {"page.status": 200}
    assert "raw" not in done["providers"]["page"]
    raw = client.get(f"{URL}/{analysis_id}?raw=true").json()
    assert raw["providers"]["page"]["raw"] == {"status": 200, "body": "<html>"}
