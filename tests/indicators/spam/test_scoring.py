"""The one score: its parts add up as documented, and reasons are the largest contributions."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from linkmeter.indicators.spam import features as feats
from linkmeter.indicators.spam import scoring
from linkmeter.indicators.spam.model import Artifact

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_the_logit_is_learned_plus_online_plus_memory_plus_rules(shipped: Artifact) -> None:
    url, signals = "https://garden.example.org/about", {"domain": "example.org", "tranco.rank": 50}
    base = scoring.score(url, signals, artifact=shipped, now=NOW)
    layered = shipped.with_layers({}, {"example.org": 1.25})
    moved = scoring.score(url, signals, artifact=layered, now=NOW)
    assert math.isclose(moved.logit - base.logit, 1.25)
    assert math.isclose(base.score, 1 / (1 + math.exp(-base.logit)))
    assert math.isclose(scoring.logit(shipped, url, signals, NOW), base.logit)
    assert any(r["text"] == "people labelled links on example.org spam" for r in moved.reasons)


def test_reasons_are_sorted_by_size_and_capped(shipped: Artifact) -> None:
    url = "http://192.168.0.1/paypal/webscr/login.php?cmd=update"
    verdict = scoring.score(url, None, artifact=shipped, now=NOW)
    sizes = [abs(r["contribution"]) for r in verdict.reasons]
    assert sizes == sorted(sizes, reverse=True) and 0 < len(sizes) <= scoring.MAX_REASONS
    assert verdict.flag
    assert any(r["text"] == "words such as login, verify or account in the URL" for r in verdict.reasons)


def test_an_absent_word_or_brand_feature_never_reads_as_a_hit() -> None:
    # Standardised features contribute when absent too: a URL without login words or brands must not be
    # told it has them (seen in the demo on https://www.site1.com/a/1).
    norm = feats.normalise("https://www.site1.com/a/1")
    assert scoring.describe("url.credential_words", 0.0, norm, {}).startswith("no words such as login")
    hit = scoring.describe("url.credential_words", 0.5, norm, {})
    assert hit == "words such as login, verify or account in the URL"
    assert scoring.describe("url.brand_outside_domain", 0.0, norm, {}) == "no brand name outside the registered domain"
    assert "appears outside" in scoring.describe("url.brand_outside_domain", 1.0, norm, {})
