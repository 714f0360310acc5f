"""Database work from the event loop: one hop to a small pool of threads that keep their connections.

Under ASGI, Django runs each request's sync code in a thread made for that request, so every request that
reads the database starts a thread and opens a connection (with SQLite's PRAGMAs) and closes both at the end.
``linkmeter serve`` installs this pool instead for the hot API handlers: a few long-lived threads, each with its
own connection, closed after an error that left it unusable or once it is KEEP_SECONDS old. Without the pool
(tests, other processes) ``run`` is asgiref's ``sync_to_async``, the request's own thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections

THREADS = 4  # SQLite serialises writes anyway; reads of one request take well under a millisecond
KEEP_SECONDS = 300.0  # a pool thread's connection is reopened this often (a PostgreSQL fail-over, a restart)

_pool: ThreadPoolExecutor | None = None
_opened = threading.local()


async def run[T](function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in a pool thread (the request's thread when no pool is installed)."""
    if _pool is None:
        return await sync_to_async(function, thread_sensitive=True)(*args)
    return await sync_to_async(_tidy_after(function), thread_sensitive=False, executor=_pool)(*args)


def _tidy_after[T](function: Callable[..., T]) -> Callable[..., T]:
    def call(*args: Any) -> T:
        try:
            return function(*args)
        finally:
            tidy()
    return call


def tidy() -> None:
    """Close this thread's connections that an error left unusable, that are in a transaction left open, or
    that are older than KEEP_SECONDS; keep the rest for the next call."""
    now = time.monotonic()
    opened: dict[str, float] = _opened.__dict__
    for connection in connections.all(initialized_only=True):
        if connection.connection is None:
            opened.pop(connection.alias, None)
            continue
        since = opened.setdefault(connection.alias, now)
        broken = connection.errors_occurred and not connection.is_usable()
        if broken or connection.in_atomic_block or not connection.get_autocommit() or now - since > KEEP_SECONDS:
            connection.close()
            opened.pop(connection.alias, None)
        else:
            connection.errors_occurred = False


def install(threads: int = THREADS) -> None:
    """Start the pool (``linkmeter serve``, once its event loop runs)."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="linkmeter-db")


def uninstall() -> None:
    """Stop the pool (its connections close with their threads)."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True)
