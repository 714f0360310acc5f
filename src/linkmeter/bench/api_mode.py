"""`linkmeter bench --mode api`: API latency at a fixed rate, with a key and limits and without (local mode)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import statistics
import sys
import timeit
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from linkmeter.bench import processes

SEED_WAIT_SECONDS = 30  # POST /api/v1/analyses?wait=: the seeded analyses are stored before the load starts
BENCH_PLAN = "bench"
BENCH_USER = "bench"
# Limits and quotas that the bench's load never reaches but that are all checked on every request: the cost of
# the limits is measured, not their refusals.
BENCH_PLAN_ROW = {"code": BENCH_PLAN, "name": "Bench", "priority": 4, "rate_per_second": 100_000,
                  "rate_per_minute": 6_000_000, "daily_urls": 100_000_000, "monthly_urls": 1_000_000_000,
                  "max_batch": 1000, "max_in_flight": 1_000_000, "providers": "[]"}
TARGETS = ("key", "local")  # LINKMETER_AUTH=required with a key; LINKMETER_AUTH=local without


class ApiBenchError(RuntimeError):
    """A server did not start or answered the seeding wrongly; the message has the tail of its log."""


@dataclass(slots=True)
class Server:
    name: str
    process: asyncio.subprocess.Process
    base_url: str
    headers: dict[str, str]
    log: Path
    analysis_ids: list[int]


def _environment(data_dir: Path, auth: str) -> dict[str, str]:
    # Embedded and on its own: no broker, no Redis, SQLite in the bench's temporary directory.
    drop = ("DATABASE_URL", "LINKMETER_BROKER_URL", "LINKMETER_REDIS_URL")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update({"LINKMETER_DATA_DIR": str(data_dir), "LINKMETER_AUTH": auth,
                "LINKMETER_LOG_LEVEL": env.get("LINKMETER_LOG_LEVEL", "WARNING")})
    return env


async def _run(args: list[str], env: dict[str, str], log: Path) -> str:
    process = await processes.start([sys.executable, "-m", "linkmeter", *args], env=env, log=log,
                                    stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise ApiBenchError(f"`linkmeter {' '.join(args[:2])}` failed: {processes.tail(log)}")
    return out.decode().strip()


async def _account(env: dict[str, str], data_dir: Path, log: Path) -> str:
    """The bench's account on the bench plan and its key, made with the documented commands."""
    await _run(["migrate"], env, log)
    columns = ", ".join(BENCH_PLAN_ROW)
    marks = ", ".join("?" for _ in BENCH_PLAN_ROW)
    # No command edits plans (operators use the admin): the bench writes its plan row into its own database.
    with contextlib.closing(sqlite3.connect(data_dir / "linkmeter.sqlite3")) as connection, connection:
        connection.execute(f"INSERT INTO plans_plan ({columns}) VALUES ({marks})", list(BENCH_PLAN_ROW.values()))
    await _run(["user", "create", BENCH_USER, "--plan", BENCH_PLAN, "--no-password"], env, log)
    key = (await _run(["key", "create", BENCH_USER, "--name", "bench"], env, log)).splitlines()[-1].strip()
    if not key.startswith("lmk_"):
        raise ApiBenchError(f"`linkmeter key create` printed no key: {processes.tail(log)}")
    return key


async def start_server(name: str, workdir: Path, emulator_url: str, seed_urls: list[str]) -> Server:
    """`linkmeter serve` for one target (its own SQLite database), then ``seed_urls`` analysed through its API."""
    data_dir = workdir / f"api-{name}"
    data_dir.mkdir(parents=True)
    log = workdir / f"api-{name}-serve.log"
    env = _environment(data_dir, "required" if name == "key" else "local")
    headers = {"Authorization": f"Bearer {await _account(env, data_dir, log)}"} if name == "key" else {}
    process = await processes.start(
        [sys.executable, "-m", "linkmeter", "serve", "--host", "127.0.0.1", "--port", "0", "--emulator",
         emulator_url], env=env, log=log, stdout=asyncio.subprocess.PIPE)
    try:
        base_url = await processes.wait_until_serving(process, log, error=ApiBenchError, path="/api/v1/usage",
                                                     headers=headers)
        ids = await _seed(base_url, headers, seed_urls, log)
    except BaseException:
        await processes.stop(process)
        raise
    return Server(name, process, base_url, headers, log, ids)


async def _seed(base_url: str, headers: dict[str, str], urls: list[str], log: Path) -> list[int]:
    async with aiohttp.ClientSession(base_url=base_url, headers=headers) as session, session.post(
            f"/api/v1/analyses?wait={SEED_WAIT_SECONDS}", json={"urls": urls}) as response:
        body: dict[str, Any] = await response.json(content_type=None)
    if response.status != 200 or body.get("invalid"):
        raise ApiBenchError(f"seeding answered {response.status}: {str(body)[:300]} {processes.tail(log)}")
    return [int(i) for i in body["analysis_ids"]]


async def answer_bytes(server: Server) -> int:
    """The size of one GET /api/v1/analyses/{id} answer (what the reads fetch)."""
    async with aiohttp.ClientSession(headers=server.headers) as session, session.get(
            f"{server.base_url}/api/v1/analyses/{server.analysis_ids[0]}") as response:
        return len(await response.read())


async def run_load(plan: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """The load generator in its own process (``linkmeter.bench.load``, the plan in a file); its JSON results."""
    plan_file = workdir / "api-load-plan.json"
    plan_file.write_text(json.dumps(plan))
    log = workdir / "api-load.log"
    process = await processes.start([sys.executable, "-m", "linkmeter.bench.load", str(plan_file)],
                                    env=os.environ, log=log, stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise ApiBenchError(f"the load generator failed: {processes.tail(log)}")
    result: dict[str, Any] = json.loads(out)
    return result


def machine_speed_ms() -> float:
    """How fast this machine runs Python now: the best of five ``sum(range(100_000))``, in ms. On a shared
    machine it moves with the other tenants' load; runs are comparable only at similar figures."""
    best = min(timeit.repeat(lambda: sum(range(100_000)), number=1, repeat=5))
    return round(best * 1000, 2)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def summary(latencies: list[float]) -> dict[str, float]:
    return {"count": len(latencies), "p50_ms": round(percentile(latencies, 0.5), 2),
            "p99_ms": round(percentile(latencies, 0.99), 2), "max_ms": round(max(latencies, default=0.0), 2)}


def figures(result: dict[str, Any], *, rate: float, cpu: dict[str, float], answer: int) -> dict[str, Any]:
    """Per target: every phase's p50/p99 of all requests and per kind; the medians' and p99s' differences."""
    by_target: dict[str, Any] = {}
    for name in TARGETS:
        phases = [p for p in result["phases"] if p["target"] == name]
        every = [t for p in phases for kind in ("read", "submit") for t in p["latencies_ms"][kind]]
        statuses: dict[str, int] = {}
        for phase in phases:
            for status, count in phase["statuses"].items():
                statuses[status] = statuses.get(status, 0) + count
        seconds = sum(p["seconds"] for p in phases)
        by_target[name] = {
            **summary(every),
            "read": summary([t for p in phases for t in p["latencies_ms"]["read"]]),
            "submit": summary([t for p in phases for t in p["latencies_ms"]["submit"]]),
            "phases_p50_ms": [round(percentile([t for k in ("read", "submit") for t in p["latencies_ms"][k]], 0.5), 2)
                              for p in phases],
            "phases_p99_ms": [round(percentile([t for k in ("read", "submit") for t in p["latencies_ms"][k]], 0.99),
                                    2) for p in phases],
            "statuses": statuses,
            "client_late_ms": max((p["late_ms"] for p in phases), default=0.0),
            "server_cpu_ms_per_request": round(cpu[name] * 1000 / len(every), 3) if every else 0.0,
            "seconds": seconds,
        }
    key, local = by_target["key"], by_target["local"]
    return {
        "rate": rate,
        "answer_bytes": answer,
        "targets": by_target,
        "added_p50_ms": round(key["p50_ms"] - local["p50_ms"], 2),
        "added_p99_ms": round(key["p99_ms"] - local["p99_ms"], 2),
        "added_read_p50_ms": round(key["read"]["p50_ms"] - local["read"]["p50_ms"], 2),
        "added_cpu_ms_per_request": round(key["server_cpu_ms_per_request"] - local["server_cpu_ms_per_request"], 3),
        "phase_p50_spread_ms": {name: round(statistics.pstdev(t["phases_p50_ms"]), 2) if t["phases_p50_ms"] else 0.0
                                for name, t in by_target.items()},
    }


def phase_order(pairs: int) -> list[str]:
    """key, local, local, key, key, local, ...: interleaved so that drift over the run hits both alike."""
    order: list[str] = []
    for i in range(pairs):
        order.extend(TARGETS if i % 2 == 0 else TARGETS[::-1])
    return order


def load_plan(servers: dict[str, Server], *, rate: float, phase_seconds: float, pairs: int, submit_share: float,
              submit_urls: list[str]) -> dict[str, Any]:
    return {
        "rate": rate, "submit_share": submit_share, "phase_seconds": phase_seconds, "warmup_seconds": 3.0,
        "pause_seconds": 1.0, "order": phase_order(pairs),
        "targets": [{"name": s.name, "base_url": s.base_url, "headers": s.headers, "analysis_ids": s.analysis_ids,
                     "submit_urls": submit_urls} for s in servers.values()],
    }


async def run_api(emulator_url: str, workdir: Path, seed_urls: list[str], *, rate: float, phase_seconds: float,
                  pairs: int, submit_share: float) -> dict[str, Any]:
    """Both servers up and seeded, then the load generator's interleaved phases; the figures."""
    servers: dict[str, Server] = {}
    try:
        for name in TARGETS:
            servers[name] = await start_server(name, workdir, emulator_url, seed_urls)
        answer = await answer_bytes(servers["key"])
        plan = load_plan(servers, rate=rate, phase_seconds=phase_seconds, pairs=pairs, submit_share=submit_share,
                         submit_urls=seed_urls)
        speed = [machine_speed_ms()]
        before = {name: processes.cpu_seconds(s.process.pid) for name, s in servers.items()}
        result = await run_load(plan, workdir)
        cpu = {name: processes.cpu_seconds(s.process.pid) - before[name] for name, s in servers.items()}
        speed.append(machine_speed_ms())
    finally:
        for server in servers.values():
            await processes.stop(server.process)
    return {**figures(result, rate=rate, cpu=cpu, answer=answer), "machine_loop_ms": speed,
            "phase_seconds": phase_seconds, "order": plan["order"], "submit_share": submit_share,
            "seeded_urls": len(seed_urls)}
