"""The engagement indicator: one documented total of the social numbers the providers found.

engagement.total = hackernews.points + hackernews.comments + reddit.score + reddit.comments

Each term counts one person's interaction with a submission of the URL (an upvote, a comment), so the
sum reads as "interactions seen across the social sites we ask". A term whose provider did not answer
is left out and the sources that did count are listed in engagement.sources; with no source at all the
indicator fails rather than report a misleading zero.
"""

from __future__ import annotations

from typing import Any

from linkmeter.engine.provider import CallContext, Collected, Policy, Provider, ProviderError, Signals, SignalSpec

TERMS: dict[str, tuple[str, ...]] = {
    "hackernews": ("hackernews.points", "hackernews.comments"),
    "reddit": ("reddit.score", "reddit.comments"),
}


class EngagementIndicator(Provider):
    name = "engagement"
    needs = ("url",)
    wants = tuple(signal for terms in TERMS.values() for signal in terms)
    provides = {
        "engagement.total": SignalSpec(int, "upvotes and comments across Hacker News and Reddit", "interactions"),
        "engagement.sources": SignalSpec(list, "the social providers whose numbers are in the total"),
    }
    policy = Policy(timeout=1.0, retries=0, cache_ttl=0)

    def key(self, signals: Signals) -> str:
        return str(signals["url"])

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        total = 0
        sources: list[str] = []
        for source, terms in TERMS.items():
            values = [signals.get(term) for term in terms]
            if all(value is None for value in values):
                continue
            sources.append(source)
            total += sum(int(value) for value in values if value is not None)
        if not sources:
            raise ProviderError("no social provider answered, so there is nothing to total")
        result: dict[str, Any] = {"engagement.total": total, "engagement.sources": sources}
        return Collected(signals=result, raw=None)
