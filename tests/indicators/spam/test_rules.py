"""Hand rules: what fires, on what, with which words; a missing or refused signal fires nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from linkmeter.indicators.spam.rules import apply

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_threat_lists_are_strong_evidence_in_words() -> None:
    hits = apply({"safebrowsing.listed": True, "safebrowsing.threat_types": ["SOCIAL_ENGINEERING"],
                  "urlhaus.listed": True, "urlhaus.threat": "malware_download",
                  "phishtank.in_database": True, "phishtank.verified": True, "phishtank.valid": True}, NOW)
    assert [(h.rule, h.text) for h in hits] == [
        ("safebrowsing", "on Google Safe Browsing as SOCIAL_ENGINEERING"),
        ("urlhaus", "listed on URLhaus (malware_download)"),
        ("phishtank", "a verified phish on PhishTank and still online"),
    ]
    assert all(h.logodds >= 4 for h in hits)


def test_nothing_fires_on_missing_or_refused_answers() -> None:
    assert apply({}, NOW) == []
    assert apply({"dnsbl.spamhaus_dbl": "refused", "dnsbl.surbl": "clean", "safebrowsing.listed": False}, NOW) == []


def test_age_and_popularity_read_as_people_say_them() -> None:
    (young,) = apply({"rdap.domain_age_days": 1}, NOW)
    assert young.text == "domain registered 1 day ago" and young.logodds > 0
    (popular,) = apply({"tranco.rank": 4321}, NOW)
    assert popular.text == "one of the 10,000 most popular sites (Tranco #4,321)" and popular.logodds < 0
    (registered,) = apply({"rdap.registration_date": "2026-11-27T00:00:00Z"}, NOW)
    assert registered.text == "domain registered 4 days ago"


def test_clean_blocklists_and_a_few_years_of_age_are_mild_evidence_against() -> None:
    (clean,) = apply({"dnsbl.spamhaus_dbl": "clean", "dnsbl.surbl": "clean", "dnsbl.uribl": "clean"}, NOW)
    assert clean.text == "not listed on Spamhaus DBL or SURBL or URIBL" and -1 < clean.logodds < 0
    # one list alone says too little; a listing anywhere wins over the others' clean answers
    assert apply({"dnsbl.spamhaus_dbl": "clean"}, NOW) == []
    listed = apply({"dnsbl.spamhaus_dbl": "clean", "dnsbl.surbl": "clean", "dnsbl.uribl": "listed",
                    "dnsbl.uribl_categories": ["black"]}, NOW)
    assert [h.rule for h in listed] == ["uribl"]
    (grown,) = apply({"rdap.domain_age_days": 3 * 365}, NOW)
    (old,) = apply({"rdap.domain_age_days": 12 * 365}, NOW)
    assert grown.text == "domain registered 3 years ago" and old.logodds < grown.logodds < 0
    assert apply({"rdap.domain_age_days": 400}, NOW) == []
