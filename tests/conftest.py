"""Fixtures shared by every test: a running emulator, its LINKMETER_* environment, a client for its web."""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.abc import AbstractResolver, ResolveResult

from linkmeter.emulator.client import environment
from linkmeter.emulator.knobs import Knobs
from linkmeter.emulator.server import RunningEmulator, start_emulator

MakeEmulator = Callable[..., Awaitable[RunningEmulator]]


class EmulatorResolver(AbstractResolver):
    """Resolves every name to the emulator and maps ports 80/443 to its HTTP/HTTPS listeners."""

    def __init__(self, emulator: RunningEmulator) -> None:
        self._ports = {80: emulator.http_port, 443: emulator.https_port}
        self._address = emulator.host

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host=self._address, port=self._ports.get(port, port),
                              family=socket.AF_INET, proto=0, flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        return None


@pytest_asyncio.fixture
async def emulator_factory() -> AsyncIterator[MakeEmulator]:
    """``await emulator_factory(knobs=Knobs(...), **start_options)``: emulators closed at teardown."""
    started: list[RunningEmulator] = []

    async def make(**options: Any) -> RunningEmulator:
        running = await start_emulator(**options)
        started.append(running)
        return running

    yield make
    for running in started:
        await running.close()


@pytest_asyncio.fixture
async def emulator(emulator_factory: MakeEmulator) -> RunningEmulator:
    """An emulator on ephemeral loopback ports, default knobs (no latency, no faults), seed 0."""
    return await emulator_factory(knobs=Knobs())


@pytest.fixture
def emulator_ca_file(emulator: RunningEmulator, tmp_path: Path) -> str:
    path = tmp_path / "emulator-ca.pem"
    path.write_text(emulator.ca_pem)
    return str(path)


@pytest.fixture
def emulator_env(emulator: RunningEmulator, emulator_ca_file: str) -> dict[str, str]:
    """The LINKMETER_* environment pointing every provider and the fetcher at ``emulator``."""
    return environment(emulator.info(), ca_file=emulator_ca_file)


def web_session_for(emulator: RunningEmulator, *, trust: bool = True) -> aiohttp.ClientSession:
    """A plain aiohttp session reaching ``emulator`` for any URL (``trust=False``: system CAs only)."""
    context = ssl.create_default_context(cadata=emulator.ca_pem) if trust else ssl.create_default_context()
    connector = aiohttp.TCPConnector(resolver=EmulatorResolver(emulator), ssl=context)
    return aiohttp.ClientSession(connector=connector)


@pytest_asyncio.fixture
async def web_session(emulator: RunningEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp session for which every URL (https://news.example.org/a/1, ...) reaches ``emulator``."""
    async with web_session_for(emulator) as session:
        yield session
