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


def run_search(databases: list[str], links: int | None, repeats: int) -> list[dict[str, Any]]:
    figures = []
    for database in databases:
        count = links or DEFAULT_LINKS[database]
        with tempfile.TemporaryDirectory(prefix="linkmeter-bench-search-") as workdir:
            if database == "postgresql":
                with temporary_database(Services.from_env().postgres, prefix="linkmeter_bench_search") as url:
                    figures.append(_run(url, workdir, count, repeats))
            else:
                figures.append(_run(f"sqlite:///{Path(workdir) / 'search.sqlite3'}", workdir, count, repeats))
    return figures


def _run(url: str, workdir: str, links: int, repeats: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKMETER_BROKER")}
    env.update({"DATABASE_URL": url, "LINKMETER_DATA_DIR": workdir,
                "DJANGO_SETTINGS_MODULE": "linkmeter.web.config.settings"})
    done = subprocess.run([sys.executable, "-m", FILLER, "--links", str(links), "--repeats", str(repeats)],
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the search bench failed on {url.split(':')[0]}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def print_search(figures: list[dict[str, Any]], echo: Any) -> None:
    for run in figures:
        echo(f"{run['database']}: {run['links']} links ({run['database_mb']} MB), loaded in {run['load_seconds']} s, "
             f"indexed in {run['index_seconds']} s")
        echo(f"  {'query':32}{'rows':>6}{'p50 ms':>10}{'p95 ms':>10}")
        for row in run["queries"]:
            echo(f"  {row['query']:32}{row['rows']:>6}{row['p50_ms']:>10}{row['p95_ms']:>10}")
        echo(f"  {'all queries':32}{'':>6}{run['p50_ms']:>10}{run['p95_ms']:>10}")
