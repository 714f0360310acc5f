"""The emulator's request accounting: requests, 429s, early requests, the busiest second."""

from __future__ import annotations

from typing import Any

import pytest

from linkmeter.emulator.stats import EARLY_GRACE, RequestStats

UNUSED = {"requests": 0, "rate_limited": 0, "early": 0, "in_retry_after": 0, "max_after_429_seconds": None,
          "max_rate_per_s": 0, "busy_seconds": 0.0, "limit_per_s": None, "limit_burst": None}


def counters(stats: RequestStats, provider: str, grace: float | None = None) -> dict[str, Any]:
    document: dict[str, Any] = stats.snapshot(grace)["providers"][provider]
    return document


def test_requests_and_429s_are_counted_per_provider() -> None:
    stats = RequestStats()
    for t in (0.0, 0.1, 0.2):
        stats.arrived("rdap", t)
    stats.arrived("reddit", 0.3)
    stats.rate_limited("rdap", 0.25, 1.0)
    assert counters(stats, "rdap") == UNUSED | {"requests": 3, "rate_limited": 1, "max_rate_per_s": 3,
                                                "busy_seconds": 0.2}
    assert counters(stats, "reddit")["requests"] == 1


def test_an_arrival_after_the_grace_and_before_the_retry_after_ends_is_early() -> None:
    stats = RequestStats(grace=0.1)
    stats.arrived("hackernews", 10.0)
    stats.rate_limited("hackernews", 10.0, 2.0)  # "Retry-After: 2", sent at 10.0: nothing before 12.0
    stats.arrived("hackernews", 10.05)  # sent before the client could have read the 429
    assert counters(stats, "hackernews")["early"] == 0
    assert counters(stats, "hackernews")["in_retry_after"] == 1
    stats.arrived("hackernews", 10.11)  # the grace is over
    stats.arrived("hackernews", 11.99)
    assert counters(stats, "hackernews")["early"] == 2
    stats.arrived("hackernews", 12.0)  # the Retry-After has passed
    stats.arrived("hackernews", 15.0)
    hackernews = counters(stats, "hackernews")
    assert (hackernews["early"], hackernews["in_retry_after"]) == (2, 3)
    assert hackernews["max_after_429_seconds"] == pytest.approx(1.99)
    stats.arrived("reddit", 11.0)  # another provider's 429 says nothing about this one
    assert counters(stats, "reddit")["early"] == 0


def test_early_can_be_counted_with_another_grace() -> None:
    stats = RequestStats(grace=0.1)
    stats.rate_limited("wayback", 0.0, 1.0)
    for t in (0.05, 0.15, 0.3, 0.6):
        stats.arrived("wayback", t)
    assert counters(stats, "wayback")["early"] == 3
    assert counters(stats, "wayback", grace=0.25)["early"] == 2
    assert counters(stats, "wayback", grace=0.0)["early"] == 4
    assert stats.snapshot(0.25)["grace_seconds"] == 0.25


def test_overlapping_announcements_each_hold_until_their_own_end() -> None:
    stats = RequestStats(grace=0.1)
    stats.rate_limited("wayback", 0.0, 3.0)  # until 3.0
    stats.rate_limited("wayback", 1.0, 1.0)  # until 2.0: does not shorten the first
    stats.arrived("wayback", 2.5)
    assert counters(stats, "wayback")["early"] == 1
    stats.arrived("wayback", 3.0)
    assert counters(stats, "wayback")["early"] == 1
    # A fresh 429 has its own grace even after an older announcement ended.
    stats.rate_limited("wayback", 10.0, 1.0)
    stats.arrived("wayback", 10.05)
    assert counters(stats, "wayback")["early"] == 1
    # While two run, the grace counts from the earlier 429.
    stats.rate_limited("wayback", 10.5, 1.0)
    stats.arrived("wayback", 10.55)
    assert counters(stats, "wayback")["early"] == 2


def test_max_rate_per_s_is_the_busiest_one_second_window() -> None:
    stats = RequestStats()
    for i in range(10):
        stats.arrived("page", i * 0.5)  # two a second
    assert counters(stats, "page")["max_rate_per_s"] == 2
    for i in range(7):
        stats.arrived("page", 20.0 + i * 0.1)  # seven within 0.6 s
    stats.arrived("page", 21.0)  # 20.0 has left the window: [20.1, 21.0] holds seven
    assert counters(stats, "page")["max_rate_per_s"] == 7
    assert counters(stats, "page")["busy_seconds"] == pytest.approx(21.0)


def test_the_snapshot_lists_limited_and_always_shown_providers_and_reset_clears_the_counters() -> None:
    stats = RequestStats(limits={"hackernews": 20.0, "rdap": 0.5}, always=["page"])
    stats.arrived("hackernews", 1.0)
    stats.rate_limited("hackernews", 1.0, 1.0)
    document = stats.snapshot()
    assert document["grace_seconds"] == EARLY_GRACE and document["window_seconds"] == 1.0
    assert sorted(document["providers"]) == ["hackernews", "page", "rdap"]
    assert document["providers"]["hackernews"]["limit_per_s"] == 20.0
    assert document["providers"]["hackernews"]["limit_burst"] == 20.0
    assert document["providers"]["rdap"]["limit_burst"] == 1.0  # the bucket saves at least one token
    assert document["providers"]["page"] == UNUSED
    stats.reset()
    stats.arrived("hackernews", 1.5)  # the announcement went with the reset
    assert counters(stats, "hackernews") == UNUSED | {"requests": 1, "max_rate_per_s": 1, "limit_per_s": 20.0,
                                                      "limit_burst": 20.0}
