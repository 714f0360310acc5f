"""Reading LINKMETER_* variables: one parser for text, numbers, whole numbers, flags and lists, on every side.

The engine, the web service and the Celery mode read every variable through these functions. Unset or blank
means the default; a value that cannot be used is a ``SettingsError`` naming the variable, never a crash
later. Numbers must be finite (``float()`` takes "nan" and "inf": a NaN timeout never fires and compares
false with everything, an infinite one overflows ``int()``) and not negative; ``positive`` refuses 0 too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from linkmeter.engine.errors import SettingsError

Environ = Mapping[str, str]

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


def text(environ: Environ, name: str, default: str = "") -> str:
    """The value without surrounding blanks; ``default`` when unset or blank."""
    return environ.get(name, "").strip() or default


def optional(environ: Environ, name: str) -> str | None:
    """The value without surrounding blanks; None when unset or blank."""
    return environ.get(name, "").strip() or None


def number(environ: Environ, name: str, default: float, *, positive: bool = False) -> float:
    """A finite number, at least 0 (more than 0 when ``positive``)."""
    raw = environ.get(name, "")
    if not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise SettingsError(f"{name} must be a finite number, got {raw!r}")
    if value < 0:
        raise SettingsError(f"{name} must not be negative, got {raw!r}")
    if positive and value == 0:
        raise SettingsError(f"{name} must be more than 0, got {raw!r}")
    return value


def whole(environ: Environ, name: str, default: int, *, positive: bool = False) -> int:
    """A whole number, at least 0 (more than 0 when ``positive``)."""
    value = number(environ, name, default, positive=positive)
    if not value.is_integer():
        raise SettingsError(f"{name} must be a whole number, got {environ[name]!r}")
    return int(value)


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]?)(i?b?)", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def size(environ: Environ, name: str, default: int) -> int:
    """A size in bytes: a whole number, or a number with K, M or G (KB/KiB... alike, powers of 1024: "64MB")."""
    raw = environ.get(name, "")
    if not raw.strip():
        return default
    match = _SIZE.fullmatch(raw.strip())
    if match is None or (match.group(3) and match.group(3).lower() == "i" and not match.group(2)):
        raise SettingsError(f"{name} must be a size like 64MB, 512KB or 1048576 (bytes), got {raw!r}")
    value = float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    if not value.is_integer():
        raise SettingsError(f"{name} must be a whole number of bytes, got {raw!r}")
    return int(value)


def flag(environ: Environ, name: str, default: bool) -> bool:
    """true/false, yes/no, on/off or 1/0 (any case)."""
    raw = environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in TRUE:
        return True
    if raw in FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, got {environ[name]!r}")


def items(environ: Environ, name: str, default: Iterable[str] = ()) -> list[str]:
    """A comma-separated list, blanks dropped; ``default`` when unset or blank."""
    raw = environ.get(name, "")
    if not raw.strip():
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]
