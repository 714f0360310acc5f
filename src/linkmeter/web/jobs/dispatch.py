"""Hands committed analyses to whatever runs them: the in-process runner, or Celery when configured."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Dispatcher(Protocol):
    def enqueue(self, analysis_ids: Sequence[int], *, priority: int, batch_id: int | None = None) -> None:
        """Called after the transaction that created the analyses of batch ``batch_id`` commits (also with
        no ids, when every URL of the batch was answered by an earlier analysis); must not block."""
        ...


class DatabaseQueue:
    """The default: analyses wait in the database (status queued) until a runner claims them."""

    def enqueue(self, analysis_ids: Sequence[int], *, priority: int, batch_id: int | None = None) -> None:
        return None


_dispatcher: Dispatcher = DatabaseQueue()


def set_dispatcher(dispatcher: Dispatcher) -> None:
    global _dispatcher
    _dispatcher = dispatcher


def get_dispatcher() -> Dispatcher:
    return _dispatcher


def callbacks_supported() -> bool:
    """Whether the current dispatcher delivers batch webhooks (the Celery one, with a signing secret)."""
    return bool(getattr(_dispatcher, "delivers_webhooks", False))
