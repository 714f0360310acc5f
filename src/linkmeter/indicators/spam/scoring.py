"""One documented spam score: the learned part, the online layer, the domain memory and the hand rules, added
as log-odds.

    logit = a * (w . x) + b          the learned linear model, Platt-calibrated (model.Artifact)
          + d . x                    the online layer: weight deltas labels taught (learning.adapt)
          + memory[registered domain] what people's labels said about the domain (learning.adapt)
          + sum(rule log-odds)       the hand rules that fired (rules.RULES)
    spam.score = 1 / (1 + exp(-logit));  spam.flag = spam.score >= LINKMETER_SPAM_THRESHOLD

``spam.reasons`` are the largest contributions to that logit by size (at most ``MAX_REASONS``), each
``{feature, value, contribution, text}``: a rule's log-odds, the domain memory, or a feature's
a * w * (x - training mean) + d * x; the hashed n-grams are folded into one reason naming the strongest.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from linkmeter.indicators.spam import features as feats
from linkmeter.indicators.spam.model import Artifact
from linkmeter.indicators.spam.rules import apply
from linkmeter.indicators.spam.settings import DEFAULT_THRESHOLD

MAX_REASONS = 5
MIN_CONTRIBUTION = 0.05  # log-odds; smaller ones are noise in a reason list


@dataclass(frozen=True, slots=True)
class Verdict:
    score: float
    flag: bool
    model: str
    logit: float
    reasons: list[dict[str, Any]] = field(default_factory=list)

    def signals(self) -> dict[str, Any]:
        """The indicator's signals: spam.score, spam.flag, spam.reasons, spam.model."""
        return {"spam.score": round(self.score, 4), "spam.flag": self.flag, "spam.reasons": self.reasons,
                "spam.model": self.model}


def logit(artifact: Artifact, url: str, signals: Mapping[str, Any] | None = None,
          now: datetime | None = None, features: feats.Features | None = None) -> float:
    """The score's logit (the fast path: no reasons). ``features`` saves extracting them again."""
    now = now or datetime.now(UTC)
    signals = signals or {}
    found = features if features is not None else feats.extract(url, signals, now)
    total = artifact.logit(found.values)
    if artifact.memory:
        total += artifact.domain_logodds(found.norm.domain if found.norm else feats.normalise(url).domain)
    return total + sum(hit.logodds for hit in apply(signals, now))


def probability(value: float) -> float:
    if value >= 0:
        return 1 / (1 + math.exp(-value))
    e = math.exp(value)
    return e / (1 + e)


def score(url: str, signals: Mapping[str, Any] | None = None, *, artifact: Artifact,
          threshold: float = DEFAULT_THRESHOLD, now: datetime | None = None) -> Verdict:
    """The verdict on ``url`` with the ``signals`` found for it (None: the URL alone)."""
    now = now or datetime.now(UTC)
    signals = signals or {}
    found = feats.extract(url, signals, now)
    hits = apply(signals, now)
    norm = found.norm or feats.normalise(url)
    domain = norm.domain
    memory = artifact.domain_logodds(domain) if artifact.memory else 0.0
    learned, contributions = artifact.explain(found.values)
    total = learned + memory + sum(hit.logodds for hit in hits)
    value = probability(total)
    reasons = [{"feature": f"rule.{hit.rule}", "value": _plain(hit.value), "contribution": round(hit.logodds, 3),
                "text": hit.text} for hit in hits]
    if memory:
        said = "spam" if memory > 0 else "not spam"
        reasons.append({"feature": "memory.domain", "value": domain, "contribution": round(memory, 3),
                        "text": f"people labelled links on {domain} {said}"})
    reasons.extend(_feature_reasons(contributions, found, norm, signals))
    reasons = [r for r in reasons if abs(r["contribution"]) >= MIN_CONTRIBUTION]
    reasons.sort(key=lambda r: -abs(r["contribution"]))
    return Verdict(score=value, flag=value >= threshold, model=artifact.version, logit=total,
                   reasons=reasons[:MAX_REASONS])


def _feature_reasons(contributions: Mapping[str, float], found: feats.Features, norm: feats.NormalisedURL,
                     signals: Mapping[str, Any]) -> list[dict[str, Any]]:
    grams: list[tuple[str, float]] = []
    others: list[tuple[str, float]] = []
    total = 0.0
    for name, c in contributions.items():  # one pass: this runs for every URL
        if name[:3] == "ng.":
            grams.append((name, c))
            total += c
        elif (c >= MIN_CONTRIBUTION or c <= -MIN_CONTRIBUTION) and name != "url.bias":
            others.append((name, c))
    reasons = []
    for name, c in heapq.nsmallest(MAX_REASONS, others, key=_by_size):  # only these can make the list
        value = found.values.get(name, 0.0)
        reasons.append({"feature": name, "value": round(value, 4), "contribution": round(c, 3),
                        "text": describe(name, value, norm, signals)})
    if grams:
        positive = total > 0
        strongest = [n for n, _ in heapq.nsmallest(6, [g for g in grams if (g[1] > 0) == positive], key=_by_size)]
        texts = feats.gram_texts(found, strongest)
        shown = [g for g in dict.fromkeys(texts[n].strip("^$") for n in strongest if n in texts) if g][:3]
        like = "spam" if positive else "legitimate sites"
        quoted = ", ".join(f"'{g}'" for g in shown)
        reasons.append({"feature": "url.ngrams", "value": shown, "contribution": round(total, 3),
                        "text": f"the URL's text looks like {like} in the training data ({quoted})"})
    return reasons


def _by_size(pair: tuple[str, float]) -> float:
    return -abs(pair[1])


PROVIDER_OF = {
    "page_error": "page", "redirects": "page", "cross_domain_redirect": "page", "canonical_other_domain": "page",
    "words": "page", "external_links": "page", "nofollow_links": "page", "title_names_domain": "page",
    "open_graph": "page", "dns_no_address": "dns", "dns_no_mx": "dns", "domain_age": "rdap",
    "domain_young": "rdap", "domain_recent": "rdap", "domain_unregistered": "rdap", "cert_young": "crtsh",
    "dbl_threat": "dnsbl (Spamhaus DBL)", "dbl_abused": "dnsbl (Spamhaus DBL)", "surbl": "dnsbl (SURBL)",
    "uribl": "dnsbl (URIBL)", "safebrowsing": "safebrowsing", "urlhaus": "urlhaus", "phishtank": "phishtank",
    "tranco": "tranco", "pagerank": "openpagerank", "moz_authority": "moz", "moz_spam": "moz",
    "authority": "authority", "archive_captures": "wayback", "archive_age": "wayback",
    "commoncrawl": "commoncrawl", "engagement": "engagement",
}

URL_TEXT = {
    "url.ip_host": "the host is an IP address",
    "url.punycode": "the host is punycode (xn--), which can imitate another name",
    "url.at_sign": "the URL contains '@'",
    "url.double_slash_path": "the path contains '//'",
    "url.http_in_path": "the path contains another 'http'",
    "url.port": "the URL names a non-standard port",
    "url.shortener": "a link shortener hides the destination",
    "url.free_hosting": "hosted on a free hosting platform",
    "url.suspicious_tld": "a top-level domain often used for abuse",
}


def describe(name: str, value: float, norm: feats.NormalisedURL, signals: Mapping[str, Any]) -> str:
    """Words for one feature's value, as a person reads it."""
    if name.startswith("sig.") and name.endswith(".missing"):
        key = name[4:-8]
        return f"no answer from {PROVIDER_OF.get(key, key)} ({key.replace('_', ' ')} unknown, not clean)"
    if name in URL_TEXT:
        text = URL_TEXT[name]
        return text if value else f"not: {text}"
    host, path = norm.host, norm.path
    match name:
        case "url.length":
            return f"URL is {len(norm.text)} characters long"
        case "url.host_length":
            return f"host name is {len(host)} characters long"
        case "url.path_length":
            return f"path and query are {len(path)} characters long"
        case "url.path_depth":
            return f"path is {path.count('/')} levels deep"
        case "url.query_params":
            return f"{path.count('&') + ('?' in path)} query parameters"
        case "url.host_dots":
            return f"{host.count('.')} dots in the host name"
        case "url.host_hyphens":
            return f"{host.count('-')} hyphens in the host name"
        case "url.path_hyphens":
            return f"{path.count('-')} hyphens in the path"
        case "url.host_digits" | "url.digits":
            where = "host name" if name == "url.host_digits" else "URL"
            return f"{round(100 * value)}% of the {where} is digits"
        case "url.subdomain_depth":
            depth = round(value * 3)
            return f"{depth} subdomain level{'s' if depth != 1 else ''} above {norm.domain}"
        case "url.host_entropy":
            return f"host name randomness {value * 4:.1f} bits per character"
        case "url.brand_outside_domain" if value:
            return f"a brand name appears outside the registered domain {norm.domain}"
        case "url.credential_words":  # standardised: its absence contributes too, and must not read as a hit
            if not value:
                return "no words such as login, verify or account in the URL"
            return "words such as login, verify or account in the URL"
        case "url.brand_outside_domain" if not value:
            return "no brand name outside the registered domain"
    key = name[4:] if name.startswith("sig.") else name
    return _signal_text(key, value, signals)


def _signal_text(key: str, value: float, signals: Mapping[str, Any]) -> str:
    match key:
        case "page_error":
            return f"the page answered HTTP {signals.get('page.status')}"
        case "redirects":
            return f"{signals.get('page.redirects')} redirects"
        case "cross_domain_redirect":
            return f"redirects to {signals.get('page.final_domain')}" if value else "no redirect to another site"
        case "canonical_other_domain":
            return "the page names a canonical URL on another site"
        case "words":
            return f"{signals.get('page.word_count')} words of text on the page"
        case "external_links" | "nofollow_links":
            kind = "external" if key == "external_links" else "nofollow"
            return f"{round(100 * value)}% of the page's links are {kind}"
        case "title_names_domain":
            return "the page title names the site" if value else "the page title does not name the site"
        case "domain_age":
            return f"domain is {value * 10:.1f} years old"
        case "tranco":
            return f"Tranco rank {signals.get('tranco.rank')}" if value else "not in the Tranco top million"
        case "engagement":
            return f"{signals.get('engagement.total')} interactions on social sites"
        case "archive_captures":
            return f"{signals.get('wayback.capture_count')} Wayback Machine captures"
    return f"{key.replace('_', ' ')}: {value:g}"


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return value
