"""The dnsbl provider: return-code decoding, then the emulator's zones over real DNS on loopback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from linkmeter.emulator.dnsserver import DnsServer
from linkmeter.engine.dns import DnsAnswer
from linkmeter.engine.http import HttpClient
from linkmeter.engine.provider import CallContext, ProviderConfig, ProviderError
from linkmeter.providers.dnsbl import (
    CLEAN,
    LISTED,
    REFUSED,
    DnsblProvider,
    Verdict,
    decode_dbl,
    decode_surbl,
    decode_uribl,
    zones,
)
from tests.conftest import ServeDns
from tests.emulated_dns import dns_client, dns_context, find_domain

LISTS = ("spamhaus_dbl", "surbl", "uribl")


async def collect(ctx: CallContext, domain: str, **more: Any) -> dict[str, Any]:
    return (await DnsblProvider().collect(ctx, {"domain": domain, **more})).signals


# --- decoding --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("codes", "categories"), [
    (("127.0.1.2",), ("spam",)),
    (("127.0.1.4",), ("phishing",)),
    (("127.0.1.5",), ("malware",)),
    (("127.0.1.6",), ("botnet_cc",)),
    (("127.0.1.102",), ("abused_legit",)),
    (("127.0.1.103",), ("abused_redirector",)),
    (("127.0.1.104",), ("abused_legit", "phishing")),
    (("127.0.1.105",), ("abused_legit", "malware")),
    (("127.0.1.106",), ("abused_legit", "botnet_cc")),
    (("127.0.1.2", "127.0.1.4"), ("spam", "phishing")),
    (("127.0.1.20",), ("code_20",)),
])
def test_dbl_listing_codes(codes: tuple[str, ...], categories: tuple[str, ...]) -> None:
    assert decode_dbl(codes) == Verdict(LISTED, categories)


@pytest.mark.parametrize("codes", [
    ("127.255.255.252",), ("127.255.255.254",), ("127.255.255.255",), ("127.0.1.255",), ("127.255.255.1",),
    ("127.0.0.2",), ("192.0.2.1",), ("not-an-address",), ("127.0.1.2", "127.255.255.254"),
])
def test_dbl_error_codes_are_refusals_never_listings(codes: tuple[str, ...]) -> None:
    verdict = decode_dbl(codes)
    assert verdict.status == REFUSED
    assert verdict.categories == ()
    assert verdict.reason


def test_dbl_refusal_reasons_name_the_code() -> None:
    assert "excessive" in decode_dbl(("127.255.255.255",)).reason
    assert "open resolver" in decode_dbl(("127.255.255.254",)).reason


@pytest.mark.parametrize(("code", "categories"), [
    ("127.0.0.8", ("phishing",)),
    ("127.0.0.16", ("malware",)),
    ("127.0.0.64", ("abuse",)),
    ("127.0.0.128", ("cracked",)),
    ("127.0.0.80", ("malware", "abuse")),
    ("127.0.0.216", ("phishing", "malware", "abuse", "cracked")),
    ("127.1.2.16", ("malware",)),  # octets 2 and 3 are reserved: ignored
])
def test_surbl_bits(code: str, categories: tuple[str, ...]) -> None:
    assert decode_surbl((code,)) == Verdict(LISTED, categories)


@pytest.mark.parametrize(("code", "categories"), [
    ("127.0.0.2", ("black",)),
    ("127.0.0.4", ("grey",)),
    ("127.0.0.8", ("red",)),
    ("127.0.0.6", ("black", "grey")),
    ("127.0.0.14", ("black", "grey", "red")),
])
def test_uribl_bits(code: str, categories: tuple[str, ...]) -> None:
    assert decode_uribl((code,)) == Verdict(LISTED, categories)


@pytest.mark.parametrize("decode", [decode_surbl, decode_uribl])
@pytest.mark.parametrize("code", ["127.0.0.1", "127.0.0.9", "127.0.0.0", "10.0.0.2", "::1"])
def test_bitmask_refusals_and_unknown_codes(decode: Callable[[tuple[str, ...]], Verdict], code: str) -> None:
    assert decode((code,)).status == REFUSED


def test_zones_default_dqs_and_overrides() -> None:
    assert zones(ProviderConfig(base_url="")) == {
        "spamhaus_dbl": "dbl.spamhaus.org", "surbl": "multi.surbl.org", "uribl": "multi.uribl.com"}
    assert zones(ProviderConfig(base_url="", api_key="K3Y"))["spamhaus_dbl"] == "K3Y.dbl.dq.spamhaus.net"
    custom = zones(ProviderConfig(base_url="", api_key="K3Y", extra={"spamhaus_dbl_zone": "dbl.local.",
                                                                     "uribl_zone": "multi.uribl.local"}))
    assert custom == {"spamhaus_dbl": "dbl.local", "surbl": "multi.surbl.org", "uribl": "multi.uribl.local"}


def test_declarations() -> None:
    assert DnsblProvider.name == "dnsbl"
    assert DnsblProvider.needs == ("domain",)
    assert DnsblProvider.wants == ("page.final_domain",)
    assert set(DnsblProvider.provides) == {
        "dnsbl.spamhaus_dbl", "dnsbl.surbl", "dnsbl.uribl", "dnsbl.spamhaus_dbl_categories",
        "dnsbl.surbl_categories", "dnsbl.uribl_categories", "dnsbl.listed_count"}
    assert (DnsblProvider.policy.timeout, DnsblProvider.policy.cache_ttl) == (5.0, 180.0)


# --- against the emulator ------------------------------------------------------------------------------


async def test_dbl_test_point(dns_server: DnsServer) -> None:
    signals = await collect(dns_context(dns_server), "dbltest.com")
    assert signals["dnsbl.spamhaus_dbl"] == LISTED
    assert signals["dnsbl.spamhaus_dbl_categories"] == ["spam"]


async def test_clean_domain(dns_server: DnsServer) -> None:
    domain = find_domain(lambda f: not (f.dbl_code or f.surbl_bits or f.uribl_bits or f.refused_zones), "site")
    assert await collect(dns_context(dns_server), domain) == {
        "dnsbl.spamhaus_dbl": CLEAN, "dnsbl.spamhaus_dbl_categories": [],
        "dnsbl.surbl": CLEAN, "dnsbl.surbl_categories": [],
        "dnsbl.uribl": CLEAN, "dnsbl.uribl_categories": [],
        "dnsbl.listed_count": 0,
    }


async def test_spammy_domain_listed_everywhere_with_categories(dns_server: DnsServer) -> None:
    domain = find_domain(lambda f: f.dbl_code == "127.0.1.102" and f.surbl_bits == 80 and f.uribl_bits == 6
                         and not f.refused_zones, "spam")
    signals = await collect(dns_context(dns_server), domain)
    assert signals == {
        "dnsbl.spamhaus_dbl": LISTED, "dnsbl.spamhaus_dbl_categories": ["abused_legit"],
        "dnsbl.surbl": LISTED, "dnsbl.surbl_categories": ["malware", "abuse"],
        "dnsbl.uribl": LISTED, "dnsbl.uribl_categories": ["black", "grey"],
        "dnsbl.listed_count": 3,
    }


@pytest.mark.parametrize(("zone", "signal"), [("dbl", "spamhaus_dbl"), ("surbl", "surbl"), ("uribl", "uribl")])
async def test_a_refusing_list_is_refused_and_not_counted(dns_server: DnsServer, zone: str, signal: str) -> None:
    # A spammy domain: the other two lists do list it, so only the refusal code keeps this one out.
    domain = find_domain(lambda f: f.refused_zones == {zone} and bool(f.dbl_code), "spam")
    signals = await collect(dns_context(dns_server), domain)
    assert signals[f"dnsbl.{signal}"] == REFUSED
    assert signals[f"dnsbl.{signal}_categories"] == []
    assert signals["dnsbl.listed_count"] == 2


async def test_queries_the_registered_final_domain_and_never_resolves_it(dns_server: DnsServer) -> None:
    asked: list[tuple[str, str]] = []
    real = dns_client(dns_server)

    class Recording:
        async def query(self, name: str, rdtype: str) -> DnsAnswer:
            asked.append((name, rdtype))
            return await real.query(name, rdtype)

    ctx = CallContext(http=HttpClient(), dns=Recording(), config=ProviderConfig(base_url=""))  # type: ignore[arg-type]
    provider = DnsblProvider()
    signals = {"domain": "short.example", "page.final_domain": "dbltest.com"}
    assert provider.key(signals) == "dbltest.com"
    collected = await provider.collect(ctx, signals)
    assert sorted(asked) == [("dbltest.com.dbl.spamhaus.org", "A"), ("dbltest.com.multi.surbl.org", "A"),
                             ("dbltest.com.multi.uribl.com", "A")]
    assert collected.signals["dnsbl.spamhaus_dbl"] == LISTED


async def test_configured_zones_are_queried(dns_server: DnsServer) -> None:
    # Pointing SURBL at the DBL zone proves the name comes from config: DBL's code is no SURBL bitmask.
    config = ProviderConfig(base_url="", extra={"surbl_zone": "dbl.spamhaus.org"})
    signals = await collect(dns_context(dns_server, config=config), "dbltest.com")
    assert signals["dnsbl.surbl"] == REFUSED


async def test_rate_limited_lists_answer_excessive_queries_which_is_refused(serve_dns: ServeDns) -> None:
    domain = find_domain(lambda f: bool(f.dbl_code and f.surbl_bits and f.uribl_bits) and not f.refused_zones,
                         "spam")
    running = await serve_dns(rate_limits={"dnsbl": 0.01})
    ctx = dns_context(running)
    await collect(ctx, domain)  # spends the burst
    collected = await DnsblProvider().collect(ctx, {"domain": domain})
    assert [collected.signals[f"dnsbl.{name}"] for name in LISTS] == [REFUSED] * 3
    assert collected.signals["dnsbl.listed_count"] == 0
    assert "excessive" in collected.raw["spamhaus_dbl"]["reason"]


async def test_all_lookups_hanging_is_a_retryable_failure(serve_dns: ServeDns) -> None:
    running = await serve_dns(hang=frozenset({"dnsbl"}))
    with pytest.raises(ProviderError) as caught:
        await collect(dns_context(running, timeout=0.3), "dbltest.com")
    assert caught.value.retryable


async def test_one_failed_lookup_is_refused_with_the_reason_in_raw(dns_server: DnsServer) -> None:
    real = dns_client(dns_server)

    class FailingSurbl:
        async def query(self, name: str, rdtype: str) -> DnsAnswer:
            if name.endswith(".multi.surbl.org"):
                raise ProviderError(f"DNS timeout for {name} {rdtype}", retryable=True)
            return await real.query(name, rdtype)

    ctx = CallContext(http=HttpClient(), dns=FailingSurbl(), config=ProviderConfig(base_url=""))  # type: ignore[arg-type]
    collected = await DnsblProvider().collect(ctx, {"domain": "dbltest.com"})
    assert collected.signals["dnsbl.surbl"] == REFUSED
    assert collected.signals["dnsbl.spamhaus_dbl"] == LISTED
    assert collected.signals["dnsbl.listed_count"] == 1
    assert "timeout" in collected.raw["surbl"]["error"]


async def test_ip_address_is_refused_for_good(dns_server: DnsServer) -> None:
    with pytest.raises(ProviderError) as caught:
        await collect(dns_context(dns_server), "198.51.100.7")
    assert not caught.value.retryable


async def test_the_dqs_key_never_appears_in_raw_results_or_messages(serve_dns: ServeDns, dns_server: DnsServer) -> None:
    ctx = dns_context(dns_server, config=ProviderConfig(base_url="", api_key="S3CRETKEY"))
    collected = await DnsblProvider().collect(ctx, {"domain": "example.org"})
    assert "S3CRETKEY" not in repr(collected.raw)
    assert collected.raw["spamhaus_dbl"]["query"] == "example.org.<key>.dbl.dq.spamhaus.net"
    hung = await serve_dns(hang=frozenset({"dnsbl", "dns"}))
    with pytest.raises(ProviderError) as info:
        await DnsblProvider().collect(
            dns_context(hung, timeout=0.2, config=ProviderConfig(base_url="", api_key="S3CRETKEY")),
            {"domain": "example.org"})
    assert "S3CRETKEY" not in info.value.message
