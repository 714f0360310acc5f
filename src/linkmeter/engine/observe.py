"""Hooks for watching the engine: an observer told of every finished call and URL, and log context fields."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import Protocol

from linkmeter.engine.results import CallResult, UrlResult

log = logging.getLogger(__name__)

LOG_FIELDS = ("analysis_id", "batch_id", "provider", "url")  # what a log line may carry about its work

_EMPTY: Mapping[str, object] = MappingProxyType({})
_log_context: ContextVar[Mapping[str, object]] = ContextVar("linkmeter_log_context", default=_EMPTY)


class EngineObserver(Protocol):
    """Told of every finished provider call (once per provider per URL, whatever its status) and every
    finished URL. Called on the event loop: must be quick and must not block."""

    def call_finished(self, provider: str, result: CallResult) -> None: ...

    def url_finished(self, result: UrlResult) -> None: ...


class Observers:
    """Several observers as one, in order; one that raises is logged and does not stop the others."""

    def __init__(self, *observers: EngineObserver) -> None:
        self.observers = observers

    def call_finished(self, provider: str, result: CallResult) -> None:
        for observer in self.observers:
            notify_call(observer, provider, result)

    def url_finished(self, result: UrlResult) -> None:
        for observer in self.observers:
            notify_url(observer, result)


def notify_call(observer: EngineObserver, provider: str, result: CallResult) -> None:
    try:
        observer.call_finished(provider, result)
    except Exception:  # watching must never cost a result
        log.exception("engine observer %r failed on a call of %s", observer, provider)


def notify_url(observer: EngineObserver, result: UrlResult) -> None:
    try:
        observer.url_finished(result)
    except Exception:  # watching must never cost a result
        log.exception("engine observer %r failed on a URL", observer)


def with_observer(current: EngineObserver | None, added: EngineObserver) -> EngineObserver:
    """``current`` and ``added`` together (``added`` alone when there is none; unchanged if already in)."""
    if current is None or current is added:
        return added
    if isinstance(current, Observers):
        return current if added in current.observers else Observers(*current.observers, added)
    return Observers(current, added)


def log_context() -> Mapping[str, object]:
    """The context fields (analysis_id, batch_id, provider, url, ...) of the work this code runs for."""
    return _log_context.get()


class logging_context:  # lower case: used like the function it was, `with logging_context(url=...):`
    """Every log record made inside (also in tasks started inside) carries these fields; None removes one.

    A class rather than a generator-based context manager: it is entered for every provider call, where the
    generator machinery cost a few per cent of the engine's CPU."""

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: object) -> None:
        self._fields = fields

    def __enter__(self) -> None:
        merged = {**_log_context.get(), **self._fields}
        if None in merged.values():
            merged = {k: v for k, v in merged.items() if v is not None}
        self._token = _log_context.set(MappingProxyType(merged))

    def __exit__(self, *exc: object) -> None:
        _log_context.reset(self._token)
