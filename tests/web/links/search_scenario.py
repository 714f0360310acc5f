"""A known data set of two accounts' links and the links list's answers to a set of searches, next to what a
plain Python reading of the same rows answers. Run in-process (SQLite tests) or as a script against another
database (``python -m tests.web.links.search_scenario`` with DATABASE_URL set): it prints the JSON outcome."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

QUERIES: list[dict[str, Any]] = [
    {},
    {"sort": "analysed_at"},
    {"sort": "-hackernews.points"},
    {"sort": "hackernews.points"},
    {"filters": ["hackernews.points>100"]},
    {"filters": ["hackernews.points>=100", "spam.score<0.5"], "sort": "-spam.score"},
    {"filters": ["dnsbl.listed_count>=1"], "sort": "-hackernews.points"},
    {"filters": ["spam.score>=0.8"]},
    {"filters": ["spam.flag=true"], "sort": "url"},
    {"filters": ["spam.flag!=true"], "sort": "-url"},
    {"filters": ["page.status!=200"], "sort": "-page.status"},
    {"filters": ["page.response_ms<250.5"], "sort": "page.response_ms"},
    {"filters": ["hackernews.points=0"]},
    {"q": "news"},
    {"q": "CAFÉ", "sort": "title"},
    {"q": "shop", "sort": "-domain"},
    {"domain": "site-3.example"},
    {"status": ["failed,partial"], "sort": "status"},
    {"status": ["queued"]},
    {"provider": ["dnsbl:error"]},
    {"provider": ["page:ok", "hackernews:timeout"], "sort": "-analysed_at"},
    {"after": "2026-03-02", "before": "2026-03-03T12:00:00Z"},
    {"after": "2026-03-02T06:00:00+02:00", "sort": "-tranco.rank"},
    {"filters": ["tranco.rank<=5000,engagement.total>10"], "sort": "-engagement.total"},
    {"q": "example", "filters": ["rdap.domain_age_days>365"], "sort": "-rdap.domain_age_days"},
]
TITLES = ["News of the day", "Café & bar", "Shop now: 50% off", "<script>alert(1)</script> breaking news", "",
          "Online shop", "Weather", "café crème"]
PROVIDER_STATUSES = ["ok", "ok", "ok", "error", "timeout", "cached"]


def _signals(rng: random.Random, url: str, number: int) -> dict[str, Any]:
    signals: dict[str, Any] = {"url": url}
    if rng.random() < 0.85:
        signals["hackernews.points"] = rng.choice([0, 0, 5, 42, 100, 100, 101, 250, 1000])
    if rng.random() < 0.9:
        score = rng.choice([0.05, 0.2, 0.5, 0.79, 0.8, 0.8, 0.95])
        signals["spam.score"] = score
        signals["spam.flag"] = score >= 0.5
    if rng.random() < 0.8:
        signals["dnsbl.listed_count"] = rng.choice([0, 0, 0, 1, 2])
    signals["page.status"] = rng.choice([200, 200, 200, 301, 404, 500])
    signals["page.response_ms"] = rng.choice([120.25, 250.5, 250.5, 999.0])
    signals["page.title"] = TITLES[number % len(TITLES)]
    if rng.random() < 0.7:
        signals["tranco.rank"] = rng.choice([10, 500, 5000, 5000, 90000])
    if rng.random() < 0.7:
        signals["engagement.total"] = rng.choice([0, 3, 11, 11, 400])
    if rng.random() < 0.7:
        signals["rdap.domain_age_days"] = rng.choice([30, 365, 366, 4000])
    if number % 11 == 0:
        signals["hackernews.points"] = "not a number"  # a wrong type is as if missing
    return signals


def build() -> dict[str, Any]:
    """The data set: ada's 45 links (some failed, partial or still queued, one re-analysed), bob's 12 (five
    of them ada's URLs); analysed times spread over three days, with ties."""
    from django.contrib.auth.models import User

    from linkmeter.engine.results import CallResult, CallStatus, UrlResult, UrlStatus
    from linkmeter.web.links.models import LinkEntry
    from linkmeter.web.links.services.queue import analysis_claim_next, analysis_complete
    from linkmeter.web.links.services.submission import analysis_submit

    rng = random.Random(13)
    ada = User.objects.create_user("ada-search")
    bob = User.objects.create_user("bob-search")
    domains = ["news.example", "site-3.example", "shop.example.org", "café.example", "blog.example.net"]
    ada_urls = [f"https://{domains[n % len(domains)]}/p/{n}" for n in range(45)]
    bob_urls = ada_urls[:5] + [f"https://bob.example/{n}" for n in range(7)]

    def finish(by_number: dict[int, dict[str, Any]], skip: set[str]) -> None:
        claimed = analysis_claim_next(limit=1000, deadline_seconds=60)
        outcomes = []
        for work in claimed:
            if work.url in skip:
                continue
            number = int(work.url.rsplit("/", 1)[-1])
            signals = {**by_number[number], "url": work.url}
            status = UrlStatus.FAILED if number % 13 == 7 else UrlStatus.PARTIAL if number % 9 == 4 else UrlStatus.DONE
            calls = {name: CallResult(name, CallStatus(PROVIDER_STATUSES[(number + k) % len(PROVIDER_STATUSES)]),
                                      1.0, 1, "", {}, None)
                     for k, name in enumerate(["page", "dnsbl", "hackernews"])}
            outcomes.append((work.analysis_id, UrlResult(work.url, status, signals, calls, 5.0)))
        analysis_complete(outcomes=outcomes)

    analysis_submit(urls=ada_urls, user=ada, name="ada")
    signals = {n: _signals(rng, url, n) for n, url in enumerate(ada_urls)}
    queued = {normal(ada_urls[40]), normal(ada_urls[41])}
    finish(signals, queued)
    analysis_submit(urls=bob_urls, user=bob, name="bob", fresh=True)
    finish({int(url.rsplit("/", 1)[-1]): _signals(rng, url, n) for n, url in enumerate(bob_urls)}, set())
    # ada re-analyses two links: the newer final analysis is the one listed
    analysis_submit(urls=ada_urls[2:4], user=ada, fresh=True)
    finish({n: {**_signals(rng, url, n), "hackernews.points": 7777} for n, url in enumerate(ada_urls) if n in (2, 3)},
           set())

    base = datetime(2026, 3, 1, tzinfo=UTC)
    entries = list(LinkEntry.objects.order_by("id"))
    for number, entry in enumerate(entries):
        entry.analysed_at = base + timedelta(hours=(number * 7) % 72 // 2 * 2)  # pairs share a time
    LinkEntry.objects.bulk_update(entries, ["analysed_at"])
    return {"ada": ada, "bob": bob, "ada_urls": [normal(u) for u in ada_urls],
            "bob_urls": [normal(u) for u in bob_urls]}


def normal(url: str) -> str:
    from linkmeter.engine.urls import parse_url

    return parse_url(url).url


# --- the plain Python reading of the same rows ---

def _value(entry: dict[str, Any], signal: str) -> float | None:
    from linkmeter.web.links.signalsql import SIGNAL_KINDS

    value = entry["signals"].get(signal)
    if SIGNAL_KINDS[signal] == "bool":
        return (1.0 if value else 0.0) if isinstance(value, bool) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def expected(owner: Any, given: dict[str, Any]) -> list[str]:
    from linkmeter.web.links.models import LinkEntry
    from linkmeter.web.links.selectors.search import parse_link_query

    query = parse_link_query(**given)
    rows = list(LinkEntry.objects.filter(owner=owner).values())
    ops = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__, "=": float.__eq__,
           "!=": float.__ne__}

    def keep(row: dict[str, Any]) -> bool:
        if query.text and query.text.lower() not in row["search_text"]:
            return False
        if query.domain and row["domain"] != query.domain:
            return False
        if query.statuses and row["status"] not in query.statuses:
            return False
        if any(row["providers"].get(name) != call for name, call in query.providers):
            return False
        if (query.after and row["analysed_at"] < query.after) or (query.before and row["analysed_at"] >= query.before):
            return False
        for c in query.comparisons:
            value = _value(row, c.signal)
            if value is None or not ops[c.operator](value, c.value):
                return False
        return True

    kept = [row for row in rows if keep(row)]
    key = query.sort.key
    present = [row for row in kept if key in ("analysed_at", "url", "domain", "title", "status")
               or _value(row, key) is not None]
    missing = [row for row in kept if row not in present]

    def sort_key(row: dict[str, Any]) -> Any:
        return (row[key] if key in ("analysed_at", "url", "domain", "title", "status") else _value(row, key),
                row["id"])

    present.sort(key=sort_key, reverse=query.sort.descending)
    missing.sort(key=lambda row: row["id"], reverse=query.sort.descending)
    return [row["url"] for row in present + missing]


def answers(owner: Any, given: dict[str, Any], *, page: int = 7) -> dict[str, list[str]]:
    """The search's answer twice, page by page through the cursors and as one export, beside the expected."""
    from linkmeter.web.links.selectors.search import link_search, link_search_all, parse_link_query

    paged: list[str] = []
    cursor = ""
    for _ in range(100):
        result = link_search(owner, parse_link_query(**given, limit=page, cursor=cursor))
        paged += [row["url"] for row in result.rows]
        if result.next_cursor is None:
            break
        cursor = result.next_cursor
    exported = [row["url"] for chunk in link_search_all(owner, parse_link_query(**given), chunk=5) for row in chunk]
    return {"paged": paged, "exported": exported, "expected": expected(owner, given)}


def run() -> dict[str, Any]:
    data = build()
    out = {json.dumps(given, sort_keys=True): answers(data["ada"], given) for given in QUERIES}
    bob_sees = answers(data["bob"], {})
    return {"queries": out, "bob": bob_sees, "ada_urls": data["ada_urls"], "bob_urls": data["bob_urls"]}


if __name__ == "__main__":
    import django

    django.setup()
    print(json.dumps(run()))
