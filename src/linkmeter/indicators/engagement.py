"""The engagement indicator: one documented total of the interactions the providers found.

engagement.total = the sum of every signal a provider marks ``SignalSpec(..., interactions=True)``

Each such signal counts people's interactions with the URL or its posts (an upvote, a like, a share, a
comment), so the sum reads as "interactions seen across the sites we ask". Today the terms are
hackernews.points, hackernews.comments; facebook.reactions, facebook.comments, facebook.shares,
facebook.plugin_comments (not facebook.total, their sum); bluesky.likes, bluesky.reposts, bluesky.replies,
bluesky.quotes; mastodon.reblogs, mastodon.favourites, mastodon.replies; reddit.score and reddit.comments.
A provider adds its own by marking its signals, with no edit here (``linkmeter providers`` lists them as this
indicator's wants). A provider whose terms
are all absent (it failed, was skipped or disabled) is left out, and the providers that do count are listed
in engagement.sources; with no source at all the indicator fails rather than report a misleading zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import linkmeter.providers
from linkmeter.engine.provider import CallContext, Collected, Policy, Provider, ProviderError, Signals, SignalSpec
from linkmeter.providers._discovery import provider_classes


def interaction_terms(classes: tuple[type[Provider], ...]) -> dict[str, tuple[str, ...]]:
    """Per provider (in listing order), the signals it marks as interaction counts; providers with none omitted."""
    terms = {cls.name: tuple(signal for signal, spec in cls.provides.items() if spec.interactions)
             for cls in classes}
    return {name: signals for name, signals in terms.items() if signals}


TERMS: dict[str, tuple[str, ...]] = interaction_terms(provider_classes(linkmeter.providers))


def engagement(signals: Mapping[str, Any], terms: Mapping[str, tuple[str, ...]] = TERMS) -> dict[str, Any] | None:
    """engagement.total and engagement.sources of ``signals``; None when no source has a term in them."""
    total = 0
    sources: list[str] = []
    for source, names in terms.items():
        values = [signals.get(name) for name in names]
        if all(value is None for value in values):
            continue
        sources.append(source)
        total += sum(int(value) for value in values if value is not None)
    if not sources:
        return None
    return {"engagement.total": total, "engagement.sources": sources}


class EngagementIndicator(Provider):
    name = "engagement"
    order = 200
    group = "indicator"
    needs = ("url",)
    wants = tuple(signal for names in TERMS.values() for signal in names)
    provides = {
        "engagement.total": SignalSpec(int, "upvotes and comments across the social providers", "interactions",
                                       headline="Engagement"),
        "engagement.sources": SignalSpec(list, "the social providers whose numbers are in the total"),
    }
    policy = Policy(timeout=1.0, retries=0, cache_ttl=0)

    def key(self, signals: Signals) -> str:
        return str(signals["url"])

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        found = engagement(signals)
        if found is None:
            raise ProviderError("no social provider answered, so there is nothing to total")
        return Collected(signals=found, raw=None)
