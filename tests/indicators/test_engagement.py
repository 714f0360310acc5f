"""The engagement total follows its documented formula and never reports a misleading zero."""

from __future__ import annotations

from typing import Any

import pytest

from linkmeter.engine.dns import DnsClient
from linkmeter.engine.http import HttpClient
from linkmeter.engine.provider import (
    CallContext,
    Collected,
    Provider,
    ProviderConfig,
    ProviderError,
    Signals,
    SignalSpec,
)
from linkmeter.indicators.engagement import TERMS, EngagementIndicator, engagement, interaction_terms
from linkmeter.providers.registry import PROVIDER_CLASSES


def _ctx() -> CallContext:
    return CallContext(http=HttpClient(), dns=DnsClient([("127.0.0.1", 9)]), config=ProviderConfig(base_url=""))


async def _total(signals: dict[str, Any]) -> dict[str, Any]:
    return (await EngagementIndicator().collect(_ctx(), {"url": "https://example.org/", **signals})).signals


async def test_total_is_points_plus_comments_plus_score_plus_comments() -> None:
    signals = await _total({"hackernews.points": 120, "hackernews.comments": 30,
                            "reddit.score": 50, "reddit.comments": 7})
    assert signals == {"engagement.total": 207, "engagement.sources": ["hackernews", "reddit"]}


async def test_facebook_bluesky_and_mastodon_join_the_total_and_facebooks_own_total_is_not_counted() -> None:
    signals = await _total({
        "hackernews.points": 10, "hackernews.comments": 1,
        "facebook.reactions": 100, "facebook.comments": 20, "facebook.shares": 30, "facebook.plugin_comments": 4,
        "facebook.total": 154,
        "bluesky.likes": 7, "bluesky.reposts": 2, "bluesky.replies": 1, "bluesky.quotes": 1,
        "mastodon.reblogs": 3, "mastodon.favourites": 5, "mastodon.replies": 2,
        "mastodon.trend_uses": 999, "bluesky.posts": 999,  # counts of posts and uses, not of interactions
        "reddit.score": 50, "reddit.comments": 7,
    })
    assert signals == {"engagement.total": 11 + 154 + 11 + 10 + 57,
                       "engagement.sources": ["hackernews", "facebook", "bluesky", "mastodon", "reddit"]}


async def test_a_missing_source_is_left_out_and_named() -> None:
    signals = await _total({"reddit.score": 5, "reddit.comments": 2})
    assert signals == {"engagement.total": 7, "engagement.sources": ["reddit"]}


async def test_zero_engagement_from_an_answering_source_is_a_real_zero() -> None:
    signals = await _total({"hackernews.points": 0, "hackernews.comments": 0})
    assert signals["engagement.total"] == 0


async def test_no_source_at_all_is_an_error_not_a_zero() -> None:
    with pytest.raises(ProviderError, match="no social provider answered"):
        await _total({})


def test_the_terms_are_the_signals_providers_mark_as_interactions() -> None:
    assert {name: TERMS[name] for name in ("hackernews", "reddit")} == {
        "hackernews": ("hackernews.points", "hackernews.comments"), "reddit": ("reddit.score", "reddit.comments")}
    assert EngagementIndicator.wants == tuple(signal for names in TERMS.values() for signal in names)
    by_name = {cls.name: cls for cls in PROVIDER_CLASSES}
    for name, names in TERMS.items():
        assert names == tuple(s for s, spec in by_name[name].provides.items() if spec.interactions)


def test_a_new_social_provider_counts_by_marking_its_signals() -> None:
    class Boosts(Provider):
        name = "boosts"
        provides = {"boosts.count": SignalSpec(int, "boosts", interactions=True),
                    "boosts.accounts": SignalSpec(int, "accounts that boosted")}

        def key(self, signals: Signals) -> str:
            return ""

        async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
            return Collected({})

    by_name = {cls.name: cls for cls in PROVIDER_CLASSES}
    terms = interaction_terms((by_name["hackernews"], Boosts))
    assert terms == {"hackernews": ("hackernews.points", "hackernews.comments"), "boosts": ("boosts.count",)}
    found = engagement({"hackernews.points": 3, "boosts.count": 4, "boosts.accounts": 100}, terms)
    assert found == {"engagement.total": 7, "engagement.sources": ["hackernews", "boosts"]}
    assert engagement({"reddit.score": 5}, terms) is None
