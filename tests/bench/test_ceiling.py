"""The ceiling's resolver: page hosts are looked up in the emulator's DNS, as the engine's client does."""

from __future__ import annotations

import socket

import dns.asyncresolver
import dns.nameserver
import pytest

from linkmeter.bench.ceiling import _EmulatorDnsResolver
from linkmeter.emulator.dnsserver import start_dns_server
from linkmeter.emulator.knobs import Knobs
from linkmeter.emulator.world import World
from tests.emulator.test_dnsserver import find_domain


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
