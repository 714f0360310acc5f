"""The process's runtime: installed once at start-up, a clear error when read before, and what it hands on."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from linkmeter.web import runtime
from linkmeter.web.jobs import worker
from linkmeter.web.runtime import DatabaseQueue, Runtime, RuntimeNotInstalled


class Webhooks:
    delivers_webhooks = True

    def enqueue(self, analysis_ids: Sequence[int], *, priority: int, batch_id: int | None = None) -> None:
        return None


def test_reading_the_runtime_before_start_up_installed_one_says_so() -> None:
    runtime.uninstall()
    assert runtime.installed() is None
    with pytest.raises(RuntimeNotInstalled, match="`linkmeter serve` and `linkmeter worker` install one"):
        runtime.current()


def test_a_submission_outside_serve_and_worker_waits_in_the_database_queue() -> None:
    runtime.uninstall()  # a script, the Django shell: nothing installed
    assert isinstance(runtime.get_dispatcher(), DatabaseQueue)
    assert runtime.callbacks_supported() is False


def test_the_installed_runtime_hands_on_its_dispatcher() -> None:
    assert isinstance(runtime.get_dispatcher(), DatabaseQueue)  # the tests' default: the database queue
    assert runtime.callbacks_supported() is False
    dispatcher = Webhooks()
    installed = runtime.install(Runtime(dispatcher=dispatcher))
    assert runtime.current() is installed and runtime.get_dispatcher() is dispatcher
    assert runtime.callbacks_supported() is True
    assert installed.engine is None and installed.counts.entries == {}


def test_the_worker_runtime_is_read_only_in_a_worker_process() -> None:
    with pytest.raises(RuntimeNotInstalled, match="not a started linkmeter worker"):
        worker.current()
    worker.shutdown()  # nothing to close: the installed runtime is not a worker's
    assert runtime.installed() is not None
