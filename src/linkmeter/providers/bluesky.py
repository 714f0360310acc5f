"""Bluesky posts linking a URL (``app.bsky.feed.searchPosts``), through a session logged in with an app password."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from linkmeter.engine.errors import ProviderDisabled
from linkmeter.engine.http import HttpResponse
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
from linkmeter.providers._bluesky_session import (
    XRPC_ANSWERS,
    SessionKeeper,
    parse_credentials,
    rate_limited,
    xrpc_error,
)
from linkmeter.providers.hackernews import match_key

SEARCH_POSTS = "/xrpc/app.bsky.feed.searchPosts"
SEARCH_LIMIT = 100  # the lexicon's maximum
SEARCH_REFUSAL_SECONDS = 600.0  # after a 403, calls end disabled this long without asking again
LINK_FACET = "app.bsky.richtext.facet#link"
KEY_FORMAT = "handle:app-password, e.g. alice.bsky.social:abcd-efgh-ijkl-mnop"


class BlueskyProvider(Provider):
    """One search request (the first 100 posts) for posts linking the URL, as the session's account; posts are
    kept when one of their links (link facets, external embeds) is the URL once both are normalised (scheme and
    trailing slash ignored), as the server "may apply URL normalization or fuzzy matching"."""

    name = "bluesky"
    order = 64
    group = "social"
    requires_key = True
    key_url = "https://bsky.app/settings/app-passwords"
    published_limits = ("post search needs a logged-in session (403 without one); 3000 requests per 5 minutes "
                        "per IP; createSession 30 per 5 minutes and 300 a day per account")
    needs = ("url",)
    wants = ("page.canonical_url",)
    provides = {
        "bluesky.posts": SignalSpec(int, "Bluesky posts linking the URL", "posts"),
        "bluesky.likes": SignalSpec(int, "sum of the posts' likes", "likes",
                                    interactions=True),
        "bluesky.reposts": SignalSpec(int, "sum of the posts' reposts", "reposts", interactions=True),
        "bluesky.replies": SignalSpec(int, "sum of the posts' replies", "replies", interactions=True),
        "bluesky.quotes": SignalSpec(int, "sum of the posts' quote posts", "quotes", interactions=True),
        "bluesky.first_posted": SignalSpec(str, "when the first of these posts was indexed (ISO-8601 UTC)"),
    }
    # Bluesky's published limits (docs.bsky.app "Rate Limits"): 3000 requests per 5 minutes per IP.
    policy = Policy(timeout=10.0, retries=2, rate_per_sec=3000 / 300, burst=10, cache_ttl=3600.0)
    # The PDS entryway: it logs in and proxies app.bsky.* reads to the AppView for the session's account.
    default_base_url = "https://bsky.social"

    def __init__(self, config: ProviderConfig | None = None, *, now: Callable[[], float] = time.time) -> None:
        super().__init__(config)
        credentials = parse_credentials(self.config.api_key)
        self.sessions = SessionKeeper(credentials, now=now) if credentials is not None else None
        self._now = now
        self._search_refused: tuple[float, str] | None = None

    def disabled_reason(self) -> str | None:
        reason = super().disabled_reason()
        if reason is None and self.sessions is None:
            return f"LINKMETER_BLUESKY_API_KEY must be {KEY_FORMAT}"
        return reason

    def key(self, signals: Signals) -> str:
        return str(signals.get("page.canonical_url") or signals["url"])

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        if self.sessions is None:
            raise ProviderDisabled(f"LINKMETER_BLUESKY_API_KEY must be {KEY_FORMAT}")
        refused = self._search_refused
        if refused is not None and self._now() < refused[0]:
            raise ProviderDisabled(refused[1])
        target = self.key(signals)
        token = await self.sessions.access_token(ctx)
        response = await self._search(ctx, target, token)
        if response.status == 400 and xrpc_error(response)[0] == "ExpiredToken":
            token = await self.sessions.after_expired(ctx, token)
            response = await self._search(ctx, target, token)
        payload = self._answer(response, token)
        posts = matching_posts(payload, target)
        # Kept for audit: what the search found and the posts counted (not every near miss's postView).
        raw = {"hitsTotal": payload.get("hitsTotal"), "returned": len(payload["posts"]), "posts": posts}
        return Collected(signals=summarise(posts), raw=raw)

    async def _search(self, ctx: CallContext, target: str, token: str) -> HttpResponse:
        return await ctx.http.request(
            "GET", ctx.config.base_url.rstrip("/") + SEARCH_POSTS,
            params={"q": target, "url": target, "limit": str(SEARCH_LIMIT)},
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}, accept=XRPC_ANSWERS,
        )

    def _answer(self, response: HttpResponse, token: str) -> Any:
        """The search's JSON, or the error its status and XRPC error name stand for."""
        if response.status == 200:
            return response.json()
        name, message = xrpc_error(response)
        if response.status == 429:
            raise rate_limited(response, self._now())
        if response.status == 403:
            reason = (f"Bluesky refuses post search to this session (HTTP 403: {message}); searchPosts needs a "
                      "logged-in session on a PDS: check LINKMETER_BLUESKY_BASE_URL (default https://bsky.social) "
                      "and LINKMETER_BLUESKY_API_KEY")
            self._search_refused = (self._now() + SEARCH_REFUSAL_SECONDS, reason)
            raise ProviderDisabled(reason, status=403)
        if response.status == 401 or name in ("ExpiredToken", "InvalidToken"):
            if self.sessions is not None:
                self.sessions.forget(token)  # the next attempt logs in again
            raise ProviderError(f"Bluesky did not accept the session (HTTP {response.status} {name}: {message})",
                                retryable=True, status=response.status)
        raise ProviderError(f"Bluesky searchPosts failed (HTTP {response.status} {name}: {message})",
                            status=response.status)


def post_links(post: dict[str, Any]) -> Iterator[str]:
    """Every URL a postView links: its record's link facets and external embed (also inside a record-with-
    media embed), and the hydrated embed view."""
    record = post.get("record")
    if not isinstance(record, dict):
        record = {}
    for facet in _dicts(record.get("facets")):
        for feature in _dicts(facet.get("features")):
            if feature.get("$type") == LINK_FACET and isinstance(feature.get("uri"), str):
                yield feature["uri"]
    for embed in (record.get("embed"), post.get("embed")):
        if not isinstance(embed, dict):
            continue
        for holder in (embed, embed.get("media")):
            external = holder.get("external") if isinstance(holder, dict) else None
            if isinstance(external, dict) and isinstance(external.get("uri"), str):
                yield external["uri"]


def matching_posts(payload: Any, target: str) -> list[dict[str, Any]]:
    """The posts of a searchPosts answer that link ``target``, one per ``uri``."""
    if not isinstance(payload, dict) or not isinstance(payload.get("posts"), list):
        raise ProviderError("unexpected searchPosts answer: no 'posts' list")
    wanted = match_key(target)
    found: dict[str, dict[str, Any]] = {}
    for post in _dicts(payload["posts"]):
        uri = post.get("uri")
        if not isinstance(uri, str) or uri in found or wanted is None:
            continue
        if any(match_key(link) == wanted for link in post_links(post)):
            found[uri] = post
    return list(found.values())


def summarise(posts: list[dict[str, Any]]) -> dict[str, Any]:
    """The provider's signals from the matching posts; a missing count counts 0."""
    indexed = [when for when in (_utc(post.get("indexedAt")) for post in posts) if when is not None]
    return {
        "bluesky.posts": len(posts),
        "bluesky.likes": sum(_count(post.get("likeCount")) for post in posts),
        "bluesky.reposts": sum(_count(post.get("repostCount")) for post in posts),
        "bluesky.replies": sum(_count(post.get("replyCount")) for post in posts),
        "bluesky.quotes": sum(_count(post.get("quoteCount")) for post in posts),
        "bluesky.first_posted": min(indexed).strftime("%Y-%m-%dT%H:%M:%SZ") if indexed else None,
    }


def _dicts(items: object) -> Iterator[dict[str, Any]]:
    if isinstance(items, list):
        yield from (item for item in items if isinstance(item, dict))


def _utc(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
