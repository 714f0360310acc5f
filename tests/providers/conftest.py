"""Shared fixtures for provider tests: a real HTTP client allowed to reach the local test servers, the test
module's World (its ``SEED``), an emulated provider API or a stub upstream on loopback, one provider call, and
the check that an upstream failure is the right ProviderError."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from linkmeter.emulator.parts import api_app
from linkmeter.emulator.world import World
from linkmeter.engine.dns import DnsClient
from linkmeter.engine.http import HttpClient, HttpSettings
from linkmeter.engine.provider import CallContext, Collected, Provider, ProviderError

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Answer = Callable[[], web.StreamResponse]


@dataclass(frozen=True, slots=True)
class EmulatedApi:
    """An emulated provider API mounted at ``/<NAME>`` as the emulator mounts it; requests counted by path and
    kept in order (their bodies read, so ``await request.read()`` still gives them)."""

    base_url: str
    hits: Counter[str]
    requests: list[web.Request]


EmulateApi = Callable[[ModuleType], Awaitable[EmulatedApi]]


class StubApi(Protocol):
    async def __call__(self, routes: Mapping[str, Handler], method: str = "GET") -> str: ...


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with HttpClient(HttpSettings(allow=["127.0.0.0/8"])) as client:
        yield client


@pytest.fixture
def world(request: pytest.FixtureRequest) -> World:
    """The World of the test module's ``SEED``."""
    return World(request.module.SEED)


@pytest.fixture
def emulated_api(aiohttp_server: ServerFactory, world: World) -> EmulateApi:
    """``await emulated_api(linkmeter.emulator.apis.<name>)``: that API over ``world`` on a loopback server."""

    async def start(module: ModuleType) -> EmulatedApi:
        hits: Counter[str] = Counter()
        requests: list[web.Request] = []

        @web.middleware
        async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
            hits[request.path] += 1
            await request.read()
            requests.append(request)
            return await handler(request)

        root = web.Application(middlewares=[count])
        root.add_subapp(f"/{module.NAME}", api_app(module, world))
        server = await aiohttp_server(root)
        return EmulatedApi(str(server.make_url(f"/{module.NAME}")), hits, requests)

    return start


@pytest.fixture
async def api(emulated_api: EmulateApi, request: pytest.FixtureRequest) -> EmulatedApi:
    """The test module's ``API`` (an emulator API module) emulated over ``world``."""
    return await emulated_api(request.module.API)


@pytest.fixture
def stub_api(aiohttp_server: ServerFactory) -> StubApi:
    """``await stub_api({path: handler})``: a loopback server answering GETs (or ``method``) of those paths; its
    base URL."""

    async def start(routes: Mapping[str, Handler], method: str = "GET") -> str:
        app = web.Application()
        for path, handler in routes.items():
            app.router.add_route(method, path, handler)
        server = await aiohttp_server(app)
        return str(server.make_url("")).rstrip("/")

    return start


def call_context(provider: Provider, http: HttpClient) -> CallContext:
    """A context for ``provider``'s calls through ``http`` (no DNS server is asked: the DNS client is never used)."""
    return CallContext(http=http, dns=DnsClient([("127.0.0.1", 53)]), config=provider.config)


async def collect_from(provider: Provider, http: HttpClient, signals: dict[str, Any]) -> Collected:
    """One ``provider.collect`` through ``http``."""
    return await provider.collect(call_context(provider, http), signals)


async def collect_many_from(provider: Provider, http: HttpClient,
                            batch: Sequence[dict[str, Any]]) -> list[Collected | ProviderError]:
    """One ``provider.collect_many`` of ``batch`` through ``http``."""
    return list(await provider.collect_many(call_context(provider, http), batch))


def answered(result: Collected | ProviderError) -> dict[str, Any]:
    """The signals of a batch item that must have been answered."""
    assert isinstance(result, Collected), result
    return result.signals


def answering(answer: Answer) -> Handler:
    """A handler sending a fresh ``answer()`` to every request."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return answer()

    return handler


async def raises_provider_error(call: Awaitable[object], **expected: object) -> ProviderError:
    """Awaits ``call``, which must raise a ProviderError with the ``expected`` attribute values (``retryable=``,
    ``status=``, ``rate_limited=``, ``retry_after=``)."""
    with pytest.raises(ProviderError) as caught:
        await call
    assert {name: getattr(caught.value, name) for name in expected} == expected
    return caught.value
