"""The emulated provider APIs, one declarative module per provider, mounted at ``/<NAME>`` by the server.

A module is an API when it has:

- ``NAME``: the provider's name (also the mount path, the knobs' name and ``LINKMETER_<NAME>_BASE_URL``);
- ``routes``: an ``aiohttp.web.RouteTableDef`` of the provider's real paths; handlers reach the World as
  ``request.app[WORLD]``, the knobs (``slow_scale``, ``published_limits``) as ``request.app[KNOBS]``;
- ``sample(world) -> Sample``: one request this API answers from its World (with whatever key or token it
  needs): the same-seed test asks it of two servers of one seed and expects the same answer;
- optionally ``error_response(status)`` (500 or 503) and ``rate_limited_response(retry_after)`` (429):
  the knobs' answers in the provider's own shape; without them a generic JSON answer is sent;
- ``DEMO_KEY`` for a keyed API: the key it accepts (``--demo`` and ``--emulator`` set it for the provider).

Facts only this provider shows (its stories, posts, captures) are functions of the World in the module;
facts several providers share (a domain's age, popularity, listings) are the World's. Modules whose name
starts with ``_`` are not mounted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from linkmeter.emulator.knobs import Knobs
from linkmeter.emulator.world import World

WORLD: web.AppKey[World] = web.AppKey("world", World)
KNOBS: web.AppKey[Knobs] = web.AppKey("knobs", Knobs)


@dataclass(frozen=True, slots=True)
class Sample:
    """A request to an API's mount (``path`` includes the query): a form body in ``data``, JSON in ``json``."""

    path: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, str] | None = None
    json: Any = None
