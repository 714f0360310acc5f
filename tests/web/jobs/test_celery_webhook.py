"""Batch webhooks: the signature a receiver verifies, one POST through the SSRF-guarded client against local
receivers (delivered, failing, refused, unreachable, hanging), and the services that close a batch and keep
the delivery's outcome."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from aiohttp import web

from linkmeter.engine.http import HttpClient, HttpSettings
from linkmeter.web.jobs import webhook
from linkmeter.web.links.models import Batch, CallbackStatus
from linkmeter.web.links.selectors.progress import batch_callback, batch_progress
from linkmeter.web.links.selectors.workers import batch_webhook_summary, batches_unclosed
from linkmeter.web.links.services.batches import (
    BatchClosing,
    WebhookAttempt,
    batch_close,
    batch_webhook_record,
    batch_webhook_reset,
)
from linkmeter.web.links.services.submission import analysis_submit
from tests.web.api.conftest import complete_queued

SECRET = "a-long-shared-secret"
SUMMARY = {"batch_id": 7, "name": "nightly", "total": 2, "counts": {"done": 2}, "finished_at": "2026-01-01T00:00:00Z",
           "results_url": "https://linkmeter.example/api/v1/batches/7/results"}


@dataclass
class Receiver:
    url: str
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


Answer = Callable[[int], web.StreamResponse]


@pytest_asyncio.fixture
async def receiver_factory() -> AsyncIterator[Callable[[Answer], asyncio.Future[Receiver]]]:
    runners: list[web.AppRunner] = []

    async def start(answer: Answer) -> Receiver:
        received = Receiver("")

        async def handle(request: web.Request) -> web.StreamResponse:
            received.requests.append((dict(request.headers), await request.read()))
            return answer(len(received.requests))

        app = web.Application()
        app.router.add_post("/hook", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        received.url = f"http://127.0.0.1:{port}/hook"
        return received

    yield start  # type: ignore[misc]
    for runner in runners:
        await runner.cleanup()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with HttpClient(HttpSettings(allow=["127.0.0.1"])) as client:
        yield client


def test_the_signature_is_hmac_sha256_of_the_timestamp_a_dot_and_the_raw_body() -> None:
    body = webhook.encode(SUMMARY)
    expected = hmac.new(SECRET.encode(), b"1767225600." + body, hashlib.sha256).hexdigest()
    assert webhook.signature(SECRET, 1767225600, body) == f"sha256={expected}"
    assert json.loads(body) == SUMMARY


def test_a_receiver_accepts_only_the_signed_body_recently_signed() -> None:
    body, now = webhook.encode(SUMMARY), 1767225600
    signed = webhook.signature(SECRET, now, body)
    assert webhook.verify(SECRET, body, str(now), signed, now=now + 10)
    assert not webhook.verify(SECRET, body.replace(b"nightly", b"daily"), str(now), signed, now=now)
    assert not webhook.verify("another-secret", body, str(now), signed, now=now)
    assert not webhook.verify(SECRET, body, str(now + 1), signed, now=now)  # the timestamp is signed too
    assert not webhook.verify(SECRET, body, str(now), signed, now=now + 3600)  # a replay, an hour later
    assert not webhook.verify(SECRET, body, "yesterday", signed, now=now)


async def test_a_delivery_posts_the_signed_json(receiver_factory: Callable[[Answer], asyncio.Future[Receiver]],
                                                http: HttpClient) -> None:
    receiver = await receiver_factory(lambda n: web.json_response({"ok": True}))
    body = webhook.encode(SUMMARY)
    outcome = await webhook.post(http, receiver.url, body, secret=SECRET, within=5)
    assert outcome == webhook.Delivery(True, False, "", 200)
    [(headers, received)] = receiver.requests
    assert received == body and headers["Content-Type"] == "application/json"
    assert headers["X-Linkmeter-Event"] == "batch.finished"
    assert abs(int(headers["X-Linkmeter-Timestamp"]) - time.time()) < 60
    assert webhook.verify(SECRET, received, headers["X-Linkmeter-Timestamp"], headers["X-Linkmeter-Signature"])


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (429, True), (404, False),
                                                    (400, False)])
async def test_an_error_answer_is_a_failed_try_retried_only_when_it_may_pass_later(
        receiver_factory: Callable[[Answer], asyncio.Future[Receiver]], http: HttpClient, status: int,
        retryable: bool) -> None:
    receiver = await receiver_factory(lambda n: web.Response(status=status, text="nope"))
    outcome = await webhook.post(http, receiver.url, b"{}", secret=SECRET, within=5)
    assert not outcome.delivered and outcome.retryable is retryable and outcome.status == status
    assert str(status) in outcome.error


async def test_a_private_target_is_refused_by_the_ssrf_guard_and_never_contacted(
        receiver_factory: Callable[[Answer], asyncio.Future[Receiver]]) -> None:
    receiver = await receiver_factory(lambda n: web.Response(text="ok"))
    async with HttpClient(HttpSettings()) as guarded:  # no LINKMETER_FETCH_ALLOW
        outcome = await webhook.post(guarded, receiver.url, b"{}", secret=SECRET, within=5)
    assert not outcome.delivered and not outcome.retryable
    assert "blocked_address" in outcome.error and receiver.requests == []


async def test_an_unreachable_or_hanging_receiver_is_a_retryable_failure(
        receiver_factory: Callable[[Answer], asyncio.Future[Receiver]], http: HttpClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    refused = await webhook.post(http, f"http://127.0.0.1:{closed_port}/hook", b"{}", secret=SECRET, within=5)
    assert not refused.delivered and refused.retryable and "connection" in refused.error

    never = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hang)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        hanging = await webhook.post(http, f"http://127.0.0.1:{runner.addresses[0][1]}/hook", b"{}",
                                     secret=SECRET, within=0.3)
    finally:
        never.set()
        await runner.cleanup()
    assert not hanging.delivered and hanging.retryable and "0.3" in hanging.error


# -- closing a batch and keeping the webhook's outcome ---------------------------------------------------------


def callback_batch(urls: list[str], callback: str = "https://hooks.example.com/linkmeter") -> Batch:
    batch = analysis_submit(urls=urls).batch
    Batch.objects.filter(pk=batch.pk).update(callback_url=callback, callback_status=CallbackStatus.PENDING)
    return batch


@pytest.mark.django_db(transaction=True)
def test_a_batch_closes_once_every_analysis_is_final_and_starts_its_webhook_once() -> None:
    batch = callback_batch(["https://a.example.org/1", "https://a.example.org/2"])
    assert batch_close(batch_id=batch.pk) == BatchClosing(finished=False, send_webhook=False)
    complete_queued()
    assert batch_close(batch_id=batch.pk) == BatchClosing(finished=True, send_webhook=True)
    assert batch_close(batch_id=batch.pk) == BatchClosing(finished=True, send_webhook=False)
    closed = Batch.objects.get(pk=batch.pk)
    assert closed.finished_at is not None and closed.callback_status == CallbackStatus.SENDING
    plain = analysis_submit(urls=["https://a.example.org/1"], fresh=True).batch
    complete_queued()
    assert batch_close(batch_id=plain.pk) == BatchClosing(finished=True, send_webhook=False)
    assert batch_close(batch_id=10**9) == BatchClosing(finished=False, send_webhook=False)


@pytest.mark.django_db(transaction=True)
def test_a_webhook_is_retried_until_delivered_and_its_outcome_shown_with_the_batch() -> None:
    batch = callback_batch(["https://b.example.org/1"])
    complete_queued()
    batch_close(batch_id=batch.pk)
    first = batch_webhook_record(batch_id=batch.pk, delivered=False, error="HTTP 500", max_tries=3)
    assert first == WebhookAttempt(1, CallbackStatus.SENDING)
    second = batch_webhook_record(batch_id=batch.pk, delivered=True, max_tries=3)
    assert second == WebhookAttempt(2, CallbackStatus.DELIVERED)
    late = batch_webhook_record(batch_id=batch.pk, delivered=False, error="late duplicate")
    assert late == WebhookAttempt(0, "")  # a delivered webhook is not changed
    shown = batch_progress(Batch.objects.get(pk=batch.pk)).as_dict()["callback"]
    assert shown["status"] == "delivered" and shown["attempts"] == 2 and shown["last_error"] is None
    assert shown["url"] == "https://hooks.example.com/linkmeter" and shown["sent_at"]


@pytest.mark.django_db(transaction=True)
def test_a_webhook_fails_for_good_after_its_last_try_or_a_refusal() -> None:
    batch = callback_batch(["https://c.example.org/1"])
    refused = callback_batch(["https://c.example.org/2"])
    complete_queued()
    for closing in (batch, refused):
        batch_close(batch_id=closing.pk)
    for _ in range(2):
        batch_webhook_record(batch_id=batch.pk, delivered=False, error="connection refused", max_tries=3)
    last = batch_webhook_record(batch_id=batch.pk, delivered=False, error="connection refused", max_tries=3)
    assert last == WebhookAttempt(3, CallbackStatus.FAILED)
    blocked = batch_webhook_record(batch_id=refused.pk, delivered=False, retryable=False,
                                            error="refused (blocked_address)", max_tries=3)
    assert blocked == WebhookAttempt(1, CallbackStatus.FAILED)
    shown = batch_callback(Batch.objects.get(pk=batch.pk))
    assert shown is not None and shown["last_error"] == "connection refused" and shown["sent_at"] is None


@pytest.mark.django_db(transaction=True)
def test_a_webhook_that_could_not_be_scheduled_goes_back_to_the_sweeper() -> None:
    batch = callback_batch(["https://d.example.org/1"])
    complete_queued()
    assert batches_unclosed(finished_before_seconds=0) == [batch.pk]  # its chord never came
    batch_close(batch_id=batch.pk)
    assert batches_unclosed(finished_before_seconds=0) == []
    batch_webhook_reset(batch_id=batch.pk)
    assert batches_unclosed(finished_before_seconds=0) == [batch.pk]
    assert batches_unclosed(finished_before_seconds=3600) == []  # only batches finished long enough ago
    summary = batch_webhook_summary(batch.pk)
    assert summary is not None and summary["total"] == 1 and summary["counts"]["done"] == 1
    assert summary["results_url"] == f"/api/v1/batches/{batch.pk}/results"
