"""Fixtures for the emulated API tests: the test module's World (its ``SEED``) and a client of its ``API``'s
application over that World, at the root or, when the module sets ``MOUNT``, under that path as the emulator
mounts it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from linkmeter.emulator.parts import api_app
from linkmeter.emulator.world import World

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def world(request: pytest.FixtureRequest) -> World:
    return World(request.module.SEED)


@pytest.fixture
async def client(aiohttp_client: ClientFactory, world: World, request: pytest.FixtureRequest) -> TestClient[Any, Any]:
    app = api_app(request.module.API, world)
    mount = getattr(request.module, "MOUNT", None)
    if mount is None:
        return await aiohttp_client(app)
    root = web.Application()
    root.add_subapp(mount, app)
    return await aiohttp_client(root)
