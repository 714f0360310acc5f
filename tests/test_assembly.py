"""The assembly: an engine pointed at an emulator in this process takes the emulator's ports, DNS server and CA as
they are, the same settings another process reads from the LINKMETER_* environment and the CA file."""

from __future__ import annotations

from pathlib import Path

from linkmeter.assembly import build_engine, build_providers, build_settings, build_state
from linkmeter.emulator.client import EmulatorInfo, environment, write_ca
from linkmeter.engine.cache import CacheEntry, MemoryCache

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
INFO = EmulatorInfo(url="http://127.0.0.1:8765", http_port=8765, https_port=8766, dns=("127.0.0.1", 8753),
                    ca_pem=PEM, seed=0, providers=("hackernews", "rdap", "reddit", "wayback"))


def test_in_process_and_through_the_environment_the_settings_are_the_same(tmp_path: Path) -> None:
    direct = build_settings({}, relax_rate_limits=True, emulator=INFO)
    read = build_settings(environment(INFO, ca_file=write_ca(INFO, tmp_path)), relax_rate_limits=True)
    for settings in (direct, read):
        assert settings.http.port_map == {80: 8765, 443: 8766}
        assert settings.http.ca_pem == PEM
        assert settings.dns_servers == settings.http.dns_servers == [("127.0.0.1", 8753)]
        assert settings.http.allow == ["127.0.0.0/8"]
    assert ([(p.name, p.config.base_url, p.policy) for p in build_providers(direct)]
            == [(p.name, p.config.base_url, p.policy) for p in build_providers(read)])
    rdap = next(p for p in build_providers(direct) if p.name == "rdap")
    assert rdap.config.base_url == "http://127.0.0.1:8765/rdap"


def test_what_the_emulator_decides_is_not_read_from_the_environment() -> None:
    stale = {"LINKMETER_FETCH_PORT_MAP": "nonsense", "LINKMETER_FETCH_CA_FILE": "/nowhere/ca.pem",
             "LINKMETER_DNS_SERVERS": "not-an-address", "LINKMETER_RDAP_BASE_URL": "https://rdap.example/",
             "LINKMETER_PAGE_TIMEOUT": "7"}
    settings = build_settings(stale, emulator=INFO)
    assert settings.http.port_map == INFO.port_map and settings.http.ca_pem == PEM
    page = next(p for p in build_providers(settings) if p.name == "page")
    assert page.policy.timeout == 7.0  # the rest of the environment still applies
    assert next(p for p in build_providers(settings) if p.name == "rdap").config.base_url.startswith(INFO.url)


async def test_state_is_shared_only_when_redis_is_configured() -> None:
    assert build_state(build_settings({})) is None
    state = build_state(build_settings({"LINKMETER_REDIS_URL": "redis://127.0.0.1:1/0"}))
    assert state is not None
    try:
        assert state.shared and state.reachable()  # nothing asked yet: not known to fail
        await state.breakers.state("rdap", 30.0)  # nothing listens on port 1
        assert not state.reachable()
    finally:
        await state.aclose()


async def test_the_in_process_cache_holds_at_most_the_cache_memory_setting() -> None:
    engine = build_engine({"LINKMETER_CACHE_MEMORY": "2KB"})
    try:
        cache = engine.state.cache
        assert isinstance(cache, MemoryCache)
        await cache.set("rdap:small", CacheEntry({}, {"a": "x" * 10}, 0), ttl=60)
        await cache.set("rdap:large", CacheEntry({}, {"a": "x" * 1000}, 0), ttl=60)  # ~4 KB in memory
        assert cache.peek("rdap:small") is not None and cache.peek("rdap:large") is None
        assert cache.bytes_used <= 2048
    finally:
        await engine.close()
