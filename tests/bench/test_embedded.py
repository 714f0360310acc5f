"""`linkmeter bench --mode embedded` as a real process: engine, embedded server and ceiling in one run
(figures reported, never judged on speed)."""

from __future__ import annotations

from tests.processes import run_linkmeter

FIGURES = {"seconds", "urls_per_s", "calls_per_s", "calls", "p50_url_ms", "p99_url_ms", "cpu_ms_per_call"}


async def test_a_small_embedded_bench_stores_every_url_and_reports_it_beside_the_ceiling() -> None:
    run = await run_linkmeter("bench", "--mode", "embedded", "--urls", "30", "--concurrency", "10",
                              "--latency-ms", "5", "--json")
    assert run.code == 0, run.stderr
    figures = run.json()
    embedded = figures["embedded"]
    assert set(embedded) >= FIGURES | {"submit_seconds", "statuses"}
    assert sum(embedded["statuses"].values()) == 30  # every submitted URL was stored, and counted once
    assert set(embedded["statuses"]) <= {"done", "partial", "failed"}
    assert embedded["urls_per_s"] > 0 and 0 < embedded["p50_url_ms"] <= embedded["p99_url_ms"]
    assert embedded["seconds"] > 0 and embedded["submit_seconds"] > 0
    assert figures["ratio_embedded"] > 0 and figures["ceiling"]["calls"] == figures["engine"]["calls"]
    runs = figures["ceiling"]["runs_urls_per_s"]  # replayed right after the engine and at the end; the mean counts
    assert len(runs) == 2 and all(rate > 0 for rate in runs)


async def test_the_engine_mode_reports_no_embedded_figures() -> None:
    run = await run_linkmeter("bench", "--urls", "5", "--concurrency", "5", "--latency-ms", "0", "--json")
    assert run.code == 0, run.stderr
    assert run.json()["embedded"] is None and run.json()["ratio_embedded"] is None
