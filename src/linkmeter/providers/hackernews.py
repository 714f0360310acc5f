"""Hacker News (Algolia search) stories linking a URL; http/https and a trailing slash count as one URL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from linkmeter.engine.provider import (
    CallContext,
    Collected,
    Policy,
    Provider,
    ProviderError,
    Signals,
    SignalSpec,
)
from linkmeter.engine.urls import InvalidURL, normalise_url
from linkmeter.providers.timestamps import iso_utc

HITS_PER_PAGE = 100
ITEM_URL = "https://news.ycombinator.com/item?id={}"


@dataclass(frozen=True, slots=True)
class Hit:
    object_id: str
    url: str
    points: int | None
    num_comments: int | None
    created_at_i: int | None


class HackerNewsProvider(Provider):
    """One search request (the first 100 hits); Algolia matches by token prefix, so hits are filtered to
    those whose URL is the target's once both are normalised and stripped of scheme and trailing slash.
    Stories beyond the first page of hits are not seen (``nbHits`` in the raw response tells)."""

    name = "hackernews"
    order = 60
    group = "social"
    published_limits = "10,000 requests an hour per IP"
    needs = ("url",)
    wants = ("page.canonical_url",)
    provides = {
        "hackernews.stories": SignalSpec(int, "Hacker News stories linking the URL", "stories"),
        "hackernews.points": SignalSpec(int, "sum of the stories' points (null points count 0)", "points",
                                         headline="HN points", interactions=True),
        "hackernews.max_points": SignalSpec(int, "points of the best story (None without stories)", "points"),
        "hackernews.comments": SignalSpec(int, "sum of the stories' comment counts", "comments",
                                           interactions=True),
        "hackernews.first_posted": SignalSpec(str, "when the URL was first posted (ISO-8601 UTC)"),
        "hackernews.top_story_url": SignalSpec(str, "news.ycombinator.com link of the best story"),
    }
    # Algolia allows 10,000 requests per hour per IP.
    policy = Policy(timeout=10.0, retries=2, rate_per_sec=10_000 / 3600, burst=5, cache_ttl=3600.0)
    default_base_url = "https://hn.algolia.com"

    def key(self, signals: Signals) -> str:
        return str(signals.get("page.canonical_url") or signals["url"])

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        target = self.key(signals)
        response = await ctx.http.request(
            "GET",
            ctx.config.base_url.rstrip("/") + "/api/v1/search",
            params={
                "query": search_query(target),
                "restrictSearchableAttributes": "url",
                "tags": "story",
                "hitsPerPage": str(HITS_PER_PAGE),
            },
        )
        payload = response.json()
        return Collected(signals=summarise(matching_hits(payload, target)), raw=payload)


def search_query(url: str) -> str:
    """The URL without its scheme (and a trailing slash): the words Algolia's URL index holds."""
    rest = url.split("://", 1)[-1]
    return rest[:-1] if rest.endswith("/") else rest


def match_key(url: str) -> str | None:
    """What two URLs must share to be the same story link; None for a missing or invalid URL."""
    try:
        normalised = normalise_url(url)
    except InvalidURL:
        return None
    rest = normalised.split("://", 1)[1]
    location, sep, query = rest.partition("?")
    return location.rstrip("/") + sep + query


def matching_hits(payload: Any, target: str) -> list[Hit]:
    """The hits of an Algolia response that link exactly ``target``, one per objectID."""
    if not isinstance(payload, dict) or not isinstance(payload.get("hits"), list):
        raise ProviderError("unexpected Algolia response: no 'hits' list")
    wanted = match_key(target)
    found: dict[str, Hit] = {}
    for item in payload["hits"]:
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            continue
        if wanted is None or match_key(item["url"]) != wanted:
            continue
        object_id = str(item.get("objectID", ""))
        if not object_id or object_id in found:
            continue
        found[object_id] = Hit(
            object_id=object_id,
            url=item["url"],
            points=_int_or_none(item.get("points")),
            num_comments=_int_or_none(item.get("num_comments")),
            created_at_i=_int_or_none(item.get("created_at_i")),
        )
    return list(found.values())


def summarise(hits: list[Hit]) -> dict[str, Any]:
    """The provider's signals from the matching hits."""
    created = [hit.created_at_i for hit in hits if hit.created_at_i is not None]
    # Ties on points go to the earliest story: the original submission.
    top = min(hits, key=lambda h: (-(h.points or 0), h.created_at_i or 0, h.object_id), default=None)
    return {
        "hackernews.stories": len(hits),
        "hackernews.points": sum(hit.points or 0 for hit in hits),
        "hackernews.max_points": (top.points or 0) if top else None,
        "hackernews.comments": sum(hit.num_comments or 0 for hit in hits),
        "hackernews.first_posted": iso_utc(min(created)) if created else None,
        "hackernews.top_story_url": ITEM_URL.format(top.object_id) if top else None,
    }


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)

