"""Handing work to Celery: chunks and priorities, nothing lost when the broker is down, the settings of the
Celery mode, and `callback_url` on POST /api/v1/analyses (validated; shown with the batch)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from linkmeter.engine.settings import SettingsError, fetch_allow
from linkmeter.web.config.celery import MAX_PRIORITY, CelerySettings, create_app
from linkmeter.web.jobs import celery_dispatch
from linkmeter.web.jobs.celery_dispatch import CeleryDispatcher, chunked, publish_chunks
from linkmeter.web.links.models import Analysis, AnalysisStatus, Batch
from tests.web.conftest import use_dispatcher

URL = "/api/v1/analyses"


class RecordingDispatcher:
    """Delivers webhooks (as the Celery dispatcher with a secret does) and records what it was handed."""

    delivers_webhooks = True

    def __init__(self) -> None:
        self.enqueued: list[tuple[list[int], int, int | None]] = []

    def enqueue(self, analysis_ids: Sequence[int], *, priority: int, batch_id: int | None = None) -> None:
        self.enqueued.append((list(analysis_ids), priority, batch_id))


@pytest.fixture
def recording() -> Iterator[RecordingDispatcher]:
    recorder = RecordingDispatcher()
    use_dispatcher(recorder)
    yield recorder
    use_dispatcher(None)


class FakeSignature:
    def __init__(self, sent: list[tuple[str, Any, dict[str, Any]]], name: str, args: Any,
                 options: dict[str, Any]) -> None:
        self.sent, self.name, self.args, self.options = sent, name, args, options

    def apply_async(self) -> None:
        self.sent.append((self.name, self.args, self.options))


class FakeApp:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, dict[str, Any]]] = []

    def signature(self, name: str, args: Any = (), options: dict[str, Any] | None = None,
                  **_: Any) -> FakeSignature:
        return FakeSignature(self.sent, name, args, options or {})


def test_ids_are_sent_in_chunks_highest_priority_first() -> None:
    assert [len(c) for c in chunked(list(range(60)), 25)] == [25, 25, 10]
    app = FakeApp()
    work = [(pk, 0) for pk in range(1, 31)] + [(100, 10), (101, 10)]
    assert publish_chunks(app, work, chunk_size=25) == 3  # type: ignore[arg-type]
    assert [(args[0][:1], len(args[0]), options["priority"]) for _, args, options in app.sent] == [
        ([100], 2, 10), ([1], 25, 0), ([26], 5, 0)]
    assert {name for name, _, _ in app.sent} == {celery_dispatch.RUN_CHUNK}


def test_the_queue_takes_message_priorities() -> None:
    settings = CelerySettings.from_env({"LINKMETER_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
                                        "LINKMETER_REDIS_URL": "redis://127.0.0.1:6379/0",
                                        "LINKMETER_QUEUE": "lm-test", "LINKMETER_CHUNK_SIZE": "40"})
    app = create_app(settings, main=False)
    [queue] = app.conf.task_queues
    assert queue.name == "lm-test" and queue.queue_arguments == {"x-max-priority": MAX_PRIORITY}
    assert app.conf.task_default_queue == "lm-test" and settings.chunk_size == 40
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1 and app.conf.task_serializer == "json"
    assert set(app.conf.beat_schedule) == {"watchdog", "requeue-orphans", "spam-daily", "refill-deferred"}


@pytest.mark.parametrize(("environ", "message"), [
    ({"LINKMETER_BROKER_URL": "amqp://127.0.0.1//"}, "LINKMETER_REDIS_URL"),
    ({"LINKMETER_CHUNK_SIZE": "many"}, "LINKMETER_CHUNK_SIZE"),
    ({"LINKMETER_WATCHDOG_INTERVAL": "0"}, "LINKMETER_WATCHDOG_INTERVAL"),
])
def test_bad_celery_settings_are_refused_by_name(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        CelerySettings.from_env(environ)
    assert not CelerySettings.from_env({}).enabled


@pytest.mark.django_db(transaction=True)
def test_when_the_broker_is_down_the_submission_still_succeeds_and_its_analyses_stay_queued(
        client: Client, caplog: pytest.LogCaptureFixture) -> None:
    settings = CelerySettings(broker_url="amqp://guest:guest@127.0.0.1:1//", redis_url="redis://127.0.0.1:1/0",
                              webhook_secret="x" * 16)
    dispatcher = CeleryDispatcher(create_app(settings, main=False), settings)
    use_dispatcher(dispatcher)
    try:
        started = time.monotonic()
        response = client.post(URL, {"urls": ["https://e.example.org/1", "https://e.example.org/2"]},
                               content_type="application/json")
        answered = time.monotonic() - started
        dispatcher.close()  # waits for the publishing thread to give up
    finally:
        use_dispatcher(None)
    assert response.status_code == 202 and answered < 2  # the request never waits on the broker
    assert set(Analysis.objects.values_list("status", flat=True)) == {AnalysisStatus.QUEUED}
    assert "stay queued" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_callback_url_is_kept_with_the_batch_and_shown_with_its_progress(
        client: Client, recording: RecordingDispatcher) -> None:
    body = client.post(URL, {"urls": ["https://f.example.org/1"], "callback_url": "https://hooks.example.com/lm?x=1"},
                       content_type="application/json").json()
    assert recording.enqueued == [(body["analysis_ids"], 10, body["batch_id"])]
    progress = client.get(f"/api/v1/batches/{body['batch_id']}").json()
    assert progress["callback"] == {"url": "https://hooks.example.com/lm?x=1", "status": "pending", "attempts": 0,
                                    "last_error": None, "sent_at": None}
    plain = client.post(URL, {"urls": ["https://f.example.org/2"]}, content_type="application/json").json()
    assert client.get(f"/api/v1/batches/{plain['batch_id']}").json()["callback"] is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("callback", "code"), [
    ("ftp://hooks.example.com/", "invalid_callback_url"),
    ("hooks.example.com/x", "invalid_callback_url"),
    ("https://user:pass@hooks.example.com/", "invalid_callback_url"),
    ("http://hooks.example.com:99999/", "invalid_callback_url"),
    ("http://127.0.0.1:8000/hook", "blocked_callback_url"),
    ("http://[::1]/hook", "blocked_callback_url"),
    ("http://10.1.2.3/hook", "blocked_callback_url"),
    ("http://169.254.169.254/latest", "blocked_callback_url"),
    ("http://2130706433/", "blocked_callback_url"),
])
def test_a_bad_or_private_callback_url_is_refused_and_nothing_is_queued(
        client: Client, recording: RecordingDispatcher, callback: str, code: str) -> None:
    response = client.post(URL, {"urls": ["https://g.example.org/1"], "callback_url": callback},
                           content_type="application/json")
    assert response.status_code == 422 and response.json()["code"] == code
    assert recording.enqueued == [] and not Batch.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_loopback_callback_is_allowed_only_by_linkmeter_fetch_allow(
        client: Client, recording: RecordingDispatcher, settings: SettingsWrapper) -> None:
    # The Django settings read LINKMETER_FETCH_ALLOW once, with the engine's reader.
    settings.FETCH_ALLOW = fetch_allow({"LINKMETER_FETCH_ALLOW": "127.0.0.1"})
    response = client.post(URL, {"urls": ["https://h.example.org/1"], "callback_url": "http://127.0.0.1:9/hook"},
                           content_type="application/json")
    assert response.status_code == 202


@pytest.mark.django_db(transaction=True)
def test_without_the_celery_workers_a_callback_url_is_refused(client: Client) -> None:
    response = client.post(URL, {"urls": ["https://i.example.org/1"], "callback_url": "https://hooks.example.com/"},
                           content_type="application/json")
    assert response.status_code == 422 and response.json()["code"] == "callbacks_unavailable"
    assert not Batch.objects.exists()


def test_a_large_batchs_tail_waits_one_step_below_its_head() -> None:
    app = FakeApp()
    publish_chunks(app, [(pk, 6) for pk in range(1, 201)], chunk_size=25)  # type: ignore[arg-type]
    priorities = [options["priority"] for _, _, options in app.sent]
    assert priorities == [6] * celery_dispatch.HEAD_CHUNKS + [5] * (8 - celery_dispatch.HEAD_CHUNKS)
    assert celery_dispatch.chunk_priority(0, 10) == 0  # never below the lowest priority


def lanes_of(chunks: int, lanes: int) -> list[Any]:
    app = create_app(CelerySettings(broker_url="memory://", redis_url="redis://127.0.0.1:1/0"), main=False)
    return celery_dispatch.batch_lanes(app, list(range(1, chunks * 10 + 1)), priority=6, size=10, lanes=lanes)


def test_a_large_batch_is_fed_into_the_queue_through_its_lanes() -> None:
    lanes = lanes_of(10, 3)
    assert len(lanes) == 3  # at most three of its messages in the queue at once, whatever its size
    firsts = [[task.args[0][0] for task in lane.tasks] for lane in lanes]
    assert firsts == [[1, 31, 61, 91], [11, 41, 71], [21, 51, 81]]  # chunk i in lane i mod 3, in order
    priorities = [[task.options["priority"] for task in lane.tasks] for lane in lanes]
    assert [p[0] for p in priorities] == [6, 6, 6] and {q for p in priorities for q in p[1:]} == {5}
    assert all(task.immutable for lane in lanes for task in lane.tasks)  # no chunk gets its predecessor's answer


def test_a_batch_with_no_more_chunks_than_lanes_goes_at_once() -> None:
    chunks = lanes_of(3, 16)
    assert [task.args[0][:1] for task in chunks] == [[1], [11], [21]]
    assert {task.options["priority"] for task in chunks} == {6}
    assert CelerySettings().batch_lanes == 16
    assert CelerySettings.from_env({"LINKMETER_BATCH_LANES": "4"}).batch_lanes == 4
    with pytest.raises(SettingsError, match="LINKMETER_BATCH_LANES"):
        CelerySettings.from_env({"LINKMETER_BATCH_LANES": "0"})
