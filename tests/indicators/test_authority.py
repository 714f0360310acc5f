"""The authority score follows its documented formula, names what it used and what it lacked, never zeroes a gap."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from linkmeter.engine.dns import DnsClient
from linkmeter.engine.http import HttpClient
from linkmeter.engine.provider import CallContext, ProviderConfig, ProviderError
from linkmeter.indicators.authority import COMPONENTS, AuthorityIndicator, authority
from linkmeter.providers.registry import PROVIDER_CLASSES

NOW = datetime(2026, 1, 1, tzinfo=UTC)
EVERY_INPUT: dict[str, Any] = {
    "tranco.rank": 1000, "tranco.ranked": True,  # 100 * (1 - 3/6) = 50
    "openpagerank.page_rank": 6.0,  # 60
    "moz.domain_authority": 70,  # 70
    "rdap.domain_age_days": 3650 // 4,  # 100 * sqrt(1/4) = 50 (912.5 days rounds down to 912)
    "wayback.capture_count": 999,  # log10(1000) / log10(1001)
    "wayback.first_capture": "2016-01-03T00:00:00Z",  # more than ten years before NOW: 100
}
ALL_NAMES = ["tranco.rank", "openpagerank.page_rank", "moz.domain_authority", "rdap.domain_age_days",
             "wayback.capture_count"]


def score_of(signals: dict[str, Any]) -> dict[str, Any] | None:
    return authority({"url": "https://example.org/", **signals}, NOW)


def test_the_score_is_the_documented_weighted_mean() -> None:
    archive = (100 * math.log10(1000) / math.log10(1001) + 100) / 2
    age = 100 * math.sqrt(912 / 3650)
    expected = (0.25 * 50 + 0.20 * 60 + 0.25 * 70 + 0.15 * age + 0.15 * archive) / 1.0

    found = score_of(EVERY_INPUT)

    assert found == {"authority.score": round(expected), "authority.inputs": ALL_NAMES, "authority.missing": []}


def test_missing_inputs_are_left_out_and_named_never_zero() -> None:
    found = score_of({"tranco.rank": 1000, "tranco.ranked": True, "moz.domain_authority": 70})

    # Only Tranco (50, weight 0.25) and Moz (70, weight 0.25): their mean, not diluted by absent inputs.
    assert found == {"authority.score": 60, "authority.inputs": ["tranco.rank", "moz.domain_authority"],
                     "authority.missing": ["openpagerank.page_rank", "rdap.domain_age_days",
                                           "wayback.capture_count"]}


def test_a_domain_open_pagerank_does_not_know_is_missing_not_zero() -> None:
    found = score_of({"moz.domain_authority": 40, "openpagerank.found": False, "openpagerank.page_rank": None})

    assert found is not None and found["authority.score"] == 40
    assert "openpagerank.page_rank" in found["authority.missing"]


def test_not_ranked_and_no_captures_are_real_lows() -> None:
    found = score_of({"tranco.rank": None, "tranco.ranked": False, "wayback.capture_count": 0,
                      "wayback.first_capture": None, "moz.domain_authority": 60})

    assert found == {"authority.score": round(0.25 * 60 / 0.65),
                     "authority.inputs": ["tranco.rank", "moz.domain_authority", "wayback.capture_count"],
                     "authority.missing": ["openpagerank.page_rank", "rdap.domain_age_days"]}


def test_a_failed_tranco_call_is_missing_not_unranked() -> None:
    found = score_of({"moz.domain_authority": 60})  # no tranco.ranked at all: the provider did not answer

    assert found is not None and "tranco.rank" in found["authority.missing"]


@pytest.mark.parametrize(("signals", "component"), [
    ({"tranco.rank": 1, "tranco.ranked": True}, 100), ({"tranco.rank": 1_000_000, "tranco.ranked": True}, 0),
    ({"openpagerank.page_rank": 10}, 100), ({"moz.domain_authority": 1}, 1),
    ({"rdap.domain_age_days": 0}, 0), ({"rdap.domain_age_days": 20_000}, 100),
    ({"wayback.capture_count": 5000, "wayback.first_capture": "2000-01-01T00:00:00Z"}, 100),
    ({"wayback.capture_count": 9}, round(100 * 1 / math.log10(1001))),  # no first capture date: volume only
])
def test_each_component_spans_its_scale(signals: dict[str, Any], component: int) -> None:
    found = score_of(signals)

    assert found is not None and found["authority.score"] == component


def test_values_that_are_not_numbers_are_missing() -> None:
    assert score_of({"moz.domain_authority": True, "rdap.domain_age_days": float("nan"),
                     "openpagerank.page_rank": "7"}) is None


def test_spam_looking_inputs_score_low_and_established_ones_high() -> None:
    spam = score_of({"tranco.rank": None, "tranco.ranked": False, "openpagerank.page_rank": 0.4,
                     "moz.domain_authority": 4, "rdap.domain_age_days": 12, "wayback.capture_count": 0})
    established = score_of({"tranco.rank": 800, "tranco.ranked": True, "openpagerank.page_rank": 7.1,
                            "moz.domain_authority": 88, "rdap.domain_age_days": 9000,
                            "wayback.capture_count": 4000, "wayback.first_capture": "2004-05-01T00:00:00Z"})

    assert spam is not None and established is not None
    assert spam["authority.score"] < 10 < 75 < established["authority.score"]


async def test_the_indicator_reports_the_score_and_fails_without_any_input() -> None:
    indicator = AuthorityIndicator(now=lambda: NOW)
    ctx = CallContext(http=HttpClient(), dns=DnsClient([("127.0.0.1", 9)]), config=ProviderConfig(base_url=""))

    result = await indicator.collect(ctx, {"url": "https://example.org/", **EVERY_INPUT})
    with pytest.raises(ProviderError, match="no authority input answered"):
        await indicator.collect(ctx, {"url": "https://example.org/"})

    assert result.signals == score_of(EVERY_INPUT)


def test_it_wants_exactly_the_signals_of_its_components_and_providers_give_them() -> None:
    provided = {signal for cls in PROVIDER_CLASSES for signal in cls.provides}

    assert set(AuthorityIndicator.wants) <= provided
    assert [component.name for component in COMPONENTS] == ALL_NAMES
    assert {"tranco.ranked", "wayback.first_capture"} <= set(AuthorityIndicator.wants)
    assert AuthorityIndicator.group == "indicator" and AuthorityIndicator.order == 210
