"""`linkmeter bench` as a real process: a small run reports engine and ceiling figures (never judged on speed)."""

from __future__ import annotations

from tests.processes import run_linkmeter

FIGURES = {"seconds", "urls_per_s", "calls_per_s", "calls", "p50_url_ms", "p99_url_ms", "cpu_ms_per_call"}


async def test_a_small_bench_reports_engine_and_ceiling_figures() -> None:
    run = await run_linkmeter("bench", "--urls", "30", "--concurrency", "10", "--latency-ms", "5", "--json")
    assert run.code == 0, run.stderr
    figures = run.json()
    assert (figures["urls"], figures["concurrency"], figures["latency_ms"]) == (30, 10, 5.0)
    engine, ceiling = figures["engine"], figures["ceiling"]
    for row in (engine, ceiling):
        assert set(row) >= FIGURES
        assert row["urls_per_s"] > 0 and row["calls_per_s"] > 0 and row["calls"] > 0
        assert 0 < row["p50_url_ms"] <= row["p99_url_ms"]
        assert row["cpu_ms_per_call"] > 0
    assert ceiling["calls"] == engine["calls"]  # the ceiling replays exactly the engine's calls
    assert ceiling["errors"] == 0  # a healthy emulator: every replayed call gets its answer
    assert figures["ratio"] > 0
    assert sum(figures["statuses"].values()) == 30
    assert set(figures["statuses"]) == {"done", "partial", "failed"}
    assert figures["peak_rss_mb"] > 0
    spam = figures["spam_scoring"]  # the spam indicator ran for every URL, its scoring cost measured
    assert spam["urls"] == 30 and spam["cpu_ms_per_url"] > 0 and 0 < spam["cpu_share_of_engine"] < 1


async def test_bench_refuses_a_bad_size() -> None:
    run = await run_linkmeter("bench", "--urls", "0")
    assert run.code == 2
    assert "--urls" in run.stderr
