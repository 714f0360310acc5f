"""The emulator's parts and the providers each serves: the API modules (found by file), the web, the DNS server.

Every provider that asks something upstream is served by exactly one part: an API module of
``linkmeter.emulator.apis`` (see its docstring for the module shape), the synthetic web (``web.SERVES``: the
page fetcher) or the DNS server (``dnsserver.SERVES``). The knobs take these names.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import cast

from aiohttp import web

from linkmeter.emulator import answers, dnsserver
from linkmeter.emulator import apis as apis_package
from linkmeter.emulator import web as web_part
from linkmeter.emulator.apis import KNOBS, WORLD
from linkmeter.emulator.knobs import Knobs
from linkmeter.emulator.world import World

WEB = "web"
DNS = "dns server"


@dataclass(frozen=True, slots=True)
class Part:
    """An emulator part's knob answers: its module's ``error_response``/``rate_limited_response`` hooks,
    else the generic JSON ones."""

    name: str
    module: ModuleType

    def error_response(self, status: int) -> web.Response:
        return self._hook("error_response", answers.json_error)(status)

    def rate_limited_response(self, retry_after: float) -> web.Response:
        return self._hook("rate_limited_response", answers.json_rate_limited)(retry_after)

    def _hook[T](self, name: str, default: Callable[[T], web.Response]) -> Callable[[T], web.Response]:
        make = getattr(self.module, name, None)
        return cast(Callable[[T], web.Response], make) if callable(make) else default


@dataclass(frozen=True, slots=True)
class ApiMount(Part):
    """One emulated provider API, found as a module of linkmeter.emulator.apis."""

    def create_app(self, world: World, knobs: Knobs | None = None) -> web.Application:
        """The module's routes as an application, with the World at ``app[WORLD]``, the knobs at ``app[KNOBS]``."""
        return api_app(self.module, world, knobs)


def api_app(module: ModuleType, world: World, knobs: Knobs | None = None) -> web.Application:
    app = web.Application()
    app[WORLD] = world
    app[KNOBS] = knobs or Knobs()
    app.add_routes(cast(web.RouteTableDef, module.routes))
    return app


def discover_apis() -> list[ApiMount]:
    """Every module of linkmeter.emulator.apis with ``NAME`` and ``routes``: adding a file adds an API."""
    mounts: list[ApiMount] = []
    for info in pkgutil.iter_modules(apis_package.__path__, apis_package.__name__ + "."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        module = importlib.import_module(info.name)
        name = getattr(module, "NAME", None)
        if isinstance(name, str) and isinstance(getattr(module, "routes", None), web.RouteTableDef):
            mounts.append(ApiMount(name, module))
    return sorted(mounts, key=lambda mount: mount.name)


def demo_keys() -> dict[str, str]:
    """Provider name -> the key its emulated API accepts (``DEMO_KEY`` of the keyed APIs' modules)."""
    keys = {mount.name: getattr(mount.module, "DEMO_KEY", None) for mount in discover_apis()}
    return {name: key for name, key in keys.items() if isinstance(key, str)}


def web_answers() -> Part:
    """The synthetic web's knob answers (an nginx-like HTML 5xx and 429)."""
    return Part(web_part.PROVIDER, web_part)


def served_providers() -> dict[str, str]:
    """Provider name -> the part serving it (an API's name, ``WEB`` or ``DNS``): what the knobs accept."""
    served = {name: WEB for name in web_part.SERVES}
    served.update({name: DNS for name in dnsserver.SERVES})
    served.update({mount.name: mount.name for mount in discover_apis()})
    return dict(sorted(served.items()))
