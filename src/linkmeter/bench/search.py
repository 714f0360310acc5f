"""`linkmeter bench --mode search`: fill a fresh PostgreSQL and a fresh SQLite database with links and time the
links list's typical searches (p50/p95), each database in a process of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from linkmeter.bench.services import Services, temporary_database

DEFAULT_LINKS = {"postgresql": 1_000_000, "sqlite": 100_000}
FILLER = "linkmeter.web.links.searchbench"  # the web side, run as a process: the bench imports no web code


def run_search(databases: list[str], links: int | None, repeats: int, runs: int) -> list[dict[str, Any]]:
    figures = []
    for database in databases:
        count = links or DEFAULT_LINKS[database]
        with tempfile.TemporaryDirectory(prefix="linkmeter-bench-search-") as workdir:
            if database == "postgresql":
                with temporary_database(Services.from_env().postgres, prefix="linkmeter_bench_search") as url:
                    figures.append(_run(url, workdir, count, repeats, runs))
            else:
                figures.append(_run(f"sqlite:///{Path(workdir) / 'search.sqlite3'}", workdir, count, repeats,
                                    runs))
    return figures


def _run(url: str, workdir: str, links: int, repeats: int, runs: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "LINKMETER_BROKER_URL"}  # the embedded mode
    env.update({"DATABASE_URL": url, "LINKMETER_DATA_DIR": workdir,
                "DJANGO_SETTINGS_MODULE": "linkmeter.web.config.settings"})
    done = subprocess.run([sys.executable, "-m", FILLER, "--links", str(links), "--repeats", str(repeats),
                           "--runs", str(runs)],
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the search bench failed on {url.split(':')[0]}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def print_search(figures: list[dict[str, Any]], echo: Any) -> None:
    for run in figures:
        echo(f"{run['database']}: {run['links']} links ({run['database_mb']} MB), loaded in {run['load_seconds']} s, "
             f"indexed in {run['index_seconds']} s")
        measured = run["runs"]
        heads = "".join(f"{'p50/p95 ms run ' + str(i + 1):>24}" for i in range(len(measured)))
        echo(f"  {'query':32}{'rows':>6}{heads}")
        for number, row in enumerate(measured[0]["queries"]):
            cells = "".join(_pair(m["queries"][number]) for m in measured)
            echo(f"  {row['query']:32}{row['rows']:>6}{cells}")
        cells = "".join(_pair(m) for m in measured)
        echo(f"  {'all queries':32}{'':>6}{cells}")
        p95 = [m["p95_ms"] for m in measured]
        p50 = [m["p50_ms"] for m in measured]
        echo(f"  over {len(measured)} runs: p50 mean {sum(p50) / len(p50):.1f} ms (range {min(p50)}-{max(p50)}), "
             f"p95 mean {sum(p95) / len(p95):.1f} ms (range {min(p95)}-{max(p95)})")


def _pair(figures: dict[str, Any]) -> str:
    return f"{figures['p50_ms']:>14}/{figures['p95_ms']:<9}"
