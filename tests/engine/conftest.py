"""Fixtures shared by the engine tests: HTTP clients closed after the test, a CA, a client of the real Redis, a
table-driven address lookup."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
import redis.asyncio as aioredis
import trustme
from redis.exceptions import RedisError

from linkmeter.engine.http import HttpClient, HttpSettings
from linkmeter.engine.provider import ProviderError
from linkmeter.engine.ssrf import AddressLookup
from tests.services import REDIS_URL

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


def lookup_from(table: Mapping[str, list[str]]) -> AddressLookup:
    """An address lookup answering from ``table``; a name not in it fails as an unresolvable one does."""
    async def lookup(host: str) -> list[str]:
        if host not in table:
            raise ProviderError(f"cannot resolve {host}: not in the test table")
        return list(table[host])

    return lookup


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A certificate authority of the test's own (trustme)."""
    return trustme.CA()


@pytest.fixture
async def admin() -> AsyncIterator[aioredis.Redis]:
    """A client of the test Redis (LINKMETER_TEST_REDIS_URL); the test fails, never skips, without one."""
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        pytest.fail(f"Redis at {REDIS_URL} is not reachable ({exc!r}); these tests need a running Redis")
    yield client
    await client.aclose()
