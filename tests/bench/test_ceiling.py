"""The ceiling: page hosts are looked up in the emulator's DNS, as the engine's client does; a bulk query's request is
replayed once, with its recorded body, for every URL whose key it carried."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any

import dns.asyncresolver
import dns.nameserver
import pytest
from aiohttp import web

from linkmeter.assembly import build_engine
from linkmeter.bench.ceiling import _EmulatorDnsResolver, replay
from linkmeter.bench.recorder import Recording, instrument
from linkmeter.emulator.apis import safebrowsing as safebrowsing_api
from linkmeter.emulator.dnsserver import start_dns_server
from linkmeter.emulator.knobs import Knobs
from linkmeter.emulator.parts import api_app
from linkmeter.emulator.server import RunningEmulator
from linkmeter.emulator.world import World
from tests.emulator.test_dnsserver import find_domain

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ServerFactory = Callable[..., Awaitable[Any]]
URLS = [f"https://www.shop{i}.com/item/{i}" for i in range(30)]


async def test_page_hosts_resolve_through_the_emulators_dns_with_the_ports_mapped() -> None:
    server = await start_dns_server(World(0), host="127.0.0.1", port=0, answer_address="127.0.0.1", knobs=Knobs())
    try:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver("127.0.0.1", server.port)]
        ceiling = _EmulatorDnsResolver(resolver, {443: 8443})
        host = "www." + find_domain(lambda facts: facts.registered and facts.a_count == 1)
        [result] = await ceiling.resolve(host, 443, socket.AF_INET)
        assert (result["hostname"], result["host"], result["port"]) == (host, "127.0.0.1", 8443)
        assert (await ceiling.resolve(host, 80))[0]["port"] == 80  # unmapped ports stay as they are
        with pytest.raises(OSError, match="cannot resolve"):
            await ceiling.resolve("nxdomain-nothing-here.com", 443)
    finally:
        await server.close()


async def test_the_ceiling_replays_each_bulk_query_once_with_its_recorded_post_body(
        aiohttp_server: ServerFactory, emulator: RunningEmulator) -> None:
    bodies: list[list[str]] = []  # the URLs of every threatMatches:find request, in arrival order

    @web.middleware
    async def keep_body(request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.json()
        bodies.append(sorted(entry["url"] for entry in body["threatInfo"]["threatEntries"]))
        return await handler(request)

    root = web.Application()
    app = api_app(safebrowsing_api, World(0))
    app.middlewares.append(keep_body)
    root.add_subapp("/safebrowsing", app)
    server = await aiohttp_server(root)
    engine = build_engine({"LINKMETER_SAFEBROWSING_BASE_URL": str(server.make_url("/safebrowsing")),
                           "LINKMETER_SAFEBROWSING_API_KEY": safebrowsing_api.DEMO_KEY, "LINKMETER_BULK": "on",
                           "LINKMETER_FETCH_ALLOW": "127.0.0.0/8"},
                          select=["safebrowsing"], relax_rate_limits=True)
    recording = Recording()
    instrument(engine, recording)
    try:
        results = [result async for result in engine.analyze_many(URLS, concurrency=len(URLS))]
    finally:
        await engine.close()
    calls = [result.providers["safebrowsing"] for result in results]
    assert all(call.status == "ok" for call in calls), calls[:2]
    sent = list(bodies)
    assert 0 < len(sent) < len(URLS) and sorted(url for body in sent for url in body) == sorted(URLS)
    info = emulator.info()
    assert info.dns is not None
    run = await replay(recording, concurrency=len(URLS), port_map=info.port_map, dns_server=info.dns,
                       ca_pem=info.ca_pem)
    assert run.errors == 0 and run.calls == len(sent) and len(run.url_seconds) == len(URLS)
    assert sorted(bodies[len(sent):]) == sorted(sent)  # the same requests, the same bodies, each once
