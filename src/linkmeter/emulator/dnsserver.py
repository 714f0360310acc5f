"""The emulator's DNS server (UDP and TCP): DNSBL zones and A/AAAA/MX/NS records of synthetic domains."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import re
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from publicsuffixlist import PublicSuffixList

from linkmeter.emulator.knobs import Faults, Knobs
from linkmeter.emulator.world import World
from linkmeter.engine.urls import registered_domain

# The providers this server answers for (the knobs' names): plain records of synthetic domains, and per
# blocklist zone its list key and the provider that asks it.
RECORDS_PROVIDER = "dns"
ZONES: dict[str, tuple[str, str]] = {
    "dbl.spamhaus.org": ("dbl", "dnsbl"),
    "multi.surbl.org": ("surbl", "dnsbl"),
    "multi.uribl.com": ("uribl", "dnsbl"),
}
SERVES = (RECORDS_PROVIDER, *sorted({provider for _, provider in ZONES.values()}))
ZONE_TTL = 180  # SURBL's TTL; the emulator uses it for all three lists
RECORD_TTL = 300
# World.domain() keys facts by registered domain, so it never sees these two host-level test points.
TEST_POINTS = {("surbl", "test.surbl.org"): 8 | 16 | 64 | 128, ("uribl", "test.uribl.com"): 2 | 4 | 8}
DBL_REFUSED = "127.255.255.254"
DBL_EXCESSIVE = "127.255.255.255"
DBL_IP_QUERY = "127.0.1.255"
BITMASK_REFUSED = "127.0.0.1"
NS_PROVIDERS = ("cloudflare", "awsdns", "domaincontrol", "nsone", "registrar-servers", "gandi")
SURBL_LISTS = ((8, "ph"), (16, "mw"), (64, "abuse"), (128, "cr"))
UDP_PAYLOAD = 512
MAX_BIND_ATTEMPTS = 5

_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


@dataclass(frozen=True, slots=True)
class Answer:
    """A response before it is put on the wire: rcode and (type, texts) record sets for the question."""

    rcode: dns.rcode.Rcode
    rdtype: str = "A"
    records: tuple[str, ...] = ()
    ttl: int = RECORD_TTL


class ZoneQuery(NamedTuple):
    key: str  # the list, e.g. "dbl"
    queried: str  # the name before the zone; empty at the apex
    provider: str  # whose knobs apply


def zone_of(name: str) -> ZoneQuery | None:
    """What ``name`` asks when it is inside a DNSBL zone; None when it is not."""
    for zone, (key, provider) in ZONES.items():
        if name == zone:
            return ZoneQuery(key, "", provider)
        if name.endswith("." + zone):
            return ZoneQuery(key, name[: -len(zone) - 1], provider)
    return None


def answer_zone(world: World, key: str, queried: str, rdtype: str, *, excessive: bool = False,
                client: str = "127.0.0.1") -> Answer:
    """What the blocklist ``key`` answers for ``<queried>.<zone>``: a pure function of the World."""
    if not queried:
        return Answer(dns.rcode.NOERROR)
    code = _zone_code(world, key, queried, excessive=excessive)
    if code is None:
        return Answer(dns.rcode.NXDOMAIN)
    if rdtype == "A":
        return Answer(dns.rcode.NOERROR, "A", (code,), ZONE_TTL)
    if rdtype == "TXT":
        return Answer(dns.rcode.NOERROR, "TXT", (_quote(_zone_text(key, queried, code, client)),), ZONE_TTL)
    return Answer(dns.rcode.NOERROR)


def _zone_code(world: World, key: str, queried: str, *, excessive: bool) -> str | None:
    if excessive:
        return DBL_EXCESSIVE if key == "dbl" else BITMASK_REFUSED
    if _is_reversed_ip(queried):
        return DBL_IP_QUERY if key == "dbl" else None
    if (key, queried) in TEST_POINTS:
        return f"127.0.0.{TEST_POINTS[key, queried]}"
    domain = registered_domain(queried)
    # SURBL and URIBL list registered domains only; host parts are the client's job to strip.
    if key != "dbl" and domain != queried:
        return None
    facts = world.domain(domain)
    if key in facts.refused_zones:
        return DBL_REFUSED if key == "dbl" else BITMASK_REFUSED
    if key == "dbl":
        return facts.dbl_code
    bits = facts.surbl_bits if key == "surbl" else facts.uribl_bits
    return f"127.0.0.{bits}" if bits else None


def _zone_text(key: str, queried: str, code: str, client: str) -> str:
    if key == "dbl":
        if code.startswith("127.255.255."):
            return f"Error: query refused ({code}), see https://www.spamhaus.org/returnc/pub/"
        return f"https://www.spamhaus.org/query/domain/{queried}"
    if code == BITMASK_REFUSED:
        if key == "uribl":
            return (f"127.0.0.1 -> Query Refused. See http://uribl.com/refused.shtml for more "
                    f"information [Your DNS IP: {client}]")
        return "Query refused. See http://www.surbl.org/ for more information"
    bits = int(code.rsplit(".", 1)[1])
    if key == "surbl":
        lists = ",".join(name for bit, name in SURBL_LISTS if bits & bit)
        return f"Blocked, {queried} on lists [{lists}], See: http://www.surbl.org/lists.html"
    return f"{queried} is listed in multi.uribl.com, see http://lookup.uribl.com/?domain={queried}"


def answer_name(world: World, name: str, rdtype: str, answer_address: str) -> Answer:
    """A, AAAA, MX and NS records of a synthetic domain (any name under it), as the World says."""
    if not _is_domain_name(name):
        return Answer(dns.rcode.NXDOMAIN)
    facts = world.domain(name)
    if not facts.registered:
        return Answer(dns.rcode.NXDOMAIN)
    domain = facts.domain
    records: list[str] = []
    if rdtype == "A":
        records = _ipv4_addresses(answer_address, facts.a_count)
    elif rdtype == "AAAA":
        records = _ipv6_addresses(answer_address, facts.aaaa_count)
    elif rdtype == "MX":
        records = [f"{10 * n} mail{n}.{domain}." for n in range(1, facts.mx_count + 1)]
    elif rdtype == "NS":
        provider = world.rng("ns", domain).choice(NS_PROVIDERS)
        records = [f"ns{n}.{provider}.net." for n in range(1, facts.ns_count + 1)]
    return Answer(dns.rcode.NOERROR, rdtype, tuple(records))


def _ipv4_addresses(answer_address: str, count: int) -> list[str]:
    first = ipaddress.ip_address(answer_address)
    addresses = [str(first)] if first.version == 4 else []
    candidate = ipaddress.IPv4Address("127.0.0.2" if addresses else "127.0.0.1")
    while len(addresses) < count:
        if str(candidate) not in addresses:
            addresses.append(str(candidate))
        candidate += 1
    return addresses[:count]


def _ipv6_addresses(answer_address: str, count: int) -> list[str]:
    first = ipaddress.ip_address(answer_address)
    if first.version == 6:
        return [str(first), *(f"::ffff:{a}" for a in _ipv4_addresses("127.0.0.1", count - 1))][:count]
    return [f"::ffff:{a}" for a in _ipv4_addresses(answer_address, count)]


def _is_reversed_ip(text: str) -> bool:
    labels = text.split(".")
    return len(labels) == 4 and all(label.isdigit() and int(label) < 256 for label in labels)


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


NEVER_RESOLVED_TLDS = frozenset({"localhost", "invalid", "local"})


def _is_domain_name(name: str) -> bool:
    """A well-formed name with a registrable part: the synthetic web uses reserved TLDs such as ``.example``
    too, but ``localhost`` and ``.invalid`` (RFC 6761) never resolve."""
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        return False
    if name.rsplit(".", 1)[-1] in NEVER_RESOLVED_TLDS:
        return False
    return _psl().privatesuffix(name) is not None


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class DnsServer:
    """One emulated DNS server on UDP and TCP ``port``. Faults are drawn per query as for the HTTP side,
    under the name of the provider asking (``ZONES``: ``dnsbl`` for the blocklist zones; ``dns`` for
    everything else): hang -> no answer, error -> SERVFAIL, over the rate limit -> the lists' "excessive
    queries" codes (REFUSED for plain names)."""

    def __init__(self, world: World, *, answer_address: str, knobs: Knobs) -> None:
        self.world = world
        self.answer_address = answer_address
        self.knobs = knobs
        self.port = 0
        self._faults = Faults(knobs)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def _bind(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        for attempt in range(MAX_BIND_ATTEMPTS):
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(host, port))
            bound = transport.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, host, bound)
            except OSError:
                transport.close()
                # An ephemeral UDP port may be taken on TCP; pick another. A fixed port is the caller's.
                if port != 0 or attempt == MAX_BIND_ATTEMPTS - 1:
                    raise
                continue
            self._udp = transport
            self.port = int(bound)
            return

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for writer in list(self._writers):
            writer.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def respond(self, wire: bytes, client: str, *, max_size: int | None) -> bytes | None:
        """The wire answer to one query, after the knobs; None means no answer (hang or unparseable).
        ``max_size`` None: UDP, limited by the query's EDNS payload size or 512 bytes."""
        try:
            query = dns.message.from_wire(wire)
        except (dns.exception.DNSException, ValueError):
            return None
        question = query.question[0] if query.question else None
        name = question.name.to_text(omit_final_dot=True).lower() if question is not None else ""
        zone = zone_of(name)
        provider = zone.provider if zone is not None else RECORDS_PROVIDER
        verdict = self._faults.decide(provider, asyncio.get_running_loop().time())
        if verdict.hang:
            return None
        if verdict.delay > 0:
            await asyncio.sleep(verdict.delay)
        limited = verdict.retry_after is not None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if verdict.error_status is not None:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif limited and zone is None:
            response.set_rcode(dns.rcode.REFUSED)
        elif query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
        elif question is None:
            response.set_rcode(dns.rcode.FORMERR)
        elif question.rdclass != dns.rdataclass.IN:
            response.set_rcode(dns.rcode.REFUSED)
        else:
            rdtype = dns.rdatatype.to_text(question.rdtype)
            if zone is not None:
                answer = answer_zone(self.world, zone.key, zone.queried, rdtype, excessive=limited, client=client)
            else:
                answer = answer_name(self.world, name, rdtype, self.answer_address)
            response.set_rcode(answer.rcode)
            if answer.records:
                response.answer.append(dns.rrset.from_text_list(
                    question.name, answer.ttl, dns.rdataclass.IN, answer.rdtype, list(answer.records)))
        if max_size is None:
            max_size = max(UDP_PAYLOAD, query.payload) if query.edns >= 0 else UDP_PAYLOAD
        # Unshuffled: the first A record is the emulator's own address, the one clients should try first.
        return response.to_wire(max_size=max_size, prefer_truncation=True, want_shuffle=False)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if peer else "127.0.0.1"
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                wire = await self.respond(await reader.readexactly(size), client, max_size=65535)
                if wire is None:
                    continue  # a hanging server keeps the connection open and says nothing
                writer.write(len(wire).to_bytes(2, "big") + wire)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            # close() cancels connections that hang; asyncio's stream callback logs a cancelled handler.
            pass
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A datagram endpoint's transport; not an isinstance check: uvloop's UDPTransport does not subclass
        # asyncio.DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.server.spawn(self._answer(data, addr))

    async def _answer(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        wire = await self.server.respond(data, str(addr[0]), max_size=None)
        if wire is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(wire, addr)


async def start_dns_server(world: World, *, host: str, port: int, answer_address: str,
                           knobs: Knobs) -> DnsServer:
    """Serve ``world`` on ``host:port`` (UDP and TCP; port 0 picks a free one, see ``.port``)."""
    server = DnsServer(world, answer_address=answer_address, knobs=knobs)
    await server._bind(host, port)
    return server
