"""Engine settings from the environment (LINKMETER_*): the HTTP client, DNS, the URL deadline, Redis, providers.

Each variable is read here once, through ``linkmeter.engine.env``, with its one default. The readers of the
variables other sides use too (``url_deadline``, ``redis_url``, ``fetch_allow``, ``data_dir``) are public: the Celery
settings and the web settings call them instead of parsing the same variable again. The full list:
docs/architecture.md, "Settings".
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from linkmeter.engine import env
from linkmeter.engine.budgets import DEFAULT_RESERVE, DEFAULT_RESERVE_PRIORITY, BudgetRule
from linkmeter.engine.cache import DEFAULT_MAX_BYTES
from linkmeter.engine.dns import parse_servers
from linkmeter.engine.errors import SettingsError as SettingsError  # callers catch it from here
from linkmeter.engine.http import HttpSettings
from linkmeter.engine.provider import Policy, Provider, ProviderConfig
from linkmeter.engine.ssrf import AllowList
from linkmeter.engine.state import DEFAULT_PREFIX, DEFAULT_TIMEOUT

PREFIX = "LINKMETER_"
DEFAULT_URL_DEADLINE = 60.0  # seconds per URL
DEFAULT_DATA_DIR = "data"
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})


def url_deadline(environ: Mapping[str, str]) -> float:
    """LINKMETER_URL_DEADLINE: seconds per URL (the Celery mode sizes its chunk backstop from it)."""
    return env.number(environ, "LINKMETER_URL_DEADLINE", DEFAULT_URL_DEADLINE, positive=True)


def budget_rule(environ: Mapping[str, str]) -> BudgetRule:
    """LINKMETER_BUDGET_RESERVE (a share in [0, 1)) and LINKMETER_BUDGET_RESERVE_PRIORITY."""
    reserve = env.number(environ, "LINKMETER_BUDGET_RESERVE", DEFAULT_RESERVE)
    if reserve >= 1:
        raise SettingsError(f"LINKMETER_BUDGET_RESERVE: {reserve:g} is not a share below 1")
    return BudgetRule(reserve, env.whole(environ, "LINKMETER_BUDGET_RESERVE_PRIORITY", DEFAULT_RESERVE_PRIORITY))


def data_dir(environ: Mapping[str, str]) -> Path:
    """LINKMETER_DATA_DIR, absolute: the web side's database and secret key, and the files providers keep for
    every process of the host (the Tranco list)."""
    return Path(env.text(environ, "LINKMETER_DATA_DIR", DEFAULT_DATA_DIR)).resolve()


def redis_url(environ: Mapping[str, str]) -> str | None:
    """LINKMETER_REDIS_URL: the engine's shared state, and the Celery mode's chord backend; None when unset."""
    url = env.optional(environ, "LINKMETER_REDIS_URL")
    if url is not None and urlsplit(url).scheme not in REDIS_SCHEMES:
        raise SettingsError("LINKMETER_REDIS_URL must be a redis://, rediss:// or unix:// URL")
    return url


def redis_prefix(environ: Mapping[str, str]) -> str:
    """LINKMETER_REDIS_PREFIX: the namespace of every Redis key (the engine's and the API rate limits')."""
    return env.text(environ, "LINKMETER_REDIS_PREFIX", DEFAULT_PREFIX)


def fetch_allow(environ: Mapping[str, str]) -> list[str]:
    """LINKMETER_FETCH_ALLOW: the hosts and networks the SSRF guard lets through (the page fetch, webhooks)."""
    name = "LINKMETER_FETCH_ALLOW"
    allow = env.items(environ, name)
    try:
        AllowList.parse(allow)
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}") from exc
    return allow


def dns_servers(environ: Mapping[str, str]) -> list[tuple[str, int]] | None:
    """LINKMETER_DNS_SERVERS: ``addr[:port],...`` for every lookup (the page fetch, DNS providers); None: the
    system's."""
    name = "LINKMETER_DNS_SERVERS"
    text = env.text(environ, name)
    if not text:
        return None
    try:
        servers = parse_servers(text)
    except ValueError as exc:
        raise SettingsError(f"{name}: expected addr[:port],... got {text!r}") from exc
    for host, port in servers:
        try:
            ipaddress.ip_address(host)
        except ValueError as exc:
            raise SettingsError(f"{name}: {host!r} is not an IP address") from exc
        if not 0 < port < 65536:
            raise SettingsError(f"{name}: port {port} out of range")
    return servers or None


def http_settings(environ: Mapping[str, str], *, servers: list[tuple[str, int]] | None) -> HttpSettings:
    """The shared HTTP client's settings: LINKMETER_FETCH_ALLOW, _FETCH_PORT_MAP, _FETCH_CA_FILE and
    _FETCH_MAX_BYTES, with the DNS ``servers`` (read once, by ``dns_servers``)."""
    settings = HttpSettings(allow=fetch_allow(environ), dns_servers=servers)
    port_map = env.text(environ, "LINKMETER_FETCH_PORT_MAP")
    if port_map:
        settings.port_map = _port_map(port_map)
    ca_file = env.text(environ, "LINKMETER_FETCH_CA_FILE")
    if ca_file:
        settings.ca_pem = _read_ca_file(ca_file)
    settings.max_body = env.whole(environ, "LINKMETER_FETCH_MAX_BYTES", settings.max_body, positive=True)
    return settings


def _port_map(text: str) -> dict[int, int]:
    mapping: dict[int, int] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        source, sep, target = item.partition("=")
        try:
            ports = (int(source), int(target)) if sep else None
        except ValueError:
            ports = None
        if ports is None or not all(0 < port < 65536 for port in ports):
            raise SettingsError(
                f"LINKMETER_FETCH_PORT_MAP: expected FROM=TO port pairs like 443=8443,80=8080, got {item!r}")
        mapping[ports[0]] = ports[1]
    return mapping


def _read_ca_file(path: str) -> str:
    try:
        with open(path, encoding="ascii") as handle:
            pem = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"LINKMETER_FETCH_CA_FILE: cannot read {path}: {exc}") from exc
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise SettingsError(f"LINKMETER_FETCH_CA_FILE: {path} holds no PEM certificate")
    return pem


@dataclass(slots=True)
class EngineSettings:
    http: HttpSettings
    dns_servers: list[tuple[str, int]] | None
    url_deadline: float
    environ: Mapping[str, str]
    relax_rate_limits: bool = False  # against the emulator: no default rate limits, only explicit ones
    redis_url: str | None = None  # LINKMETER_REDIS_URL: shared rate limits, breakers and caches
    redis_prefix: str = DEFAULT_PREFIX  # LINKMETER_REDIS_PREFIX: namespace of every key linkmeter writes
    redis_timeout: float = DEFAULT_TIMEOUT  # LINKMETER_REDIS_TIMEOUT: seconds per connect and per read
    bulk: bool = True  # LINKMETER_BULK: off sends every call one by one (the benchmark's comparison)
    data_dir: Path | None = None  # LINKMETER_DATA_DIR: where providers keep files every process shares
    cache_memory: int = DEFAULT_MAX_BYTES  # LINKMETER_CACHE_MEMORY: bytes of results cached in this process
    budget_rule: BudgetRule = field(default_factory=BudgetRule)  # LINKMETER_BUDGET_RESERVE(_PRIORITY)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, relax_rate_limits: bool = False) -> EngineSettings:
        """Raises SettingsError naming the first bad variable."""
        servers = dns_servers(environ)
        return cls(http=http_settings(environ, servers=servers), dns_servers=servers,
                   url_deadline=url_deadline(environ), environ=environ, relax_rate_limits=relax_rate_limits,
                   redis_url=redis_url(environ),
                   redis_prefix=redis_prefix(environ),
                   redis_timeout=env.number(environ, "LINKMETER_REDIS_TIMEOUT", DEFAULT_TIMEOUT, positive=True),
                   bulk=env.flag(environ, "LINKMETER_BULK", True),
                   data_dir=data_dir(environ),
                   cache_memory=env.size(environ, "LINKMETER_CACHE_MEMORY", DEFAULT_MAX_BYTES),
                   budget_rule=budget_rule(environ))

    def configure(self, provider_class: type[Provider]) -> Provider:
        """An instance of ``provider_class`` with its config and policy taken from the environment."""
        name = provider_class.name
        prefix = f"{PREFIX}{name.upper()}_"
        environ = self.environ
        config = ProviderConfig(
            base_url=environ.get(prefix + "BASE_URL", provider_class.default_base_url).rstrip("/")
            or provider_class.default_base_url,
            api_key=environ.get(prefix + "API_KEY") or None,
            # LINKMETER_DNSBL_OPT_SURBL_ZONE -> extra["surbl_zone"]: the provider's own option name.
            extra={k[len(prefix + "OPT_"):].lower(): v for k, v in environ.items() if k.startswith(prefix + "OPT_")},
            enabled=env.flag(environ, prefix + "ENABLED", True),
            data_dir=str(self.data_dir) if self.data_dir else None,
        )
        provider = provider_class(config)
        # Start from the instance's policy: a provider may adapt it to its config (e.g. OAuth rates).
        provider.policy = self.policy_for(provider.policy, prefix)
        return provider

    def policy_for(self, base: Policy, prefix: str) -> Policy:
        """``base`` with the overrides set under ``prefix`` (TIMEOUT, RETRIES, CACHE_TTL, CONCURRENCY, RATE,
        BURST, BATCH_LINGER, PER_HOUR, PER_DAY); each unset one keeps the base's value."""
        environ = self.environ
        changes: dict[str, object] = {
            "timeout": env.number(environ, prefix + "TIMEOUT", base.timeout, positive=True),
            "retries": env.whole(environ, prefix + "RETRIES", base.retries),
            "cache_ttl": env.number(environ, prefix + "CACHE_TTL", base.cache_ttl),
            "concurrency": env.whole(environ, prefix + "CONCURRENCY", base.concurrency or 0) or None,
            "burst": max(1, env.whole(environ, prefix + "BURST", base.burst)),
            "batch_linger": env.number(environ, prefix + "BATCH_LINGER", base.batch_linger),
        }
        if prefix + "RATE" in environ:
            off = env.text(environ, prefix + "RATE").lower() in env.FALSE | {""}
            changes["rate_per_sec"] = None if off else env.number(environ, prefix + "RATE", 0)
        elif self.relax_rate_limits:
            changes["rate_per_sec"] = None
        for period in ("per_hour", "per_day"):
            variable = prefix + period.upper()
            if variable in environ:
                off = env.text(environ, variable).lower() in env.FALSE | {""}
                changes[period] = 0 if off else env.whole(environ, variable, 0)
            elif self.relax_rate_limits:
                changes[period] = 0  # against the emulator: no budgets but those set explicitly
        return dataclasses.replace(base, **changes)  # type: ignore[arg-type]
