"""Emulated Reddit /api/info: Listings of the posts of the exact URL asked, with rate-limit headers."""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiohttp import web

from linkmeter.emulator.apis import WORLD, Sample
from linkmeter.emulator.world import EPOCH, World, url_host

NAME = "reddit"
# Requests per 10-minute window: 100/min with OAuth, 10/min without.
WINDOW = 600
OAUTH_LIMIT = 1000
ANONYMOUS_LIMIT = 100
# Reddit drastically limits generic client agents; the emulator refuses them outright.
THROTTLED_AGENTS = ("python-urllib", "python-requests", "python/", "java", "curl/", "go-http-client")
SUBREDDITS = ("technology", "programming", "news", "worldnews", "science", "webdev", "python", "europe")

routes = web.RouteTableDef()


@dataclass(frozen=True, slots=True)
class RedditPost:
    id: str
    url: str
    subreddit: str
    title: str
    author: str
    score: int
    num_comments: int
    created_utc: float


@routes.get("/api/info.json")
async def info_json(request: web.Request) -> web.Response:
    return _info(request.app[WORLD], request, oauth_path=False)


@routes.get("/api/info")
async def info_oauth(request: web.Request) -> web.Response:
    return _info(request.app[WORLD], request, oauth_path=True)


def rate_limited_response(retry_after: float) -> web.Response:
    """Reddit's 429: a JSON body and the X-Ratelimit-* headers (no Retry-After is documented)."""
    return web.json_response(
        {"message": "Too Many Requests", "error": 429},
        status=429,
        headers=_ratelimit_headers(ANONYMOUS_LIMIT, used=ANONYMOUS_LIMIT, reset=max(1, math.ceil(retry_after))),
    )


def error_response(status: int) -> web.Response:
    """A Reddit 5xx: the JSON error body, with the X-Ratelimit-* headers every answer carries."""
    reason = "Service Unavailable" if status == 503 else "Internal Server Error"
    headers = _ratelimit_headers(ANONYMOUS_LIMIT, used=1, reset=WINDOW - int(time.time()) % WINDOW)
    return web.json_response({"message": reason, "error": status}, status=status, headers=headers)


def posts(world: World, url: str) -> list[RedditPost]:
    """Posts whose submitted URL is exactly ``url`` as given (Reddit does not normalise)."""
    facts = world.domain(url_host(url))
    rng = world.rng("reddit", url)
    if rng.random() > 0.1 + 0.5 * facts.popularity:
        return []
    found = []
    for _ in range(1 + int(rng.random() ** 2 * 4)):
        score = int(rng.paretovariate(1.2) * 3 * (1 + 20 * facts.popularity))
        created = EPOCH - timedelta(days=rng.randint(1, 3000), seconds=rng.randint(0, 86399))
        found.append(
            RedditPost(
                id=_base36(rng.randint(36**5, 36**6)),
                url=url,
                subreddit=rng.choice(SUBREDDITS),
                title=f"Discussion: {url_host(url)}",
                author=f"redditor{rng.randint(1, 99999)}",
                score=score,
                num_comments=int(score * rng.uniform(0.05, 0.6)),
                created_utc=float(int(created.timestamp())),
            )
        )
    return found


def listing(shown: list[RedditPost]) -> dict[str, Any]:
    """A Listing envelope of t3 children, as /api/info answers."""
    return {
        "kind": "Listing",
        "data": {
            "after": None,
            "dist": len(shown),
            "modhash": "",
            "geo_filter": "",
            "children": [{"kind": "t3", "data": post_data(post)} for post in shown],
            "before": None,
        },
    }


def post_data(post: RedditPost) -> dict[str, Any]:
    """The t3 fields of one post."""
    host = post.url.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0].lower()
    slug = re.sub(r"[^0-9a-z]+", "_", post.title.lower().replace(".", "")).strip("_")[:50]
    return {
        "approved_at_utc": None,
        "subreddit": post.subreddit,
        "selftext": "",
        "author_fullname": "t2_" + _digest36("author", post.author, 8),
        "title": post.title,
        "subreddit_name_prefixed": f"r/{post.subreddit}",
        "downs": 0,
        "name": f"t3_{post.id}",
        "upvote_ratio": round(0.5 + 0.5 * (1 - 1 / (1 + max(post.score, 0))), 2),
        "ups": post.score,
        "score": post.score,
        "domain": host.removeprefix("www."),
        "is_self": False,
        "thumbnail": "default",
        "created": post.created_utc,
        "over_18": False,
        "subreddit_id": "t5_" + _digest36("subreddit", post.subreddit, 5),
        "id": post.id,
        "author": post.author,
        "num_comments": post.num_comments,
        "num_crossposts": 0,
        "permalink": f"/r/{post.subreddit}/comments/{post.id}/{slug}/",
        "url": post.url,
        "url_overridden_by_dest": post.url,
        "subreddit_type": "public",
        "stickied": False,
        "locked": False,
        "created_utc": post.created_utc,
    }


def _info(world: World, request: web.Request, *, oauth_path: bool) -> web.Response:
    authorization = request.headers.get("Authorization", "")
    oauth = bool(authorization)
    limit = OAUTH_LIMIT if oauth else ANONYMOUS_LIMIT
    headers = _ratelimit_headers(limit, used=1, reset=WINDOW - int(time.time()) % WINDOW)
    scheme, _, token = authorization.partition(" ")
    if (oauth and (scheme.lower() != "bearer" or not token.strip())) or (oauth_path and not oauth):
        return web.json_response({"message": "Unauthorized", "error": 401}, status=401, headers=headers)
    agent = request.headers.get("User-Agent", "").strip().lower()
    if not agent or agent.startswith(THROTTLED_AGENTS):
        return rate_limited_response(float(WINDOW))
    url = request.query.get("url", "")
    found = posts(world, url) if "://" in url else []
    return web.json_response(listing(found), headers=headers)


def _ratelimit_headers(limit: int, *, used: int, reset: int) -> dict[str, str]:
    return {
        "X-Ratelimit-Used": str(used),
        "X-Ratelimit-Remaining": f"{float(max(0, limit - used)):.1f}",
        "X-Ratelimit-Reset": str(reset),
    }


def _digest36(kind: str, value: str, length: int) -> str:
    number = int.from_bytes(hashlib.sha256(f"{kind}:{value}".encode()).digest()[:8], "big")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while len(out) < length:
        number, rem = divmod(number, 36)
        out += digits[rem]
    return out


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rem = divmod(number, 36)
        out = digits[rem] + out
    return out or "0"


def sample(world: World) -> Sample:
    """A request this API answers from its World (the same-seed test)."""
    return Sample("/api/info.json?url=https://www.site2.com/a/2",
                  headers={"User-Agent": "python:linkmeter-tests:0.1 (by /u/linkmeter)"})
