"""Celery mode under faults, with the real services (PostgreSQL, RabbitMQ, Redis) and separate processes:
`linkmeter serve` takes URLs through the API, two `linkmeter worker` processes run them, `linkmeter beat`
runs the watchdog. Whatever happens mid-batch (a worker killed, RabbitMQ or PostgreSQL restarted, a provider
hanging or failing), every analysis ends final, once, with its results in PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from linkmeter.bench.command import workload
from linkmeter.providers.registry import DEFAULT_NAMES
from tests.integration.harness import (
    FINAL,
    Cluster,
    Proc,
    cluster,
    duplicate_results,
    failing_api,
    provider_statuses,
    restart_postgresql,
    restart_rabbitmq,
    results_per_analysis,
    started_more_than_once,
    status_counts,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

PROVIDERS = len(DEFAULT_NAMES)  # every analysis that ran stores one result per provider of the default set
FINISH = 240.0  # seconds a batch gets to finish, faults included


def running(cluster_: Cluster, *, workers: int = 2) -> list[Proc]:
    cluster_.serve()
    started = [cluster_.worker(f"worker{n + 1}") for n in range(workers)]
    cluster_.beat()
    cluster_.wait_for_workers(workers)
    return started


def assert_all_final_once(cluster_: Cluster, batch_id: int, submitted: int) -> dict[str, int]:
    """Every analysis of the run is final, every one that ran has exactly one result per provider, and the
    batch is closed with every analysis counted."""
    progress = cluster_.batch(batch_id)
    assert progress is not None
    assert progress["total"] == submitted and progress["finished"] == submitted, progress
    assert progress["finished_at"], progress
    counts = status_counts(cluster_.database)
    assert sum(counts.values()) == submitted, counts  # none lost, none made twice
    assert set(counts) <= set(FINAL), counts
    assert duplicate_results(cluster_.database) == []
    stored = results_per_analysis(cluster_.database)
    assert len(stored) == counts.get("done", 0) + counts.get("partial", 0)
    assert set(stored.values()) == {PROVIDERS}, sorted(set(stored.values()))
    return counts


def test_two_thousand_urls_through_the_api_to_two_workers_all_end_final_in_postgresql(tmp_path: Path) -> None:
    urls = workload(2000)
    with cluster(tmp_path, latency_ms=10) as it:
        running(it)
        batch = it.submit(urls)
        assert batch["queued"] == 2000
        it.wait_until_finished(batch["batch_id"], timeout=FINISH)
        counts = assert_all_final_once(it, batch["batch_id"], 2000)
        assert counts.get("failed", 0) == 0, counts  # a healthy emulator: nothing fails outright
        assert provider_statuses(it.database, "page").get("ok", 0) > 0


def test_a_worker_killed_with_sigkill_mid_batch_loses_no_analysis_and_duplicates_no_result(tmp_path: Path) -> None:
    urls = workload(1200)
    with cluster(tmp_path, latency_ms=20) as it:
        first, _second = running(it)
        batch = it.submit(urls)
        at_fault = it.wait_until_finished(batch["batch_id"], at_least=150, timeout=FINISH)
        first.kill9()
        assert not first.alive()
        assert at_fault["finished"] < at_fault["total"]  # the kill did land mid-batch
        it.wait_until_finished(batch["batch_id"], timeout=FINISH)
        counts = assert_all_final_once(it, batch["batch_id"], 1200)
        assert counts.get("failed", 0) == 0, counts  # the lost chunks were run again, not given up
        assert started_more_than_once(it.database) > 0  # the killed worker did hold analyses in flight


@pytest.mark.parametrize("restart", [restart_rabbitmq, restart_postgresql], ids=["rabbitmq", "postgresql"])
def test_a_service_restarted_mid_batch_the_batch_still_completes(tmp_path: Path, restart: Callable[[], None]) -> None:
    urls = workload(1200)
    with cluster(tmp_path, latency_ms=20) as it:
        running(it)
        batch = it.submit(urls)
        at_fault = it.wait_until_finished(batch["batch_id"], at_least=150, timeout=FINISH)
        restart()
        assert at_fault["finished"] < at_fault["total"]
        it.wait_until_finished(batch["batch_id"], timeout=FINISH)
        assert_all_final_once(it, batch["batch_id"], 1200)


def test_a_provider_that_never_answers_does_not_stall_the_batch(tmp_path: Path) -> None:
    urls = workload(300)
    with cluster(tmp_path, latency_ms=10, hang=("wayback",),
                 extra_env={"LINKMETER_WAYBACK_TIMEOUT": "0.5", "LINKMETER_WAYBACK_RETRIES": "1"}) as it:
        running(it)
        batch = it.submit(urls)
        it.wait_until_finished(batch["batch_id"], timeout=FINISH)
        counts = assert_all_final_once(it, batch["batch_id"], 300)
        assert counts == {"partial": 300}  # every other provider answered; only wayback's cell is missing
        wayback = provider_statuses(it.database, "wayback")
        assert set(wayback) <= {"timeout", "circuit_open"} and sum(wayback.values()) == 300, wayback
        assert wayback.get("timeout", 0) > 0
        assert provider_statuses(it.database, "rdap").keys() <= {"ok", "cached"}


def test_a_provider_answering_503_to_everything_does_not_stall_the_batch(tmp_path: Path) -> None:
    urls = workload(300)
    with failing_api(503) as broken, cluster(tmp_path, latency_ms=10,
                                             extra_env={"LINKMETER_HACKERNEWS_BASE_URL": broken}) as it:
        running(it)
        batch = it.submit(urls)
        it.wait_until_finished(batch["batch_id"], timeout=FINISH)
        counts = assert_all_final_once(it, batch["batch_id"], 300)
        assert counts == {"partial": 300}
        hackernews = provider_statuses(it.database, "hackernews")
        assert set(hackernews) <= {"error", "circuit_open"} and sum(hackernews.values()) == 300, hackernews
        assert provider_statuses(it.database, "reddit").keys() <= {"ok", "cached"}
