"""Structured logs: JSON lines or text, carrying the analysis, batch, provider and URL worked on; secrets masked."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from linkmeter.engine.observe import LOG_FIELDS, log_context

MASK = "***"
FORMATS = ("json", "text", "auto")
MIN_SECRET_LENGTH = 6  # shorter values ("1", "on") are settings, not secrets, and would mask half a line
SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
SECRET_PREFIXES = ("LINKMETER_", "DJANGO_")

# Secrets that show up inside text whatever their value: a password in a URL, an Authorization-like
# header, a key in a query string.
_URL_PASSWORD = re.compile(r"(?P<keep>\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+(?=@)", re.IGNORECASE)
_HEADER = re.compile(
    r"(?P<keep>\b(?:proxy-)?authorization\b['\"]?\s*[:=]\s*['\"]?(?:(?:bearer|basic|token|digest|hmac)\s+)?)"
    r"[^\s'\",;]+", re.IGNORECASE)
_NAMED = re.compile(
    r"(?P<keep>\b(?:x-api-key|api[_-]?key|x-linkmeter-signature|signature|secret|password|access_token|token)"
    r"\b['\"]?\s*[:=]\s*['\"]?)[^\s'\",;&]+", re.IGNORECASE)

# An API key (accounts.keys: lmk_<id>_<secret><checksum>) wherever it appears: only its public id is kept.
_API_KEY = re.compile(r"(?P<keep>\blmk_[0-9A-Za-z]{12}_)[0-9A-Za-z]+")
# A credential-named query parameter (refused by the API, but the access log has the request line).
_QUERY_KEY = re.compile(r"(?P<keep>[?&](?:key|api[_-]?key|x-api-key|token|access_token|authorization|bearer)=)"
                        r"[^&\s\"']+", re.IGNORECASE)

_registered: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it appears in a log line from now on (e.g. a secret read from a file)."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        _registered.add(value)


def environment_secrets(environ: Mapping[str, str]) -> set[str]:
    """Values of LINKMETER_* / DJANGO_* variables whose name says key, secret, token or password."""
    return {value for name, value in environ.items()
            if name.startswith(SECRET_PREFIXES) and SECRET_NAME.search(name) and len(value) >= MIN_SECRET_LENGTH}


class Redactor:
    """Masks known secret values and secret-looking fragments (URL passwords, auth headers, keys)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = set(secrets)

    def __call__(self, text: str) -> str:
        for secret in sorted(self.secrets | _registered, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        text = _API_KEY.sub(rf"\g<keep>{MASK}", text)
        text = _QUERY_KEY.sub(rf"\g<keep>{MASK}", text)
        text = _URL_PASSWORD.sub(rf"\g<keep>{MASK}", text)
        text = _HEADER.sub(rf"\g<keep>{MASK}", text)
        return _NAMED.sub(rf"\g<keep>{MASK}", text)


def context_fields(record: logging.LogRecord) -> dict[str, object]:
    """analysis_id, batch_id, provider and url: from ``extra=`` when given, else from the logging context."""
    current = log_context()
    fields: dict[str, object] = {}
    for name in LOG_FIELDS:
        value = getattr(record, name, None)
        if value is None:
            value = current.get(name)
        if value is not None:
            fields[name] = value
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, the context fields, exc when there is one."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redact = redactor or Redactor(environment_secrets(os.environ))

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        for name, value in context_fields(record).items():
            line[name] = value if isinstance(value, int | float | bool) else self.redact(str(value))
        if record.exc_info:
            line["exc"] = self.redact(self.formatException(record.exc_info))
        if record.stack_info:
            line["stack"] = self.redact(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``ts LEVEL logger message [analysis_id=.. batch_id=..]`` for people reading a terminal."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.redact = redactor or Redactor(environment_secrets(os.environ))

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = context_fields(record)
        if fields:
            text += " [" + " ".join(f"{name}={value}" for name, value in fields.items()) + "]"
        return self.redact(text)


def resolve_format(name: str, stream: TextIO | None = None) -> str:
    """``json`` or ``text``; ``auto`` (or empty) is text on a terminal and JSON anywhere else."""
    chosen = (name or "auto").strip().lower()
    if chosen not in FORMATS:
        raise ValueError(f"LINKMETER_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {name!r}")
    if chosen == "auto":
        stream = stream or sys.stderr
        return "text" if hasattr(stream, "isatty") and stream.isatty() else "json"
    return chosen


def formatter_for(name: str = "auto") -> logging.Formatter:
    """The formatter LOGGING names (``"()": "linkmeter.web.logging.formatter_for"``); logs go to stderr."""
    return JsonFormatter() if resolve_format(name) == "json" else TextFormatter()


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    """Django's LOGGING: every record to stderr in ``log_format``; SQL statements never logged."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"linkmeter": {"()": f"{__name__}.formatter_for", "name": log_format}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "linkmeter"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"django.db.backends": {"level": "WARNING"}},
    }


def configure_logging() -> None:
    """Apply settings.LOGGING again (for processes that someone else configured first, e.g. Celery's)."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
