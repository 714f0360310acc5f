"""`linkmeter bench --mode celery` and `--mode chord-per-call` as real processes, with the real PostgreSQL, RabbitMQ
and Redis: every URL is stored and the figures are reported beside the ceiling (never judged on speed); the
2012 reconstruction stays in the benchmark code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.processes import Completed, clean_environ, run_linkmeter

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FIGURES = {"seconds", "urls_per_s", "calls_per_s", "calls", "p50_url_ms", "p99_url_ms", "cpu_ms_per_call"}
SRC = Path(__file__).resolve().parents[2] / "src" / "linkmeter"


async def run_bench(*args: str, limit: float = 240.0) -> Completed:
    """``python -m linkmeter bench ARGS`` with none of the developer's LINKMETER_* settings, at most ``limit`` s."""
    return await run_linkmeter("bench", *args, env=clean_environ("DATABASE_URL"), limit=limit)


def assert_sane(row: dict[str, Any], urls: int) -> None:
    assert set(row) >= FIGURES | {"submit_seconds", "statuses", "worker_rss_mb", "worker_hwm_mb"}
    assert sum(row["statuses"].values()) == urls  # every submitted URL was stored, and counted once
    assert set(row["statuses"]) <= {"done", "partial", "failed"}
    assert row["statuses"].get("done", 0) > 0  # a healthy emulator: URLs end done
    assert row["urls"] == urls and row["seconds"] > 0 and row["urls_per_s"] > 0
    assert 0 < row["p50_url_ms"] <= row["p99_url_ms"]
    assert row["calls"] > 0 and row["cpu_ms_per_call"] > 0
    assert len(row["worker_rss_mb"]) == 2 and all(mb > 0 for mb in row["worker_rss_mb"])
    assert all(peak >= now for peak, now in zip(row["worker_hwm_mb"], row["worker_rss_mb"], strict=True))
    assert all(0 < pss <= rss for pss, rss in zip(row["worker_pss_mb"], row["worker_rss_mb"], strict=True))


async def test_a_small_celery_bench_reports_celery_chord_per_call_and_the_ceiling_in_one_run() -> None:
    run = await run_bench("--mode", "celery", "--workers", "2", "--urls", "30", "--concurrency", "10", "--latency-ms",
                          "5", "--chord-processes", "2", "--json")
    assert run.code == 0, run.stderr
    figures = run.json()
    assert figures["workers"] == 2 and figures["embedded"] is None
    assert_sane(figures["celery"], 30)
    assert figures["celery"]["threads_per_worker"] >= 1
    assert_sane(figures["chord_per_call"], 30)
    assert figures["chord_per_call"]["processes_per_worker"] == 2
    assert figures["chord_per_call"]["worker_processes"] == [3, 3]  # prefork: a main process and 2 children
    assert figures["ceiling"]["calls"] == figures["engine"]["calls"] == figures["celery"]["calls"]
    for ratio in ("ratio_celery", "ratio_chord", "ratio_celery_chord"):
        assert figures[ratio] > 0
    expected = figures["celery"]["urls_per_s"] / figures["chord_per_call"]["urls_per_s"]
    assert figures["ratio_celery_chord"] == pytest.approx(expected, rel=0.05)


async def test_chord_per_call_alone_runs_a_smaller_workload_when_asked_and_prints_a_table() -> None:
    run = await run_bench("--mode", "chord-per-call", "--workers", "2", "--urls", "20", "--concurrency", "10",
                          "--latency-ms", "5", "--chord-processes", "2", "--chord-urls", "12")
    assert run.code == 0, run.stderr
    lines = run.stdout.splitlines()
    row = next(line for line in lines if line.startswith("chord-per-call "))
    assert row.split()[1] == "12"  # its own, smaller workload
    assert any(line.startswith("ratio chord-per-call/ceiling: ") for line in lines)
    assert not any(line.startswith("celery ") for line in lines)  # celery runs only with --mode celery


def test_the_product_never_imports_the_2012_reconstruction() -> None:
    offenders = [str(path.relative_to(SRC)) for path in SRC.rglob("*.py")
                 if "bench" not in path.relative_to(SRC).parts[:1]
                 and ("chord_per_call" in path.read_text() or "chord_run" in path.read_text()
                      or "chord_calls" in path.read_text())]
    assert offenders == []
    # Importing the whole product (web, workers, CLI) loads none of it either.
    probe = ("import sys, linkmeter.cli, linkmeter.web.jobs.commands, linkmeter.web.serve; "
             "print(sorted(m for m in sys.modules if 'chord' in m))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
