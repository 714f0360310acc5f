"""Shared fixtures for provider tests: a real HTTP client allowed to reach the local test servers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from linkmeter.engine.http import HttpClient, HttpSettings


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with HttpClient(HttpSettings(allow=["127.0.0.0/8"])) as client:
        yield client
