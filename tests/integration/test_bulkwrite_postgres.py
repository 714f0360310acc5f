"""The batched writes on PostgreSQL, where the results go as one jsonb document: what is stored is what the
engine returned, odd values included, and a result is written once (run in a separate process: the test
session's Django is on SQLite)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from linkmeter.bench.services import conninfo, temporary_database
from tests.integration.harness import POSTGRES_SERVER, ensure_postgresql

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

STORE = r'''
import json, math, sys
import django
django.setup()
from linkmeter.engine.results import CallResult, CallStatus, UrlResult, UrlStatus
from linkmeter.web.links.services.queue import analysis_claim_ids, analysis_complete
from linkmeter.web.links.services.submission import analysis_submit

def result(url, providers):
    return UrlResult(url, UrlStatus.PARTIAL, {"url": url, "page.title": "T\x00itle"}, providers, 12.5)

calls = {
    "page": CallResult("page", CallStatus.OK, 101.5, 1, "", {"page.title": "Caf\u00e9 \x00", "page.bytes": 7},
                       {"status": 200, "headers": {"X": "\\u0000 literal"}}, "k1"),
    "dns": CallResult("dns", CallStatus.ERROR, 3.0, 2, "NXDOMAIN\x00 for x", {}, None, "k2"),
    "rdap": CallResult("rdap", CallStatus.CACHED, 0.1, 0, "from cache", {"rdap.age": 3}, [1, {"a": math.nan}],
                       "k3"),
}
odd = {"big": CallResult("big", CallStatus.OK, 1.0, 1, "", {"big.n": 2**70}, {(1, 2): "tuple key"}, "k4")}
from linkmeter.web.links import bulkwrite
fast = []  # whether each write took the one-document path
for name in ("_insert_results_as_one_document", "_update_analyses_as_one_document"):
    def recording(*args, _original=getattr(bulkwrite, name)):
        fast.append(_original(*args))
        return fast[-1]
    setattr(bulkwrite, name, recording)
submitted = analysis_submit(urls=["https://example.org/a", "https://example.org/b"])
first, second = submitted.queued
analysis_claim_ids(analysis_ids=[first, second], deadline_seconds=60)
stored = analysis_complete(outcomes=[(first, result("https://example.org/a", calls))])
stored += analysis_complete(outcomes=[(second, result("https://example.org/b", odd))])
again = analysis_complete(outcomes=[(first, result("https://example.org/a", calls))])
print(json.dumps({"ids": [first, second], "stored": stored, "again": again, "fast": fast}))
'''


def test_results_and_outcomes_are_stored_exactly_once_with_odd_values_made_storable(tmp_path: Path) -> None:
    ensure_postgresql()
    with temporary_database(POSTGRES_SERVER, prefix="linkmeter_it_bulk") as database:
        env = {**os.environ, "DATABASE_URL": database, "LINKMETER_DATA_DIR": str(tmp_path),
               "DJANGO_SETTINGS_MODULE": "linkmeter.web.config.settings"}
        env.pop("LINKMETER_BROKER_URL", None)
        migrated = subprocess.run([sys.executable, "-m", "linkmeter", "migrate"], env=env, capture_output=True,
                                  text=True, timeout=120)
        assert migrated.returncode == 0, migrated.stderr
        run = subprocess.run([sys.executable, "-c", STORE], env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        outcome = json.loads(run.stdout.strip().splitlines()[-1])
        assert (outcome["stored"], outcome["again"]) == (2, 0)  # a final analysis is never stored twice
        # The first analysis as one document; the second's results cannot be (below), its outcome can.
        assert outcome["fast"][:4] == [True, True, False, True]
        first, second = outcome["ids"]
        with psycopg.connect(conninfo(database)) as connection:
            rows = connection.execute(
                "SELECT analysis_id, provider, status, latency_ms, attempts, message, signals, raw "
                "FROM links_providerresult ORDER BY analysis_id, provider").fetchall()
            analyses = connection.execute(
                "SELECT id, status, signals, elapsed_ms, finished_at IS NOT NULL FROM links_analysis ORDER BY id"
            ).fetchall()
    by_key = {(row[0], row[1]): row[2:] for row in rows}
    assert len(rows) == 4
    # NUL characters, which PostgreSQL's text and jsonb refuse, become U+FFFD; a literal "\u0000" stays.
    assert by_key[(first, "page")] == ("ok", 101.5, 1, "", {"page.title": "Café \ufffd", "page.bytes": 7},
                                       {"status": 200, "headers": {"X": "\\u0000 literal"}})
    assert by_key[(first, "dns")] == ("error", 3.0, 2, "NXDOMAIN\ufffd for x", {}, None)
    assert by_key[(first, "rdap")] == ("cached", 0.1, 0, "from cache", {"rdap.age": 3}, [1, {"a": None}])
    # What the fast encoder refuses (an integer over 64 bits, a tuple key) takes the general path.
    assert by_key[(second, "big")] == ("ok", 1.0, 1, "", {"big.n": 2**70}, {"(1, 2)": "tuple key"})
    assert [row[:2] for row in analyses] == [(first, "partial"), (second, "partial")]
    assert all(row[2]["page.title"] == "T\ufffditle" and row[3] == 12.5 and row[4] for row in analyses)
