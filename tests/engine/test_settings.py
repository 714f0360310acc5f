"""Engine settings from LINKMETER_* variables: base URLs, keys, switches, policy overrides, bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from linkmeter.engine.http import HttpSettings
from linkmeter.engine.settings import DEFAULT_URL_DEADLINE, EngineSettings, SettingsError
from linkmeter.providers.dnsbl import DnsblProvider, zones
from linkmeter.providers.hackernews import HackerNewsProvider
from linkmeter.providers.page import PageProvider
from linkmeter.providers.rdap import RdapProvider
from linkmeter.providers.reddit import RedditProvider
from linkmeter.providers.registry import PROVIDER_CLASSES
from linkmeter.providers.wayback import WaybackProvider


def settings(relax_rate_limits: bool = False, **environ: str) -> EngineSettings:
    return EngineSettings.from_env(environ, relax_rate_limits=relax_rate_limits)


def test_no_variables_means_every_provider_on_its_defaults() -> None:
    chosen = settings()
    assert chosen.url_deadline == DEFAULT_URL_DEADLINE
    assert chosen.dns_servers is None
    for cls in PROVIDER_CLASSES:
        provider = chosen.configure(cls)
        assert provider.config.base_url == cls.default_base_url
        assert provider.config.api_key is None
        # A keyed provider without its key is disabled by default, naming the variable to set.
        keyless = f"no API key: set LINKMETER_{cls.name.upper()}_API_KEY" if cls.requires_key else None
        assert provider.disabled_reason() == keyless
        assert provider.policy == cls.policy


def test_base_url_and_api_key_come_from_the_provider_s_own_variables() -> None:
    chosen = settings(LINKMETER_REDDIT_BASE_URL="http://127.0.0.1:9/reddit/",
                      LINKMETER_REDDIT_API_KEY="secret", LINKMETER_WAYBACK_API_KEY="")
    reddit = chosen.configure(RedditProvider)
    assert reddit.config.base_url == "http://127.0.0.1:9/reddit"  # trailing slash dropped
    assert reddit.config.api_key == "secret"
    assert chosen.configure(WaybackProvider).config.api_key is None  # empty means unset
    assert chosen.configure(HackerNewsProvider).config.base_url == HackerNewsProvider.default_base_url


def test_provider_options_reach_the_provider_under_their_own_name() -> None:
    chosen = settings(LINKMETER_DNSBL_OPT_SURBL_ZONE="multi.surbl.example.")
    provider = chosen.configure(DnsblProvider)
    assert provider.config.extra == {"surbl_zone": "multi.surbl.example."}
    assert zones(provider.config)["surbl"] == "multi.surbl.example"


@pytest.mark.parametrize("value", ["false", "0", "no", "off", "FALSE"])
def test_enabled_false_disables_the_provider_with_a_reason_naming_the_variable(value: str) -> None:
    provider = settings(LINKMETER_WAYBACK_ENABLED=value).configure(WaybackProvider)
    reason = provider.disabled_reason()
    assert reason is not None and "LINKMETER_WAYBACK_ENABLED" in reason


def test_enabled_true_keeps_the_provider_on() -> None:
    assert settings(LINKMETER_WAYBACK_ENABLED="yes").configure(WaybackProvider).disabled_reason() is None


def test_policy_overrides_apply_to_that_provider_only() -> None:
    chosen = settings(LINKMETER_RDAP_TIMEOUT="2.5", LINKMETER_RDAP_RETRIES="4", LINKMETER_RDAP_RATE="7.5",
                      LINKMETER_RDAP_BURST="9", LINKMETER_RDAP_CONCURRENCY="3", LINKMETER_RDAP_CACHE_TTL="0")
    policy = chosen.configure(RdapProvider).policy
    assert (policy.timeout, policy.retries, policy.rate_per_sec, policy.burst, policy.concurrency,
            policy.cache_ttl) == (2.5, 4, 7.5, 9, 3, 0.0)
    assert policy.backoff_base == RdapProvider.policy.backoff_base
    assert chosen.configure(PageProvider).policy == PageProvider.policy
    assert RdapProvider.policy.timeout != 2.5  # the class default is untouched


def test_the_batch_linger_is_a_policy_override() -> None:
    assert settings(LINKMETER_RDAP_BATCH_LINGER="0.05").configure(RdapProvider).policy.batch_linger == 0.05
    assert settings().configure(RdapProvider).policy.batch_linger == RdapProvider.policy.batch_linger


@pytest.mark.parametrize(("value", "bulk"), [("", True), ("on", True), ("off", False), ("false", False)])
def test_bulk_queries_are_on_unless_switched_off(value: str, bulk: bool) -> None:
    assert settings(LINKMETER_BULK=value).bulk is bulk


def test_concurrency_zero_means_no_cap() -> None:
    assert settings(LINKMETER_PAGE_CONCURRENCY="0").configure(PageProvider).policy.concurrency is None


@pytest.mark.parametrize("value", ["off", "0", "false", "", " OFF "])
def test_rate_off_removes_the_rate_limit(value: str) -> None:
    assert settings(LINKMETER_REDDIT_RATE=value).configure(RedditProvider).policy.rate_per_sec is None


def test_relaxed_rate_limits_drop_defaults_but_keep_explicit_rates() -> None:
    chosen = settings(True, LINKMETER_HACKERNEWS_RATE="2")
    assert chosen.configure(HackerNewsProvider).policy.rate_per_sec == 2.0
    for cls in (RedditProvider, WaybackProvider, RdapProvider):
        assert cls.policy.rate_per_sec is not None
        assert chosen.configure(cls).policy.rate_per_sec is None
    assert settings().configure(RedditProvider).policy.rate_per_sec == RedditProvider.policy.rate_per_sec


def test_url_deadline_and_dns_servers() -> None:
    chosen = settings(LINKMETER_URL_DEADLINE="12", LINKMETER_DNS_SERVERS="127.0.0.1:5353, [::1]:53")
    assert chosen.url_deadline == 12.0
    assert chosen.dns_servers == [("127.0.0.1", 5353), ("::1", 53)]


@pytest.mark.parametrize(("variable", "value"), [
    ("LINKMETER_PAGE_TIMEOUT", "fast"),
    ("LINKMETER_PAGE_TIMEOUT", "-1"),
    ("LINKMETER_PAGE_TIMEOUT", "0"),
    ("LINKMETER_PAGE_TIMEOUT", "nan"),
    ("LINKMETER_RDAP_RETRIES", "two"),
    ("LINKMETER_RDAP_RETRIES", "1.5"),
    ("LINKMETER_REDDIT_RATE", "lots"),
    ("LINKMETER_REDDIT_RATE", "inf"),
    ("LINKMETER_REDDIT_BURST", "-3"),
    ("LINKMETER_DNS_CONCURRENCY", "many"),
    ("LINKMETER_WAYBACK_CACHE_TTL", "1h"),
    ("LINKMETER_WAYBACK_ENABLED", "maybe"),
    ("LINKMETER_WAYBACK_BATCH_LINGER", "-0.1"),
])
def test_a_bad_policy_value_raises_a_settings_error_naming_the_variable(variable: str, value: str) -> None:
    chosen = settings(**{variable: value})
    with pytest.raises(SettingsError, match=variable):
        for cls in PROVIDER_CLASSES:
            chosen.configure(cls)


@pytest.mark.parametrize(("variable", "value"), [
    ("LINKMETER_URL_DEADLINE", "soon"),
    ("LINKMETER_URL_DEADLINE", "0"),
    ("LINKMETER_DNS_SERVERS", "127.0.0.1:dns"),
    ("LINKMETER_DNS_SERVERS", "resolver.example"),
    ("LINKMETER_DNS_SERVERS", "dns.example.com"),
    ("LINKMETER_DNS_SERVERS", "127.0.0.1:70000"),
    ("LINKMETER_FETCH_ALLOW", "not a network/99"),
    ("LINKMETER_FETCH_ALLOW", "10.0.0.0/33"),
    ("LINKMETER_FETCH_ALLOW", "http://emulator/"),
    ("LINKMETER_FETCH_PORT_MAP", "443:8443"),
    ("LINKMETER_FETCH_PORT_MAP", "443=https"),
    ("LINKMETER_FETCH_PORT_MAP", "443=0"),
    ("LINKMETER_FETCH_CA_FILE", "/nonexistent/ca.pem"),
    ("LINKMETER_FETCH_MAX_BYTES", "big"),
    ("LINKMETER_FETCH_MAX_BYTES", "5MB"),
    ("LINKMETER_FETCH_MAX_BYTES", "0"),
    ("LINKMETER_BULK", "sometimes"),
    ("LINKMETER_CACHE_MEMORY", "plenty"),
    ("LINKMETER_CACHE_MEMORY", "-64MB"),
    ("LINKMETER_CACHE_MEMORY", "64TB"),
])
def test_a_bad_global_value_raises_a_settings_error_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        settings(**{variable: value})


def test_the_cache_memory_is_a_size_in_bytes() -> None:
    assert settings().cache_memory == 64 * 1024 * 1024
    assert settings(LINKMETER_CACHE_MEMORY="16MB").cache_memory == 16 * 1024 * 1024
    assert settings(LINKMETER_CACHE_MEMORY="0").cache_memory == 0
    with pytest.raises(SettingsError, match="LINKMETER_CACHE_MEMORY must be a size like 64MB"):
        settings(LINKMETER_CACHE_MEMORY="lots")


# --- the shared HTTP client's settings (moved here from tests/engine/test_http.py) -----------------------


def http_settings_from(environ: dict[str, str]) -> HttpSettings:
    return EngineSettings.from_env(environ).http


def test_settings_from_an_empty_environment_are_the_defaults() -> None:
    assert http_settings_from({}) == HttpSettings()


def test_settings_from_the_environment(tmp_path: Path, ca: trustme.CA) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem.bytes())
    settings = http_settings_from({
        "LINKMETER_FETCH_ALLOW": "127.0.0.0/8, emulator.local,,::1",
        "LINKMETER_DNS_SERVERS": "127.0.0.1:5353,[::1]:53",
        "LINKMETER_FETCH_PORT_MAP": "443=8443,80=8080",
        "LINKMETER_FETCH_CA_FILE": str(ca_file),
        "LINKMETER_FETCH_MAX_BYTES": "1048576",
    })
    assert settings.allow == ["127.0.0.0/8", "emulator.local", "::1"]
    assert settings.dns_servers == [("127.0.0.1", 5353), ("::1", 53)]
    assert settings.port_map == {443: 8443, 80: 8080}
    assert settings.ca_pem == ca.cert_pem.bytes().decode()
    assert settings.max_body == 1048576


def test_a_ca_file_without_a_certificate_is_refused(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("not a certificate\n")
    with pytest.raises(ValueError, match=r"LINKMETER_FETCH_CA_FILE: .* holds no PEM certificate"):
        http_settings_from({"LINKMETER_FETCH_CA_FILE": str(ca_file)})


# --- every numeric engine setting: one parser, one clear error --------------------------------------------

ENGINE_NUMBERS = ["LINKMETER_URL_DEADLINE", "LINKMETER_REDIS_TIMEOUT", "LINKMETER_FETCH_MAX_BYTES"]
POLICY_NUMBERS = ["LINKMETER_PAGE_TIMEOUT", "LINKMETER_RDAP_RETRIES", "LINKMETER_REDDIT_RATE",
                  "LINKMETER_WAYBACK_BURST", "LINKMETER_DNS_CONCURRENCY", "LINKMETER_HACKERNEWS_CACHE_TTL"]
BAD_NUMBERS = ["nan", "inf", "-inf", "-1", "many"]


@pytest.mark.parametrize("value", BAD_NUMBERS)
@pytest.mark.parametrize("variable", ENGINE_NUMBERS + POLICY_NUMBERS)
def test_a_bad_number_in_any_engine_setting_is_a_settings_error_naming_it(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        chosen = settings(**{variable: value})
        for cls in PROVIDER_CLASSES:
            chosen.configure(cls)


def test_an_infinite_url_deadline_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="LINKMETER_URL_DEADLINE must be a finite number, got 'inf'"):
        settings(LINKMETER_URL_DEADLINE="inf")


def test_dns_servers_are_read_once_for_the_engine_and_its_http_client() -> None:
    chosen = settings(LINKMETER_DNS_SERVERS="127.0.0.1:5353")
    assert chosen.dns_servers == chosen.http.dns_servers == [("127.0.0.1", 5353)]
    assert settings().dns_servers is None and settings().http.dns_servers is None
