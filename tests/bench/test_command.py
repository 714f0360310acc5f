"""`linkmeter bench` as a real process: every provider runs and is listed, --no-bulk sends one request per key,
--compare-bulk reports both runs (figures reported, never judged on speed)."""

from __future__ import annotations

from linkmeter.bench.command import batched_providers, relaxed_settings
from linkmeter.providers.registry import PROVIDER_CLASSES, PROVIDER_NAMES
from tests.processes import clean_environ, run_linkmeter

URLS = 20  # on 2 registered domains (the workload puts ten URLs on each)
# A linger long enough that the URLs in flight share their bulk queries however slow the machine is.
LINGER = {f"LINKMETER_{name.upper()}_BATCH_LINGER": "0.5" for name in batched_providers()}


def test_the_bench_lifts_every_concurrency_cap_through_its_documented_setting() -> None:
    capped = {cls.name for cls in PROVIDER_CLASSES if cls.policy.concurrency}
    assert {"commoncrawl", "crtsh", "pagespeed"} <= capped
    assert relaxed_settings() == {f"LINKMETER_{name.upper()}_CONCURRENCY": "0" for name in capped}
    assert set(batched_providers()) == {"safebrowsing", "facebook", "openpagerank", "moz"}


async def test_compare_bulk_lists_every_provider_and_bulk_off_sends_one_request_per_key() -> None:
    run = await run_linkmeter("bench", "--urls", str(URLS), "--concurrency", "10", "--latency-ms", "0",
                              "--compare-bulk", "--json", env={**clean_environ("COLUMNS", "LINES"), **LINGER},
                              limit=240.0)
    assert run.code == 0, run.stderr
    figures = run.json()
    rows = {row["name"]: row for row in figures["providers"]}
    assert set(rows) == set(PROVIDER_NAMES)  # PageSpeed (not in the default set) too
    for name, row in rows.items():
        for label in ("bulk", "no_bulk"):
            calls = row[label]["calls"]
            assert sum(calls.values()) == URLS and set(calls) <= {"ok", "cached"}, (name, label, calls)
    per_url = {name: rows[name]["no_bulk"]["requests_per_url"] for name in batched_providers()}
    # One request per key: a URL's for Safe Browsing, Facebook and Moz, a registered domain's for Open PageRank.
    assert per_url == {"safebrowsing": 1.0, "facebook": 1.0, "moz": 1.0, "openpagerank": 2 / URLS}
    comparison = figures["bulk_comparison"]
    for name in batched_providers():
        cut = comparison["batched"][name]
        assert cut["no_bulk_requests_per_url"] == per_url[name]
        assert cut["bulk_requests_per_url"] <= per_url[name]
        assert rows[name]["batched"] and rows[name]["bulk"]["requests_per_url"] == cut["bulk_requests_per_url"]
    # A key per URL: the URLs in flight together share requests (Open PageRank's two domains may not).
    assert all(comparison["batched"][name]["bulk_requests_per_url"] < 1.0 for name in ("safebrowsing", "facebook",
                                                                                      "moz"))
    assert comparison["bulk"]["urls_per_s"] > 0 and comparison["no_bulk"]["urls_per_s"] > 0
    assert figures["ceiling"]["calls"] == figures["engine"]["calls"] == comparison["bulk"]["calls"]


async def test_no_bulk_alone_runs_one_request_per_key_and_no_comparison() -> None:
    run = await run_linkmeter("bench", "--urls", "10", "--concurrency", "10", "--latency-ms", "0", "--no-bulk",
                              "--json", limit=240.0)
    assert run.code == 0, run.stderr
    figures = run.json()
    assert figures["bulk"] is False and figures["bulk_comparison"] is None
    rows = {row["name"]: row for row in figures["providers"]}
    assert all("bulk" not in row for row in rows.values())
    assert rows["safebrowsing"]["no_bulk"]["requests_per_url"] == 1.0
