"""A signal read from a JSON column as SQL: one text for the search's queries and for its expression indexes."""

from __future__ import annotations

import re
from typing import Literal

from linkmeter.providers.registry import PROVIDER_CLASSES, PROVIDER_NAMES

Kind = Literal["number", "bool"]

# Every numeric (int, float) and boolean signal a provider or an indicator declares: what filters and sorts accept.
SIGNAL_KINDS: dict[str, Kind] = {
    signal: ("bool" if spec.type is bool else "number")
    for cls in PROVIDER_CLASSES for signal, spec in cls.provides.items() if spec.type in (int, float, bool)
}
# The signals with an expression index (migration 0005): what typical searches sort by. Keep in step with it.
INDEXED_SIGNALS: tuple[str, ...] = (
    "hackernews.points", "spam.score", "dnsbl.listed_count", "engagement.total", "authority.score",
    "tranco.rank", "rdap.domain_age_days", "page.status",
)
_SAFE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$")  # nothing that could end a SQL literal


def _literal(name: str) -> str:
    # Inlined, not bound: SQLite matches an expression index only against the same literal text.
    if not _SAFE.match(name):
        raise ValueError(f"not a signal or provider name: {name!r}")
    return name


def signal_sql(vendor: str, column: str, signal: str, kind: Kind) -> str:
    """The signal as a number (booleans 1 or 0); NULL when it is missing or of another JSON type."""
    name = _literal(signal)
    if vendor == "postgresql":
        if kind == "bool":
            return (f"(CASE WHEN ({column} -> '{name}') = 'true'::jsonb THEN 1 "
                    f"WHEN ({column} -> '{name}') = 'false'::jsonb THEN 0 END)")
        return (f"(CASE WHEN jsonb_typeof({column} -> '{name}') = 'number' "
                f"THEN ({column} ->> '{name}')::double precision END)")
    path = f"'$.\"{name}\"'"
    if kind == "bool":
        return f"(CASE json_type({column}, {path}) WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)"
    return f"(CASE WHEN json_type({column}, {path}) IN ('integer', 'real') THEN json_extract({column}, {path}) END)"


def provider_status_sql(vendor: str, column: str, provider: str) -> str:
    """The status of a provider's call from an entry's ``providers`` object (NULL: the provider did not run)."""
    if provider not in PROVIDER_NAMES:
        raise ValueError(f"unknown provider: {provider!r}")
    name = _literal(provider)
    if vendor == "postgresql":
        return f"({column} ->> '{name}')"
    return f"json_extract({column}, '$.\"{name}\"')"


def index_name(signal: str) -> str:
    return "entry_sig_" + signal.replace(".", "_")[:40]


def create_index_sql(vendor: str, table: str, signal: str) -> str:
    """The expression index serving ``owner = ? ORDER BY signal DESC, id DESC`` (and range filters on it)."""
    expression = signal_sql(vendor, "signals", signal, SIGNAL_KINDS[signal])
    nulls = " NULLS LAST" if vendor == "postgresql" else ""  # SQLite's NULLs sort lowest: DESC puts them last
    return (f"CREATE INDEX IF NOT EXISTS {index_name(signal)} ON {table} "
            f"(owner_id, {expression} DESC{nulls}, id DESC)")
