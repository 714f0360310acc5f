"""Emulated Bluesky: the session flow (createSession, refreshSession, signed JWTs) and searchPosts by URL.

Session handles that shape the tokens (tests): ``brief.*`` gets access tokens valid 60 s (a client refreshes
before each use), ``stale.*`` a first access token that expired a minute ago (``ExpiredToken`` if sent).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from linkmeter.emulator.apis import WORLD, Sample
from linkmeter.emulator.world import EPOCH, World, url_host
from linkmeter.engine.urls import InvalidURL, normalise_url, url_variants

NAME = "bluesky"
DEMO_PASSWORD = "demo-demo-demo-demo"
DEMO_KEY = f"linkmeter-demo.bsky.social:{DEMO_PASSWORD}"
ACCESS_LIFETIME = 2 * 3600  # seconds, as Bluesky's PDS issues them
BRIEF_LIFETIME = 60
REFRESH_LIFETIME = 90 * 86400
AUDIENCE = "did:web:bsky.social"
FORBIDDEN_PAGE = ("<html><head><title>403 Forbidden</title></head><body><h1>403 Forbidden</h1>"
                  "<p>Request forbidden by administrative rules.</p></body></html>")
POST_TEXTS = ("Worth a read: {link}", "Interesting take {link}", "{link} via a friend", "Saving this one {link}")

routes = web.RouteTableDef()


@routes.post("/xrpc/com.atproto.server.createSession")
async def create_session(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return xrpc_error(400, "InvalidRequest", "Request body must be JSON")
    identifier = body.get("identifier") if isinstance(body, dict) else None
    password = body.get("password") if isinstance(body, dict) else None
    if not isinstance(identifier, str) or not isinstance(password, str):
        return xrpc_error(400, "InvalidRequest", 'Input must have the property "identifier"')
    if password != DEMO_PASSWORD:
        return xrpc_error(401, "AuthenticationRequired", "Invalid identifier or password")
    handle = identifier.lower().removeprefix("@")
    now = int(time.time())
    first_exp = now - 60 if handle.startswith("stale.") else now + _lifetime(handle)
    return web.json_response(_session_body(request.app[WORLD], handle, now, first_exp))


@routes.post("/xrpc/com.atproto.server.refreshSession")
async def refresh_session(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    claims, problem = _verified(world, request, "refresh+jwt")
    if problem is not None:
        return problem
    handle = str(claims["handle"])
    now = int(time.time())
    return web.json_response(_session_body(world, handle, now, now + _lifetime(handle)))


@routes.get("/xrpc/app.bsky.feed.searchPosts")
async def search_posts(request: web.Request) -> web.Response:
    if "Authorization" not in request.headers:
        # What public.api.bsky.app answers an unauthenticated search since 2025 (REFERENCE §11a).
        return web.Response(status=403, text=FORBIDDEN_PAGE, content_type="text/html")
    world = request.app[WORLD]
    _claims, problem = _verified(world, request, "at+jwt")
    if problem is not None:
        return problem
    query = request.query.get("q", "")
    if not query:
        return xrpc_error(400, "InvalidRequest", 'Error: Params must have the property "q"')
    try:
        limit = int(request.query.get("limit", "25"))
    except ValueError:
        return xrpc_error(400, "InvalidRequest", "Error: limit must be an integer")
    if not 1 <= limit <= 100:
        return xrpc_error(400, "InvalidRequest", "Error: limit must be between 1 and 100")
    found = posts_for(world, request.query.get("url") or query)
    body: dict[str, Any] = {"hitsTotal": len(found), "posts": found[:limit]}
    if len(found) > limit:
        body["cursor"] = str(limit)
    return web.json_response(body)


def posts_for(world: World, url: str) -> list[dict[str, Any]]:
    """Posts linking ``url`` (each under one of its http/https, trailing-slash spellings), newest first, plus
    the near miss a fuzzy URL match may also return (clients must filter)."""
    try:
        target = normalise_url(url)
    except InvalidURL:
        return []
    facts = world.domain(url_host(target))
    rng = world.rng("bluesky", target)
    found: list[dict[str, Any]] = []
    if rng.random() < (0.01 if facts.spam else 0.04 + 0.4 * facts.popularity):
        spellings = url_variants(target)
        found = [_post(world, rng.choice(spellings), i) for i in range(1 + int(rng.random() ** 3 * 5))]
    if not facts.spam and rng.random() < 0.3:
        found.append(_post(world, target.rstrip("/") + "/comments", 0))
    return sorted(found, key=lambda post: post["indexedAt"], reverse=True)


def xrpc_error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status)


def rate_limited_response(retry_after: float) -> web.Response:
    reset = int(time.time() + max(1.0, retry_after))
    return web.json_response({"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}, status=429,
                             headers={"RateLimit-Limit": "3000", "RateLimit-Remaining": "0",
                                      "RateLimit-Reset": str(reset), "RateLimit-Policy": "3000;w=300"})


def error_response(status: int) -> web.Response:
    return xrpc_error(status, "InternalServerError", "Internal Server Error")


def make_jwt(world: World, claims: dict[str, Any], typ: str) -> str:
    header = _b64(json.dumps({"typ": typ, "alg": "HS256"}).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{header}.{payload}.{_signature(world, f'{header}.{payload}')}"


def _post(world: World, url: str, index: int) -> dict[str, Any]:
    rng = world.rng("bluesky-post", url, index)
    facts = world.domain(url_host(url))
    handle = f"user{rng.randint(1, 99999)}.bsky.social"
    did = "did:plc:" + hashlib.sha256(handle.encode()).hexdigest()[:24]
    created = EPOCH - timedelta(days=rng.randint(1, 700), seconds=rng.randint(0, 86399))
    shown = url.split("://", 1)[1][:40]  # the app shortens the link's text
    text = rng.choice(POST_TEXTS).format(link=shown)
    start = text.encode().index(shown.encode())
    likes = int(rng.paretovariate(1.3) * 3 * (1 + 40 * facts.popularity))
    record: dict[str, Any] = {
        "$type": "app.bsky.feed.post", "text": text, "createdAt": _iso(created), "langs": ["en"],
        "facets": [{"index": {"byteStart": start, "byteEnd": start + len(shown.encode())},
                    "features": [{"$type": "app.bsky.richtext.facet#link", "uri": url}]}],
    }
    post: dict[str, Any] = {
        "uri": f"at://{did}/app.bsky.feed.post/3k{hashlib.sha256((url + str(index)).encode()).hexdigest()[:11]}",
        "cid": "bafyrei" + hashlib.sha256((url + str(index) + "cid").encode()).hexdigest()[:52],
        "author": {"did": did, "handle": handle, "displayName": f"User {handle.split('.')[0][4:]}",
                   "labels": [], "createdAt": _iso(created - timedelta(days=300))},
        "record": record,
        "replyCount": int(likes * rng.uniform(0.0, 0.3)),
        "repostCount": int(likes * rng.uniform(0.0, 0.4)),
        "likeCount": likes,
        "quoteCount": int(likes * rng.uniform(0.0, 0.1)),
        "bookmarkCount": int(likes * rng.uniform(0.0, 0.1)),
        "indexedAt": _iso(created + timedelta(seconds=rng.randint(1, 30))),
        "labels": [],
    }
    if rng.random() < 0.5:  # a link card: the external embed and its hydrated view
        external = {"uri": url, "title": f"Page on {url_host(url)}", "description": ""}
        record["embed"] = {"$type": "app.bsky.embed.external", "external": external}
        post["embed"] = {"$type": "app.bsky.embed.external#view", "external": external}
    if rng.random() < 0.05:  # counts are optional in a postView
        del post["quoteCount"]
    return post


def _session_body(world: World, handle: str, now: int, access_exp: int) -> dict[str, Any]:
    did = "did:plc:" + hashlib.sha256(handle.encode()).hexdigest()[:24]
    access = make_jwt(world, {"scope": "com.atproto.appPass", "sub": did, "handle": handle, "iat": now,
                              "exp": access_exp, "aud": AUDIENCE}, "at+jwt")
    refresh = make_jwt(world, {"scope": "com.atproto.refresh", "sub": did, "handle": handle, "aud": AUDIENCE,
                               "jti": hashlib.sha256(f"{did}{now}{time.perf_counter_ns()}".encode()).hexdigest()[:32],
                               "iat": now, "exp": now + REFRESH_LIFETIME}, "refresh+jwt")
    return {"did": did, "handle": handle, "email": f"{handle.split('.')[0]}@example.com", "emailConfirmed": True,
            "accessJwt": access, "refreshJwt": refresh, "active": True}


def _verified(world: World, request: web.Request, typ: str) -> tuple[dict[str, Any], web.Response | None]:
    """The claims of the request's Bearer token of type ``typ``, or the XRPC error answering it."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    parts = token.strip().split(".")
    if scheme.lower() != "bearer" or len(parts) != 3:
        return {}, xrpc_error(401, "AuthenticationRequired", "Authentication Required")
    header_text, payload_text, signature = parts
    if not hmac.compare_digest(signature, _signature(world, f"{header_text}.{payload_text}")):
        return {}, xrpc_error(400, "InvalidToken", "Token could not be verified")
    header, claims = json.loads(_unb64(header_text)), json.loads(_unb64(payload_text))
    if header.get("typ") != typ:
        return {}, xrpc_error(400, "InvalidToken", "Invalid token type")
    if claims.get("exp", 0) <= time.time():
        return {}, xrpc_error(400, "ExpiredToken", "Token has expired")
    return claims, None


def _lifetime(handle: str) -> int:
    return BRIEF_LIFETIME if handle.startswith("brief.") else ACCESS_LIFETIME


def _signature(world: World, signed: str) -> str:
    return _b64(hmac.new(f"emulator-{world.seed}".encode(), signed.encode(), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def sample(world: World) -> Sample:
    """A request this API answers from its World (the same-seed test), with a session of the demo handle."""
    now = int(time.time())
    token = _session_body(world, "linkmeter-demo.bsky.social", now, now + ACCESS_LIFETIME)["accessJwt"]
    return Sample("/xrpc/app.bsky.feed.searchPosts?q=https://www.site2.com/a/2&url=https://www.site2.com/a/2",
                  headers={"Authorization": f"Bearer {token}"})
