"""The SSRF guard: which addresses a fetch may reach, the allow list, and the checking resolver."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver, ResolveResult

from linkmeter.engine.dns import DnsAnswer, DnsClient
from linkmeter.engine.errors import FetchRefused as FetchRefused  # the guard's refusal, raised from here
from linkmeter.engine.errors import ProviderError

ALLOW_HINT = "LINKMETER_FETCH_ALLOW lifts the guard for listed hosts and networks"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
AddressLookup = Callable[[str], Awaitable[list[str]]]
"""Resolves a host name to its IP addresses (as text); raises ProviderError when it cannot."""


_NAMED_NETWORKS: tuple[tuple[IPNetwork, str], ...] = (
    (ipaddress.IPv4Network("0.0.0.0/8"), "this-network"),
    (ipaddress.IPv4Network("100.64.0.0/10"), "shared (carrier-grade NAT)"),
    (ipaddress.IPv6Network("fc00::/7"), "unique-local"),
)
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
# The connection really goes to the embedded IPv4 address, so a public one makes the whole address public.
_TRANSPARENT_EMBEDDINGS = frozenset({"IPv4-mapped", "IPv4-translated", "NAT64"})


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    low = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        return "IPv4-mapped", ip.ipv4_mapped
    if ip in _IPV4_TRANSLATED:
        return "IPv4-translated", low
    if ip in _NAT64:
        return "NAT64", low
    if ip in _IPV4_COMPATIBLE:
        return "IPv4-compatible", low
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    if ip.teredo is not None:
        return "Teredo", ip.teredo[1]
    return None


def blocked_reason(ip: IPAddress) -> str | None:
    """Why the guard refuses ``ip`` (e.g. "loopback"), or None when it is globally routable."""
    if ip.is_loopback:
        return "loopback"
    if ip.is_unspecified:
        return "unspecified"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            kind, inner = embedded
            reason = blocked_reason(inner)
            if reason is not None:
                return f"{reason} ({kind} {inner})"
            if kind in _TRANSPARENT_EMBEDDINGS:
                return None
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    for network, label in _NAMED_NETWORKS:
        if ip.version == network.version and ip in network:
            return label
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local"
    if not ip.is_global:
        return "non-global"
    return None


_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)


@functools.lru_cache(maxsize=4096)
def host_address(host: str) -> IPAddress | None:
    """The address an IP-literal host names, None for a DNS name.

    IPv4 is read with inet_aton semantics (``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.1`` all
    name 127.0.0.1), as the system resolver would; an all-numeric host inet_aton rejects raises
    FetchRefused("bad_url").
    """
    text = host.strip("[]")
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError as exc:
            raise FetchRefused("bad_url", f"{host!r} is not a valid IPv6 address") from exc
    text = text.removesuffix(".")
    labels = text.split(".")
    if not all(_NUMERIC_LABEL.fullmatch(label) for label in labels):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError as exc:
        raise FetchRefused("bad_url", f"{host!r} is not a valid IPv4 address") from exc


_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?")


@dataclass(frozen=True, slots=True)
class AllowList:
    """Targets the SSRF guard lets through: exact host names, and IP networks (a bare IP is a /32 or /128)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.replace("[", "").replace("]", ""), strict=False))
                continue
            except ValueError:
                pass
            if "/" in entry or ":" in entry or not _HOST_NAME.fullmatch(entry):
                raise ValueError(f"{raw!r} is not a host name, an IP address or a CIDR network")
            hosts.add(entry.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, ip: IPAddress) -> bool:
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        return any(
            candidate.version == network.version and candidate in network
            for candidate in candidates
            for network in self.networks
        )


def refused_address(host: str, ip: IPAddress, reason: str, *, literal: bool) -> FetchRefused:
    shown = str(ip)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        shown = f"::ffff:{ip.ipv4_mapped}"
    how = f"{shown} is" if literal else f"it resolves to {shown},"
    return FetchRefused(
        "blocked_address",
        f"refused to connect to {host}: {how} a {reason} address, not globally routable; {ALLOW_HINT}",
    )




async def system_lookup(host: str) -> list[str]:
    """The system resolver (getaddrinfo, so /etc/hosts counts)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ProviderError(f"cannot resolve {host}: {exc.strerror}",
                            retryable=exc.errno == socket.EAI_AGAIN) from exc
    return [str(info[4][0]) for info in infos]


def dns_lookup(client: DnsClient) -> AddressLookup:
    """A lookup asking A and AAAA of the DnsClient's servers."""

    async def lookup(host: str) -> list[str]:
        answers = await asyncio.gather(client.query(host, "A"), client.query(host, "AAAA"),
                                       return_exceptions=True)
        addresses = [record for answer in answers if isinstance(answer, DnsAnswer)
                     for record in answer.records]
        if addresses:
            return addresses
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        rcode = "NXDOMAIN" if all(isinstance(a, DnsAnswer) and a.rcode == "NXDOMAIN" for a in answers) \
            else "no A or AAAA records"
        raise ProviderError(f"cannot resolve {host}: {rcode}", retryable=False)

    return lookup


class GuardedResolver(AbstractResolver):
    """Resolves, refuses non-global addresses, and hands the connector exactly the addresses it checked
    (so a second, rebound answer can never be dialled). Standard ports may be mapped (demo mode)."""

    def __init__(self, lookup: AddressLookup, allow: AllowList, port_map: Mapping[int, int]) -> None:
        self._lookup = lookup
        self._allow = allow
        self._port_map = dict(port_map)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses: list[IPAddress] = []
        for text in await self._lookup(host):
            try:
                ip = ipaddress.ip_address(text)
            except ValueError as exc:
                raise ProviderError(f"resolver returned {text!r} for {host}, not an address") from exc
            if ip not in addresses:
                addresses.append(ip)
        if not self._allow.allows_host(host):
            for ip in addresses:
                reason = blocked_reason(ip)
                if reason is not None and not self._allow.allows_address(ip):
                    raise refused_address(host, ip, reason, literal=False)
        wanted = {socket.AF_INET: 4, socket.AF_INET6: 6}.get(family)
        results: list[ResolveResult] = [
            {
                "hostname": host,
                "host": str(ip),
                "port": self._port_map.get(port, port),
                "family": socket.AF_INET if ip.version == 4 else socket.AF_INET6,
                "proto": socket.IPPROTO_TCP,
                "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            }
            for ip in addresses
            if wanted is None or ip.version == wanted
        ]
        if not results:
            raise ProviderError(f"cannot resolve {host}: no usable address", retryable=False)
        return results

    async def close(self) -> None:
        return None


