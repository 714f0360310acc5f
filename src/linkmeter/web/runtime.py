"""The process's one runtime: what `linkmeter serve` or a worker was started with (the dispatcher, the engine it
runs, the providers page's count memo), installed once at start-up and read by the web code.

Below ``linkmeter.web.links`` and ``linkmeter.web.jobs``: the services reach the dispatcher through it, and the
jobs side builds and installs it (``web.serve``, ``web.jobs.commands``, ``web.jobs.worker``). Tests install
one per test (``tests/web/conftest.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from linkmeter.engine.runner import Engine


class RuntimeNotInstalled(RuntimeError):
    """The runtime was read before start-up installed it (or after it was uninstalled)."""


class Dispatcher(Protocol):
    def enqueue(self, analysis_ids: Sequence[int], *, priority: int, batch_id: int | None = None) -> None:
        """Called after the transaction that created the analyses of batch ``batch_id`` commits (also with
        no ids, when every URL of the batch was answered by an earlier analysis); must not block."""
        ...


class DatabaseQueue:
    """Analyses wait in the database (status queued) until a runner claims them: the dispatcher of a process
    that runs no runner of its own (a worker, a management command)."""

    def enqueue(self, analysis_ids: Sequence[int], *, priority: int, batch_id: int | None = None) -> None:
        return None


# (where, provider) -> (reuse until (the clock's time), entries or None). ``where`` (hashable) is an engine's
# cache object, or ("redis", url, prefix) for the Redis the workers share.
type CountKey = tuple[object, str]


@dataclass(slots=True)
class CacheCounts:
    """The cache entry counts the providers page reuses for a while (``web.jobs.health``), by its clock."""

    clock: Callable[[], float] = time.monotonic
    entries: dict[CountKey, tuple[float, int | None]] = field(default_factory=dict)

    def forget(self) -> None:
        self.entries.clear()


class Runtime:
    """What this process runs with: ``dispatcher`` hands committed analyses on (the embedded runner, Celery,
    or the database queue); ``engine`` is the engine this process runs (None: it runs none, and provider
    health is what the environment implies); ``counts`` memoises the providers page's cache counts."""

    def __init__(self, *, dispatcher: Dispatcher | None = None, engine: Engine | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 spam_jobs: Callable[[int], None] | None = None) -> None:
        self.dispatcher: Dispatcher = dispatcher if dispatcher is not None else DatabaseQueue()
        # Starts a spam job (training, rescoring) by id after its row commits; must not block. None: a thread of
        # this process runs it (embedded); the Celery mode sends a task.
        self.spam_jobs = spam_jobs
        self.engine: Engine | None = engine
        self.counts = CacheCounts(clock)

    @property
    def delivers_webhooks(self) -> bool:
        """Whether the dispatcher delivers batch webhooks (the Celery one, with a signing secret)."""
        return bool(getattr(self.dispatcher, "delivers_webhooks", False))


_installed: Runtime | None = None
_DATABASE_QUEUE = DatabaseQueue()


def install(runtime: Runtime) -> Runtime:
    """Make ``runtime`` this process's (at start-up; it replaces any earlier one). Returns it."""
    global _installed
    _installed = runtime
    return runtime


def uninstall() -> None:
    """Forget the runtime (when the process stops serving)."""
    global _installed
    _installed = None


def current() -> Runtime:
    """The installed runtime. Raises RuntimeNotInstalled before start-up installed one."""
    if _installed is None:
        raise RuntimeNotInstalled(
            "no linkmeter runtime is installed in this process: `linkmeter serve` and `linkmeter worker` install "
            "one at start-up (code that runs outside them calls linkmeter.web.runtime.install(Runtime()) first)")
    return _installed


def installed() -> Runtime | None:
    """The installed runtime, or None (for code that has a fallback, like provider health)."""
    return _installed


def get_dispatcher() -> Dispatcher:
    """The installed runtime's dispatcher (``services.analysis_submit`` hands its analyses to it). Outside
    `serve` and `worker` (a script, the Django shell, a management command) none is installed: the analyses
    then wait in the database queue, which the embedded runner and the orphan sweep take them from."""
    runtime = installed()
    return runtime.dispatcher if runtime is not None else _DATABASE_QUEUE


def callbacks_supported() -> bool:
    """Whether the installed dispatcher delivers batch webhooks (the Celery one, with a signing secret)."""
    runtime = installed()
    return runtime is not None and runtime.delivers_webhooks
