"""The search benchmark's database side, run by `linkmeter bench --mode search` as its own process
(``python -m linkmeter.web.links.searchbench --links N``): migrate, fill links with realistic signals in bulk
(the entries' indexes dropped while filling and rebuilt after, as a bulk load does), then time a set of typical
searches through the links list's selector and print the figures as JSON."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

WORDS = ("news", "shop", "blog", "review", "best", "cheap", "guide", "how", "to", "python", "travel", "recipe",
         "deal", "free", "login", "account", "update", "sport", "music", "video", "story", "daily", "tech")
TLDS = ("com", "org", "net", "io", "de", "co.uk")
STATUSES = ("done",) * 90 + ("partial",) * 8 + ("failed",) * 2
CALLS = ("ok",) * 85 + ("cached",) * 8 + ("error",) * 4 + ("timeout",) * 2 + ("rate_limited",)
PROVIDERS = ("page", "dns", "rdap", "dnsbl", "wayback", "hackernews", "reddit", "tranco", "spam")
START = datetime(2026, 1, 1, tzinfo=UTC)


def _signals(rng: random.Random, url: str, domain: int, title: str) -> dict[str, Any]:
    """About the signals one default-set analysis keeps, with their real shapes and skews."""
    score = round(rng.betavariate(0.6, 3.0), 4)
    listed = rng.choices((0, 1, 2, 3), (94, 4, 1.5, 0.5))[0]
    signals: dict[str, Any] = {
        "url": url, "page.status": rng.choices((200, 301, 404, 500, 403), (88, 4, 5, 2, 1))[0],
        "page.title": title, "page.redirects": rng.choices((0, 1, 2), (80, 17, 3))[0],
        "page.word_count": int(rng.lognormvariate(6.5, 1.0)), "page.links_internal": rng.randint(0, 200),
        "page.links_external": rng.randint(0, 80), "page.has_open_graph": rng.random() < 0.7,
        "page.bytes": int(rng.lognormvariate(11, 1)), "page.response_ms": round(rng.lognormvariate(5.5, 0.6), 1),
        "page.content_type": "text/html", "page.language": rng.choice(("en", "de", "fr", "en-GB")),
        "dns.a_count": rng.randint(1, 4), "dns.mx_count": rng.randint(0, 3),
        "dnsbl.listed_count": listed, "dnsbl.spamhaus_dbl": "listed" if listed else "clean",
        "rdap.registered": True, "rdap.domain_age_days": (domain * 37) % 9000 + 1,
        "wayback.archived": rng.random() < 0.6, "wayback.capture_count": int(rng.lognormvariate(3, 2)),
        "spam.score": score, "spam.flag": score >= 0.5, "spam.model": "1",
        "authority.score": rng.randint(0, 100),
    }
    if rng.random() < 0.25:
        signals["hackernews.points"] = int(rng.paretovariate(1.2)) - 1
        signals["hackernews.comments"] = int(rng.paretovariate(1.5)) - 1
    if rng.random() < 0.3:
        signals["reddit.score"] = int(rng.paretovariate(1.1)) - 1
    if domain % 10 < 3:
        signals["tranco.rank"] = domain % 1_000_000 + 1
    signals["engagement.total"] = (signals.get("hackernews.points", 0) + signals.get("hackernews.comments", 0)
                                   + signals.get("reddit.score", 0))
    return signals


def rows(n: int, *, seed: int = 13) -> Iterator[tuple[int, str, str, str, str, datetime, str, str, int]]:
    """(number, url, domain, title, status, analysed_at, signals JSON, providers JSON, owner index) per link:
    n URLs on n/20 domains over 300 days; every 100th link belongs to the second account."""
    rng = random.Random(seed)
    domains = max(1, n // 20)
    for number in range(n):
        domain_number = rng.randrange(domains)
        domain = f"site{domain_number}.{TLDS[domain_number % len(TLDS)]}"
        url = f"https://www.{domain}/{rng.choice(WORDS)}/{number}"
        title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 7))).capitalize()
        status = rng.choice(STATUSES)
        analysed = START + timedelta(seconds=number * (300 * 86400 / n) + rng.random())
        signals = _signals(rng, url, domain_number, title) if status != "failed" else {"url": url}
        providers = {name: rng.choice(CALLS) for name in PROVIDERS}
        yield (number, url, domain, title, status, analysed, json.dumps(signals), json.dumps(providers),
               1 if number % 100 == 99 else 0)


def fill(n: int) -> dict[str, Any]:
    """Links, their analyses and the entries the list reads, in bulk (no batch items or provider results:
    the list reads the entries alone)."""
    from django.contrib.auth.models import User
    from django.db import connection

    from linkmeter.web.links.models import Analysis, Link, LinkEntry

    owners = [User.objects.create_user("bench-search").pk, User.objects.create_user("bench-other").pk]
    tables = (Link._meta.db_table, Analysis._meta.db_table, LinkEntry._meta.db_table)
    started = time.perf_counter()
    indexes = _drop_indexes(connection, LinkEntry._meta.db_table)
    links, analyses, entries = [], [], []
    for number, url, domain, title, status, analysed, signals, providers, owner in rows(n):
        pk = number + 1
        links.append((pk, url, domain, analysed, pk))
        analyses.append((pk, pk, status, analysed, analysed, analysed, signals, owners[owner]))
        entries.append((pk, owners[owner], pk, pk, url, domain, title, f"{url} {title} {domain}".lower(), status,
                        analysed, signals, providers))
        if len(entries) >= 20_000 or number == n - 1:
            _write(connection, tables, links, analyses, entries)
            links, analyses, entries = [], [], []
    loaded = time.perf_counter() - started
    with connection.cursor() as cursor:
        for sql in indexes:
            cursor.execute(sql)
        cursor.execute("ANALYZE")
        if connection.vendor == "postgresql":
            for table in tables:
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {n + 1})")
    return {"owner": owners[0], "load_seconds": round(loaded, 1),
            "index_seconds": round(time.perf_counter() - started - loaded, 1)}


def _drop_indexes(connection: Any, table: str) -> list[str]:
    """Drops the table's indexes (not its primary key); answers the statements that make them again."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
                           "AND indexname NOT LIKE %s", [table, "%_pkey"])
        else:
            cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s "
                           "AND sql IS NOT NULL", [table])
        found = cursor.fetchall()
        for name, _ in found:
            cursor.execute(f'DROP INDEX "{name}"')
    return [sql for _, sql in found]


def _write(connection: Any, tables: tuple[str, str, str], links: list[tuple[Any, ...]],
           analyses: list[tuple[Any, ...]], entries: list[tuple[Any, ...]]) -> None:
    link_table, analysis_table, entry_table = tables
    specs = [
        (link_table, "id, url, domain, first_seen, latest_analysis_id", links),
        (analysis_table, "id, link_id, status, queued_at, started_at, finished_at, signals, requested_by_id, "
                         "priority, providers, attempts, error", [(*row, 0, "[]", 1, "") for row in analyses]),
        (entry_table, "id, owner_id, link_id, analysis_id, url, domain, title, search_text, status, analysed_at, "
                      "signals, providers", entries),
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            raw = cursor.cursor
            raw.execute("SET session_replication_role = replica")  # the foreign keys point at rows of this load
            for table, columns, values in specs:
                with raw.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in values:
                        copy.write_row(row)
            raw.execute("SET session_replication_role = DEFAULT")
        else:
            cursor.execute("PRAGMA foreign_keys = OFF")
            for table, columns, values in specs:
                marks = ", ".join(["%s"] * len(values[0]))
                cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})",
                                   [tuple(_sqlite_time(v) if isinstance(v, datetime) else v for v in row)
                                    for row in values])
            cursor.execute("PRAGMA foreign_keys = ON")


def _sqlite_time(moment: datetime) -> str:
    return str(moment.astimezone(UTC).replace(tzinfo=None))  # how Django stores a datetime in SQLite


# Typical searches: what the Links page and API clients ask (the first page unless said otherwise).
QUERIES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("newest", {}),
    ("text 'review'", {"q": "review"}),
    ("domain", {"domain": "site42.com"}),
    ("failed", {"status": ["failed"]}),
    ("spam.score>=0.8 by score", {"filters": ["spam.score>=0.8"], "sort": "-spam.score"}),
    ("hn.points>100 by points", {"filters": ["hackernews.points>100"], "sort": "-hackernews.points"}),
    ("listed, newest", {"filters": ["dnsbl.listed_count>=1"]}),
    ("listed by hn.points", {"filters": ["dnsbl.listed_count>=1"], "sort": "-hackernews.points"}),
    ("tranco.rank<=1000 by rank", {"filters": ["tranco.rank<=1000"], "sort": "tranco.rank"}),
    ("spam.flag=true", {"filters": ["spam.flag=true"]}),
    ("dnsbl:error", {"provider": ["dnsbl:error"]}),
    ("a month by engagement", {"after": "2026-03-01", "before": "2026-04-01", "sort": "-engagement.total"}),
    ("text + score", {"q": "shop", "filters": ["spam.score>=0.5"]}),
    ("by authority", {"sort": "-authority.score"}),
    ("page 20 of newest", {"_pages": 20}),
)


def measure(owner_id: int, repeats: int) -> dict[str, Any]:
    from django.contrib.auth.models import User

    from linkmeter.web.links.selectors.search import link_search, parse_link_query

    owner = User.objects.get(pk=owner_id)
    results = []
    every: list[float] = []
    for name, given in QUERIES:
        params = {k: v for k, v in given.items() if not k.startswith("_")}
        cursor = ""
        for _ in range(given.get("_pages", 1) - 1):  # walk to the page (not timed)
            cursor = link_search(owner, parse_link_query(**params, cursor=cursor)).next_cursor or ""
        times = []
        found = 0
        for attempt in range(repeats + 1):
            started = time.perf_counter()
            page = link_search(owner, parse_link_query(**params, cursor=cursor))
            elapsed = (time.perf_counter() - started) * 1000
            found = len(page.rows)
            if attempt:  # the first run warms the caches
                times.append(elapsed)
        every += times
        results.append({"query": name, "rows": found, "p50_ms": round(statistics.median(times), 1),
                        "p95_ms": round(_percentile(times, 0.95), 1)})
    return {"queries": results, "p50_ms": round(statistics.median(every), 1),
            "p95_ms": round(_percentile(every, 0.95), 1)}


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--links", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    filled = fill(args.links)
    runs = [measure(filled["owner"], args.repeats) for _ in range(args.runs)]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_database_size(current_database())")
            size = cursor.fetchone()[0]
        else:
            cursor.execute("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
            size = cursor.fetchone()[0]
    print(json.dumps({"database": connection.vendor, "links": args.links, **filled, "runs": runs,
                      "database_mb": round(size / 2**20, 1)}))


if __name__ == "__main__":
    main(sys.argv[1:])
