"""Prometheus metrics: provider calls and URLs seen by this process's engine, queue figures read from the database."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from linkmeter.engine.observe import with_observer
from linkmeter.engine.results import CallResult, CallStatus, UrlResult
from linkmeter.engine.runner import Engine
from linkmeter.engine.settings import SettingsError
from linkmeter.web.links.selectors.metrics import QueueSnapshot, queue_snapshot

log = logging.getLogger(__name__)

PORT_ENV, HOST_ENV = "LINKMETER_METRICS_PORT", "LINKMETER_METRICS_HOST"  # a worker's own metrics page
WINDOW_ENV = "LINKMETER_METRICS_WINDOW"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the classic text format, which every scraper reads
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
URL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Calls that asked (or tried to ask) the provider; the others end before any upstream request.
TIMED = frozenset({CallStatus.OK, CallStatus.ERROR, CallStatus.TIMEOUT, CallStatus.RATE_LIMITED})
CACHE_SECONDS = 5.0  # the database figures are read at most this often, however often Prometheus scrapes
FINAL_WINDOW_SECONDS = 3600.0
RECENT_ROWS = 100_000
TRACKED_BATCHES = 20

PROVIDER_CALLS = Counter("linkmeter_provider_calls", "Provider calls by final status (one per provider per URL).",
                         ["provider", "status"])
PROVIDER_LATENCY = Histogram("linkmeter_provider_latency_seconds",
                             "Latency of provider calls that reached upstream (ok, error, timeout, rate_limited).",
                             ["provider"], buckets=LATENCY_BUCKETS)
URLS = Counter("linkmeter_urls", "URLs analysed by this process's engine, by final status.", ["status"])
URL_SECONDS = Histogram("linkmeter_url_seconds", "Time to analyse one URL, all providers.", buckets=URL_BUCKETS)


class MetricsObserver:
    """The engine observer that feeds the counters and histograms above."""

    def __init__(self) -> None:
        self._calls: dict[tuple[str, str], Counter] = {}
        self._latency: dict[str, Histogram] = {}

    def call_finished(self, provider: str, result: CallResult) -> None:
        key = (provider, str(result.status))
        counter = self._calls.get(key)
        if counter is None:
            counter = self._calls[key] = PROVIDER_CALLS.labels(*key)
        counter.inc()
        if result.status in TIMED:
            histogram = self._latency.get(provider)
            if histogram is None:
                histogram = self._latency[provider] = PROVIDER_LATENCY.labels(provider)
            histogram.observe(result.latency_ms / 1000)

    def url_finished(self, result: UrlResult) -> None:
        URLS.labels(str(result.status)).inc()
        URL_SECONDS.observe(result.elapsed_ms / 1000)


OBSERVER = MetricsObserver()


def attach(engine: Engine) -> Engine:
    """Record ``engine``'s calls and URLs in this process's metrics (idempotent; keeps other observers).
    Call before the engine runs, so views made by ``engine.narrowed()`` inherit it."""
    engine.observer = with_observer(engine.observer, OBSERVER)
    return engine


class DatabaseCollector:
    """Queue figures from the database at scrape time, cached for ``ttl`` seconds; ``linkmeter_database_up``
    says whether the last read worked."""

    def __init__(self, read: Callable[[], QueueSnapshot] | None = None, *, ttl: float = CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read or _read_snapshot
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, QueueSnapshot | None] | None = None

    def invalidate(self) -> None:
        """Read the database again at the next scrape."""
        with self._lock:
            self._cached = None

    def snapshot(self) -> QueueSnapshot | None:
        with self._lock:
            now = self._clock()
            if self._cached is None or now - self._cached[0] >= self._ttl:
                try:
                    value: QueueSnapshot | None = self._read()
                except Exception:
                    log.warning("reading queue figures for /metrics failed", exc_info=True)
                    value = None
                self._cached = (now, value)
            return self._cached[1]

    def collect(self) -> Iterable[Metric]:
        snapshot = self.snapshot()
        yield GaugeMetricFamily("linkmeter_database_up", "1 when the last read of the queue figures worked.",
                                value=0 if snapshot is None else 1)
        if snapshot is None:
            return
        analyses = GaugeMetricFamily(
            "linkmeter_analyses", "Analyses by status: queued and running all; final ones finished within the "
            "window (LINKMETER_METRICS_WINDOW seconds, newest 100k analyses).", labels=["status"])
        for status, count in sorted(snapshot.analyses.items()):
            analyses.add_metric([status], count)
        yield analyses
        yield GaugeMetricFamily("linkmeter_queue_depth", "Analyses queued, waiting for a worker.",
                                value=snapshot.analyses.get("queued", 0))
        yield GaugeMetricFamily("linkmeter_batches_open", "Batches not finished (among the newest 100k).",
                                value=snapshot.batches_open)
        progress = GaugeMetricFamily("linkmeter_batch_progress",
                                     "Finished share (0..1) of the newest open batches of more than one URL.",
                                     labels=["batch"])
        for batch_id, share in snapshot.batch_progress.items():
            progress.add_metric([str(batch_id)], share)
        yield progress


def _read_snapshot() -> QueueSnapshot:
    return queue_snapshot(window_seconds=final_window(os.environ), recent_rows=RECENT_ROWS,
                                    batches=TRACKED_BATCHES)


def final_window(environ: Mapping[str, str]) -> float:
    """LINKMETER_METRICS_WINDOW: final analyses finished this many seconds back are counted (default 3600)."""
    text = environ.get(WINDOW_ENV, "").strip()
    try:
        window = float(text) if text else FINAL_WINDOW_SECONDS
    except ValueError:
        window = -1.0
    if not 0 < window < float("inf"):
        log.warning("%s=%r is not a positive number of seconds; using %g", WINDOW_ENV, text, FINAL_WINDOW_SECONDS)
        return FINAL_WINDOW_SECONDS
    return window


DATABASE = DatabaseCollector()


class _Together:
    """Several collectors exposed as one page."""

    def __init__(self, *collectors: Collector) -> None:
        self.collectors = collectors

    def collect(self) -> Iterable[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


def render() -> bytes:
    """The Prometheus text page of this process (its engine's calls and URLs, process figures) and the queue
    figures."""
    return generate_latest(_Together(REGISTRY, DATABASE))


@csrf_exempt
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics: no authentication (keep it off the public internet: see docs/observability.md)."""
    return HttpResponse(render(), content_type=CONTENT_TYPE)


def start_worker_exporter(port: int, host: str = "127.0.0.1") -> tuple[str, int]:
    """Serve this process's metrics (no queue figures: the web's /metrics has those) on ``host:port`` from
    a background thread. Returns the address bound (port 0: any free one)."""
    server, _ = start_http_server(port, addr=host, registry=REGISTRY)
    bound_host, bound_port = server.server_address[:2]
    log.info("metrics on http://%s:%d/metrics", bound_host, bound_port)
    return str(bound_host), int(bound_port)


def worker_exporter_from_env(environ: Mapping[str, str]) -> tuple[str, int] | None:
    """What `linkmeter worker` calls at start-up: with LINKMETER_METRICS_PORT set, serve this process's
    metrics on LINKMETER_METRICS_HOST (default 127.0.0.1) at that port; None when it is not set. Raises
    SettingsError for a bad port and OSError when the port is taken."""
    text = environ.get(PORT_ENV, "").strip()
    if not text:
        return None
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise SettingsError(f"{PORT_ENV} must be a port number (0-65535), not {text!r}")
    return start_worker_exporter(port, environ.get(HOST_ENV, "").strip() or "127.0.0.1")
