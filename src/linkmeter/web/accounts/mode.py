"""Whether requests need a login or key: local mode (one local owner, no login) or required; no Django."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from enum import StrEnum


class AuthMode(StrEnum):
    LOCAL = "local"
    REQUIRED = "required"


SETTING = "LINKMETER_AUTH"
CHOICES = ("auto", "local", "required")
_bind_host: str | None = None  # set by `linkmeter serve` before it starts serving


class AuthSettingError(ValueError):
    """LINKMETER_AUTH has a value that is none of CHOICES."""


def set_bind_host(host: str | None) -> None:
    """The address `linkmeter serve` listens on (None: not serving, e.g. tests with Django's client)."""
    global _bind_host
    _bind_host = host


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve(environ: Mapping[str, str], bind_host: str | None) -> AuthMode:
    """``auto`` (default): required when a broker is configured or the server listens on a non-loopback
    address, else local. ``local`` on a non-loopback address is refused: it would give anyone the owner's
    account."""
    value = environ.get(SETTING, "").strip().lower() or "auto"
    if value not in CHOICES:
        raise AuthSettingError(f"{SETTING} must be one of {', '.join(CHOICES)}, not {value!r}")
    exposed = bind_host is not None and not is_loopback(bind_host)
    if value == "required" or exposed:
        return AuthMode.REQUIRED
    if value == "local":
        return AuthMode.LOCAL
    return AuthMode.REQUIRED if environ.get("LINKMETER_BROKER_URL", "").strip() else AuthMode.LOCAL


def current() -> AuthMode:
    return resolve(os.environ, _bind_host)
