"""Emulated Algolia HN Search API: the stories of a URL query, plus prefix-sharing decoys."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from linkmeter.emulator.apis import WORLD, Sample
from linkmeter.emulator.world import EPOCH, World, url_host
from linkmeter.engine.urls import InvalidURL, normalise_url, url_variants

NAME = "hackernews"
DEFAULT_HITS_PER_PAGE = 20
MAX_HITS_PER_PAGE = 1000

routes = web.RouteTableDef()


@dataclass(frozen=True, slots=True)
class Story:
    object_id: str
    url: str
    title: str
    author: str
    points: int | None
    num_comments: int | None
    created_at_i: int


@routes.get("/api/v1/search")
async def search(request: web.Request) -> web.Response:
    return _search(request.app[WORLD], request, by_date=False)


@routes.get("/api/v1/search_by_date")
async def search_by_date(request: web.Request) -> web.Response:
    return _search(request.app[WORLD], request, by_date=True)


def rate_limited_response(retry_after: float) -> web.Response:
    return web.json_response(
        {"message": "Too many requests from this IP, please retry later", "status": 429},
        status=429,
        headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
    )


def query_target(query: str) -> str | None:
    """The normalised URL a query names (Algolia URL queries carry no scheme); None when it names none."""
    text = query.strip()
    if not text:
        return None
    if "://" not in text:
        text = "https://" + text
    try:
        return normalise_url(text)
    except InvalidURL:
        return None


def stories(world: World, url: str) -> list[Story]:
    """Stories submitted with exactly this URL (normalised)."""
    facts = world.domain(url_host(url))
    rng = world.rng("hn", url)
    if rng.random() > 0.15 + 0.5 * facts.popularity:
        return []
    found = []
    for i in range(1 + int(rng.random() ** 3 * 3)):
        points: int | None = int(rng.paretovariate(1.1) * 5 * (1 + 10 * facts.popularity))
        comments: int | None = int((points or 0) * rng.uniform(0.1, 0.9))
        if rng.random() < 0.05:
            points, comments = None, None
        created = EPOCH - timedelta(days=rng.randint(1, 3000), seconds=rng.randint(0, 86399))
        found.append(
            Story(
                object_id=str(rng.randint(1_000_000, 44_000_000)),
                url=url,
                title=f"Story {i + 1} about {url_host(url)}",
                author=f"user{rng.randint(1, 99999)}",
                points=points,
                num_comments=comments,
                created_at_i=int(created.timestamp()),
            )
        )
    return found


def stories_for(world: World, target: str) -> list[Story]:
    """The stories of every scheme and trailing-slash spelling of ``target``, once each."""
    found: dict[str, Story] = {}
    for variant in url_variants(target):
        for story in stories(world, variant):
            found.setdefault(story.object_id, story)
    return list(found.values())


def decoy_urls(target: str) -> list[str]:
    """Other URLs that Algolia's prefix matching also returns for this query."""
    sep = "&" if "?" in target else "?"
    stem = target.rstrip("/")
    scheme, rest = target.split("://", 1)
    host = rest.split("/", 1)[0]
    decoys = [stem + "/comments", target + sep + "ref=hn"]
    if rest == host + "/":
        decoys.append(f"{scheme}://www.{host}/")
    else:
        decoys.append(stem + "-2")
    return decoys


def decoy_story(world: World, url: str) -> Story:
    rng = world.rng("hn-decoy", url)
    points = int(rng.paretovariate(1.1) * 10)
    created = EPOCH.timestamp() - rng.randint(86400, 3000 * 86400)
    return Story(
        object_id=str(rng.randint(1_000_000, 44_000_000)),
        url=url,
        title=f"Related: {url.split('://', 1)[-1]}",
        author=f"user{rng.randint(1, 99999)}",
        points=points,
        num_comments=int(points * rng.uniform(0.1, 0.9)),
        created_at_i=int(created),
    )


def _search(world: World, request: web.Request, *, by_date: bool) -> web.Response:
    query = request.query.get("query", "")
    try:
        hits_per_page = int(request.query.get("hitsPerPage", DEFAULT_HITS_PER_PAGE))
        page = int(request.query.get("page", 0))
    except ValueError:
        return _error(400, "Invalid value for hitsPerPage or page: expected an integer")
    if not 0 <= hits_per_page <= MAX_HITS_PER_PAGE or page < 0:
        return _error(400, f"hitsPerPage must be between 0 and {MAX_HITS_PER_PAGE}, page must be >= 0")
    target = query_target(query)
    found: list[Story] = []
    if target is not None:
        found = stories_for(world, target) + [decoy_story(world, url) for url in decoy_urls(target)]
    groups = _tag_groups(request.query.get("tags", ""))
    found = [story for story in found if all(group & _tags(story) for group in groups)]
    if by_date:
        found.sort(key=lambda s: (-s.created_at_i, s.object_id))
    else:
        found.sort(key=lambda s: (-(s.points or 0), -(s.num_comments or 0), s.object_id))
    words = _words(query)
    start = page * hits_per_page
    shown = found[start:start + hits_per_page]
    total = len(found)
    return web.json_response({
        "hits": [_hit(story, words) for story in shown],
        "nbHits": total,
        "page": page,
        "nbPages": math.ceil(total / hits_per_page) if hits_per_page else 0,
        "hitsPerPage": hits_per_page,
        "exhaustiveNbHits": True,
        "exhaustiveTypo": True,
        "exhaustive": {"nbHits": True, "typo": True},
        "query": query,
        "params": request.rel_url.raw_query_string,
        "processingTimeMS": 1,
        "processingTimingsMS": {"_request": {"roundTrip": 1}, "total": 1},
        "serverTimeMS": 2,
    })


def _hit(story: Story, words: list[str]) -> dict[str, Any]:
    created = datetime.fromtimestamp(story.created_at_i, UTC)
    url_value, url_words = _highlight(story.url, words)
    return {
        "_highlightResult": {
            "author": {"matchLevel": "none", "matchedWords": [], "value": story.author},
            "title": {"matchLevel": "none", "matchedWords": [], "value": story.title},
            "url": {
                "fullyHighlighted": False,
                "matchLevel": "full" if url_words and len(url_words) == len(words) else
                ("partial" if url_words else "none"),
                "matchedWords": url_words,
                "value": url_value,
            },
        },
        "_tags": sorted(_tags(story)),
        "author": story.author,
        "children": [],
        "comment_text": None,
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "created_at_i": story.created_at_i,
        "num_comments": story.num_comments,
        "objectID": story.object_id,
        "parent_id": None,
        "points": story.points,
        "story_id": int(story.object_id),
        "story_text": None,
        "title": story.title,
        "updated_at": EPOCH.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "url": story.url,
    }


def _tags(story: Story) -> set[str]:
    return {"story", f"author_{story.author}", f"story_{story.object_id}"}


def _tag_groups(tags: str) -> list[set[str]]:
    """Algolia tag filters: comma-separated groups are ANDed, a parenthesised group is ORed."""
    groups: list[set[str]] = []
    for part in re.findall(r"\([^)]*\)|[^,()]+", tags):
        names = {name.strip() for name in part.strip("()").split(",") if name.strip()}
        if names:
            groups.append(names)
    return groups


def _words(query: str) -> list[str]:
    return [word for word in re.split(r"[^0-9a-z]+", query.lower()) if word]


def _highlight(text: str, words: list[str]) -> tuple[str, list[str]]:
    matched = [word for word in words if word in text.lower()]
    if not matched:
        return text, []
    pattern = re.compile("|".join(re.escape(word) for word in sorted(matched, key=len, reverse=True)),
                         re.IGNORECASE)
    return pattern.sub(lambda m: f"<em>{m.group(0)}</em>", text), matched


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message, "status": status}, status=status)


def sample(world: World) -> Sample:
    """A request this API answers from its World (the same-seed test)."""
    return Sample("/api/v1/search?query=www.site4.com/x")
