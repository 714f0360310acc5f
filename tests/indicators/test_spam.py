"""The spam indicator as the engine runs it: its signals, its reasons, missing providers, the threshold."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from linkmeter.engine.errors import SettingsError
from linkmeter.engine.provider import CallContext, ProviderConfig
from linkmeter.indicators.spam import SpamIndicator, model
from linkmeter.indicators.spam.settings import threshold
from linkmeter.providers.registry import INDICATORS

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def run(signals: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    indicator = SpamIndicator(ProviderConfig(base_url=""), now=lambda: NOW, **kwargs)
    ctx = CallContext(http=None, dns=None, config=indicator.config)  # type: ignore[arg-type]  # it calls nothing
    return asyncio.run(indicator.collect(ctx, signals)).signals


def test_spam_is_registered_as_an_indicator() -> None:
    assert SpamIndicator in INDICATORS


def test_the_url_alone_gets_a_verdict_with_reasons_and_the_model_version() -> None:
    found = run({"url": "https://paypal.account-verify-login.example.tk/webscr/update", "domain": "example.tk"})
    assert set(found) == {"spam.score", "spam.flag", "spam.reasons", "spam.model"}
    assert 0 <= found["spam.score"] <= 1 and found["spam.flag"] is True
    assert found["spam.model"] == model.load_shipped().version
    assert all(set(reason) == {"feature", "value", "contribution", "text"} for reason in found["spam.reasons"])
    assert any("brand" in reason["text"] or "login" in reason["text"] for reason in found["spam.reasons"])


def test_a_threat_list_hit_is_strong_evidence_with_its_reason_in_words() -> None:
    url = {"url": "https://gardenclub.org/", "domain": "gardenclub.org"}
    clean = run(url)
    listed = run({**url, "dnsbl.spamhaus_dbl": "listed", "dnsbl.spamhaus_dbl_categories": ["phishing"],
                  "rdap.domain_age_days": 4})
    def logodds(p: float) -> float:
        return math.log(p / (1 - p))
    assert listed["spam.flag"] and not clean["spam.flag"]
    # The DBL's phishing (+4) and a 4-day-old domain (+1.5) add up as documented.
    assert logodds(listed["spam.score"]) - logodds(clean["spam.score"]) == pytest.approx(5.5, abs=0.01)
    texts = [reason["text"] for reason in listed["spam.reasons"]]
    assert texts[0] == "listed on Spamhaus DBL as phishing"
    assert "domain registered 4 days ago" in texts


def test_a_refused_blocklist_lookup_is_unknown_not_clean() -> None:
    url = {"url": "https://gardenclub.org/", "domain": "gardenclub.org"}
    refused = run({**url, "dnsbl.spamhaus_dbl": "refused", "dnsbl.spamhaus_dbl_categories": []})
    absent = run(url)
    assert refused["spam.score"] == absent["spam.score"]


def test_a_popular_old_site_scores_lower_than_the_same_url_alone() -> None:
    url = {"url": "https://login.example.com/account", "domain": "example.com"}
    popular = run({**url, "tranco.rank": 120, "tranco.ranked": True, "rdap.domain_age_days": 9000})
    assert popular["spam.score"] < run(url)["spam.score"]
    assert any("most popular" in reason["text"] for reason in popular["spam.reasons"])


def test_the_flag_follows_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    signals = {"url": "https://gardenclub.org/about", "domain": "gardenclub.org"}
    value = run(signals)["spam.score"]
    assert run(signals, threshold_value=max(0.01, value - 0.001))["spam.flag"] is True
    assert run(signals, threshold_value=min(1.0, value + 0.001))["spam.flag"] is False
    monkeypatch.setenv("LINKMETER_SPAM_THRESHOLD", "0.9")
    assert SpamIndicator(ProviderConfig(base_url="")).threshold == 0.9


@pytest.mark.parametrize("bad", ["0", "1.5", "x", "-1"])
def test_a_bad_threshold_is_refused_by_name(bad: str) -> None:
    with pytest.raises(SettingsError, match="LINKMETER_SPAM_THRESHOLD"):
        threshold({"LINKMETER_SPAM_THRESHOLD": bad})


def test_the_installed_model_source_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = model.load_shipped()
    other = model.Artifact(version="7", algorithm="test", weights={"url.bias": 5.0})
    model.use(lambda: other)
    try:
        found = run({"url": "https://gardenclub.org/", "domain": "gardenclub.org"})
    finally:
        model.use(None)
    assert found["spam.model"] == "7" and found["spam.score"] > 0.99
    assert model.current() is shipped
