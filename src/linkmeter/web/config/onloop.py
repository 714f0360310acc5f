"""Django's middleware, and WhiteNoise, without a thread hop per hook: their hooks run on the event loop.

Django's ``MiddlewareMixin`` runs every ``process_request`` and ``process_response`` of an async request
through ``sync_to_async`` (and ``process_view`` too, adapted by the handler): with seven such middleware an
API call made fourteen hops between the event loop and a thread, and the first hop of a request starts a new
thread. These hooks do no I/O (they set attributes, headers and cookies), so here they are called directly;
the two that may touch the database (the session's save, stored messages that read the session) still go to
a thread, and only when they would. WhiteNoise, sync only, is asked only for paths under STATIC_URL. The ASGI
handler (asgi.py) closes a plain response and sends the request signals without a thread when the request
made none."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from contextlib import closing
from typing import Any

from asgiref.sync import SyncToAsync, iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.core.cache import close_caches
from django.core.exceptions import RequestAborted
from django.core.handlers import asgi
from django.core.handlers.asgi import get_script_prefix
from django.core.handlers.base import reset_urlconf
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, reset_queries
from django.dispatch import Signal
from django.http import HttpRequest, HttpResponseBase
from django.middleware import clickjacking, common, csp, csrf, security
from django.urls import set_script_prefix
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


# Django's receivers of request_started/request_finished that only matter in the thread that ran the request's
# sync code (its connections and query log), and those that are per context (caches, URLconf).
_IN_REQUEST_THREAD = (reset_queries, close_old_connections)
_PER_CONTEXT = (close_caches, reset_urlconf)


async def send_request_signal(signal: Signal, sender: Any, **named: Any) -> None:
    """``signal.asend``, but Django's connection receivers hop to the request's thread only when it exists (an
    API call on the loop never made one), and the per-context ones run on the loop; any other sync receiver
    runs in a thread as ``asend`` runs it."""
    live = getattr(signal, "_live_receivers", None)  # Django's own split into sync and async receivers
    if live is None:
        await signal.asend(sender=sender, **named)
        return
    sync_receivers, async_receivers = live(sender)
    in_thread = [r for r in sync_receivers if r in _IN_REQUEST_THREAD]
    on_loop = [r for r in sync_receivers if r in _PER_CONTEXT]
    others = [r for r in sync_receivers if r not in _IN_REQUEST_THREAD and r not in _PER_CONTEXT]

    def call(receivers: list[Any]) -> None:
        for receiver in receivers:
            receiver(signal=signal, sender=sender, **named)

    if in_thread and _request_thread_started():
        await sync_to_async(call, thread_sensitive=True)(in_thread)
    call(on_loop)
    if others:
        await sync_to_async(call, thread_sensitive=True)(others)
    if async_receivers:
        await asyncio.gather(*(r(signal=signal, sender=sender, **named) for r in async_receivers))


class ASGIHandler(asgi.ASGIHandler):
    """Django's ASGI handler, but a plain (not streaming) response is closed on the loop: Django closes every
    response through ``sync_to_async``, which starts the request's own thread just for that (and sends
    ``request_finished`` from it)."""

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        # Django 6.1's ASGIHandler.handle, but for the last line (``_close``).
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        with closing(body_file):
            set_script_prefix(get_script_prefix(scope))
            await send_request_signal(request_started, self.__class__, scope=scope)
            request, error_response = self.create_request(scope, body_file)
            if request is None:
                assert error_response is not None  # create_request answers one or the other
                body_file.close()
                await self.send_response(error_response, send)
                await _close(error_response)
                return

            class RequestProcessed(Exception):
                pass

            response = None
            try:
                try:
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self.listen_for_disconnect(receive))
                        response = await self.run_get_response(request)
                        await self.send_response(response, send)
                        raise RequestProcessed
                except* (RequestProcessed, RequestAborted):
                    pass
            except BaseExceptionGroup as exception_group:
                if len(exception_group.exceptions) == 1:
                    raise exception_group.exceptions[0] from None
                raise
            if response is None:
                await send_request_signal(request_finished, self.__class__)
            else:
                await _close(response)


async def _close(response: Any) -> None:
    """``response.close()``: its closers (the request's, which closes uploaded files) run on the loop and
    ``request_finished`` is sent with ``asend``; a streaming response's closers (open files) in a thread."""
    if response.streaming:
        await sync_to_async(response.close)()
        return
    for closer in response._resource_closers:
        with contextlib.suppress(Exception):  # as Django's close: a closer's failure does not stop the others
            closer()
    response._resource_closers.clear()
    response.closed = True
    await send_request_signal(request_finished, response._handler_class)
