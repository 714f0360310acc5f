"""The dnsbl provider: the registered domain on Spamhaus DBL, SURBL and URIBL (listed, clean or refused)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from linkmeter.engine.dns import DnsAnswer
from linkmeter.engine.provider import (
    CallContext,
    Collected,
    Policy,
    Provider,
    ProviderConfig,
    ProviderError,
    Signals,
    SignalSpec,
)
from linkmeter.engine.urls import registered_domain
from linkmeter.providers.dns import require_domain_name, target_domain

LISTED, CLEAN, REFUSED = "listed", "clean", "refused"
LISTS = ("spamhaus_dbl", "surbl", "uribl")
DEFAULT_ZONES = {"spamhaus_dbl": "dbl.spamhaus.org", "surbl": "multi.surbl.org", "uribl": "multi.uribl.com"}
DQS_DBL_ZONE = "{key}.dbl.dq.spamhaus.net"
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")

DBL_CODES: Mapping[str, tuple[str, ...]] = {
    "127.0.1.2": ("spam",),
    "127.0.1.4": ("phishing",),
    "127.0.1.5": ("malware",),
    "127.0.1.6": ("botnet_cc",),
    "127.0.1.102": ("abused_legit",),
    "127.0.1.103": ("abused_redirector",),
    "127.0.1.104": ("abused_legit", "phishing"),
    "127.0.1.105": ("abused_legit", "malware"),
    "127.0.1.106": ("abused_legit", "botnet_cc"),
}
DBL_REFUSALS: Mapping[str, str] = {
    "127.0.1.255": "IP address queried against a domain list",
    "127.255.255.252": "typing error in the DNSBL name",
    "127.255.255.254": "query via a public/open resolver",
    "127.255.255.255": "excessive number of queries",
}
SURBL_BITS = ((8, "phishing"), (16, "malware"), (64, "abuse"), (128, "cracked"))
URIBL_BITS = ((2, "black"), (4, "grey"), (8, "red"))
BLOCKED_BIT = 1  # SURBL and URIBL answer 127.0.0.1 to queries they refuse


@dataclass(frozen=True, slots=True)
class Verdict:
    """One list's answer. ``reason`` says why a lookup was refused (or failed)."""

    status: str
    categories: tuple[str, ...] = ()
    reason: str = ""


def decode_dbl(addresses: tuple[str, ...]) -> Verdict:
    """Spamhaus DBL return codes. The 127.255.255.x and 127.0.1.255 codes are errors, never listings."""
    categories: list[str] = []
    for address in addresses:
        if address in DBL_REFUSALS:
            return Verdict(REFUSED, reason=f"{address}: {DBL_REFUSALS[address]}")
        if address.startswith("127.255.255."):
            return Verdict(REFUSED, reason=f"{address}: Spamhaus error code")
        if not _is_loopback(address) or not address.startswith("127.0.1."):
            return Verdict(REFUSED, reason=f"{address}: not a DBL return code")
        categories.extend(DBL_CODES.get(address, (f"code_{address.rsplit('.', 1)[1]}",)))
    return _listed(categories)


def decode_surbl(addresses: tuple[str, ...]) -> Verdict:
    """SURBL bitmask in the last octet (octets 2 and 3 are reserved); bit 1 means the query was blocked."""
    return _decode_bits(addresses, SURBL_BITS)


def decode_uribl(addresses: tuple[str, ...]) -> Verdict:
    """URIBL bitmask (2 black, 4 grey, 8 red); 127.0.0.1 means the query was refused."""
    return _decode_bits(addresses, URIBL_BITS)


def _decode_bits(addresses: tuple[str, ...], table: tuple[tuple[int, str], ...]) -> Verdict:
    categories: list[str] = []
    for address in addresses:
        if not _is_loopback(address):
            return Verdict(REFUSED, reason=f"{address}: not a blocklist return code")
        bits = int(address.rsplit(".", 1)[1])
        if bits & BLOCKED_BIT:
            return Verdict(REFUSED, reason=f"{address}: query refused or blocked by the list")
        names = [name for bit, name in table if bits & bit]
        if not names:
            return Verdict(REFUSED, reason=f"{address}: no known list bit set")
        categories.extend(names)
    return _listed(categories)


def _listed(categories: list[str]) -> Verdict:
    if not categories:
        return Verdict(CLEAN)
    return Verdict(LISTED, tuple(dict.fromkeys(categories)))


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address) in LOOPBACK
    except ValueError:
        return False


DECODERS = {"spamhaus_dbl": decode_dbl, "surbl": decode_surbl, "uribl": decode_uribl}


def zones(config: ProviderConfig) -> dict[str, str]:
    """Zones per list: ``extra`` keys ``spamhaus_dbl_zone``/``surbl_zone``/``uribl_zone`` win; an API key
    alone selects the Spamhaus DQS zone; otherwise the public mirrors."""
    found = dict(DEFAULT_ZONES)
    if config.api_key:
        found["spamhaus_dbl"] = DQS_DBL_ZONE.format(key=config.api_key)
    for name in LISTS:
        zone = config.extra.get(f"{name}_zone", "").strip().strip(".")
        if zone:
            found[name] = zone
    return found


class DnsblProvider(Provider):
    """Three outcomes per list: listed, clean (NXDOMAIN) and refused. A refusal code never counts as a
    listing; a lookup that fails (timeout, SERVFAIL) is reported as refused with the reason in raw.
    When all three lookups fail the call fails (retryable)."""

    name: ClassVar[str] = "dnsbl"
    order = 40
    group = "threat"
    optional_key = True  # a Spamhaus DQS key: the DBL through DQS, which public resolvers may use
    key_url = "https://www.spamhaus.com/free-trial/sign-up-for-a-free-data-query-service-account/"
    published_limits = "free for low volumes; public resolvers are refused (use your own resolver)"
    needs: ClassVar[tuple[str, ...]] = ("domain",)
    wants: ClassVar[tuple[str, ...]] = ("page.final_domain",)
    provides: ClassVar[Mapping[str, SignalSpec]] = {
        "dnsbl.spamhaus_dbl": SignalSpec(str, "Spamhaus DBL: listed, clean or refused"),
        "dnsbl.surbl": SignalSpec(str, "SURBL multi: listed, clean or refused"),
        "dnsbl.uribl": SignalSpec(str, "URIBL multi: listed, clean or refused"),
        "dnsbl.spamhaus_dbl_categories": SignalSpec(list, "DBL categories (spam, phishing, malware, ...)"),
        "dnsbl.surbl_categories": SignalSpec(list, "SURBL lists (phishing, malware, abuse, cracked)"),
        "dnsbl.uribl_categories": SignalSpec(list, "URIBL lists (black, grey, red)"),
        "dnsbl.listed_count": SignalSpec(int, "how many of the three lists list the domain", "lists",
                                          headline="Blocklists"),
    }
    policy = Policy(timeout=5.0, cache_ttl=180.0)

    def key(self, signals: Signals) -> str:
        return registered_domain(target_domain(signals))

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        domain = registered_domain(target_domain(signals))
        require_domain_name(domain, self.name)
        names = {name: f"{domain}.{zone}" for name, zone in zones(ctx.config).items()}
        secret = ctx.config.api_key
        shown = {name: _masked(query, secret) for name, query in names.items()}
        results = await asyncio.gather(
            *(ctx.dns.query(names[name], "A") for name in LISTS), return_exceptions=True)
        verdicts: dict[str, Verdict] = {}
        raw: dict[str, Any] = {"domain": domain}
        failures: list[ProviderError] = []
        for name, result in zip(LISTS, results, strict=True):
            if isinstance(result, ProviderError):
                failures.append(result)
                message = _masked(result.message, secret)
                verdicts[name] = Verdict(REFUSED, reason=f"lookup failed: {message}")
                raw[name] = {"query": shown[name], "error": message}
            elif isinstance(result, BaseException):
                raise result
            else:
                verdicts[name] = _verdict(name, result)
                raw[name] = {"query": shown[name], "rcode": result.rcode, "records": list(result.records),
                             "reason": verdicts[name].reason}
        if len(failures) == len(LISTS):
            raise ProviderError(f"dnsbl: every lookup failed for {domain}: {_masked(failures[0].message, secret)}",
                                retryable=True)
        found: dict[str, Any] = {}
        for name, verdict in verdicts.items():
            found[f"dnsbl.{name}"] = verdict.status
            found[f"dnsbl.{name}_categories"] = list(verdict.categories)
        found["dnsbl.listed_count"] = sum(1 for v in verdicts.values() if v.status == LISTED)
        return Collected(signals=found, raw=raw)


def _masked(text: str, secret: str | None) -> str:
    """The DQS key is part of the query name: keep it out of raw results and messages people see."""
    return text.replace(secret, "<key>") if secret else text


def _verdict(name: str, answer: DnsAnswer) -> Verdict:
    if answer.rcode == "NXDOMAIN":
        return Verdict(CLEAN)
    if not answer.records:
        # NOERROR without an A record: no list answers that way, so it is not a "not listed" either.
        return Verdict(REFUSED, reason="no A record and no NXDOMAIN")
    return DECODERS[name](answer.records)
