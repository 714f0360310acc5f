"""Hands committed analyses to whatever runs them: the in-process runner now, Celery when configured."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Dispatcher(Protocol):
    def enqueue(self, analysis_ids: Sequence[int], *, priority: int) -> None:
        """Called after the transaction that created the analyses commits; must not block."""
        ...


class DatabaseQueue:
    """The default: analyses wait in the database (status queued) until a runner claims them."""

    def enqueue(self, analysis_ids: Sequence[int], *, priority: int) -> None:
        return None


_dispatcher: Dispatcher = DatabaseQueue()


def set_dispatcher(dispatcher: Dispatcher) -> None:
    global _dispatcher
    _dispatcher = dispatcher


def get_dispatcher() -> Dispatcher:
    return _dispatcher
