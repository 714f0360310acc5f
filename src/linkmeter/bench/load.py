"""The API bench's load generator, its own process: requests at a fixed arrival rate (open loop), phase by phase.

Run as ``python -m linkmeter.bench.load PLAN.json``; prints one JSON document of results.
Each request is due at ``start + i / rate`` whether or not earlier ones have answered (a slow server does not
slow the arrivals), and its latency runs from when it was due, so queueing in the client counts too.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from linkmeter import loops

CONNECTIONS = 256  # at most this many requests in flight per server (aiohttp's pool)
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Target:
    """One server and how to call it: its base URL, the headers (the key, or none), its reads and submissions."""

    name: str
    base_url: str
    headers: dict[str, str]
    analysis_ids: list[int]
    submit_urls: list[str]

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Target:
        return cls(raw["name"], raw["base_url"], dict(raw["headers"]), list(raw["analysis_ids"]),
                   list(raw["submit_urls"]))


@dataclass(slots=True)
class Phase:
    target: str
    seconds: float
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"read": [], "submit": []})
    statuses: dict[str, int] = field(default_factory=dict)
    late_ms: float = 0.0  # how far behind schedule the client itself fell at worst (its own CPU)

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "seconds": self.seconds, "latencies_ms": self.latencies,
                "statuses": self.statuses, "late_ms": round(self.late_ms, 2)}


async def _one(session: aiohttp.ClientSession, target: Target, kind: str, rng: random.Random, due: float,
               phase: Phase) -> None:
    try:
        if kind == "read":
            analysis_id = rng.choice(target.analysis_ids)
            async with session.get(f"{target.base_url}/api/v1/analyses/{analysis_id}",
                                   headers=target.headers) as response:
                await response.read()
        else:
            body = {"urls": [rng.choice(target.submit_urls)]}
            async with session.post(f"{target.base_url}/api/v1/analyses", json=body,
                                    headers=target.headers) as response:
                await response.read()
        status = str(response.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        status = type(exc).__name__
    elapsed = time.perf_counter() - due
    phase.statuses[status] = phase.statuses.get(status, 0) + 1
    phase.latencies[kind].append(round(elapsed * 1000, 3))


async def run_phase(session: aiohttp.ClientSession, target: Target, *, rate: float, seconds: float,
                    submit_share: float, seed: int) -> Phase:
    """``rate`` requests per second for ``seconds`` against ``target``; waits for the stragglers."""
    rng = random.Random(seed)
    phase = Phase(target.name, seconds)
    total = int(rate * seconds)
    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter() + 0.01
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            phase.late_ms = max(phase.late_ms, -delay * 1000)
        kind = "submit" if rng.random() < submit_share else "read"
        task = asyncio.create_task(_one(session, target, kind, rng, due, phase))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks)
    return phase


async def run(plan: dict[str, Any]) -> dict[str, Any]:
    targets = {raw["name"]: Target.of(raw) for raw in plan["targets"]}
    rate, submit_share = float(plan["rate"]), float(plan["submit_share"])
    connector = aiohttp.TCPConnector(limit=CONNECTIONS * len(targets), limit_per_host=CONNECTIONS)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
    phases: list[Phase] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for name in targets:  # warm up: connections open, caches filled, the first-request costs paid
            await run_phase(session, targets[name], rate=rate, seconds=float(plan["warmup_seconds"]),
                            submit_share=submit_share, seed=0)
        for index, name in enumerate(plan["order"]):
            phases.append(await run_phase(session, targets[name], rate=rate, seconds=float(plan["phase_seconds"]),
                                          submit_share=submit_share, seed=index + 1))
            await asyncio.sleep(float(plan.get("pause_seconds", 1.0)))  # the server's background work settles
    return {"phases": [phase.as_dict() for phase in phases]}


def main() -> None:
    with open(sys.argv[1]) as source:
        plan = json.load(source)
    json.dump(loops.run(run(plan)), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
