"""The emulated provider APIs, one declarative module per provider, mounted at ``/<NAME>`` by the server.

A module is an API when it has:

- ``NAME``: the provider's name (also the mount path, the knobs' name and ``LINKMETER_<NAME>_BASE_URL``);
- ``routes``: an ``aiohttp.web.RouteTableDef`` of the provider's real paths; handlers reach the World as
  ``request.app[WORLD]``;
- optionally ``error_response(status)`` (500 or 503) and ``rate_limited_response(retry_after)`` (429):
  the knobs' answers in the provider's own shape; without them a generic JSON answer is sent.

Facts only this provider shows (its stories, posts, captures) are functions of the World in the module;
facts several providers share (a domain's age, popularity, listings) are the World's. Modules whose name
starts with ``_`` are not mounted.
"""

from __future__ import annotations

from aiohttp import web

from linkmeter.emulator.world import World

WORLD: web.AppKey[World] = web.AppKey("world", World)
