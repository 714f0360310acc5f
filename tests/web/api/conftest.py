"""Helpers for the API tests: finish queued analyses through the services, as the runner would."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest
import pytest_asyncio
import uvicorn
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from linkmeter.engine.results import CallResult, CallStatus, UrlResult, UrlStatus
from linkmeter.web.links.services.queue import analysis_claim_next, analysis_complete
from tests.waiting import wait_until_async
from tests.web.conftest import use_dispatcher

SIGNALS: dict[str, Any] = {
    "page.status": 200,
    "page.title": "=HYPERLINK(\"http://evil.example\")",
    "reddit.subreddits": ["python", "django"],
    "hackernews.points": 42,
    "rdap.registered": True,
}


def url_result(url: str, status: UrlStatus = UrlStatus.DONE, signals: dict[str, Any] | None = None) -> UrlResult:
    values = {"url": url, **(SIGNALS if signals is None else signals)}
    calls = {
        "page": CallResult("page", CallStatus.OK, 12.5, 1, "", {"page.status": 200}, {"status": 200, "body": "<html>"}),
        "rdap": CallResult("rdap", CallStatus.ERROR, 3.0, 3, "HTTP 503", {}, None),
    }
    return UrlResult(url, status, values, calls, 20.0)


def complete_queued(*, limit: int = 1000, status: UrlStatus = UrlStatus.DONE,
                    signals: dict[str, Any] | None = None) -> list[int]:
    """Claim up to ``limit`` queued analyses and store a result for each; returns their ids."""
    claimed = analysis_claim_next(limit=limit, deadline_seconds=60)
    analysis_complete(outcomes=[(work.analysis_id, url_result(work.url, status, signals)) for work in claimed])
    return [work.analysis_id for work in claimed]


class CompletingDispatcher:
    """Finishes analyses the moment their submission commits (a runner that is infinitely fast)."""

    def enqueue(self, analysis_ids: Sequence[int], *, priority: int, batch_id: int | None = None) -> None:
        complete_queued()


@pytest.fixture
def instant_runner() -> Iterator[None]:
    use_dispatcher(CompletingDispatcher())
    yield
    use_dispatcher(None)


class SignallingDispatcher:
    """Sets ``committed`` when a submission's analyses are committed and handed over."""

    def __init__(self) -> None:
        self.committed = threading.Event()

    def enqueue(self, analysis_ids: Sequence[int], *, priority: int, batch_id: int | None = None) -> None:
        self.committed.set()


@pytest.fixture
def signalling_dispatcher() -> Iterator[SignallingDispatcher]:
    dispatcher = SignallingDispatcher()
    use_dispatcher(dispatcher)
    yield dispatcher
    use_dispatcher(None)


def _readers_skip_table_locks(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA read_uncommitted = 1")


@pytest.fixture
def concurrent_sqlite() -> Iterator[None]:
    """Lets one thread read while another writes. The in-memory test database is a shared cache, where a
    reader fails at once with "table is locked" while another connection writes; the WAL database of the
    real service lets readers through. Connections opened from now on read without table locks."""
    connection_created.connect(_readers_skip_table_locks)
    yield
    connection_created.disconnect(_readers_skip_table_locks)


@pytest_asyncio.fixture
async def live_api() -> AsyncIterator[str]:
    """The Django ASGI application served by uvicorn on a loopback port (as `linkmeter serve` does); its
    base URL. Needs ``django_db(transaction=True)``: the server's threads see only committed data."""
    from linkmeter.web.config.asgi import application

    server = uvicorn.Server(uvicorn.Config(application, lifespan="off", log_level="warning"))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        await wait_until_async(lambda: server.started or serving.done(), 10, interval=0.01,
                               message="uvicorn to start or stop")
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        server.should_exit = True
        await serving
