"""The emulator's DNS server in tests: the World it serves, a domain of it with the facts wanted, a client and a
provider call context pointed at a server (the ``serve_dns``/``dns_server`` fixtures are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

from linkmeter.emulator.dnsserver import DnsServer
from linkmeter.emulator.world import DomainFacts, World
from linkmeter.engine.dns import DnsClient
from linkmeter.engine.http import HttpClient
from linkmeter.engine.provider import CallContext, ProviderConfig

WORLD = World(0)


def find_domain(predicate: Callable[[DomainFacts], bool], prefix: str = "site") -> str:
    """The first of ``<prefix>0.com``, ``<prefix>1.com``, ... whose facts in WORLD satisfy ``predicate``."""
    for i in range(20_000):
        name = f"{prefix}{i}.com"
        if predicate(WORLD.domain(name)):
            return name
    raise AssertionError("no such domain in the world")


def dns_client(server: DnsServer, *, timeout: float = 2.0) -> DnsClient:
    return DnsClient([("127.0.0.1", server.port)], timeout=timeout)


def dns_context(server: DnsServer, *, timeout: float = 2.0, config: ProviderConfig | None = None) -> CallContext:
    """A provider call context whose DNS is ``server`` (its HTTP client is never used)."""
    return CallContext(http=HttpClient(), dns=dns_client(server, timeout=timeout),
                       config=config or ProviderConfig(base_url=""))
