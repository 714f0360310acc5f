"""atproto sessions for the bluesky provider: created once from an app password, refreshed before they expire.

A ``SessionKeeper`` holds one session per process (``accessJwt`` and ``refreshJwt``). It hands out the access
token while its ``exp`` claim (read without verifying the signature: the server verifies it) is more than
``REFRESH_MARGIN`` away, refreshes it (``com.atproto.server.refreshSession``) when it is nearer or when the
server said ``ExpiredToken``, and creates a new session (``com.atproto.server.createSession``) only when there
is none or the refresh token is gone too. Concurrent calls share one creation or refresh (a lock): Bluesky
allows few logins (30 per 5 minutes, 300 a day per account). A refused login is remembered for
``LOGIN_REFUSAL_SECONDS``, so a wrong password does not become a login per call.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from linkmeter.engine.http import HttpResponse, error_for_status
from linkmeter.engine.provider import CallContext, ProviderError

REFRESH_MARGIN = 300.0  # seconds before the access token's expiry at which it is refreshed
LOGIN_REFUSAL_SECONDS = 600.0
CREATE_SESSION = "/xrpc/com.atproto.server.createSession"
REFRESH_SESSION = "/xrpc/com.atproto.server.refreshSession"
XRPC_ANSWERS = (200, 400, 401, 403, 429)  # statuses whose body is XRPC's {"error", "message"} (or HTML)
GONE = frozenset({"ExpiredToken", "InvalidToken", "AuthenticationRequired"})  # the refresh token is no use


@dataclass(frozen=True, slots=True)
class Credentials:
    identifier: str  # a handle (alice.bsky.social), an e-mail address or a DID
    password: str  # an app password (xxxx-xxxx-xxxx-xxxx)


@dataclass(frozen=True, slots=True)
class Session:
    access: str
    refresh: str
    access_expires: float | None  # epoch seconds, from the access token's exp claim (None: unknown)
    did: str


def parse_credentials(key: str | None) -> Credentials | None:
    """``identifier:app-password`` split at its last colon (a DID holds colons, an app password none)."""
    identifier, sep, password = (key or "").strip().rpartition(":")
    if not sep or not identifier.strip() or not password.strip():
        return None
    return Credentials(identifier.strip(), password.strip())


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (epoch seconds), read without verifying it; None when there is none."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return float(exp)


def xrpc_error(response: HttpResponse) -> tuple[str, str]:
    """(error name, message) of an XRPC error body ``{"error", "message"}``; a body in another shape (an HTML
    page from a front end) gives ("", its text)."""
    try:
        body = response.json()
    except ProviderError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"], str(body.get("message") or body["error"])
    return "", " ".join(response.text().split())[:200]


def rate_limited(response: HttpResponse, now: float) -> ProviderError:
    """A 429's error: wait ``Retry-After`` when sent, else until ``RateLimit-Reset`` (epoch seconds)."""
    error = error_for_status(429, response.headers, response.url, xrpc_error(response)[1])
    reset = response.headers.get("RateLimit-Reset", "").strip()
    if error.retry_after is None and reset.isdigit():
        error.retry_after = max(1.0, float(reset) - now)
    return error


class SessionKeeper:
    """One process's Bluesky session (see the module docstring). ``now`` is the wall clock (exp is epoch time)."""

    def __init__(self, credentials: Credentials, *, now: Callable[[], float] = time.time) -> None:
        self.credentials = credentials
        self._now = now
        self._session: Session | None = None
        self._lock = asyncio.Lock()
        self._refused: tuple[float, ProviderError] | None = None
        self.created = 0  # sessions created and refreshed so far (tests, logs)
        self.refreshed = 0

    async def access_token(self, ctx: CallContext) -> str:
        """An access token that is not about to expire, creating or refreshing the session when needed."""
        session = self._session
        if session is not None and self._fresh(session):
            return session.access
        async with self._lock:
            session = self._session
            if session is not None and self._fresh(session):
                return session.access
            return (await self._renew(ctx, session)).access

    async def after_expired(self, ctx: CallContext, stale: str) -> str:
        """The server answered ``ExpiredToken`` for ``stale``: a renewed access token (one renewal however many
        calls saw it)."""
        async with self._lock:
            session = self._session
            if session is not None and session.access != stale:
                return session.access  # another call renewed it meanwhile
            return (await self._renew(ctx, session)).access

    def forget(self, stale: str) -> None:
        """The server does not know ``stale`` at all (revoked): the next call logs in again."""
        if self._session is not None and self._session.access == stale:
            self._session = None

    def _fresh(self, session: Session) -> bool:
        return session.access_expires is None or session.access_expires - self._now() > REFRESH_MARGIN

    async def _renew(self, ctx: CallContext, session: Session | None) -> Session:
        renewed = await self._refresh(ctx, session) if session is not None else None
        self._session = renewed or await self._create(ctx)
        return self._session

    async def _create(self, ctx: CallContext) -> Session:
        if self._refused is not None and self._now() < self._refused[0]:
            raise self._refused[1]
        who = self.credentials.identifier
        response = await ctx.http.request(
            "POST", ctx.config.base_url.rstrip("/") + CREATE_SESSION, accept=XRPC_ANSWERS,
            json_body={"identifier": who, "password": self.credentials.password},
        )
        if response.status == 429:
            raise rate_limited(response, self._now())
        if response.status != 200:
            name, message = xrpc_error(response)
            refusal = ProviderError(
                f"Bluesky refused the login of {who} (HTTP {response.status} {name or 'error'}: {message}): "
                "set LINKMETER_BLUESKY_API_KEY to handle:app-password", status=response.status)
            self._refused = (self._now() + LOGIN_REFUSAL_SECONDS, refusal)
            raise refusal
        self.created += 1
        return _session_of(response.json())

    async def _refresh(self, ctx: CallContext, session: Session) -> Session | None:
        """The refreshed session, or None when the refresh token is expired or unknown (log in again)."""
        response = await ctx.http.request(
            "POST", ctx.config.base_url.rstrip("/") + REFRESH_SESSION, accept=XRPC_ANSWERS,
            headers={"Authorization": f"Bearer {session.refresh}"},
        )
        if response.status == 429:
            raise rate_limited(response, self._now())
        if response.status != 200:
            name, message = xrpc_error(response)
            if name in GONE or response.status == 401:
                return None
            raise ProviderError(f"Bluesky refreshSession failed (HTTP {response.status} {name}: {message})",
                                status=response.status)
        self.refreshed += 1
        return _session_of(response.json())


def _session_of(body: Any) -> Session:
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("accessJwt", "refreshJwt")):
        raise ProviderError("unexpected Bluesky session answer: no accessJwt/refreshJwt")
    return Session(access=body["accessJwt"], refresh=body["refreshJwt"],
                   access_expires=jwt_expiry(body["accessJwt"]), did=str(body.get("did") or ""))
