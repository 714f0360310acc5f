"""`linkmeter bench --mode search` on a small SQLite database: the fill holds what its generator made, the
indexes are back, and every typical search answers (figures are the report's, not asserted)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from linkmeter.bench.command import bench
from linkmeter.web.links.searchbench import QUERIES, rows

pytestmark = pytest.mark.timeout(300)


def test_the_search_bench_fills_sqlite_and_runs_every_search() -> None:
    result = CliRunner().invoke(bench, ["--mode", "search", "--database", "sqlite", "--links", "1000",
                                        "--runs", "2", "--repeats", "2", "--json"])
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.output)
    assert run["database"] == "sqlite" and run["links"] == 1000 and len(run["runs"]) == 2
    made = list(rows(1000))
    mine = [row for row in made if row[8] == 0]  # the first account's
    found = {q["query"]: q["rows"] for q in run["runs"][0]["queries"]}
    assert list(found) == [name for name, _ in QUERIES]
    assert found["newest"] == 50
    assert found["failed"] == min(50, sum(row[4] == "failed" for row in mine))
    assert 0 < found["domain"] == min(50, sum(row[2] == "site42.com" for row in mine))
    assert all(0 < q["p50_ms"] <= q["p95_ms"] for q in run["runs"][1]["queries"])
