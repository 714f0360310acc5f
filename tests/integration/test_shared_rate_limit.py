"""Shared rate limits, with the real services (PostgreSQL, RabbitMQ, Redis) and separate processes: two
`linkmeter worker` processes hold one provider's rate limit together through Redis, and when the provider
answers 429 with Retry-After, every worker waits it out (the pause is shared too).

The emulator limits ``hackernews`` (one request per URL, keyed by the URL, so distinct URLs are distinct
upstream calls) to 20 requests a second with 429 above, and counts, per provider, the requests, the 429s and
the *early* requests: those arriving while a Retry-After it announced has not passed, after a grace for
requests already on their way (``GET /_emulator/stats``; see ``linkmeter.emulator.stats``)."""

from __future__ import annotations

import json
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import NO_PROXY, Cluster, cluster, provider_statuses, status_counts

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

PROVIDER = "hackernews"
LIMIT = 20  # the emulator's rate limit for PROVIDER, per second (token bucket, burst 20)
WORKERS = 2
FINISH = 100.0  # seconds a batch gets to finish
UPSTREAM = ("ok", "error", "rate_limited", "timeout")  # call statuses that asked the provider
# Requests within this long after a 429 may have been sent before any worker knew of it: a worker pauses the
# provider in the moment it reads the 429 (its own calls at once, the others' through Redis), but a request
# sent just before that is still on its way. Measured on a loaded 2-core machine (30 traced runs of this test
# with the engine and web suites running beside it): the 429 took up to 38 ms to reach its worker, and a
# request up to 230 ms from leaving its worker's limiter to the emulator's handler, in the first second of
# the batch, while both workers open their connections and fetch their first pages. The grace is about
# twice their sum; a worker that ignored the pause would still send ~10 requests in the 0.5 s left.
GRACE = 0.5


@dataclass(frozen=True)
class Workers:
    """How the two workers are set up: PROVIDER's rate (burst 1) they hold together, and how many URLs each
    has in flight (``concurrency`` chunks of ``chunk_size``)."""

    rate: float
    concurrency: int = 4
    chunk_size: int = 25

    def __str__(self) -> str:
        return f"{self.rate:g}/s, {self.concurrency * self.chunk_size} URLs in flight each"


@dataclass
class Running:
    cluster: Cluster
    metrics_ports: list[int]

    def stats(self, grace: float | None = None) -> dict[str, Any]:
        """The emulator's counters for PROVIDER (GET /_emulator/stats), early ones counted with ``grace``."""
        query = "" if grace is None else f"?grace={grace:g}"
        with NO_PROXY.open(f"{self.cluster.emulator.url}/_emulator/stats{query}", timeout=10) as response:
            document: dict[str, Any] = json.loads(response.read())
        return dict(document["providers"][PROVIDER])

    def calls_per_worker(self) -> list[dict[str, float]]:
        """Each worker's PROVIDER calls by final status, from its own /metrics page."""
        per_worker = []
        for port in self.metrics_ports:
            with NO_PROXY.open(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                text = response.read().decode()
            calls: dict[str, float] = {}
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == "linkmeter_provider_calls_total" and sample.labels["provider"] == PROVIDER:
                        calls[sample.labels["status"]] = sample.value
            per_worker.append(calls)
        return per_worker


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def shared(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Running]:
    """A cluster whose emulator limits PROVIDER to LIMIT/s and whose two workers, each with its own /metrics
    page, limit it together (through Redis) as the test's ``Workers`` parameter says."""
    workers: Workers = request.param
    extra = {
        f"LINKMETER_{PROVIDER.upper()}_RATE": f"{workers.rate:g}",
        f"LINKMETER_{PROVIDER.upper()}_BURST": "1",
        "LINKMETER_CHUNK_SIZE": str(workers.chunk_size),
        # Calls queue for their slot well past the default deadline: up to 200 URLs are in flight at once.
        "LINKMETER_URL_DEADLINE": "120",
    }
    with cluster(tmp_path, rate_limits=(f"{PROVIDER}={LIMIT}/s",), extra_env=extra) as running:
        running.serve()
        ports = []
        for n in range(WORKERS):
            ports.append(free_port())
            running.worker(f"worker{n + 1}", concurrency=workers.concurrency,
                           extra_env={"LINKMETER_METRICS_PORT": str(ports[-1])})
        running.wait_for_workers(WORKERS)
        yield Running(running, ports)


def distinct_urls(count: int) -> list[str]:
    """Distinct URLs on count/10 domains: each one a PROVIDER call of its own."""
    run = secrets.token_hex(3)
    return [f"https://rl{i % max(1, count // 10)}-{run}.example.org/story/{i}" for i in range(count)]


def run_batch(it: Running, count: int) -> dict[str, Any]:
    """Submit ``count`` URLs for PROVIDER and the page it reads the canonical URL from, wait until the batch is
    closed, return the emulator's counters for PROVIDER."""
    # Only these two: the emulator stands in for every API in one process, and the whole default set's
    # traffic held its event loop for up to 2 s on a loaded machine; it then handled the requests the workers
    # had spread evenly as one burst, and its bucket refused them. The real API has no such neighbours.
    submitted = it.cluster.submit(distinct_urls(count), providers=[PROVIDER, "page"])
    progress = it.cluster.wait_until_finished(submitted["batch_id"], timeout=FINISH)
    assert progress["finished"] == progress["total"] == count, progress
    return it.stats()


SUSTAINED = Workers(rate=LIMIT - 1)  # just under the provider's limit, 200 URLs in flight in all
# Twice the limit: 429s will come. Fewer URLs in flight, so that the workers' event loops stay responsive and
# the test measures how the engine treats a Retry-After, not how late a swamped loop reads one.
TOO_FAST = Workers(rate=2 * LIMIT, concurrency=2, chunk_size=10)


@pytest.mark.parametrize("shared", [SUSTAINED], indirect=True, ids=["workers-19-per-s"])
def test_two_workers_hold_a_providers_rate_limit_together(shared: Running) -> None:
    urls = 400  # ~20 s of calls at 19/s: a sustained load, the limit the only brake
    stats = run_batch(shared, urls)
    per_worker = shared.calls_per_worker()
    print(f"\n{PROVIDER} at the emulator, workers at {SUSTAINED}: {stats}\ncalls per worker: {per_worker}")
    assert status_counts(shared.cluster.database) == {"done": urls}
    requests, limited = stats["requests"], stats["rate_limited"]
    assert requests >= 0.9 * urls, stats  # (a few URLs may share a canonical URL, hence one call)
    assert limited < 0.01 * requests, stats
    assert stats["early"] == 0, stats
    # What the emulator's bucket allows: never more than its burst plus one second's refill within a second,
    # and no more than its rate on average; the sustained rate shows the load really pressed on the limit.
    assert stats["max_rate_per_s"] <= stats["limit_per_s"] + stats["limit_burst"], stats
    mean_rate = requests / stats["busy_seconds"]
    assert 10 <= mean_rate <= LIMIT, (mean_rate, stats)
    # Both workers called the provider: their calls together are what the emulator saw.
    upstream = [sum(n for status, n in calls.items() if status in UPSTREAM) for calls in per_worker]
    assert all(n >= 0.1 * requests for n in upstream), per_worker
    assert sum(upstream) <= requests, (per_worker, stats)
    # The provider's results are stored: the limit delayed the calls, it did not lose them.
    stored = provider_statuses(shared.cluster.database, PROVIDER)
    assert stored.get("ok", 0) >= 0.99 * urls, stored


@pytest.mark.parametrize("shared", [TOO_FAST], indirect=True, ids=["workers-40-per-s"])
def test_a_retry_after_one_worker_receives_holds_back_every_worker(shared: Running) -> None:
    # The workers allow themselves twice the provider's rate: the provider answers 429 + Retry-After, and
    # the worker that gets it pauses the provider for every worker (in Redis). Requests arriving after the
    # grace and before the Retry-After ends are early: none may be.
    urls = 300
    run_batch(shared, urls)
    stats = shared.stats(grace=GRACE)
    per_worker = shared.calls_per_worker()
    print(f"\n{PROVIDER} at the emulator, workers at {TOO_FAST}, grace {GRACE:g}s: {stats}\n"
          f"early with the emulator's default grace: {shared.stats()['early']}\ncalls per worker: {per_worker}")
    assert stats["rate_limited"] > 0, stats  # the provider did say "slow down"
    assert stats["early"] == 0, stats
    upstream = [sum(n for status, n in calls.items() if status in UPSTREAM) for calls in per_worker]
    assert all(n > 0 for n in upstream), per_worker
