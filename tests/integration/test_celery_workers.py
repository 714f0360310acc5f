"""The Celery mode end to end, with the real services (PostgreSQL, RabbitMQ, Redis) and separate processes:
`linkmeter serve` takes URLs through the API, two `linkmeter worker` processes run them, `linkmeter beat`
runs the watchdog and the orphan sweep. A batch's chord closes it and sends its signed webhook (retried,
outcome kept); chunks are idempotent; single URLs overtake bulk batches; lost work is found again."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

import psycopg
import pytest

from linkmeter.bench.services import conninfo
from linkmeter.providers.registry import DEFAULT_NAMES
from linkmeter.web.config.celery import CelerySettings, create_app
from tests.integration.harness import (
    FINAL,
    NO_PROXY,
    Cluster,
    cluster,
    duplicate_results,
    local_http_server,
    query,
    results_per_analysis,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PROVIDERS = len(DEFAULT_NAMES)  # what a submission naming no provider runs
SECRET = "integration-webhook-secret"
WEBHOOK_TRIES = 3
WAIT = 150.0  # seconds any one thing may take here
BULK_PROVIDERS = ["page", "dns", "rdap", "hackernews"]
LANES = 6


# -- a webhook receiver ----------------------------------------------------------------------------------------


@dataclass
class Hook:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A local HTTP server recording every POST; a path answers the statuses scripted for it, in turn (the
    last one repeats), 200 when none are."""

    base: str = ""
    script: dict[str, list[int]] = field(default_factory=dict)
    hooks: list[Hook] = field(default_factory=list)

    def received(self, path: str) -> list[Hook]:
        return [hook for hook in self.hooks if hook.path == path]


@contextlib.contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                receiver.hooks.append(Hook(self.path, dict(self.headers), body))
                answers = receiver.script.get(self.path, [200])
                status = answers.pop(0) if len(answers) > 1 else answers[0]
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    with local_http_server(Handler) as base:
        receiver.base = base
        yield receiver


def signed_correctly(hook: Hook) -> bool:
    """The check docs/scale-out.md gives receivers, written out independently of linkmeter's code."""
    timestamp = hook.headers["X-Linkmeter-Timestamp"]
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + hook.body, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(timestamp)) < 300
    return fresh and hmac.compare_digest(hook.headers["X-Linkmeter-Signature"], f"sha256={expected}")


# -- the cluster, once for the module ------------------------------------------------------------------------


@dataclass
class Running:
    cluster: Cluster
    receiver: Receiver

    @property
    def database(self) -> str:
        return self.cluster.database


@pytest.fixture(scope="module")
def it(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    extra = {"LINKMETER_WEBHOOK_SECRET": SECRET, "LINKMETER_WEBHOOK_TRIES": str(WEBHOOK_TRIES),
             "LINKMETER_WEBHOOK_BACKOFF": "0.5", "LINKMETER_WEBHOOK_TIMEOUT": "3", "LINKMETER_CHUNK_SIZE": "25",
             # Fewer lanes than the two workers' eight chunk threads: the 200-URL batch's eight chunks run in six
             # lanes (two of them chains), and its chord must still close it.
             "LINKMETER_BATCH_LANES": str(LANES)}
    with webhook_receiver() as receiver, \
            cluster(tmp_path_factory.mktemp("celery"), latency_ms=40, extra_env=extra) as running:
        running.serve()
        for name in ("worker1", "worker2"):
            running.worker(name, concurrency=4)
        running.beat()
        running.wait_for_workers(2)
        yield Running(running, receiver)


def wait_for_callback(it: Running, batch_id: int, statuses: tuple[str, ...]) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def reached() -> bool:
        nonlocal last
        last = it.cluster.batch(batch_id) or last
        return bool(last.get("callback") and last["callback"]["status"] in statuses)

    wait_for(reached, WAIT, lambda: f"the webhook of batch {batch_id} to be {statuses} (last: {last})",
             it.cluster.processes)
    return last


def urls(prefix: str, count: int) -> list[str]:
    """Distinct URLs on count/10 domains (as real batches have), new to this module's database."""
    run = secrets.token_hex(3)
    return [f"https://{prefix}{i % max(1, count // 10)}-{run}.example.org/p/{i}" for i in range(count)]


# -- rows made directly in PostgreSQL (work some process lost) ----------------------------------------------


def insert_batch(database: str, states: list[tuple[str, int, float, float]], *,
                 callback: str = "") -> tuple[int, list[int]]:
    """A batch whose analyses are in these states: (status, attempts, queued this many seconds ago, deadline
    in this many seconds), as if a worker or a message had been lost. Returns the batch and analysis ids."""
    now = datetime.now(UTC)
    with psycopg.connect(conninfo(database), autocommit=True) as connection:
        batch_id = connection.execute(
            "INSERT INTO links_batch (name, source, providers, fresh, total, invalid, created_at, callback_url, "
            "callback_status, callback_attempts, callback_last_error) VALUES ('lost', 'api', '[]', true, %s, "
            "'[]', %s, %s, %s, 0, '') RETURNING id",
            (len(states), now, callback, "pending" if callback else "")).fetchone()[0]  # type: ignore[index]
        ids = []
        for position, (status, attempts, queued_ago, deadline_in) in enumerate(states):
            url = f"https://lost-{secrets.token_hex(4)}.example.org/"
            link_id = connection.execute(
                "INSERT INTO links_link (url, domain, first_seen) VALUES (%s, %s, %s) RETURNING id",
                (url, url.split("/")[2], now)).fetchone()[0]  # type: ignore[index]
            queued_at = now - timedelta(seconds=queued_ago)
            started = queued_at if status == "running" else None
            deadline = now + timedelta(seconds=deadline_in) if status == "running" else None
            analysis_id = connection.execute(
                "INSERT INTO links_analysis (link_id, status, priority, providers, queued_at, started_at, "
                "deadline_at, attempts, signals, error) VALUES (%s, %s, 0, '[]', %s, %s, %s, %s, '{}', '') "
                "RETURNING id", (link_id, status, queued_at, started, deadline, attempts)).fetchone()[0]  # type: ignore[index]
            connection.execute("INSERT INTO links_batchitem (batch_id, analysis_id, position, reused) "
                               "VALUES (%s, %s, %s, false)", (batch_id, analysis_id, position))
            ids.append(analysis_id)
    return batch_id, ids


def analyses(database: str, ids: list[int]) -> dict[int, tuple[str, int, str]]:
    rows = query(database, "SELECT id, status, attempts, error FROM links_analysis WHERE id = ANY(%s)", ids)
    return {pk: (status, attempts, error) for pk, status, attempts, error in rows}


# -- the tests -------------------------------------------------------------------------------------------------


def test_a_200_url_batch_runs_on_two_workers_and_its_chord_closes_it_with_a_signed_webhook(it: Running) -> None:
    submitted = it.cluster.submit(urls("site", 200), callback_url=it.receiver.base + "/ok")
    batch_id = submitted["batch_id"]
    progress = wait_for_callback(it, batch_id, ("delivered", "failed"))
    assert progress["callback"]["status"] == "delivered" and progress["callback"]["attempts"] == 1
    assert progress["finished"] == progress["total"] == 200 and progress["finished_at"]
    statuses = dict(query(it.database, "SELECT a.status, count(*) FROM links_analysis a JOIN links_batchitem i "
                                       "ON i.analysis_id = a.id WHERE i.batch_id = %s GROUP BY a.status", batch_id))
    assert statuses == {"done": 200}
    stored = results_per_analysis(it.database)
    assert all(stored[pk] == PROVIDERS for pk in submitted["analysis_ids"])
    assert duplicate_results(it.database) == []
    [hook] = it.receiver.received("/ok")
    assert signed_correctly(hook) and hook.headers["X-Linkmeter-Event"] == "batch.finished"
    summary = json.loads(hook.body)
    assert summary["batch_id"] == batch_id and summary["total"] == 200 and summary["counts"]["done"] == 200
    assert summary["results_url"] == f"/api/v1/batches/{batch_id}/results" and summary["finished_at"]
    with NO_PROXY.open(it.cluster.base + "/api/v1/providers", timeout=30) as response:
        health = json.loads(response.read())["providers"]
    # The web process runs no analyses; the breakers it shows are the workers' own, shared in Redis.
    assert {provider["breaker"] for provider in health} == {"closed"}
    assert sum(provider["calls"] for provider in health) >= 200 * PROVIDERS


def test_a_chunk_run_again_or_redelivered_repeats_no_work_and_takes_over_what_a_dead_worker_left(
        it: Running) -> None:
    submitted = it.cluster.submit(urls("again", 30))
    it.cluster.wait_until_finished(submitted["batch_id"], timeout=WAIT)
    ids = submitted["analysis_ids"]
    before = query(it.database, "SELECT id, finished_at FROM links_analysis WHERE id = ANY(%s) ORDER BY id", ids)
    app = create_app(CelerySettings.from_env(it.cluster.env), main=False)
    try:
        repeats = [app.send_task("linkmeter.run_chunk", args=[ids]),
                   app.send_task("linkmeter.run_chunk", args=[ids], retries=1)]  # as a redelivery or retry
        summaries = [result.get(timeout=WAIT) for result in repeats]
        assert summaries == [{"asked": 30, "claimed": 0, "stored": 0, "failed": 0}] * 2
        assert query(it.database, "SELECT id, finished_at FROM links_analysis WHERE id = ANY(%s) ORDER BY id",
                     ids) == before
        # A worker claimed these, then died: running, deadline ahead, no result. An ordinary delivery leaves
        # them to their worker; a redelivered one finishes them.
        _, lost = insert_batch(it.database, [("running", 1, 5, 600)] * 3)
        assert app.send_task("linkmeter.run_chunk", args=[lost]).get(timeout=WAIT)["claimed"] == 0
        taken = app.send_task("linkmeter.run_chunk", args=[lost], retries=1).get(timeout=WAIT)
        assert taken == {"asked": 3, "claimed": 3, "stored": 3, "failed": 0}
    finally:
        app.close()
    assert {state[:2] for state in analyses(it.database, lost).values()} == {("done", 2)}
    assert duplicate_results(it.database) == []
    stored = results_per_analysis(it.database)
    assert all(stored[pk] == PROVIDERS for pk in [*ids, *lost])


def test_a_single_url_submitted_during_a_3000_url_batch_finishes_before_the_batch(it: Running) -> None:
    # The bulk runs a few providers, the single URL the default set: the point is the order the workers take
    # analyses in, and 3000 URLs with every default provider would keep two workers busy past WAIT.
    bulk = it.cluster.submit(urls("bulk", 3000), providers=BULK_PROVIDERS)
    it.cluster.wait_until_finished(bulk["batch_id"], at_least=200, timeout=WAIT)
    single = it.cluster.submit(urls("single", 1))
    [single_id] = single["analysis_ids"]
    wait_for(lambda: analyses(it.database, [single_id])[single_id][0] in FINAL, WAIT,
             "the single URL to finish", it.cluster.processes)
    in_progress = it.cluster.batch(bulk["batch_id"])
    assert in_progress is not None and in_progress["finished_at"] is None, in_progress
    it.cluster.wait_until_finished(bulk["batch_id"], timeout=WAIT)
    [(single_done, bulk_done)] = query(
        it.database, "SELECT (SELECT finished_at FROM links_analysis WHERE id = %s), "
                     "(SELECT finished_at FROM links_batch WHERE id = %s)", single_id, bulk["batch_id"])
    assert single_done < bulk_done
    assert duplicate_results(it.database) == []


def test_a_webhook_answered_500_twice_is_delivered_on_its_third_try(it: Running) -> None:
    it.receiver.script["/flaky"] = [500, 500, 200]
    submitted = it.cluster.submit(urls("flaky", 2), callback_url=it.receiver.base + "/flaky")
    progress = wait_for_callback(it, submitted["batch_id"], ("delivered", "failed"))
    assert progress["callback"]["status"] == "delivered" and progress["callback"]["attempts"] == 3
    assert progress["callback"]["last_error"] is None and progress["callback"]["sent_at"]
    hooks = it.receiver.received("/flaky")
    assert len(hooks) == 3 and all(signed_correctly(hook) for hook in hooks)
    assert len({hook.body for hook in hooks}) == 1  # the same summary each time


def test_a_webhook_to_an_unreachable_receiver_fails_after_its_tries_with_the_error_shown(it: Running) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    submitted = it.cluster.submit(urls("gone", 1), callback_url=f"http://127.0.0.1:{closed}/hook")
    progress = wait_for_callback(it, submitted["batch_id"], ("delivered", "failed"))
    callback = progress["callback"]
    assert callback["status"] == "failed" and callback["attempts"] == WEBHOOK_TRIES
    assert "connect" in callback["last_error"].lower() and callback["sent_at"] is None


def test_the_watchdog_requeues_a_lost_analysis_once_then_fails_it(it: Running) -> None:
    # Both were running on a worker that died long ago; the second had been started twice already.
    _, (retried, given_up) = insert_batch(it.database, [("running", 1, 3600, -600), ("running", 2, 3600, -600)])
    wait_for(lambda: all(state[0] in FINAL for state in analyses(it.database, [retried, given_up]).values()),
             WAIT, "the watchdog to recover the lost analyses", it.cluster.processes)
    final = analyses(it.database, [retried, given_up])
    assert final[retried][:2] == ("done", 2)
    assert final[given_up][0] == "failed" and "deadline" in final[given_up][2]


def test_analyses_queued_without_a_message_are_dispatched_and_their_batch_closed_by_the_sweeper(
        it: Running) -> None:
    # Committed while the broker was down: queued, no message anywhere, and no chord to close the batch.
    batch_id, lost = insert_batch(it.database, [("queued", 0, 3600, 0)] * 2, callback=it.receiver.base + "/swept")
    wait_for(lambda: all(state[0] in FINAL for state in analyses(it.database, lost).values()), WAIT,
             "the orphan sweep to dispatch the queued analyses", it.cluster.processes)
    assert {state[0] for state in analyses(it.database, lost).values()} == {"done"}
    progress = wait_for_callback(it, batch_id, ("delivered", "failed"))
    assert progress["callback"]["status"] == "delivered" and progress["finished_at"]
    [hook] = it.receiver.received("/swept")
    assert signed_correctly(hook) and json.loads(hook.body)["counts"]["done"] == 2
