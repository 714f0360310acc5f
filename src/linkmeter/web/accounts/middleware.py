"""Who is asking: sets ``request.user``, ``request.api_key`` and ``request.auth_mode`` (docs/api.md,
"Authentication") on every request, and refuses what may not pass: an API call without a valid key (401 JSON
with a code), a key in the query string (400), a UI page without a login (redirect to the login page)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse

from linkmeter.web.accounts import mode
from linkmeter.web.accounts.authn import KeyCheck, verifier
from linkmeter.web.accounts.models import ApiKey

API_PREFIX = "/api/"
OPEN_API_PATHS = ("/api/docs", "/api/v1/openapi.json")  # the API's description is public
OPEN_PREFIXES = ("/static/", "/admin/", "/accounts/login/", "/accounts/signup/", "/favicon", "/metrics")
LOGIN_URL = "/accounts/login/"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Query parameters that carry a key by their name, and anything shaped like one whatever its name.
KEY_PARAMETERS = frozenset({"api_key", "apikey", "api-key", "key", "token", "access_token", "x-api-key",
                            "authorization", "bearer"})
KEY_SHAPE = re.compile(r"lmk_[0-9A-Za-z]{6,}")

type Handler = Callable[[HttpRequest], Any]


def error(status: int, code: str, message: str, details: Any = None, **headers: str) -> JsonResponse:
    response = JsonResponse({"code": code, "message": message, "details": details}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def blocked(wait: int) -> JsonResponse:
    return error(429, "auth_rate_limited", "too many failed authentications from this address",
                 {"retry_after_seconds": wait}, Retry_After=str(wait))


def key_in_query(request: HttpRequest) -> bool:
    query = request.META.get("QUERY_STRING", "")
    if not query:
        return False
    if KEY_SHAPE.search(query):
        return True
    return any(name.strip().lower() in KEY_PARAMETERS for name, _ in parse_qsl(query, keep_blank_values=True))


def presented_key(request: HttpRequest) -> str | None:
    """The key from ``Authorization: Bearer`` or ``X-API-Key`` ("" when a header is there but empty or of
    another scheme), None when neither header is sent."""
    authorization = request.META.get("HTTP_AUTHORIZATION")
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""
    header = request.META.get("HTTP_X_API_KEY")
    return header.strip() if header is not None else None


def client_address(request: HttpRequest) -> str:
    """The client's address: the direct peer's, or, when the peer is one of LINKMETER_TRUSTED_PROXIES, the one
    that proxy put in X-Forwarded-For (``linkmeter serve`` has uvicorn resolve it before Django sees it)."""
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def required_scope(request: HttpRequest) -> str:
    return "read" if request.method in SAFE_METHODS else "submit"


def _is_api(path: str) -> bool:
    return path.startswith(API_PREFIX) and not path.startswith(OPEN_API_PATHS)


def _is_open(path: str) -> bool:
    return path.startswith(OPEN_PREFIXES) or path.startswith(OPEN_API_PATHS)


def _mark(request: HttpRequest, auth_mode: str) -> None:
    request.api_key = None  # type: ignore[attr-defined]
    request.auth_mode = auth_mode  # type: ignore[attr-defined]


def _set(request: HttpRequest, user: Any, key: ApiKey | None, auth_mode: str) -> None:
    request.user = user
    _mark(request, auth_mode)
    request.api_key = key  # type: ignore[attr-defined]


class AuthMiddleware:
    """After Django's AuthenticationMiddleware. Sync and async: a cached key costs no thread hop."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        self._owner: User | None = None
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        early = self._before(request)
        if early is not None:
            return early
        path = request.path
        local = mode.current() is mode.AuthMode.LOCAL
        if _is_open(path):  # static files, the API's description, the login page: nobody needs to be known
            _mark(request, "local" if local else "session")
            return self.get_response(request)
        if local:
            _set(request, self._local_owner(), None, "local")
            return self.get_response(request)
        if _is_api(path):
            refusal = self._api_sync(request)
            return refusal if refusal is not None else self.get_response(request)
        refusal = self._ui(request, request.user)
        return refusal if refusal is not None else self.get_response(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        early = self._before(request)
        if early is not None:
            return early
        path = request.path
        local = mode.current() is mode.AuthMode.LOCAL
        if _is_open(path):
            _mark(request, "local" if local else "session")
            return await self._next(request)
        if local:
            owner = self._owner or await sync_to_async(self._local_owner)()
            _set(request, owner, None, "local")
            return await self._next(request)
        if _is_api(path):
            presented = presented_key(request)
            if presented is not None:
                failures, address = verifier().failures, client_address(request)
                wait = failures.retry_after(address)  # this process's note: no I/O
                check = await verifier().acheck(presented) if presented and wait is None else None
                refusal, failed = self._after_check(request, check, wait)
                if failed and (over := await failures.afailed(address)) is not None:
                    refusal = blocked(over)
            else:
                refusal = self._session_api(request, await request.auser())
            if refusal is not None:
                return refusal
            return await self._next(request)
        refusal = self._ui(request, await request.auser())
        if refusal is not None:
            return refusal
        return await self._next(request)

    async def _next(self, request: HttpRequest) -> HttpResponse:
        response: HttpResponse = await self.get_response(request)
        return response

    def _before(self, request: HttpRequest) -> HttpResponse | None:
        """A key in the query string is refused before anything reads (or logs) it."""
        if request.path.startswith(API_PREFIX) and key_in_query(request):
            request.META["QUERY_STRING"] = ""  # nothing downstream sees it (the access log has the raw line)
            return error(400, "key_in_query", "API keys are accepted only in the Authorization: Bearer or "
                         "X-API-Key header, never in the URL; this key should be considered leaked: revoke it")
        return None

    def _local_owner(self) -> User:
        if self._owner is None:
            from linkmeter.web.accounts.services import local_owner

            self._owner = local_owner()
        return self._owner

    def _api_sync(self, request: HttpRequest) -> HttpResponse | None:
        presented = presented_key(request)
        if presented is None:
            return self._session_api(request, request.user)
        failures, address = verifier().failures, client_address(request)
        wait = failures.retry_after(address)
        check = verifier().check(presented) if presented and wait is None else None
        refusal, failed = self._after_check(request, check, wait)
        if failed and (over := failures.failed(address)) is not None:
            refusal = blocked(over)
        return refusal

    def _after_check(self, request: HttpRequest, check: KeyCheck | None,
                     wait: int | None) -> tuple[HttpResponse | None, bool]:
        """The refusal (None: the key lets the request through) and whether it counts as a failed
        authentication of the client's address (its count may turn the refusal into a 429). ``wait``: this
        process knows the address is blocked for that long, and the key was not checked."""
        if wait is not None:
            return blocked(wait), False
        if check is None:  # an empty header, or one of another scheme
            return error(401, "invalid_key", "send the key as Authorization: Bearer <key> or X-API-Key: <key>",
                         WWW_Authenticate="Bearer"), True
        if not check.ok or check.api_key is None:
            code = check.code or "invalid_key"
            details = {"key_id": check.record.key_id} if check.record is not None else None
            return error(401, code, check.message or "this API key is not valid", details,
                         WWW_Authenticate="Bearer"), True
        key = check.api_key
        scope = required_scope(request)
        if scope not in key.scopes:
            return error(403, "insufficient_scope", f"API key {key.id_public} lacks the {scope!r} scope",
                         {"key_id": key.id_public, "required": scope, "scopes": list(key.scopes)}), False
        _set(request, key.user, key, "key")
        return None, False

    def _session_api(self, request: HttpRequest, user: Any) -> HttpResponse | None:
        # A logged-in browser may read (the UI's export links); writes need a key (no CSRF check here).
        if getattr(user, "is_authenticated", False) and request.method in SAFE_METHODS:
            _set(request, user, None, "session")
            return None
        return error(401, "authentication_required", "this API needs a key: Authorization: Bearer <key> or "
                     "X-API-Key: <key> (create one with `linkmeter key create` or on the keys page)",
                     WWW_Authenticate="Bearer")

    def _ui(self, request: HttpRequest, user: Any) -> HttpResponse | None:
        if getattr(user, "is_authenticated", False):
            _set(request, user, None, "session")
            return None
        _mark(request, "session")
        return HttpResponseRedirect(f"{LOGIN_URL}?next={quote(request.get_full_path())}")
