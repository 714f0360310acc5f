"""`linkmeter bench`: N URLs through the engine, then the same calls through the bare ceiling, one run."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from linkmeter.assembly import build_engine
from linkmeter.bench.ceiling import replay
from linkmeter.bench.recorder import Recording, instrument
from linkmeter.engine.results import UrlStatus

TLDS = ("com", "org", "net")
PATHS = ("/a/{i}", "/2024/05/story-{i}", "/blog/post-{i}", "/news/item?id={i}")


def workload(n: int) -> list[str]:
    """N distinct URLs on N/10 registered domains (so per-domain providers see realistic cache reuse);
    one in five is plain http (a redirect to https)."""
    domains = max(1, n // 10)
    urls = []
    for i in range(n):
        d = i % domains
        scheme = "http" if i % 5 == 4 else "https"
        path = PATHS[i % len(PATHS)].format(i=i)
        urls.append(f"{scheme}://www.site{d}.{TLDS[d % 3]}{path}")
    return urls


@dataclass(slots=True)
class Figures:
    seconds: float
    urls: int
    calls: int
    cpu_seconds: float
    url_seconds: list[float]

    def as_dict(self) -> dict[str, Any]:
        ordered = sorted(self.url_seconds) or [0.0]
        return {
            "seconds": round(self.seconds, 3),
            "urls_per_s": round(self.urls / self.seconds, 1) if self.seconds else 0.0,
            "calls_per_s": round(self.calls / self.seconds, 1) if self.seconds else 0.0,
            "calls": self.calls,
            "p50_url_ms": round(statistics.median(ordered) * 1000, 1),
            "p99_url_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1),
            "cpu_ms_per_call": round(self.cpu_seconds / self.calls * 1000, 3) if self.calls else 0.0,
        }


@click.command()
@click.option("--urls", "n", type=click.IntRange(1, 1_000_000), default=5000, show_default=True,
              help="How many URLs to analyse.")
@click.option("--concurrency", type=click.IntRange(1, 10_000), default=200, show_default=True,
              help="URLs in flight at once (engine and ceiling alike).")
@click.option("--latency-ms", type=click.FloatRange(min=0), default=100, show_default=True,
              help="The emulator's median latency per answer.")
@click.option("--mode", type=click.Choice(["engine", "embedded"]), default="engine", show_default=True,
              help="What to measure against the ceiling: the engine in this process, or also `linkmeter serve` "
                   "(API + runner + SQLite) from submission to stored result.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench(n: int, concurrency: int, latency_ms: float, mode: str, as_json: bool) -> None:
    """Measure throughput against the ceiling (a bare aiohttp loop making the same calls) in one run.

    The emulator runs in a separate process; the engine and then the ceiling run in this one. Reports
    URLs/s, calls/s, p50/p99 per URL, CPU per call, peak memory and the ratio engine/ceiling.

    --mode embedded also starts `linkmeter serve` (a separate process, SQLite in a temporary directory,
    the runner at the same concurrency) between the two, submits the same URLs through POST
    /api/v1/analyses and measures from the first submission until every analysis is stored; p50/p99 are
    queued-to-stored per URL, CPU is the server's, calls are the engine run's. Adds the ratio
    embedded/ceiling.
    """
    figures = asyncio.run(_bench(n, concurrency, latency_ms, mode))
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    engine, ceiling = figures["engine"], figures["ceiling"]
    click.echo(f"linkmeter bench: {n} URLs, concurrency {concurrency}, emulator latency {latency_ms:g} ms")
    click.echo(f"{'':10}{'URLs/s':>10}{'calls/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'CPU ms/call':>13}"
               f"{'emulator CPU':>14}")
    rows = [("engine", engine), ("embedded", figures["embedded"]), ("ceiling", ceiling)]
    for name, row in (r for r in rows if r[1] is not None):
        click.echo(f"{name:10}{row['urls_per_s']:>10}{row['calls_per_s']:>10}{row['p50_url_ms']:>10}"
                   f"{row['p99_url_ms']:>10}{row['cpu_ms_per_call']:>13}{row['emulator_cpu_share'] or '-':>14}")
    click.echo(f"ratio engine/ceiling: {figures['ratio']:.3f}   URL statuses: {figures['statuses']}   "
               f"peak RSS: {figures['peak_rss_mb']} MB")
    if figures["embedded"] is not None:
        click.echo(f"ratio embedded/ceiling: {figures['ratio_embedded']:.3f}   URL statuses: "
                   f"{figures['embedded']['statuses']}   submitting took {figures['embedded']['submit_seconds']} s")


async def _bench(n: int, concurrency: int, latency_ms: float, mode: str = "engine") -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="linkmeter-bench-") as tmp:
        process, info = await _start_emulator(latency_ms)
        try:
            ca_file = Path(tmp) / "ca.pem"
            ca_file.write_text(info["ca_pem"])
            from linkmeter.emulator.server import env_for_info

            environ = {**os.environ, **env_for_info(info, str(ca_file))}
            urls = workload(n)
            emulator_cpu = [_cpu_seconds(process.pid)]
            engine_figures, recording, statuses = await _run_engine(environ, urls, concurrency)
            emulator_cpu.append(_cpu_seconds(process.pid))
            embedded: dict[str, Any] | None = None
            if mode == "embedded":
                embedded = await _run_embedded(urls, info, concurrency, Path(tmp), recording.total, process.pid)
                emulator_cpu.append(_cpu_seconds(process.pid))
            host, dns_port = info["dns"].rsplit(":", 1)
            ceiling = await replay(recording, concurrency=concurrency, emulator_host=host,
                                   port_map={80: info["http_port"], 443: info["https_port"]},
                                   dns_server=(host, int(dns_port)), ca_pem=info["ca_pem"])
            emulator_cpu.append(_cpu_seconds(process.pid))
        finally:
            await _stop(process)
    ceiling_figures = Figures(ceiling.seconds, len(recording.calls), ceiling.calls, ceiling.cpu_seconds,
                              ceiling.url_seconds)
    engine_rate = n / engine_figures.seconds
    ceiling_rate = len(recording.calls) / ceiling.seconds if ceiling.seconds else 0.0
    return {
        "urls": n,
        "concurrency": concurrency,
        "latency_ms": latency_ms,
        "engine": {**engine_figures.as_dict(),
                   "emulator_cpu_share": _share(emulator_cpu[0], emulator_cpu[1], engine_figures.seconds)},
        "ceiling": {**ceiling_figures.as_dict(), "errors": ceiling.errors,
                    "emulator_cpu_share": _share(emulator_cpu[-2], emulator_cpu[-1], ceiling.seconds)},
        "ratio": round(engine_rate / ceiling_rate, 3) if ceiling_rate else 0.0,
        "embedded": embedded,
        "ratio_embedded": (round(n / embedded["seconds"] / ceiling_rate, 3)
                           if embedded and embedded["seconds"] and ceiling_rate else None),
        "statuses": statuses,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


async def _run_embedded(urls: list[str], info: dict[str, Any], concurrency: int, workdir: Path, calls: int,
                        emulator_pid: int) -> dict[str, Any]:
    from linkmeter.bench.embedded import EmbeddedBenchError, run_embedded

    emulator_before = _cpu_seconds(emulator_pid)  # over the whole run, submissions included
    try:
        run = await run_embedded(urls, emulator_url=info["url"], concurrency=concurrency, workdir=workdir,
                                 cpu_of=_cpu_seconds)
    except EmbeddedBenchError as exc:
        raise click.ClickException(str(exc)) from exc
    figures = Figures(run.seconds, len(urls), calls, run.cpu_seconds, run.url_seconds)
    return {**figures.as_dict(), "submit_seconds": round(run.submit_seconds, 3), "statuses": run.statuses,
            "emulator_cpu_share": _share(emulator_before, _cpu_seconds(emulator_pid), run.seconds)}


def _cpu_seconds(pid: int) -> float | None:
    """CPU seconds a process has used (Linux /proc), to tell whether the emulator was the bottleneck."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _share(before: float | None, after: float | None, seconds: float) -> float | None:
    """The emulator's CPU use over a phase as a fraction of one core (near 1.0: it was the bottleneck)."""
    if before is None or after is None or seconds <= 0:
        return None
    return round((after - before) / seconds, 2)


async def _run_engine(environ: dict[str, str], urls: list[str], concurrency: int
                      ) -> tuple[Figures, Recording, dict[str, int]]:
    engine = build_engine(environ, relax_rate_limits=True)
    recording = Recording()
    instrument(engine, recording)
    url_seconds: list[float] = []
    statuses = {str(s): 0 for s in UrlStatus}
    cpu = time.process_time()
    began = time.perf_counter()
    try:
        async for result in engine.analyze_many(urls, concurrency=concurrency):
            url_seconds.append(result.elapsed_ms / 1000)
            statuses[str(result.status)] += 1
    finally:
        await engine.close()
    seconds = time.perf_counter() - began
    return (Figures(seconds, len(urls), recording.total, time.process_time() - cpu, url_seconds),
            recording, statuses)


async def _start_emulator(latency_ms: float) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "linkmeter", "emulate", "--port", "0", "--https-port", "0", "--dns-port", "0",
        "--latency-ms", str(latency_ms), "--seed", "7", "--ready-json",
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await process.stdout.readline()
    if not line:
        await process.wait()
        raise click.ClickException("the emulator did not start (see its messages above)")
    return process, json.loads(line)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
