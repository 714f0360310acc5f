"""The asynchronous DNS client providers use (dnspython), pointed at configured servers or the system's."""

from __future__ import annotations

from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from linkmeter.engine.errors import ProviderError


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    """``rcode`` is NOERROR (records may be empty: no data of that type) or NXDOMAIN."""

    name: str
    rdtype: str
    rcode: str
    records: tuple[str, ...]


def parse_servers(text: str) -> list[tuple[str, int]]:
    """Parse ``"1.2.3.4,127.0.0.1:5353,[::1]:53"`` into (address, port) pairs."""
    servers: list[tuple[str, int]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item.startswith("["):
            host, _, port = item[1:].partition("]")
            servers.append((host, int(port.lstrip(":") or 53)))
        elif item.count(":") == 1:
            host, port = item.split(":")
            servers.append((host, int(port)))
        else:
            servers.append((item, 53))
    return servers


class DnsClient:
    """Queries one record type at a time; NXDOMAIN and no-data are answers, not errors."""

    def __init__(self, servers: list[tuple[str, int]] | None = None, *, timeout: float = 3.0) -> None:
        if servers:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [
                dns.nameserver.Do53Nameserver(host, port) for host, port in servers
            ]
        else:
            self._resolver = dns.asyncresolver.Resolver()
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout
        self._resolver.cache = None
        self.servers = servers

    async def query(self, name: str, rdtype: str) -> DnsAnswer:
        try:
            answer = await self._resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            return DnsAnswer(name, rdtype, "NXDOMAIN", ())
        except dns.exception.Timeout as exc:
            raise ProviderError(f"DNS timeout for {name} {rdtype}", retryable=True) from exc
        except dns.resolver.NoNameservers as exc:
            raise ProviderError(f"DNS servers failed for {name} {rdtype} (SERVFAIL or refused)",
                                retryable=True) from exc
        except dns.exception.DNSException as exc:
            raise ProviderError(f"DNS error for {name} {rdtype}: {exc}", retryable=False) from exc
        records = tuple(rdata.to_text() for rdata in answer.rrset) if answer.rrset is not None else ()
        return DnsAnswer(name, rdtype, "NOERROR", records)
