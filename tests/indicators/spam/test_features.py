"""Features: normalisation first, the lexical ones, and a missing flag for every unanswered signal."""

from __future__ import annotations

from datetime import UTC, datetime

from linkmeter.indicators.spam import features as feats

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_scheme_www_port_and_trailing_slash_do_not_change_the_features() -> None:
    variants = ["https://www.Example.com:443/a/b/", "http://example.com/a/b", "example.com/a/b",
                "http://www.example.com:80/a/b"]
    assert len({tuple(sorted(feats.url_features(url).values.items())) for url in variants}) == 1


def test_lexical_features_see_ip_punycode_shorteners_free_hosting_brands_and_credentials() -> None:
    assert feats.url_features("http://192.168.10.1/login").values["url.ip_host"] == 1
    assert feats.url_features("https://xn--pypal-4ve.com/").values["url.punycode"] == 1
    assert feats.url_features("https://bit.ly/abc").values["url.shortener"] == 1
    site = feats.url_features("https://paypal-secure.weebly.com/login/verify").values
    assert site["url.free_hosting"] == 1 and site["url.brand_outside_domain"] >= 1 and site["url.credential_words"]
    assert "url.brand_outside_domain" not in feats.url_features("https://paypal.com/signin").values


def test_every_signal_feature_is_missing_when_nothing_answered() -> None:
    values = feats.extract("https://example.com/", {}, NOW).values
    assert {f"sig.{name}.missing" for name in feats.SIGNAL_READERS} <= set(values)


def test_answers_replace_the_missing_flags_and_a_refusal_stays_missing() -> None:
    signals = {"domain": "example.com", "rdap.domain_age_days": 4, "tranco.ranked": False,
               "dnsbl.spamhaus_dbl": "refused", "dnsbl.surbl": "clean", "safebrowsing.listed": True}
    values = feats.extract("https://example.com/", signals, NOW).values
    assert values["sig.domain_young"] == 1 and "sig.domain_young.missing" not in values
    assert "sig.tranco.missing" not in values and "sig.tranco" not in values  # an answer: not ranked, 0
    assert values["sig.dbl_threat.missing"] == 1
    assert "sig.surbl.missing" not in values and values["sig.safebrowsing"] == 1


def test_ngram_text_is_found_again_for_reasons() -> None:
    found = feats.url_features("https://paypal.example/")
    grams = {feats.gram_text(found, name) for name in found.values if name.startswith("ng.")}
    assert "payp" in grams
