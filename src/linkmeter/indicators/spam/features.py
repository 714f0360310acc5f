"""The spam model's features: lexical ones from the URL (after normalising it) and one per usable signal.

A feature vector is a sparse ``dict[str, float]``. Names:

- ``url.*``: lexical features of the normalised URL (scheme, a leading ``www.``, default ports and a trailing
  ``/`` dropped, host lower-cased), always present.
- ``ng.<bucket>``: hashed character 3- and 4-grams of the normalised host and of the path (crc32 modulo
  ``NGRAM_BUCKETS``; the host's grams and the path's are hashed apart), L2-normalised per part; a host's
  grams are computed once per host (cached).
- ``sig.*``: one per signal the indicator reads, and ``sig.<name>.missing`` = 1 when the provider did not
  answer (failed, skipped, disabled, or gave an error code such as a refused DNSBL lookup): unknown is never
  clean, so an absent signal is a feature of its own, never a 0.

``SCHEMA_VERSION`` changes whenever a feature's meaning changes; an artifact names the schema it was trained
on and is refused by a scorer of another schema.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from linkmeter.engine.urls import registered_domain

SCHEMA_VERSION = 1
NGRAM_BUCKETS = 1 << 15
NGRAM_SIZES = (3, 4)
MAX_TEXT = 256  # characters of host and of path the n-grams read: longer tails cost time, add little

SHORTENERS = frozenset({
    "bit.ly", "goo.gl", "t.co", "tinyurl.com", "ow.ly", "is.gd", "buff.ly", "adf.ly", "bit.do", "cutt.ly",
    "rb.gy", "shorturl.at", "tiny.cc", "t.ly", "rebrand.ly", "s.id", "v.gd", "x.co", "lnkd.in", "qrco.de",
    "bl.ink", "short.io", "soo.gd", "clck.ru", "u.to", "shorte.st", "ouo.io", "1url.com", "tr.im", "db.tt",
})
FREE_HOSTING = frozenset({
    "000webhostapp.com", "weebly.com", "wixsite.com", "blogspot.com", "github.io", "gitlab.io", "web.app",
    "firebaseapp.com", "appspot.com", "herokuapp.com", "netlify.app", "vercel.app", "pages.dev",
    "workers.dev", "glitch.me", "repl.co", "webflow.io", "gitbook.io", "wordpress.com", "sites.google.com",
    "square.site", "godaddysites.com", "yolasite.com", "jimdosite.com", "myshopify.com", "azurewebsites.net",
    "ngrok.io", "ngrok-free.app", "duckdns.org", "no-ip.org", "ddns.net", "byethost.com", "atwebpages.com",
    "tripod.com", "angelfire.com", "site123.me", "mystrikingly.com", "carrd.co", "surge.sh", "onrender.com",
    "fly.dev", "translate.goog", "ipfs.io", "r2.dev", "storage.googleapis.com", "blob.core.windows.net",
    "s3.amazonaws.com", "wcomhost.com", "freehosting.com", "hostingersite.com", "framer.website",
})
BRANDS = frozenset({
    "paypal", "apple", "icloud", "microsoft", "office365", "outlook", "hotmail", "live", "google", "gmail",
    "amazon", "netflix", "facebook", "instagram", "whatsapp", "linkedin", "dropbox", "docusign", "adobe",
    "chase", "wellsfargo", "bankofamerica", "citibank", "hsbc", "barclays", "santander", "americanexpress",
    "amex", "visa", "mastercard", "dhl", "fedex", "ups", "usps", "ebay", "alibaba", "yahoo", "aol", "steam",
    "coinbase", "binance", "blockchain", "metamask", "itau", "bradesco", "onedrive", "sharepoint", "wetransfer",
    "spotify", "twitter", "telegram", "roblox", "orange", "laposte", "ameli", "irs", "hmrc", "att", "verizon",
})
CREDENTIAL_WORDS = ("login", "logon", "signin", "sign-in", "verify", "verification", "secure", "account",
                    "update", "confirm", "password", "webscr", "banking", "wallet", "unlock", "suspend",
                    "billing", "recover", "authenticate", "validation", "support", "invoice", "ebayisapi")
SUSPICIOUS_TLDS = frozenset({
    "tk", "ml", "ga", "cf", "gq", "xyz", "top", "club", "online", "site", "icu", "buzz", "work", "live", "fit",
    "rest", "cam", "monster", "click", "link", "info", "biz", "pw", "cc", "ru", "cn", "su", "zip", "mov",
    "country", "kim", "loan", "win", "review", "stream", "download", "racing", "date", "men", "party",
})


@dataclass(slots=True)
class NormalisedURL:
    """The parts of a URL the lexical features read, normalised (see the module docstring)."""

    host: str  # lower-case, no leading www., no port
    domain: str  # registered domain (eTLD+1) of host
    path: str  # path, then "?" and the query when there is one; no trailing "/"
    text: str  # host + path: what lengths and ratios count
    port: int | None  # a non-default port
    scheme: str  # "http", "https" or "" (schemes never become features: a shortcut in the data)


@dataclass(slots=True)
class Features:
    """A sparse feature vector, and the texts its n-grams were read from (``gram_text`` finds one again)."""

    values: dict[str, float] = field(default_factory=dict)
    texts: list[tuple[str, bytes, list[int]]] = field(default_factory=list)  # (part, text, its grams' buckets)
    norm: NormalisedURL | None = None  # the normalised URL, when the URL's features were extracted


def normalise(url: str) -> NormalisedURL:
    """Lower-cases the host, drops the scheme, a leading ``www.``, a default port and a trailing ``/``."""
    text = url.strip()
    if "://" not in text[:12]:
        text = "http://" + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port in (80, 443):
        port = None
    if host.startswith("www.") and host.count(".") >= 2:
        host = host[4:]
    path = parts.path
    if parts.query:
        path += "?" + parts.query
    path = path.rstrip("/")
    domain = registered_domain(host) if host else ""
    return NormalisedURL(host=host, domain=domain, path=path, text=host + path, port=port, scheme=scheme)


def url_features(url: str, into: Features | None = None) -> Features:
    """The lexical features (``url.*``) and hashed n-grams (``ng.*``) of ``url``."""
    found = into if into is not None else Features()
    values = found.values
    norm = normalise(url)
    found.norm = norm
    host, domain, path, text = norm.host, norm.domain, norm.path, norm.text
    labels = host.split(".") if host else []
    subdomain = host[: -len(domain)].rstrip(".") if domain and host.endswith(domain) else ""
    ip_host = _is_ip(host)
    values["url.bias"] = 1.0
    values["url.length"] = math.log1p(len(text))
    values["url.host_length"] = math.log1p(len(host))
    values["url.path_length"] = math.log1p(len(path))
    values["url.path_depth"] = min(path.count("/"), 10) / 5
    values["url.query_params"] = min(path.count("&") + ("?" in path), 10) / 5
    values["url.host_dots"] = min(host.count("."), 10) / 5
    values["url.host_hyphens"] = min(host.count("-"), 10) / 5
    values["url.path_hyphens"] = min(path.count("-"), 20) / 10
    values["url.host_digits"] = _ratio(host, str.isdigit)
    values["url.digits"] = _ratio(text, str.isdigit)
    values["url.subdomain_depth"] = 0.0 if ip_host else min(len(subdomain.split(".")) if subdomain else 0, 6) / 3
    values["url.host_entropy"] = _entropy(host) / 4
    if ip_host:
        values["url.ip_host"] = 1.0
    if "xn--" in host:
        values["url.punycode"] = 1.0
    if "@" in text:
        values["url.at_sign"] = 1.0
    if "//" in path:
        values["url.double_slash_path"] = 1.0
    if "http" in path:
        values["url.http_in_path"] = 1.0
    if "%" in path:
        values["url.percent_escapes"] = min(path.count("%"), 20) / 10
    if norm.port is not None:
        values["url.port"] = 1.0
    if domain in SHORTENERS or host in SHORTENERS:
        values["url.shortener"] = 1.0
    if _free_hosting(host):
        values["url.free_hosting"] = 1.0
    if labels and labels[-1] in SUSPICIOUS_TLDS:
        values["url.suspicious_tld"] = 1.0
    brand_zone = (subdomain + "/" + path).lower()
    domain_label = domain.split(".", 1)[0]
    brands = [brand for brand in BRANDS if brand in brand_zone and brand not in domain_label and len(brand) > 3]
    if brands:
        values["url.brand_outside_domain"] = min(len(brands), 3) / 1.0
    lowered = text.lower()
    credential = sum(1 for word in CREDENTIAL_WORDS if word in lowered)
    if credential:
        values["url.credential_words"] = min(credential, 4) / 2
    _ngrams("h", host[:MAX_TEXT], found)
    _ngrams("p", path[:MAX_TEXT].lower(), found)
    return found


def signal_features(signals: Mapping[str, Any], now: datetime | None = None, into: Features | None = None) -> Features:
    """One ``sig.*`` feature per usable signal of ``signals``, and ``sig.<name>.missing`` for each absent one."""
    found = into if into is not None else Features()
    values = found.values
    now = now or datetime.now(UTC)
    for name, read in SIGNAL_READERS.items():
        value = read(signals, now)
        if value is None:
            values[f"sig.{name}.missing"] = 1.0
        elif value:
            values[f"sig.{name}"] = float(value)
    return found


def extract(url: str, signals: Mapping[str, Any] | None = None, now: datetime | None = None) -> Features:
    """Every feature of ``url`` with its ``signals`` (None or {}: the URL alone, every signal missing)."""
    found = url_features(url)
    return signal_features(signals or {}, now, into=found)


# --- signal readers: each returns a number, or None when the signal is unknown -------------------------

Reader = Any  # Callable[[Mapping[str, Any], datetime], float | None]; Any keeps the table readable


def _num(signals: Mapping[str, Any], name: str) -> float | None:
    value = signals.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _flag(signals: Mapping[str, Any], name: str) -> float | None:
    value = signals.get(name)
    return float(value) if isinstance(value, bool) else None


def _dnsbl(list_name: str, wanted: frozenset[str] | None = None) -> Reader:
    def read(signals: Mapping[str, Any], now: datetime) -> float | None:
        status = signals.get(f"dnsbl.{list_name}")
        if status not in ("listed", "clean"):
            return None  # absent, or "refused": an error code is not a "not listed"
        if status == "clean":
            return 0.0
        categories = set(signals.get(f"dnsbl.{list_name}_categories") or ())
        if wanted is None:
            return 1.0
        return 1.0 if categories & wanted else 0.0
    return read


def _age_days(value: object, now: datetime) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (now - when).total_seconds() / 86400)


def _domain_age_days(signals: Mapping[str, Any], now: datetime) -> float | None:
    days = _num(signals, "rdap.domain_age_days")
    return days if days is not None else _age_days(signals.get("rdap.registration_date"), now)


def _page_ok(signals: Mapping[str, Any]) -> bool:
    return _num(signals, "page.status") is not None


def _cross_domain(signals: Mapping[str, Any], now: datetime) -> float | None:
    final, domain = signals.get("page.final_domain"), signals.get("domain")
    if not isinstance(final, str) or not isinstance(domain, str) or not final:
        return None
    return float(final != domain)


def _canonical_other(signals: Mapping[str, Any], now: datetime) -> float | None:
    if not _page_ok(signals):
        return None
    canonical, final = signals.get("page.canonical_url"), signals.get("page.final_domain")
    if not isinstance(canonical, str) or not canonical or not isinstance(final, str):
        return 0.0
    host = (urlsplit(canonical).hostname or "").lower()
    return float(bool(host) and registered_domain(host) != final)


def _link_ratio(name: str) -> Reader:
    def read(signals: Mapping[str, Any], now: datetime) -> float | None:
        part = _num(signals, name)
        internal, external = _num(signals, "page.links_internal"), _num(signals, "page.links_external")
        if part is None or internal is None or external is None:
            return None
        total = internal + external
        return part / total if total else 0.0
    return read


def _title_names_domain(signals: Mapping[str, Any], now: datetime) -> float | None:
    if not _page_ok(signals):
        return None
    title, domain = signals.get("page.title"), signals.get("page.final_domain") or signals.get("domain")
    if not isinstance(title, str) or not title.strip() or not isinstance(domain, str):
        return 0.0
    label = domain.split(".", 1)[0].lower()
    squashed = "".join(ch for ch in title.lower() if ch.isalnum())
    return float(len(label) >= 3 and label.replace("-", "") in squashed)


def _tranco(signals: Mapping[str, Any], now: datetime) -> float | None:
    rank = _num(signals, "tranco.rank")
    if rank is not None and rank > 0:
        return max(0.0, 1 - math.log10(rank) / 6)
    return 0.0 if signals.get("tranco.ranked") is False else None


def _safebrowsing(signals: Mapping[str, Any], now: datetime) -> float | None:
    return _flag(signals, "safebrowsing.listed")


def _phishtank(signals: Mapping[str, Any], now: datetime) -> float | None:
    if signals.get("phishtank.in_database") is None:
        return None
    return 1.0 if signals.get("phishtank.verified") else (0.5 if signals.get("phishtank.in_database") else 0.0)


def _scaled(name: str, scale: float) -> Reader:
    def read(signals: Mapping[str, Any], now: datetime) -> float | None:
        value = _num(signals, name)
        return None if value is None else value / scale
    return read


def _logged(name: str, scale: float) -> Reader:
    def read(signals: Mapping[str, Any], now: datetime) -> float | None:
        value = _num(signals, name)
        return None if value is None else math.log1p(max(0.0, value)) / scale
    return read


def _archive_age(signals: Mapping[str, Any], now: datetime) -> float | None:
    count = _num(signals, "wayback.capture_count")
    if count is None:
        return None
    days = _age_days(signals.get("wayback.first_capture"), now)
    return 0.0 if days is None else min(days / 365, 20) / 10


def _dns_no_address(signals: Mapping[str, Any], now: datetime) -> float | None:
    a, aaaa = _num(signals, "dns.a_count"), _num(signals, "dns.aaaa_count")
    if a is None and aaaa is None:
        return None
    return float((a or 0) + (aaaa or 0) == 0)


def _dns_no_mx(signals: Mapping[str, Any], now: datetime) -> float | None:
    mx = _num(signals, "dns.mx_count")
    return None if mx is None else float(mx == 0)


def _young(limit: float) -> Reader:
    def read(signals: Mapping[str, Any], now: datetime) -> float | None:
        days = _domain_age_days(signals, now)
        return None if days is None else float(days < limit)
    return read


def _domain_age(signals: Mapping[str, Any], now: datetime) -> float | None:
    days = _domain_age_days(signals, now)
    return None if days is None else min(days / 365, 20) / 10


def _unregistered(signals: Mapping[str, Any], now: datetime) -> float | None:
    registered = signals.get("rdap.registered")
    return None if not isinstance(registered, bool) else float(not registered)


def _page_error(signals: Mapping[str, Any], now: datetime) -> float | None:
    status = _num(signals, "page.status")
    return None if status is None else float(status >= 400)


def _redirects(signals: Mapping[str, Any], now: datetime) -> float | None:
    count = _num(signals, "page.redirects")
    return None if count is None else min(count, 5) / 5


def _cert_young(signals: Mapping[str, Any], now: datetime) -> float | None:
    days = _age_days(signals.get("crtsh.first_certificate"), now)
    if days is None:
        return None if _num(signals, "crtsh.certificates") is None else 0.0
    return float(days < 30)


def _urlhaus(signals: Mapping[str, Any], now: datetime) -> float | None:
    return _flag(signals, "urlhaus.listed")


def _commoncrawl(signals: Mapping[str, Any], now: datetime) -> float | None:
    return _flag(signals, "commoncrawl.captured")


# name -> reader; ``sig.<name>`` and ``sig.<name>.missing``. The signals each reads: docs/spam.md.
SIGNAL_READERS: dict[str, Reader] = {
    "page_error": _page_error,
    "redirects": _redirects,
    "cross_domain_redirect": _cross_domain,
    "canonical_other_domain": _canonical_other,
    "words": _logged("page.word_count", 8),
    "external_links": _link_ratio("page.links_external"),
    "nofollow_links": _link_ratio("page.links_nofollow"),
    "title_names_domain": _title_names_domain,
    "open_graph": lambda s, now: _flag(s, "page.has_open_graph"),
    "dns_no_address": _dns_no_address,
    "dns_no_mx": _dns_no_mx,
    "domain_age": _domain_age,
    "domain_young": _young(30),
    "domain_recent": _young(365),
    "domain_unregistered": _unregistered,
    "cert_young": _cert_young,
    "dbl_threat": _dnsbl("spamhaus_dbl", frozenset({"spam", "phishing", "malware", "botnet_cc"})),
    "dbl_abused": _dnsbl("spamhaus_dbl", frozenset({"abused_legit", "abused_redirector"})),
    "surbl": _dnsbl("surbl"),
    "uribl": _dnsbl("uribl", frozenset({"black", "red"})),
    "safebrowsing": _safebrowsing,
    "urlhaus": _urlhaus,
    "phishtank": _phishtank,
    "tranco": _tranco,
    "pagerank": _scaled("openpagerank.page_rank", 10),
    "moz_authority": _scaled("moz.domain_authority", 100),
    "moz_spam": _scaled("moz.spam_score", 100),
    "authority": _scaled("authority.score", 100),
    "archive_captures": _logged("wayback.capture_count", 7),
    "archive_age": _archive_age,
    "commoncrawl": _commoncrawl,
    "engagement": _logged("engagement.total", 7),
}

# The signals the readers use: the indicator's ``wants`` (so the engine runs it after their providers).
SIGNALS_READ: tuple[str, ...] = (
    "domain", "page.status", "page.redirects", "page.final_domain", "page.canonical_url", "page.word_count",
    "page.links_internal", "page.links_external", "page.links_nofollow", "page.title", "page.has_open_graph",
    "dns.a_count", "dns.aaaa_count", "dns.mx_count", "rdap.registered", "rdap.domain_age_days",
    "rdap.registration_date", "crtsh.certificates", "crtsh.first_certificate",
    "dnsbl.spamhaus_dbl", "dnsbl.spamhaus_dbl_categories", "dnsbl.surbl", "dnsbl.surbl_categories",
    "dnsbl.uribl", "dnsbl.uribl_categories", "safebrowsing.listed", "safebrowsing.threat_types",
    "urlhaus.listed", "urlhaus.threat", "phishtank.in_database", "phishtank.verified", "phishtank.valid",
    "tranco.rank", "tranco.ranked", "openpagerank.page_rank", "moz.domain_authority", "moz.spam_score",
    "authority.score", "wayback.capture_count", "wayback.first_capture", "commoncrawl.captured",
    "engagement.total",
)


def _ngrams(part: str, text: str, found: Features) -> None:
    if not text:
        return
    if part == "h":  # hosts repeat (many URLs of one site): their grams are computed once per host
        grams, buckets = _host_grams(text)
    else:
        grams, buckets = _grams("p", text)
    values = found.values
    for name, value in grams:
        values[name] = values.get(name, 0.0) + value
    found.texts.append((part, f"^{text}$".encode(), buckets))


def _grams(part: str, text: str) -> tuple[tuple[tuple[str, float], ...], list[int]]:
    """(the L2-normalised (name, value) of each bucket, every gram's bucket: 3-grams by start, then 4-grams)."""
    data = f"^{text}$".encode()
    seed = _SEEDS[part]
    crc32 = zlib.crc32
    buckets = [crc32(data[start:start + size], seed) % NGRAM_BUCKETS
               for size in NGRAM_SIZES for start in range(len(data) - size + 1)]
    counts = Counter(buckets)
    norm = math.sqrt(sum(count * count for count in counts.values()))
    names = _NAMES
    return tuple((names[bucket], count / norm) for bucket, count in counts.items()), buckets


@functools.lru_cache(maxsize=16384)
def _host_grams(host: str) -> tuple[tuple[tuple[str, float], ...], list[int]]:
    return _grams("h", host)


def _gram_at(data: bytes, index: int) -> str:
    """The gram behind position ``index`` of a part's buckets (3-grams first, then 4-grams)."""
    size = NGRAM_SIZES[0]
    for size in NGRAM_SIZES:
        count = max(0, len(data) - size + 1)
        if index < count:
            break
        index -= count
    return data[index:index + size].decode(errors="replace")


def gram_text(features: Features, name: str) -> str:
    """The n-gram of the URL behind the bucket ``name`` (``ng.<bucket>``), for a reason's text; "" if none."""
    return gram_texts(features, [name]).get(name, "")


def gram_texts(features: Features, names: list[str]) -> dict[str, str]:
    """``gram_text`` for several buckets."""
    found: dict[str, str] = {}
    for name in names:
        bucket = int(name[3:])
        for _part, data, buckets in features.texts:
            if bucket in buckets:
                found[name] = _gram_at(data, buckets.index(bucket))
                break
    return found


_SEEDS = {part: zlib.crc32(part.encode()) for part in ("h", "p")}
_NAMES = [f"ng.{bucket}" for bucket in range(NGRAM_BUCKETS)]


def _free_hosting(host: str) -> bool:
    parts = host.split(".")
    return any(".".join(parts[i:]) in FREE_HOSTING for i in range(1, len(parts) - 1)) or host in FREE_HOSTING


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host.replace(".", "").isdigit() and host.count(".") == 3
    return True


def _ratio(text: str, test: Any) -> float:
    return sum(map(test, text)) / len(text) if text else 0.0


def _entropy(text: str) -> float:
    if not text:
        return 0.0
    counts = Counter(text)
    total = len(text)
    return -sum(c / total * math.log2(c / total) for c in counts.values())
