"""Django's middleware, and WhiteNoise, without a thread hop per hook: their hooks run on the event loop.

Django's ``MiddlewareMixin`` runs every ``process_request`` and ``process_response`` of an async request
through ``sync_to_async`` (and ``process_view`` too, adapted by the handler): with seven such middleware an
API call made fourteen hops between the event loop and a thread, and the first hop of a request starts a new
thread. These hooks do no I/O (they set attributes, headers and cookies), so here they are called directly;
the two that may touch the database (the session's save, stored messages that read the session) still go to
a thread, and only when they would. WhiteNoise, sync only, is asked only for paths under STATIC_URL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import SyncToAsync, iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.core.cache import close_caches
from django.core.handlers.base import reset_urlconf
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, reset_queries
from django.http import HttpRequest, HttpResponseBase
from django.middleware import clickjacking, common, csp, csrf, security
from whitenoise.middleware import WhiteNoiseMiddleware  # type: ignore[import-untyped]


class OnLoop:
    """Mixed in before a ``MiddlewareMixin`` class: its async path calls the hooks on the loop."""

    get_response: Callable[[HttpRequest], Any]
    async_mode: bool

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)  # type: ignore[call-arg]
        sync_view = getattr(self, "process_view", None)
        if self.async_mode and sync_view is not None:
            async def process_view(*args: Any) -> HttpResponseBase | None:
                result: HttpResponseBase | None = sync_view(*args)
                return result

            setattr(self, "process_view", process_view)  # noqa: B010  the handler calls a coroutine without a hop

    def response_needs_thread(self, request: HttpRequest) -> bool:
        """Whether ``process_response`` may do I/O for this request (then it runs in a thread)."""
        return False

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response: HttpResponseBase | None = None
        process_request = getattr(self, "process_request", None)
        if process_request is not None:
            response = process_request(request)
        if response is None:
            response = await self.get_response(request)
        process_response = getattr(self, "process_response", None)
        if process_response is not None:
            if self.response_needs_thread(request):
                response = await sync_to_async(process_response, thread_sensitive=True)(request, response)
            else:
                response = process_response(request, response)
        assert response is not None
        return response


class SecurityMiddleware(OnLoop, security.SecurityMiddleware):
    pass


class SessionMiddleware(OnLoop, sessions_middleware.SessionMiddleware):
    def response_needs_thread(self, request: HttpRequest) -> bool:
        # A session never read was not changed: nothing to save (modifying one reads it first).
        session = getattr(request, "session", None)
        return session is not None and (bool(session.accessed) or settings.SESSION_SAVE_EVERY_REQUEST)


class CommonMiddleware(OnLoop, common.CommonMiddleware):
    pass


class CsrfViewMiddleware(OnLoop, csrf.CsrfViewMiddleware):
    pass


class AuthenticationMiddleware(OnLoop, auth_middleware.AuthenticationMiddleware):
    pass


class MessageMiddleware(OnLoop, messages_middleware.MessageMiddleware):
    def response_needs_thread(self, request: HttpRequest) -> bool:
        # Messages read or added are stored (the session's part reads the session): only then.
        storage = getattr(request, "_messages", None)
        return storage is not None and bool(storage.used or storage.added_new)


class XFrameOptionsMiddleware(OnLoop, clickjacking.XFrameOptionsMiddleware):
    pass


class ContentSecurityPolicyMiddleware(OnLoop, csp.ContentSecurityPolicyMiddleware):
    pass


def _not_a_file(request: HttpRequest) -> None:
    return None


class StaticFilesMiddleware:
    """WhiteNoise for the paths under STATIC_URL (in a thread: it is sync and opens files); other requests pass
    straight on."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.prefix = "/" + str(settings.STATIC_URL).lstrip("/")
        self.files = WhiteNoiseMiddleware(get_response=_not_a_file)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        if request.path_info.startswith(self.prefix):
            found = self.files(request)
            if found is not None:
                return found
        return self.get_response(request)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        if request.path_info.startswith(self.prefix):
            found = await sync_to_async(self.files, thread_sensitive=True)(request)
            if found is not None:
                return found  # type: ignore[no-any-return]
        response: HttpResponseBase = await self.get_response(request)
        return response


def _request_thread_started() -> bool:
    """Whether this request ran thread-sensitive sync code (so its own thread, and maybe connections, exist).
    asgiref keeps one executor per request context (Django's ASGIHandler opens the context); where that is
    not readable, assume it did."""
    contexts = getattr(SyncToAsync, "context_to_thread_executor", None)
    current = getattr(SyncToAsync, "thread_sensitive_context", None)
    if contexts is None or current is None:
        return True
    context = current.get(None)
    return context is None or context in contexts


async def _request_started(**kwargs: Any) -> None:
    # A request's thread starts fresh: it has no connections, no queries logged, until sync code runs.
    if _request_thread_started():
        await sync_to_async(_started_in_thread, thread_sensitive=True)()


def _started_in_thread() -> None:
    reset_queries()
    close_old_connections()


async def _request_finished(**kwargs: Any) -> None:
    if _request_thread_started():
        await sync_to_async(close_old_connections, thread_sensitive=True)()
    close_caches()  # the caches and the URLconf are per context, not per thread: no hop needed
    reset_urlconf(kwargs.get("sender"))


def connection_signals_on_loop() -> None:
    """Django's request_started/request_finished receivers that close a thread's old connections hop to that
    thread on every request, even when it never ran (an API call on the loop): these only hop when it did.
    For the ASGI application (asgi.py); the WSGI handler keeps Django's own."""
    request_started.disconnect(reset_queries)
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    request_finished.disconnect(close_caches)
    request_finished.disconnect(reset_urlconf)
    request_started.connect(_request_started, dispatch_uid="linkmeter-request-started")
    request_finished.connect(_request_finished, dispatch_uid="linkmeter-request-finished")
