"""crt.sh Certificate Transparency search: the certificates of a registered domain and its subdomains."""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from linkmeter.engine.http import HttpResponse, error_for_status
from linkmeter.engine.provider import (
    CallContext,
    Collected,
    Policy,
    Provider,
    ProviderError,
    Signals,
    SignalSpec,
)
from linkmeter.engine.urls import registered_domain
from linkmeter.providers.timestamps import iso_utc

# Big domains answer many MB of JSON (crt.sh stops at 10,000 identity rows): above the 5 MB default cap.
MAX_BODY = 32 * 1024 * 1024
RAW_ROWS = 20  # rows kept in the raw result: a popular domain's whole answer would fill the caches
# mod_certwatch answers 503 with a page quoting the database's messages when a query failed
# (crtsh/mod_certwatch); "statement timeout" means the search itself is too big to ever finish.
STATEMENT_TIMEOUT = re.compile(r"statement timeout", re.I)
TERMINATED_AFTER = re.compile(r"terminated by the crt\.sh database server after <B>(\d+)</B>", re.I)
HEAD = re.compile(r"<(head|style|script)\b.*?</\1\s*>", re.I | re.S)
TAG = re.compile(r"<[^>]+>")
MESSAGES = re.compile(r"<textarea\b[^>]*>(.*?)</textarea>", re.I | re.S)
ORGANISATION = re.compile(r"(?:^|,\s*)O=(\"[^\"]*\"|[^,]*)")


@dataclass(frozen=True, slots=True)
class Certificate:
    """One certificate, whichever of its entries (precertificate, final certificate) came first."""

    issuer_ca_id: str
    issuer_name: str
    not_before: datetime | None
    not_after: datetime | None
    names: frozenset[str]


class CrtshProvider(Provider):
    """One search, ``GET /?q=<registered domain>&output=json``: crt.sh strips a leading ``%.`` and matches
    identities by full text, where every name also stands for its parent domains, so the one query finds
    the domain's own certificates and its subdomains'. The precertificate and the final certificate of one
    issuance are two rows with distinct ``id``s: rows are counted once per (issuer CA, serial number),
    which is what crt.sh's own ``deduplicate=Y`` compares (asked client-side: the server-side join is what
    makes big domains time out)."""

    name = "crtsh"
    order = 35
    group = "domain"
    published_limits = ("none published; about 60 requests a minute per IP (UNVERIFIED); big domains hit "
                        "crt.sh's database time limit (~6 s) and fail")
    needs = ("domain",)
    wants = ("page.final_domain",)
    provides = {
        "crtsh.certificates": SignalSpec(int, "certificates logged for the domain and its subdomains (a "
                                              "precertificate and its final certificate count once)",
                                         "certificates"),
        "crtsh.first_certificate": SignalSpec(str, "earliest not_before of those certificates (ISO-8601 UTC)"),
        "crtsh.latest_expiry": SignalSpec(str, "latest not_after of those certificates (ISO-8601 UTC)"),
        "crtsh.issuers": SignalSpec(int, "distinct issuing CAs (issuer_ca_id)", "CAs"),
        "crtsh.issuer_names": SignalSpec(list, "organisations (O=) of the issuing CAs, most certificates "
                                               "first"),
        "crtsh.hostnames": SignalSpec(int, "distinct host names the certificates name under the domain (a "
                                           "wildcard counts as one name)", "names"),
    }
    # crt.sh publishes no limits; "60 requests per IP per minute" (ronin-recon #35). Big domains take the
    # database's whole time limit and more (nl-kat #3911), hence the long timeout and a small concurrency;
    # two attempts of 25 s fit the default 60 s URL deadline. Certificates change slowly: a day's cache.
    policy = Policy(timeout=25.0, retries=1, backoff_base=1.0, rate_per_sec=1.0, burst=1, concurrency=2,
                    cache_ttl=86400.0)
    default_base_url = "https://crt.sh"

    def key(self, signals: Signals) -> str:
        name = str(signals.get("page.final_domain") or signals["domain"])
        return registered_domain(name.strip().rstrip(".").lower())

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        domain = self.key(signals)
        response = await ctx.http.request(
            "GET", ctx.config.base_url.rstrip("/") + "/", params={"q": domain, "output": "json"},
            headers={"Accept": "application/json"}, accept=range(200, 600), max_bytes=MAX_BODY,
        )
        if response.status != 200:
            raise status_error(response, domain)
        rows = parse_rows(response)
        return Collected(signals=summarise(certificates(rows), domain),
                         raw={"domain": domain, "rows": len(rows), "first_rows": rows[:RAW_ROWS]})


def status_error(response: HttpResponse, domain: str) -> ProviderError:
    """A non-200 answer as an error: crt.sh's "database gave up" page is final (retrying a search "that would
    produce many results" fails again), other 5xx and 429 are retried."""
    text = response.text()
    if response.status >= 500 and STATEMENT_TIMEOUT.search(text):
        seconds = TERMINATED_AFTER.search(text)
        after = f" after {seconds.group(1)} s" if seconds else ""
        return ProviderError(f"crt.sh gave up on {domain}{after}: too many certificates (its database "
                             f"cancelled the query)", retryable=False, status=response.status)
    return error_for_status(response.status, response.headers, response.url, _plain(text))


def parse_rows(response: HttpResponse) -> list[dict[str, Any]]:
    """The JSON array of a 200; an empty body is zero certificates, an HTML page an error."""
    if not response.body.strip():
        return []
    try:
        rows = json.loads(response.body)
    except ValueError as exc:
        kind = response.headers.get("Content-Type", "?")
        raise ProviderError(f"crt.sh answered {kind}, not JSON: {_plain(response.text())[:200]}") from exc
    if not isinstance(rows, list):
        raise ProviderError("unexpected crt.sh response: not a JSON array")
    return [row for row in rows if isinstance(row, dict)]


def certificates(rows: list[dict[str, Any]]) -> list[Certificate]:
    """One Certificate per (issuer_ca_id, serial_number); a row without a serial counts by its own id."""
    found: dict[tuple[str, str], Certificate] = {}
    for row in rows:
        issuer = str(row.get("issuer_ca_id", ""))
        serial = str(row.get("serial_number") or "").lower().lstrip("0")
        identity = (issuer, serial) if serial else ("id", str(row.get("id", len(found))))
        names = frozenset(_names(row))
        known = found.get(identity)
        if known is not None:
            found[identity] = Certificate(known.issuer_ca_id, known.issuer_name, known.not_before,
                                          known.not_after, known.names | names)
            continue
        found[identity] = Certificate(
            issuer_ca_id=issuer,
            issuer_name=str(row.get("issuer_name") or ""),
            not_before=parse_timestamp(row.get("not_before")),
            not_after=parse_timestamp(row.get("not_after")),
            names=names,
        )
    return list(found.values())


def summarise(found: list[Certificate], domain: str) -> dict[str, Any]:
    """The provider's signals; no certificate gives 0, [] and None."""
    starts = [cert.not_before for cert in found if cert.not_before is not None]
    ends = [cert.not_after for cert in found if cert.not_after is not None]
    organisations = Counter(organisation(cert.issuer_name) for cert in found if cert.issuer_name)
    suffix = "." + domain
    hostnames = {name for cert in found for name in cert.names
                 if name == domain or name.endswith(suffix)}
    return {
        "crtsh.certificates": len(found),
        "crtsh.first_certificate": iso_utc(min(starts)) if starts else None,
        "crtsh.latest_expiry": iso_utc(max(ends)) if ends else None,
        "crtsh.issuers": len({cert.issuer_ca_id or cert.issuer_name for cert in found}),
        "crtsh.issuer_names": [name for name, _ in sorted(organisations.items(), key=lambda kv: (-kv[1], kv[0]))],
        "crtsh.hostnames": len(hostnames),
    }


def organisation(issuer_name: str) -> str:
    """The O= of an issuer DN ("C=US, O=Let's Encrypt, CN=R3" -> "Let's Encrypt"), else the whole DN."""
    found = ORGANISATION.search(issuer_name)
    return found.group(1).strip().strip('"') if found and found.group(1).strip() else issuer_name.strip()


def parse_timestamp(value: object) -> datetime | None:
    """A crt.sh timestamp ("2020-03-06T23:14:48", fractions allowed) as UTC: it carries no time zone."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _names(row: dict[str, Any]) -> list[str]:
    """``name_value`` holds names separated by newlines (lower-cased here; a wildcard stays one name)."""
    value = row.get("name_value")
    text = value if isinstance(value, str) else ""
    return [name.strip().lower().rstrip(".") for name in text.split("\n") if name.strip()]


def _plain(text: str) -> str:
    """An HTML error page as one line of text, for messages: the database's own messages when the page
    quotes them, else the page's text without its head and styles."""
    quoted = MESSAGES.search(text)
    if quoted:
        return "crt.sh's database said: " + " ".join(html.unescape(quoted.group(1)).split())
    return " ".join(html.unescape(TAG.sub(" ", HEAD.sub(" ", text))).split())
