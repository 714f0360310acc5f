"""Engine settings from the environment: per-provider base URL, key, policy overrides, and deadlines."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from linkmeter.engine.dns import parse_servers
from linkmeter.engine.http import HttpSettings
from linkmeter.engine.provider import Policy, Provider, ProviderConfig
from linkmeter.engine.runner import DEFAULT_URL_DEADLINE

PREFIX = "LINKMETER_"
_FALSE = {"0", "false", "no", "off"}
_TRUE = {"1", "true", "yes", "on"}


class SettingsError(ValueError):
    """A LINKMETER_* variable has a value that cannot be used; the message names it."""


@dataclass(slots=True)
class EngineSettings:
    http: HttpSettings
    dns_servers: list[tuple[str, int]] | None
    url_deadline: float
    environ: Mapping[str, str]
    relax_rate_limits: bool = False  # against the emulator: no default rate limits, only explicit ones
    redis_url: str | None = None  # LINKMETER_REDIS_URL: shared rate limits, breakers and caches
    redis_prefix: str = "linkmeter:"  # LINKMETER_REDIS_PREFIX: namespace of every key linkmeter writes
    redis_timeout: float = 0.5  # LINKMETER_REDIS_TIMEOUT: seconds per connect and per read

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, relax_rate_limits: bool = False) -> EngineSettings:
        try:
            http = HttpSettings.from_env(environ)
        except ValueError as exc:
            raise SettingsError(str(exc)) from exc
        servers_text = environ.get(f"{PREFIX}DNS_SERVERS", "").strip()
        try:
            servers = parse_servers(servers_text) if servers_text else None
        except ValueError as exc:
            raise SettingsError(f"{PREFIX}DNS_SERVERS: {exc}") from exc
        deadline = _number(environ, f"{PREFIX}URL_DEADLINE", DEFAULT_URL_DEADLINE, positive=True)
        redis_url = environ.get(f"{PREFIX}REDIS_URL", "").strip() or None
        if redis_url is not None and urlsplit(redis_url).scheme not in {"redis", "rediss", "unix"}:
            raise SettingsError(f"{PREFIX}REDIS_URL must be a redis://, rediss:// or unix:// URL")
        return cls(http=http, dns_servers=servers, url_deadline=deadline, environ=environ,
                   relax_rate_limits=relax_rate_limits, redis_url=redis_url,
                   redis_prefix=environ.get(f"{PREFIX}REDIS_PREFIX", "").strip() or "linkmeter:",
                   redis_timeout=_number(environ, f"{PREFIX}REDIS_TIMEOUT", 0.5, positive=True))

    def configure(self, provider_class: type[Provider]) -> Provider:
        """An instance of ``provider_class`` with its config and policy taken from the environment."""
        name = provider_class.name
        prefix = f"{PREFIX}{name.upper()}_"
        env = self.environ
        config = ProviderConfig(
            base_url=env.get(prefix + "BASE_URL", provider_class.default_base_url).rstrip("/")
            or provider_class.default_base_url,
            api_key=env.get(prefix + "API_KEY") or None,
            # LINKMETER_DNSBL_OPT_SURBL_ZONE -> extra["surbl_zone"]: the provider's own option name.
            extra={k[len(prefix + "OPT_"):].lower(): v for k, v in env.items() if k.startswith(prefix + "OPT_")},
            enabled=_flag(env, prefix + "ENABLED", True),
        )
        provider = provider_class(config)
        # Start from the instance's policy: a provider may adapt it to its config (e.g. OAuth rates).
        provider.policy = self.policy_for(provider.policy, prefix)
        return provider

    def policy_for(self, base: Policy, prefix: str) -> Policy:
        env = self.environ
        changes: dict[str, object] = {}
        if prefix + "TIMEOUT" in env:
            changes["timeout"] = _number(env, prefix + "TIMEOUT", base.timeout, positive=True)
        if prefix + "RETRIES" in env:
            changes["retries"] = _whole(env, prefix + "RETRIES", base.retries)
        if prefix + "CACHE_TTL" in env:
            changes["cache_ttl"] = _number(env, prefix + "CACHE_TTL", base.cache_ttl)
        if prefix + "CONCURRENCY" in env:
            value = _whole(env, prefix + "CONCURRENCY", 0)
            changes["concurrency"] = value or None
        if prefix + "RATE" in env:
            raw = env[prefix + "RATE"].strip().lower()
            changes["rate_per_sec"] = None if raw in _FALSE | {""} else _number(env, prefix + "RATE", 0)
        elif self.relax_rate_limits:
            changes["rate_per_sec"] = None
        if prefix + "BURST" in env:
            changes["burst"] = max(1, _whole(env, prefix + "BURST", base.burst))
        return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _number(env: Mapping[str, str], key: str, default: float, *, positive: bool = False) -> float:
    raw = env.get(key)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{key} must be a number, got {raw!r}") from None
    # float() takes "nan" and "inf"; a NaN timeout never fires and compares false with everything.
    if not math.isfinite(value):
        raise SettingsError(f"{key} must be a finite number, got {raw!r}")
    if value < 0:
        raise SettingsError(f"{key} must not be negative, got {raw!r}")
    if positive and value == 0:
        raise SettingsError(f"{key} must be more than 0, got {raw!r}")
    return value


def _whole(env: Mapping[str, str], key: str, default: int) -> int:
    value = _number(env, key, default)
    if not value.is_integer():
        raise SettingsError(f"{key} must be a whole number, got {env[key]!r}")
    return int(value)


def _flag(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = env.get(key)
    if raw is None or not raw.strip():
        return default
    if raw.strip().lower() in _TRUE:
        return True
    if raw.strip().lower() in _FALSE:
        return False
    raise SettingsError(f"{key} must be true or false, got {raw!r}")
