"""Facebook Graph API URL engagement (reactions, comments, shares, plugin comments), up to 50 URLs a request."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from linkmeter.engine.http import HttpResponse, error_for_status
from linkmeter.engine.provider import (
    CallContext,
    Collected,
    Policy,
    Provider,
    ProviderError,
    Signals,
    SignalSpec,
)
from linkmeter.providers.hackernews import match_key

GRAPH_VERSION = "v24.0"  # LINKMETER_FACEBOOK_OPT_VERSION overrides it
MAX_IDS = 50  # URLs per several-ids request (Graph's batch limit; UNVERIFIED for ?ids=)
MAX_IDS_CHARS = 6000  # a longer ids list is split over several requests: a GET's URL must stay short
# Statuses whose body is Graph's JSON (a node or the error envelope); others are mapped by the HTTP client.
GRAPH_ANSWERS = (200, 400, 401, 403, 404)
# Graph's throttling codes (REFERENCE §7, UNVERIFIED): 4 app, 17 user, 32 page, 613 call rate.
THROTTLED_CODES = frozenset({4, 17, 32, 613})
THROTTLE_PAUSE = 60.0  # seconds to leave Graph alone after a throttling answer (it gives no Retry-After)
RETRYABLE_CODES = frozenset({1, 2})  # "unknown error", "service temporarily unavailable"
INVALID_TOKEN = 190
COUNTS = (
    ("facebook.reactions", "reaction_count"),
    ("facebook.comments", "comment_count"),
    ("facebook.shares", "share_count"),
    ("facebook.plugin_comments", "comment_plugin_count"),
)


class FacebookProvider(Provider):
    """``GET /<version>/?id=<url>&fields=engagement`` for one URL, ``?ids=<url>,<url>,...`` for a batch (Graph's
    multiple-ID read); the access token goes in ``Authorization: Bearer``. URLs holding a comma cannot be
    told apart in an ids list, so each of them gets its own ``?id=`` request."""

    name = "facebook"
    order = 62
    group = "social"
    requires_key = True
    key_url = "https://developers.facebook.com/docs/facebook-login/guides/access-tokens/"
    published_limits = ("10 GET requests per URL, per app, per hour; app tokens: 200 calls per user per rolling "
                        "hour; engagement values are not precise")
    needs = ("url",)
    wants = ("page.canonical_url",)
    max_batch = MAX_IDS
    provides = {
        "facebook.reactions": SignalSpec(int, "reactions to the URL on Facebook", "reactions", interactions=True),
        "facebook.comments": SignalSpec(int, "comments on the URL on Facebook", "comments", interactions=True),
        "facebook.shares": SignalSpec(int, "times the URL was shared on Facebook", "shares", interactions=True),
        "facebook.plugin_comments": SignalSpec(int, "comments left through the Comments Plugin on the URL's page",
                                               "comments", interactions=True),
        # Not an interactions term: it is the sum of the four above, which engagement already counts.
        "facebook.total": SignalSpec(int, "reactions + comments + shares + plugin comments", "interactions"),
    }
    # REFERENCE §7: "10 GET requests per URL, per app, per hour": a result is kept an hour, so one process asks
    # Graph about a URL at most once an hour (the Redis cache holds it for every worker); app tokens get
    # "200 x users" calls per rolling hour: 200/h, as for a one-user app (LINKMETER_FACEBOOK_RATE raises it).
    policy = Policy(timeout=10.0, retries=2, rate_per_sec=200 / 3600, burst=5, cache_ttl=3600.0, batch_linger=0.05)
    default_base_url = "https://graph.facebook.com"

    def key(self, signals: Signals) -> str:
        return str(signals.get("page.canonical_url") or signals["url"])

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        payload = await self._get(ctx, {"id": self.key(signals), "fields": "engagement"})
        return Collected(signals=engagement_signals(payload), raw=payload)

    async def collect_many(self, ctx: CallContext, batch: Sequence[Signals]) -> Sequence[Collected | ProviderError]:
        targets = [self.key(signals) for signals in batch]
        listed = [target for target in targets if "," not in target]
        outcomes: dict[str, Collected | ProviderError] = {}
        requests = [self._several(ctx, chunk, outcomes) for chunk in chunks(listed)]
        requests += [self._alone(ctx, target, outcomes) for target in targets if "," in target]
        failed = [failure for failure in await asyncio.gather(*requests) if failure is not None]
        if len(failed) == len(requests):
            raise failed[0]  # nothing came back: the engine fails (and retries) the whole batch
        return [outcomes[target] for target in targets]

    async def _several(self, ctx: CallContext, urls: list[str], outcomes: dict[str, Collected | ProviderError]
                       ) -> ProviderError | None:
        """One several-ids request; when it fails, each of its URLs fails with its error (which is returned)."""
        try:
            payload = await self._get(ctx, {"ids": ",".join(urls), "fields": "engagement"})
            found = several_outcomes(payload, urls)
        except ProviderError as exc:
            outcomes.update(dict.fromkeys(urls, exc))
            return exc
        outcomes.update(zip(urls, found, strict=True))
        return None

    async def _alone(self, ctx: CallContext, url: str, outcomes: dict[str, Collected | ProviderError]
                     ) -> ProviderError | None:
        try:
            outcomes[url] = await self.collect(ctx, {"url": url})
        except ProviderError as exc:
            outcomes[url] = exc
            return exc
        return None

    async def _get(self, ctx: CallContext, params: dict[str, str]) -> Any:
        token = ctx.config.api_key or ""
        version = ctx.config.extra.get("version", GRAPH_VERSION).strip("/") or GRAPH_VERSION
        response = await ctx.http.request(
            "GET", f"{ctx.config.base_url.rstrip('/')}/{version}/", params=params,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}, accept=GRAPH_ANSWERS,
        )
        if response.status != 200:
            raise graph_error(response, _json_or_none(response), token)
        payload = response.json()
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            raise graph_error(response, payload, token)
        return payload


def chunks(urls: list[str]) -> list[list[str]]:
    """``urls`` in runs of at most MAX_IDS whose comma-joined length stays within MAX_IDS_CHARS."""
    runs: list[list[str]] = []
    run: list[str] = []
    length = 0
    for url in urls:
        if run and (len(run) == MAX_IDS or length + 1 + len(url) > MAX_IDS_CHARS):
            runs.append(run)
            run, length = [], 0
        run.append(url)
        length += len(url) + (1 if length else 0)
    if run:
        runs.append(run)
    return runs


def engagement_signals(node: Any) -> dict[str, Any]:
    """The signals of one URL node ``{"engagement": {...}, "id": url}``; counts may come as numeric strings."""
    engagement = node.get("engagement") if isinstance(node, dict) else None
    if not isinstance(engagement, dict):
        raise ProviderError("unexpected Graph answer: no 'engagement' object")
    signals = {signal: _count(engagement.get(field)) for signal, field in COUNTS}
    signals["facebook.total"] = sum(signals.values())
    return signals


def several_outcomes(payload: Any, urls: list[str]) -> list[Collected | ProviderError]:
    """Per URL of a several-ids answer (an object keyed by id), its Collected, or its own error when Graph left it
    out or answered it in a shape we cannot read. Keys are matched as sent, else normalised (scheme, slash)."""
    if not isinstance(payload, dict):
        raise ProviderError("unexpected Graph answer to a several-ids request: not an object")
    nodes: dict[str, Any] = {}
    for key, node in payload.items():
        nodes.setdefault(key, node)
        for spelling in (key, node.get("id") if isinstance(node, dict) else None):
            loose = match_key(spelling) if isinstance(spelling, str) else None
            if loose is not None:
                nodes.setdefault("~" + loose, node)
    found: list[Collected | ProviderError] = []
    for url in urls:
        node = nodes.get(url, nodes.get("~" + (match_key(url) or "")))
        if node is None:
            found.append(ProviderError(f"Graph's several-ids answer has no entry for {url}"))
            continue
        try:
            found.append(Collected(signals=engagement_signals(node), raw=node))
        except ProviderError as exc:
            found.append(exc)
    return found


def graph_error(response: HttpResponse, payload: Any, token: str) -> ProviderError:
    """The ProviderError of Graph's error envelope ``{"error": {"message", "type", "code", "fbtrace_id"}}``."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return error_for_status(response.status, response.headers, response.url, _mask(response.text(), token))
    code = error.get("code")
    text = _mask(str(error.get("message") or "no message"), token)
    detail = f"Graph error {code} ({error.get('type') or 'unknown type'}): {text}"
    if error.get("fbtrace_id"):
        detail += f" [fbtrace_id {error['fbtrace_id']}]"
    if code in THROTTLED_CODES:
        usage = response.headers.get("X-App-Usage")
        suffix = f"; X-App-Usage {usage}" if usage else ""
        return ProviderError(f"throttled by Facebook: {detail}{suffix}", retryable=True, retry_after=THROTTLE_PAUSE,
                             status=response.status, rate_limited=True)
    if code == INVALID_TOKEN:
        return ProviderError(f"{detail}: set LINKMETER_FACEBOOK_API_KEY to a valid access token",
                             status=response.status)
    return ProviderError(detail, retryable=code in RETRYABLE_CODES, status=response.status)


def _json_or_none(response: HttpResponse) -> Any:
    try:
        return response.json()
    except ProviderError:
        return None


def _mask(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


def _count(value: object) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return 0
