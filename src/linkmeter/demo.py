"""The offline demo: starts the emulator in-process and analyses sample URLs through the real code path."""

from __future__ import annotations

import os

from rich.console import Console

from linkmeter import loops
from linkmeter.assembly import build_engine
from linkmeter.emulator.knobs import Knobs
from linkmeter.emulator.server import start_emulator
from linkmeter.emulator.web import SAMPLE_URLS
from linkmeter.engine.results import UrlResult, UrlStatus
from linkmeter.output import print_table, render_json, stdout_console


def run_demo(*, as_json: bool = False, latency_ms: float = 40.0) -> int:
    """Returns the exit status: 0 when every sample URL was analysed."""
    return loops.run(_demo(as_json=as_json, latency_ms=latency_ms))


async def _demo(*, as_json: bool, latency_ms: float) -> int:
    err = Console(stderr=True)
    emulator = await start_emulator(knobs=Knobs(latency_ms=latency_ms, seed=1))
    try:
        engine = build_engine(os.environ, relax_rate_limits=True, url_deadline=20, emulator=emulator.info())
        err.print(f"linkmeter demo: {len(SAMPLE_URLS)} sample URLs against the built-in emulator at "
                  f"{emulator.url} (no internet needed)", highlight=False)
        results: list[UrlResult] = []
        try:
            async for result in engine.analyze_many(SAMPLE_URLS, concurrency=20):
                results.append(result)
        finally:
            await engine.close()
    finally:
        await emulator.close()
    order = {url: i for i, url in enumerate(SAMPLE_URLS)}
    results.sort(key=lambda r: order.get(r.url, len(order)))
    if as_json:
        print(render_json(results, []))
    else:
        print_table(stdout_console(), results, engine.plan)
        err.print("Next: `linkmeter analyze --help`; live mode needs internet, keyed providers need "
                  "LINKMETER_<NAME>_API_KEY.", highlight=False)
    return 1 if any(r.status is UrlStatus.FAILED for r in results) else 0
