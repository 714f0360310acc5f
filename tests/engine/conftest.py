"""Fixtures shared by the engine tests: HTTP clients that are closed after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from linkmeter.engine.http import HttpClient, HttpSettings
from linkmeter.engine.ssrf import AddressLookup

MakeClient = Callable[..., HttpClient]


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    """``make_client(settings=None, lookup=None, **settings_fields)`` -> an HttpClient closed at teardown."""
    clients: list[HttpClient] = []

    def make(settings: HttpSettings | None = None, *, lookup: AddressLookup | None = None,
             **fields: Any) -> HttpClient:
        client = HttpClient(settings or HttpSettings(**fields), lookup=lookup)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
