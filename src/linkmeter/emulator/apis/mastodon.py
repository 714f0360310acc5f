"""Emulated Mastodon instances, each at ``/<instance host>/api/...``: status search, trending links, rate headers.

The instance's host name decides how it behaves: ``dead*`` drops the connection, ``slow*`` answers after
``SLOW_SECONDS`` (sooner if the client gives up), ``limited*`` answers 429, ``exhausted*`` answers with no
requests left in its window, ``quiet*`` has no full-text search (always empty, as many instances are),
``old*`` predates trends (404). Any other host name is a healthy instance; about a third of them find nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from linkmeter.emulator import answers
from linkmeter.emulator.apis import KNOBS, WORLD, Sample
from linkmeter.emulator.world import EPOCH, World, url_host
from linkmeter.engine.urls import InvalidURL, normalise_url, url_variants

NAME = "mastodon"
SLOW_SECONDS = 30.0
WINDOW = 300  # seconds of a rate-limit window (300 requests per 5 minutes)
LIMIT = 300
# Where the statuses linking a URL were posted: the instances federate them to each other.
ORIGINS = ("mastodon.social", "mastodon.online", "mstdn.social", "fosstodon.org", "hachyderm.io", "social.example")
HOST = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$")

routes = web.RouteTableDef()


@dataclass(frozen=True, slots=True)
class Toot:
    """A status as its own instance knows it."""

    origin: str
    home_id: str  # its id on its own instance, part of its uri
    local_id: str  # its id on the instance showing it
    user: str
    link: str
    reblogs: int
    favourites: int
    replies: int
    created: datetime

    @property
    def uri(self) -> str:
        return f"https://{self.origin}/users/{self.user}/statuses/{self.home_id}"


@routes.get("/{instance}/api/v2/search")
async def search(request: web.Request) -> web.StreamResponse:
    instance = request.match_info["instance"].lower()
    trouble = await _trouble(request, instance)
    if trouble is not None:
        return trouble
    query = request.query.get("q", "")
    if request.query.get("resolve") in ("true", "1") or request.query.get("offset"):
        return _json({"error": "The access token is invalid"}, 401)  # resolve/offset need a user token
    kinds = request.query.get("type")
    statuses = statuses_on(request.app[WORLD], instance, query) if kinds in (None, "statuses") else []
    return _json({"accounts": [], "statuses": statuses[:_limit(request, 40)], "hashtags": []}, 200, instance)


@routes.get("/{instance}/api/v1/trends/links")
async def trends(request: web.Request) -> web.StreamResponse:
    instance = request.match_info["instance"].lower()
    trouble = await _trouble(request, instance)
    if trouble is not None:
        return trouble
    if instance.startswith("old"):
        return _json({"error": "Record not found"}, 404, instance)
    return _json(trending_links(request.app[WORLD], instance)[:_limit(request, 20)], 200, instance)


def toots(world: World, url: str) -> list[Toot]:
    """The statuses linking ``url`` (under any of its spellings), wherever they were posted; spam gets almost none."""
    try:
        target = normalise_url(url)
    except InvalidURL:
        return []
    facts = world.domain(url_host(target))
    rng = world.rng("mastodon", target)
    if rng.random() > (0.01 if facts.spam else 0.05 + 0.45 * facts.popularity):
        return []
    found = []
    for _ in range(1 + int(rng.random() ** 3 * 5)):
        favourites = int(rng.paretovariate(1.3) * 2 * (1 + 30 * facts.popularity))
        home_id = str(rng.randint(10**17, 10**18))
        found.append(Toot(origin=rng.choice(ORIGINS), home_id=home_id, local_id=home_id,
                          user=f"user{rng.randint(1, 99999)}", link=rng.choice(url_variants(target)),
                          reblogs=int(favourites * rng.uniform(0.1, 0.6)), favourites=favourites,
                          replies=int(favourites * rng.uniform(0.0, 0.3)),
                          created=EPOCH - timedelta(days=rng.randint(1, 900), seconds=rng.randint(0, 86399))))
    return found


def searchable(world: World, instance: str) -> bool:
    """Whether the instance's full-text search finds statuses at all (many do not: no search index, or posts
    that did not opt in)."""
    return not instance.startswith("quiet") and world.rng("mastodon-search", instance).random() >= 0.33


def seen_by(world: World, instance: str, toot: Toot) -> Toot | None:
    """The status as ``instance`` sees it: its own instance in full, another one (when it federated there) with
    only the interactions that reached it."""
    if toot.origin == instance:
        return toot
    rng = world.rng("mastodon-seen", instance, toot.uri)
    if rng.random() >= 0.6:
        return None
    share = rng.uniform(0.2, 0.9)
    return Toot(toot.origin, toot.home_id, str(rng.randint(10**17, 10**18)), toot.user, toot.link,
                int(toot.reblogs * share), int(toot.favourites * share), int(toot.replies * share), toot.created)


def statuses_on(world: World, instance: str, query: str) -> list[dict[str, Any]]:
    """What ``instance`` answers a search for ``query`` (a URL): the statuses it knows linking it, and a near miss
    (a status linking a longer URL) that clients must filter."""
    if not searchable(world, instance):
        return []
    found = [seen for toot in toots(world, query) if (seen := seen_by(world, instance, toot)) is not None]
    try:
        target = normalise_url(query)
    except InvalidURL:
        return []
    rng = world.rng("mastodon-decoy", instance, target)
    if rng.random() < 0.3:
        decoy = target.rstrip("/") + "/comments"
        decoy_id = str(rng.randint(10**17, 10**18))
        found.append(Toot(instance, decoy_id, decoy_id, "someone", decoy, 3, 5, 1, EPOCH))
    return [_status_json(instance, toot) for toot in sorted(found, key=lambda t: t.created, reverse=True)]


def trending_links(world: World, instance: str) -> list[dict[str, Any]]:
    """The instance's trending links: ten of a pool of news URLs every instance draws from, each with seven days
    of history whose numbers are strings, as Mastodon sends them."""
    pool = [f"https://news{k}.example/story/{world.rng('mastodon-trend-pool', k).randint(1000, 9999)}"
            for k in range(15)]
    rng = world.rng("mastodon-trends", instance)
    cards = []
    for url in rng.sample(pool, 10):
        history = []
        for day in range(7):
            day_rng = world.rng("mastodon-trend-day", instance, url, day)
            accounts = day_rng.randint(0, 40)
            history.append({"day": str(int((EPOCH - timedelta(days=day)).timestamp())),
                            "accounts": str(accounts), "uses": str(accounts + day_rng.randint(0, 10))})
        cards.append({"url": url, "title": f"Story on {url_host(url)}", "description": "", "language": "en",
                      "type": "link", "author_name": "", "author_url": "", "provider_name": url_host(url),
                      "provider_url": "", "html": "", "width": 400, "height": 200, "image": None, "embed_url": "",
                      "blurhash": None, "history": history})
    return cards


def rate_limited_response(retry_after: float) -> web.Response:
    """Mastodon's 429: its X-RateLimit-* headers say when the window resets (no Retry-After)."""
    return web.json_response({"error": "Too many requests"}, status=429,
                             headers=_limit_headers(remaining=0, reset=time.time() + max(1.0, retry_after)))


def error_response(status: int) -> web.Response:
    return web.json_response({"error": answers.reason(status)}, status=status)


async def _trouble(request: web.Request, instance: str) -> web.StreamResponse | None:
    """The answer of an instance whose name says it misbehaves (see the module docstring), or None."""
    if not HOST.match(instance) or "." not in instance:
        return _json({"error": "Record not found"}, 404)
    if instance.startswith("dead"):
        if request.transport is not None:
            request.transport.close()  # the connection drops without an answer
        return web.Response(status=503)
    if instance.startswith("slow"):
        deadline = asyncio.get_running_loop().time() + SLOW_SECONDS * request.app[KNOBS].slow_scale
        while asyncio.get_running_loop().time() < deadline:
            if request.transport is None or request.transport.is_closing():
                break  # the client gave up
            await asyncio.sleep(0.05)
    if instance.startswith("limited"):
        return rate_limited_response(120.0)
    return None


def _status_json(instance: str, toot: Toot) -> dict[str, Any]:
    local = toot.origin == instance
    shown = toot.link.split("://", 1)[1]
    scheme = toot.link.split("://", 1)[0] + "://"
    content = (f'<p>Worth reading <a href="{toot.link}" target="_blank" rel="nofollow noopener noreferrer" '
               f'translate="no"><span class="invisible">{scheme}</span><span class="ellipsis">{shown[:30]}</span>'
               f'<span class="invisible">{shown[30:]}</span></a></p>')
    acct = toot.user if local else f"{toot.user}@{toot.origin}"
    card = None
    if int(hashlib.sha256(toot.uri.encode()).hexdigest()[:2], 16) % 2:
        card = {"url": toot.link, "title": f"Page on {url_host(toot.link)}", "description": "", "type": "link",
                "author_name": "", "author_url": "", "provider_name": "", "provider_url": "", "html": "",
                "width": 400, "height": 200, "image": None, "embed_url": "", "blurhash": None}
    return {
        "id": toot.local_id, "created_at": _iso(toot.created), "in_reply_to_id": None,
        "in_reply_to_account_id": None, "sensitive": False, "spoiler_text": "", "visibility": "public",
        "language": "en", "uri": toot.uri,
        "url": f"https://{toot.origin}/@{toot.user}/{toot.home_id}",
        "replies_count": toot.replies, "reblogs_count": toot.reblogs, "favourites_count": toot.favourites,
        "edited_at": None, "content": content, "reblog": None,
        "account": {"id": str(int(hashlib.sha256(acct.encode()).hexdigest()[:12], 16)), "username": toot.user,
                    "acct": acct, "display_name": toot.user.title(), "url": f"https://{toot.origin}/@{toot.user}"},
        "media_attachments": [], "mentions": [], "tags": [], "emojis": [], "card": card, "poll": None,
    }


def _json(body: Any, status: int, instance: str | None = None) -> web.Response:
    headers = None
    if instance is not None:
        exhausted = instance.startswith("exhausted")
        headers = _limit_headers(remaining=0 if exhausted else LIMIT - 1,
                                 reset=time.time() + 120 if exhausted else (time.time() // WINDOW + 1) * WINDOW)
    return web.json_response(body, status=status, headers=headers)


def _limit_headers(*, remaining: int, reset: float) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(LIMIT), "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": _iso(datetime.fromtimestamp(reset, UTC))}


def _limit(request: web.Request, most: int) -> int:
    try:
        return max(1, min(most, int(request.query.get("limit", str(most)))))
    except ValueError:
        return most


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def sample(world: World) -> Sample:
    """A request this API answers from its World (the same-seed test)."""
    return Sample("/mastodon.social/api/v2/search?q=https://www.site2.com/a/2&type=statuses&limit=40")
