"""The dns provider: how many A, AAAA, MX and NS records the (final) registered domain has."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Mapping
from typing import ClassVar

from linkmeter.engine.dns import DnsAnswer
from linkmeter.engine.provider import (
    CallContext,
    Collected,
    Policy,
    Provider,
    ProviderError,
    Signals,
    SignalSpec,
)

RECORD_TYPES = ("A", "AAAA", "MX", "NS")


def target_domain(signals: Signals) -> str:
    """The registered domain to look up: the page's final domain when the page provider found one."""
    return str(signals.get("page.final_domain") or signals["domain"]).rstrip(".").lower()


def require_domain_name(domain: str, provider: str) -> None:
    """DNS-based lookups make no sense for an IP literal: refuse it for good (not retryable)."""
    try:
        ipaddress.ip_address(domain.strip("[]"))
    except ValueError:
        return
    raise ProviderError(f"{provider}: {domain} is an IP address, not a domain name", retryable=False)


class DnsProvider(Provider):
    """A domain that does not exist (NXDOMAIN) is an answer: every count is 0."""

    name: ClassVar[str] = "dns"
    order = 20
    group = "domain"
    published_limits = "your DNS resolver: no published limit"
    needs: ClassVar[tuple[str, ...]] = ("domain",)
    wants: ClassVar[tuple[str, ...]] = ("page.final_domain",)
    provides: ClassVar[Mapping[str, SignalSpec]] = {
        "dns.a_count": SignalSpec(int, "A (IPv4 address) records of the domain", "records"),
        "dns.aaaa_count": SignalSpec(int, "AAAA (IPv6 address) records of the domain", "records"),
        "dns.mx_count": SignalSpec(int, "MX (mail exchanger) records of the domain", "records"),
        "dns.ns_count": SignalSpec(int, "NS (name server) records of the domain", "records"),
    }
    policy = Policy(timeout=5.0, cache_ttl=3600.0)

    def key(self, signals: Signals) -> str:
        return target_domain(signals)

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        domain = target_domain(signals)
        require_domain_name(domain, self.name)
        results = await asyncio.gather(
            *(ctx.dns.query(domain, rdtype) for rdtype in RECORD_TYPES), return_exceptions=True)
        answers: list[DnsAnswer] = []
        for result in results:
            # A partial set of counts would pass a failed lookup off as "0 records".
            if isinstance(result, BaseException):
                raise result
            answers.append(result)
        nxdomain = any(answer.rcode == "NXDOMAIN" for answer in answers)
        found = {
            f"dns.{answer.rdtype.lower()}_count": 0 if nxdomain else len(answer.records)
            for answer in answers
        }
        raw = {
            "domain": domain,
            "answers": {a.rdtype: {"rcode": a.rcode, "records": list(a.records)} for a in answers},
        }
        return Collected(signals=found, raw=raw)
