"""Hand rules: evidence the labelled data cannot teach yet (blocklists, threat lists, age, popularity).

Each rule adds a fixed log-odds to the score when it fires, with the reason text people read, in the spirit
of SpamAssassin's scored rules. A threat-list or blocklist hit is strong evidence (+3 to +4.5 log-odds: alone
it takes a neutral URL from 0.5 to 0.95-0.99); a large, old or popular site is evidence against. A rule never
fires on a missing signal: an unanswered lookup is unknown, not clean. How rules and the learned part add up:
``linkmeter.indicators.spam.scoring``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from linkmeter.indicators.spam.features import _age_days, _domain_age_days, _num


@dataclass(frozen=True, slots=True)
class Hit:
    """One rule that fired: ``logodds`` is what it adds to the score's logit."""

    rule: str
    value: Any
    logodds: float
    text: str


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    description: str  # what the rule checks, for docs/spam.md and the model page
    check: Callable[[Mapping[str, Any], datetime], Hit | None]


DBL_WORDS = {"spam": "spam", "phishing": "phishing", "malware": "malware", "botnet_cc": "a botnet controller"}
DBL_LOGODDS = {"phishing": 4.0, "malware": 4.0, "botnet_cc": 4.0, "spam": 3.0}


def _dbl(signals: Mapping[str, Any], now: datetime) -> Hit | None:
    if signals.get("dnsbl.spamhaus_dbl") != "listed":
        return None
    categories = [str(c) for c in signals.get("dnsbl.spamhaus_dbl_categories") or ()]
    threats = [c for c in categories if c in DBL_LOGODDS]
    if threats:
        top = max(threats, key=lambda c: DBL_LOGODDS[c])
        words = " and ".join(DBL_WORDS[c] for c in threats)
        return Hit("dbl", categories, DBL_LOGODDS[top], f"listed on Spamhaus DBL as {words}")
    return Hit("dbl", categories, 1.0, "listed on Spamhaus DBL as a legitimate site that was abused")


def _surbl(signals: Mapping[str, Any], now: datetime) -> Hit | None:
    if signals.get("dnsbl.surbl") != "listed":
        return None
    categories = [str(c) for c in signals.get("dnsbl.surbl_categories") or ()]
    return Hit("surbl", categories, 3.0, f"listed on SURBL ({', '.join(categories) or 'listed'})")


def _uribl(signals: Mapping[str, Any], now: datetime) -> Hit | None:
    if signals.get("dnsbl.uribl") != "listed":
        return None
    categories = [str(c) for c in signals.get("dnsbl.uribl_categories") or ()]
    strong = any(c in ("black", "red") for c in categories)
    return Hit("uribl", categories, 3.0 if strong else 1.0, f"listed on URIBL ({', '.join(categories) or 'listed'})")


def _safebrowsing(signals: Mapping[str, Any], now: datetime) -> Hit | None:
    if signals.get("safebrowsing.listed") is not True:
        return None
    types = [str(t) for t in signals.get("safebrowsing.threat_types") or ()]
    return Hit("safebrowsing", types, 4.5, f"on Google Safe Browsing as {', '.join(types) or 'a threat'}")


def _urlhaus(signals: Mapping[str, Any], now: datetime) -> Hit | None:
    if signals.get("urlhaus.listed") is not True:
        return None
    threat = signals.get("urlhaus.threat") or "malware"
    return Hit("urlhaus", threat, 4.5, f"listed on URLhaus ({threat})")


def _phishtank(signals: Mapping[str, Any], now: datetime) -> Hit | None:
    if signals.get("phishtank.verified") is True:
        active = " and still online" if signals.get("phishtank.valid") else ""
        return Hit("phishtank", "verified", 4.5, f"a verified phish on PhishTank{active}")
    if signals.get("phishtank.in_database") is True:
        return Hit("phishtank", "reported", 2.0, "reported to PhishTank (not verified yet)")
    return None


def _domain_age(signals: Mapping[str, Any], now: datetime) -> Hit | None:
    days = _domain_age_days(signals, now)
    if days is None:
        return None
    whole = int(days)
    ago = "today" if whole == 0 else f"{whole} day{'s' if whole != 1 else ''} ago"
    if days < 30:
        return Hit("domain_age", whole, 1.5, f"domain registered {ago}")
    if days < 180:
        return Hit("domain_age", whole, 0.7, f"domain registered {ago}")
    if days >= 3650:
        return Hit("domain_age", whole, -0.7, f"domain registered {whole // 365} years ago")
    if days >= 730:  # most phishing and spam domains are used within months of registration
        return Hit("domain_age", whole, -0.4, f"domain registered {whole // 365} years ago")
    return None


BLOCKLISTS = {"spamhaus_dbl": "Spamhaus DBL", "surbl": "SURBL", "uribl": "URIBL"}


def _blocklists_clean(signals: Mapping[str, Any], now: datetime) -> Hit | None:
    """Evidence against, and weak: a new phishing domain is often listed only days later."""
    answers = {name: signals.get(f"dnsbl.{name}") for name in BLOCKLISTS}
    clean = [BLOCKLISTS[name] for name, status in answers.items() if status == "clean"]
    if len(clean) < 2 or any(status == "listed" for status in answers.values()):
        return None
    return Hit("blocklists_clean", len(clean), -0.5, f"not listed on {' or '.join(clean)}")


def _unregistered(signals: Mapping[str, Any], now: datetime) -> Hit | None:
    if signals.get("rdap.registered") is False:
        return Hit("unregistered", False, 1.0, "the domain is not registered")
    return None


def _tranco(signals: Mapping[str, Any], now: datetime) -> Hit | None:
    rank = _num(signals, "tranco.rank")
    if rank is None or rank <= 0:
        return None
    if rank <= 10_000:
        return Hit("tranco", int(rank), -2.5, f"one of the 10,000 most popular sites (Tranco #{int(rank):,})")
    if rank <= 100_000:
        return Hit("tranco", int(rank), -1.5, f"one of the 100,000 most popular sites (Tranco #{int(rank):,})")
    return Hit("tranco", int(rank), -0.75, f"in the Tranco top million (#{int(rank):,})")


def _pagerank(signals: Mapping[str, Any], now: datetime) -> Hit | None:
    value = _num(signals, "openpagerank.page_rank")
    if value is None or value < 4:
        return None
    return Hit("pagerank", value, -1.0, f"Open PageRank {value:g} of 10")


def _moz_spam(signals: Mapping[str, Any], now: datetime) -> Hit | None:
    value = _num(signals, "moz.spam_score")
    if value is None or value < 60:
        return None
    return Hit("moz_spam", int(value), 1.0, f"Moz Spam Score {int(value)}%")


def _archive(signals: Mapping[str, Any], now: datetime) -> Hit | None:
    days = _age_days(signals.get("wayback.first_capture"), now)
    if days is None or days < 5 * 365:
        return None
    years = int(days // 365)
    return Hit("archive", years, -0.75, f"archived by the Wayback Machine for {years} years")


def _cross_redirect(signals: Mapping[str, Any], now: datetime) -> Hit | None:
    final, domain = signals.get("page.final_domain"), signals.get("domain")
    if isinstance(final, str) and isinstance(domain, str) and final and final != domain:
        return Hit("cross_domain_redirect", final, 0.5, f"redirects to another site ({final})")
    return None


def _engagement(signals: Mapping[str, Any], now: datetime) -> Hit | None:
    total = _num(signals, "engagement.total")
    if total is None or total < 100:
        return None
    return Hit("engagement", int(total), -0.5 - min(1.0, math.log10(total / 100) / 2),
               f"{int(total):,} interactions on social sites")


RULES: tuple[Rule, ...] = (
    Rule("dbl", "Spamhaus DBL lists the domain: +4 phishing/malware/botnet, +3 spam, +1 abused legit", _dbl),
    Rule("surbl", "SURBL lists the domain: +3", _surbl),
    Rule("uribl", "URIBL lists the domain: +3 black/red, +1 grey", _uribl),
    Rule("safebrowsing", "Google Safe Browsing lists the URL: +4.5", _safebrowsing),
    Rule("urlhaus", "URLhaus lists the URL: +4.5", _urlhaus),
    Rule("phishtank", "PhishTank: +4.5 verified phish, +2 reported", _phishtank),
    Rule("domain_age", "domain age: +1.5 under 30 days, +0.7 under 180 days, -0.4 two years or more, -0.7 ten "
                       "years or more", _domain_age),
    Rule("blocklists_clean", "two or more of Spamhaus DBL, SURBL and URIBL answered and none lists the domain: "
                             "-0.5", _blocklists_clean),
    Rule("unregistered", "RDAP says the domain is not registered: +1", _unregistered),
    Rule("tranco", "Tranco rank: -2.5 top 10k, -1.5 top 100k, -0.75 top million", _tranco),
    Rule("pagerank", "Open PageRank 4 or more: -1", _pagerank),
    Rule("moz_spam", "Moz Spam Score 60% or more: +1", _moz_spam),
    Rule("archive", "first Wayback capture five years ago or more: -0.75", _archive),
    Rule("cross_domain_redirect", "the page redirects to another registered domain: +0.5", _cross_redirect),
    Rule("engagement", "100 interactions or more: -0.5 to -1.5 (log scale)", _engagement),
)


def apply(signals: Mapping[str, Any], now: datetime) -> list[Hit]:
    """The rules that fire on ``signals``, in RULES order."""
    hits = []
    for rule in RULES:
        hit = rule.check(signals, now)
        if hit is not None:
            hits.append(hit)
    return hits
