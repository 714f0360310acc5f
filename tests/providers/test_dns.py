"""The dns provider against the emulator's DNS server on loopback, through the real DnsClient."""

from __future__ import annotations

import pytest

from linkmeter.emulator.dnsserver import DnsServer
from linkmeter.engine.provider import ProviderError
from linkmeter.providers.dns import DnsProvider
from tests.conftest import ServeDns
from tests.emulated_dns import WORLD, dns_context, find_domain


def test_declarations() -> None:
    assert DnsProvider.name == "dns"
    assert DnsProvider.needs == ("domain",)
    assert DnsProvider.wants == ("page.final_domain",)
    assert set(DnsProvider.provides) == {"dns.a_count", "dns.aaaa_count", "dns.mx_count", "dns.ns_count"}
    assert DnsProvider.provides["dns.a_count"].type is int
    assert (DnsProvider.policy.timeout, DnsProvider.policy.cache_ttl) == (5.0, 3600.0)


async def test_counts_are_the_domains_records(dns_server: DnsServer) -> None:
    domain = find_domain(lambda f: f.registered and f.a_count == 3 and f.aaaa_count == 1 and f.mx_count == 2)
    facts = WORLD.domain(domain)
    collected = await DnsProvider().collect(dns_context(dns_server), {"domain": domain})
    assert collected.signals == {"dns.a_count": 3, "dns.aaaa_count": 1, "dns.mx_count": 2,
                                 "dns.ns_count": facts.ns_count}
    assert collected.raw["answers"]["A"]["records"] == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]


async def test_final_domain_is_used_when_the_page_redirected(dns_server: DnsServer) -> None:
    start = find_domain(lambda f: f.registered and f.a_count == 1)
    final = find_domain(lambda f: f.registered and f.a_count == 4)
    signals = {"domain": start, "page.final_domain": final}
    provider = DnsProvider()
    assert provider.key(signals) == final
    collected = await provider.collect(dns_context(dns_server), signals)
    assert collected.signals["dns.a_count"] == 4
    assert collected.raw["domain"] == final


async def test_missing_final_domain_falls_back_to_domain(dns_server: DnsServer) -> None:
    domain = find_domain(lambda f: f.registered and f.a_count == 2)
    collected = await DnsProvider().collect(dns_context(dns_server), {"domain": domain, "page.final_domain": None})
    assert collected.signals["dns.a_count"] == 2


async def test_nxdomain_is_an_answer_with_zero_counts(dns_server: DnsServer) -> None:
    collected = await DnsProvider().collect(dns_context(dns_server), {"domain": "unregistered-store.com"})
    assert collected.signals == {"dns.a_count": 0, "dns.aaaa_count": 0, "dns.mx_count": 0, "dns.ns_count": 0}
    assert collected.raw["answers"]["A"]["rcode"] == "NXDOMAIN"


async def test_hanging_server_is_a_retryable_failure(serve_dns: ServeDns) -> None:
    running = await serve_dns(hang=frozenset({"dns"}))
    with pytest.raises(ProviderError) as caught:
        await DnsProvider().collect(dns_context(running, timeout=0.3), {"domain": "example.com"})
    assert caught.value.retryable


async def test_servfail_is_a_retryable_failure_not_zero_counts(serve_dns: ServeDns) -> None:
    running = await serve_dns(error_rate=1.0)
    with pytest.raises(ProviderError) as caught:
        await DnsProvider().collect(dns_context(running), {"domain": "example.com"})
    assert caught.value.retryable


async def test_ip_address_is_refused_for_good(dns_server: DnsServer) -> None:
    with pytest.raises(ProviderError) as caught:
        await DnsProvider().collect(dns_context(dns_server), {"domain": "192.0.2.1"})
    assert not caught.value.retryable
