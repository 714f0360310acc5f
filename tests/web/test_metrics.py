"""GET /metrics: provider calls and URLs counted by the engine's observer, queue figures from the database;
a worker process's own metrics page."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from linkmeter.assembly import build_engine
from linkmeter.emulator.server import RunningEmulator
from linkmeter.engine.runner import Engine
from linkmeter.engine.settings import SettingsError
from linkmeter.web import metrics
from linkmeter.web.jobs.runner import InlineRunner, RunnerSettings
from linkmeter.web.links.models import FINAL_STATUSES, Analysis, ProviderResult
from linkmeter.web.links.selectors.metrics import QueueSnapshot, queue_snapshot
from linkmeter.web.links.services.queue import analysis_fail
from linkmeter.web.links.services.submission import analysis_submit
from tests.waiting import wait_until_async

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
TIMED = {"ok", "error", "timeout", "rate_limited"}


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text page (the parser refuses a malformed one)."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape() -> Samples:
    metrics.DATABASE.invalidate()  # these tests change the database between scrapes
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(response.content.decode())


@pytest_asyncio.fixture
async def engine(emulator: RunningEmulator) -> AsyncIterator[Engine]:
    built = build_engine({}, relax_rate_limits=True, url_deadline=10, emulator=emulator.info())
    yield built
    await built.close()


@pytest.mark.django_db(transaction=True)
async def test_after_analyses_run_in_the_embedded_runner_metrics_count_their_calls_urls_and_statuses(
        engine: Engine) -> None:
    before = await sync_to_async(scrape)()
    await sync_to_async(analysis_submit)(urls=[
        "https://news.example.org/a/1", "https://blog.example.com/post", "https://spam-deals.example/offer",
        "https://unregistered-thing.example/x"])
    runner = InlineRunner(engine, RunnerSettings(concurrency=4, poll_interval=0.1, flush_interval=0.05))
    task = asyncio.create_task(runner.run())
    try:
        await wait_until_async(lambda: runner.database(_all_final), 30, message="the analyses to finish")
    finally:
        runner.stop()
        await asyncio.wait_for(task, 30)
    after = await sync_to_async(scrape)()
    calls, urls = await sync_to_async(_stored)()
    assert len(calls) > 4 and sum(urls.values()) == 4

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    for (provider, status), count in calls.items():
        assert delta("linkmeter_provider_calls_total", provider=provider, status=status) == count, (provider, status)
    providers = {provider for provider, _ in calls}
    for provider in providers:
        timed = sum(n for (p, status), n in calls.items() if p == provider and status in TIMED)
        assert delta("linkmeter_provider_latency_seconds_count", provider=provider) == timed
        assert delta("linkmeter_provider_latency_seconds_bucket", provider=provider, le="+Inf") == timed
    for status, count in urls.items():
        assert delta("linkmeter_urls_total", status=status) == count
    assert delta("linkmeter_url_seconds_count") == 4 and delta("linkmeter_url_seconds_sum") > 0
    for status in ("done", "partial", "failed"):
        assert value(after, "linkmeter_analyses", status=status) == urls.get(status, 0)
    assert value(after, "linkmeter_analyses", status="queued") == 0
    assert value(after, "linkmeter_queue_depth") == 0 and value(after, "linkmeter_batches_open") == 0
    assert value(after, "linkmeter_database_up") == 1


@pytest.mark.django_db
def test_queue_figures_count_queued_work_open_batches_their_progress_and_recent_final_analyses() -> None:
    bulk = analysis_submit(urls=[f"https://news.example.org/bulk/{i}" for i in range(5)])
    single = analysis_submit(urls=["https://news.example.org/single"])
    analysis_fail(analysis_ids=[a.pk for a in bulk.analyses[:2]], reason="test")
    samples = scrape()
    assert value(samples, "linkmeter_queue_depth") == 4
    assert value(samples, "linkmeter_analyses", status="queued") == 4
    assert value(samples, "linkmeter_analyses", status="failed") == 2
    assert value(samples, "linkmeter_batches_open") == 2
    progress = {dict(labels)["batch"]: v for (name, labels), v in samples.items()
                if name == "linkmeter_batch_progress"}
    assert progress == {str(bulk.batch.pk): 0.4}  # a single URL's batch has no progress worth a series
    assert single.batch.pk != bulk.batch.pk
    Analysis.objects.filter(pk=bulk.analyses[0].pk).update(finished_at=timezone.now() - timedelta(hours=2))
    assert value(scrape(), "linkmeter_analyses", status="failed") == 1  # final ones: the recent window only


@pytest.mark.django_db
def test_final_analyses_are_counted_among_the_newest_rows_only() -> None:
    batch = analysis_submit(urls=[f"https://news.example.org/rows/{i}" for i in range(4)])
    analysis_fail(analysis_ids=[a.pk for a in batch.analyses], reason="test")
    snapshot = queue_snapshot(recent_rows=2)
    assert snapshot.analyses["failed"] == 2 and snapshot.analyses["queued"] == 0


def test_the_database_is_read_at_most_once_per_cache_period_and_a_failure_is_visible() -> None:
    now = [100.0]
    reads: list[float] = []
    failing = [False]

    def read() -> QueueSnapshot:
        reads.append(now[0])
        if failing[0]:
            raise RuntimeError("database down")
        return QueueSnapshot(analyses={"queued": 3}, batches_open=1, batch_progress={9: 0.5})

    collector = metrics.DatabaseCollector(read, ttl=5.0, clock=lambda: now[0])
    first = {family.name: family for family in collector.collect()}
    assert first["linkmeter_queue_depth"].samples[0].value == 3
    assert first["linkmeter_batch_progress"].samples[0].labels == {"batch": "9"}
    now[0] += 4.9
    list(collector.collect())
    assert reads == [100.0]
    now[0] += 0.2
    failing[0] = True
    down = {family.name: family for family in collector.collect()}
    assert len(reads) == 2
    assert set(down) == {"linkmeter_database_up"} and down["linkmeter_database_up"].samples[0].value == 0


@pytest.mark.django_db
def test_metrics_needs_no_login_and_no_csrf_token_and_only_answers_get() -> None:
    client = Client(enforce_csrf_checks=True)
    assert client.get("/metrics").status_code == 200
    assert client.post("/metrics").status_code == 405  # not 403: CSRF does not apply, the method does


def _all_final() -> bool:
    return not Analysis.objects.exclude(status__in=list(FINAL_STATUSES)).exists()


def _stored() -> tuple[Counter[tuple[str, str]], Counter[str]]:
    calls = Counter(ProviderResult.objects.values_list("provider", "status"))
    urls = Counter(Analysis.objects.values_list("status", flat=True))
    return calls, urls


# -- a worker process's own page ---------------------------------------------------------------------------

WORKER = """
import sys, django
django.setup()
from linkmeter.engine.results import CallResult, CallStatus, UrlResult, UrlStatus
from linkmeter.web import metrics
import os
host, port = metrics.worker_exporter_from_env(os.environ)
for _ in range(7):
    metrics.OBSERVER.call_finished("rdap", CallResult("rdap", CallStatus.OK, latency_ms=20.0))
metrics.OBSERVER.call_finished("rdap", CallResult("rdap", CallStatus.CACHED))
metrics.OBSERVER.url_finished(UrlResult("https://a.example/", UrlStatus.DONE, {}, {}, 300.0))
print(host, port, flush=True)
sys.stdin.read()
"""


def test_a_worker_serves_its_own_metrics_on_the_port_its_environment_names(tmp_path: Path) -> None:
    env = {**os.environ, "LINKMETER_METRICS_PORT": "0", "LINKMETER_DATA_DIR": str(tmp_path),
           "DJANGO_SETTINGS_MODULE": "linkmeter.web.config.settings"}
    env.pop("LINKMETER_METRICS_HOST", None)
    worker = subprocess.Popen([sys.executable, "-c", WORKER], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        host, port = worker.stdout.readline().split()
        assert host == "127.0.0.1"  # loopback unless LINKMETER_METRICS_HOST says otherwise
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            page = parse(response.read().decode())
    finally:
        worker.communicate("", timeout=30)
    assert value(page, "linkmeter_provider_calls_total", provider="rdap", status="ok") == 7
    assert value(page, "linkmeter_provider_calls_total", provider="rdap", status="cached") == 1
    assert value(page, "linkmeter_provider_latency_seconds_count", provider="rdap") == 7  # cached: not timed
    assert value(page, "linkmeter_provider_latency_seconds_bucket", provider="rdap", le="0.025") == 7
    assert value(page, "linkmeter_urls_total", status="done") == 1
    assert not any(name.startswith(("linkmeter_queue", "linkmeter_analyses")) for name, _ in page)


@pytest.mark.parametrize("port", ["http", "-1", "65536"])
def test_a_bad_metrics_port_is_a_settings_error_naming_the_variable(port: str) -> None:
    with pytest.raises(SettingsError, match="LINKMETER_METRICS_PORT"):
        metrics.worker_exporter_from_env({"LINKMETER_METRICS_PORT": port})


def test_without_a_metrics_port_a_worker_serves_no_page() -> None:
    assert metrics.worker_exporter_from_env({}) is None


@pytest.mark.parametrize(("text", "seconds"), [("", 3600.0), ("900", 900.0), ("soon", 3600.0), ("-5", 3600.0)])
def test_the_final_window_comes_from_the_environment_with_a_safe_default(text: str, seconds: float) -> None:
    assert metrics.final_window({"LINKMETER_METRICS_WINDOW": text}) == seconds
