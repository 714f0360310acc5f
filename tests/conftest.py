"""Fixtures shared by every test: a running emulator, its LINKMETER_* environment, a client for its web, the
emulator's DNS server alone, and modules added to a package for one test."""

from __future__ import annotations

import contextlib
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.abc import AbstractResolver, ResolveResult

from linkmeter.emulator.client import environment
from linkmeter.emulator.dnsserver import DnsServer, start_dns_server
from linkmeter.emulator.knobs import Knobs
from linkmeter.emulator.server import RunningEmulator, start_emulator
from tests.emulated_dns import WORLD

MakeEmulator = Callable[..., Awaitable[RunningEmulator]]
ServeDns = Callable[..., Awaitable[DnsServer]]
AddModules = Callable[[ModuleType, Mapping[str, str]], None]


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
    async with contextlib.AsyncExitStack() as started:
        async def make(**options: Any) -> RunningEmulator:
            running = await start_emulator(**options)
            started.push_async_callback(running.close)
            return running

        yield make


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


@pytest_asyncio.fixture
async def serve_dns() -> AsyncIterator[ServeDns]:
    """``await serve_dns(**knobs)``: the emulator's DNS server for tests.emulated_dns.WORLD on a loopback port,
    with those Knobs; closed at teardown."""
    async with contextlib.AsyncExitStack() as started:
        async def serve(**knobs: Any) -> DnsServer:
            running = await start_dns_server(WORLD, host="127.0.0.1", port=0, answer_address="127.0.0.1",
                                             knobs=Knobs(**knobs))
            started.push_async_callback(running.close)
            return running

        yield serve


@pytest_asyncio.fixture
async def dns_server(serve_dns: ServeDns) -> DnsServer:
    """The emulator's DNS server with default knobs."""
    return await serve_dns()


@pytest.fixture
def add_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AddModules]:
    """``add_modules(package, {name: source})``: modules found in ``package`` (as new files in it would be) for
    this test only; forgotten by ``sys.modules`` at teardown."""
    added: list[str] = []

    def add(package: ModuleType, sources: Mapping[str, str]) -> None:
        folder = tmp_path / f"more-{package.__name__}-{len(added)}"
        folder.mkdir()
        for name, source in sources.items():
            (folder / f"{name}.py").write_text(source)
            added.append(f"{package.__name__}.{name}")
        monkeypatch.setattr(package, "__path__", [*package.__path__, str(folder)])

    yield add
    for name in added:
        sys.modules.pop(name, None)
