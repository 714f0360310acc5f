"""Reddit posts of a URL via /api/info, asked for each http/https and trailing-slash variant and merged."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, replace
from typing import Any

from linkmeter.engine.http import HttpResponse, error_for_status
from linkmeter.engine.provider import (
    CallContext,
    Collected,
    Policy,
    Provider,
    ProviderConfig,
    ProviderError,
    Signals,
    SignalSpec,
)
from linkmeter.engine.urls import url_variants
from linkmeter.providers.timestamps import iso_utc

# Reddit's required form: <platform>:<app ID>:<version> (by /u/<username>); default agents are throttled.
USER_AGENT = "python:linkmeter:0.1 (by /u/linkmeter)"
OAUTH_BASE_URL = "https://oauth.reddit.com"
PERMALINK_BASE = "https://www.reddit.com"
# One call asks up to four URL variants, so the per-call rates are the per-request limits divided by 4.
MAX_VARIANTS = 4
UNAUTHENTICATED_RATE = 10 / 60 / MAX_VARIANTS
OAUTH_RATE = 100 / 60 / MAX_VARIANTS


@dataclass(frozen=True, slots=True)
class Post:
    id: str
    subreddit: str
    score: int
    num_comments: int
    created_utc: float | None
    permalink: str


class RedditProvider(Provider):
    """Without a key: www.reddit.com/api/info.json (10 requests/min). With an OAuth bearer token as the API
    key: /api/info with ``Authorization: bearer``; the default base then becomes oauth.reddit.com."""

    name = "reddit"
    order = 70
    group = "social"
    optional_key = True  # an OAuth bearer token: 100 queries a minute instead of 10
    key_url = "https://github.com/reddit-archive/reddit/wiki/OAuth2"
    published_limits = "100 queries a minute with OAuth, 10 without"
    needs = ("url",)
    wants = ("page.canonical_url",)
    provides = {
        "reddit.posts": SignalSpec(int, "Reddit posts of the URL", "posts"),
        "reddit.score": SignalSpec(int, "sum of the posts' scores", "points", headline="Reddit score",
                                   interactions=True),
        "reddit.comments": SignalSpec(int, "sum of the posts' comment counts", "comments",
                                      interactions=True),
        "reddit.subreddits": SignalSpec(list, "distinct subreddits the URL was posted to, sorted"),
        "reddit.first_posted": SignalSpec(str, "when the URL was first posted (ISO-8601 UTC)"),
        "reddit.top_permalink": SignalSpec(str, "link to the top-scoring post"),
    }
    policy = Policy(timeout=10.0, retries=2, rate_per_sec=UNAUTHENTICATED_RATE, burst=1, cache_ttl=3600.0)
    default_base_url = "https://www.reddit.com"

    def __init__(self, config: ProviderConfig | None = None) -> None:
        super().__init__(config)
        if self.config.api_key:
            self.policy = replace(self.policy, rate_per_sec=OAUTH_RATE)

    def key(self, signals: Signals) -> str:
        return str(signals.get("page.canonical_url") or signals["url"])

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        endpoint, headers = self.endpoint(ctx.config)

        async def lookup(variant: str) -> Any:
            response = await ctx.http.request(
                "GET", endpoint, params={"url": variant, "raw_json": "1"}, headers=headers, accept=(200, 429)
            )
            if response.status == 429:
                raise rate_limited(response, endpoint)
            return response.json()

        # The variants at once: one round trip of latency instead of four. The rate limit already counts every
        # variant (the policy's rate is per call of collect(), the API's divided by MAX_VARIANTS), and Reddit's
        # window is ten minutes, so the burst costs nothing there.
        variants = url_variants(self.key(signals))[:MAX_VARIANTS]
        outcomes = await asyncio.gather(*(lookup(variant) for variant in variants), return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            # A 429 first: it pauses every caller; otherwise the first failure says what went wrong.
            limited = [e for e in errors if isinstance(e, ProviderError) and e.rate_limited]
            raise (limited or errors)[0]
        return Collected(signals=summarise(merge_listings(list(outcomes))), raw=list(outcomes))

    def endpoint(self, config: ProviderConfig) -> tuple[str, dict[str, str]]:
        """The info URL and headers for these settings (OAuth when an API key is set)."""
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        base = config.base_url.rstrip("/")
        if not config.api_key:
            return base + "/api/info.json", headers
        if base == self.default_base_url:
            base = OAUTH_BASE_URL
        headers["Authorization"] = f"bearer {config.api_key}"
        return base + "/api/info", headers


def rate_limited(response: HttpResponse, url: str) -> ProviderError:
    """A 429 as a ProviderError; Reddit tells the wait in X-Ratelimit-Reset rather than Retry-After."""
    error = error_for_status(response.status, response.headers, url, response.text())
    if error.retry_after is None:
        with contextlib.suppress(ValueError):
            error.retry_after = max(0.0, float(response.headers.get("X-Ratelimit-Reset", "")))
    return error


def merge_listings(listings: list[Any]) -> list[Post]:
    """The t3 posts of several Listing responses, each post once (by id)."""
    posts: dict[str, Post] = {}
    for listing in listings:
        data = listing.get("data") if isinstance(listing, dict) else None
        children = data.get("children") if isinstance(data, dict) else None
        if not isinstance(children, list):
            raise ProviderError("unexpected Reddit response: not a Listing")
        for child in children:
            if not isinstance(child, dict) or child.get("kind") != "t3":
                continue
            post = _post(child.get("data"))
            if post is not None and post.id not in posts:
                posts[post.id] = post
    return list(posts.values())


def summarise(posts: list[Post]) -> dict[str, Any]:
    """The provider's signals from the merged posts."""
    created = [post.created_utc for post in posts if post.created_utc is not None]
    # Ties on score go to the earliest post: the original submission.
    top = min(posts, key=lambda p: (-p.score, p.created_utc or 0.0, p.id), default=None)
    return {
        "reddit.posts": len(posts),
        "reddit.score": sum(post.score for post in posts),
        "reddit.comments": sum(post.num_comments for post in posts),
        "reddit.subreddits": sorted({post.subreddit for post in posts if post.subreddit}),
        "reddit.first_posted": iso_utc(min(created)) if created else None,
        "reddit.top_permalink": PERMALINK_BASE + top.permalink if top and top.permalink else None,
    }


def _post(data: object) -> Post | None:
    if not isinstance(data, dict):
        return None
    post_id = data.get("id") or data.get("name")
    if not isinstance(post_id, str) or not post_id:
        return None
    permalink = data.get("permalink")
    return Post(
        id=post_id.removeprefix("t3_"),
        subreddit=str(data.get("subreddit") or ""),
        score=_number(data.get("score")) or 0,
        num_comments=_number(data.get("num_comments")) or 0,
        created_utc=_float(data.get("created_utc")),
        permalink=permalink if isinstance(permalink, str) else "",
    )


def _number(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)

