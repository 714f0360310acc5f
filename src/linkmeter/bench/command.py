"""`linkmeter bench`: the engine, optionally the service (embedded, Celery) and the 2012 design, then the ceiling."""

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

from linkmeter import loops
from linkmeter.assembly import build_engine
from linkmeter.bench.ceiling import CeilingRun, replay
from linkmeter.bench.recorder import Recording, instrument
from linkmeter.bench.services import Services, ServiceUnavailable, check_services
from linkmeter.emulator.client import EmulatorInfo, environment, write_ca
from linkmeter.engine.results import UrlStatus
from linkmeter.gctune import tune_garbage_collector

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


MODES = ("engine", "embedded", "celery", "chord-per-call")
# Prefork processes per chord-per-call worker: Celery's own default (one per CPU), as the 2012 design ran.
# More processes help it up to 16-24 on two cores (docs/benchmarks.md has the sweep); --chord-processes sets it.
CHORD_PROCESSES = os.cpu_count() or 1


@click.command()
@click.option("--urls", "n", type=click.IntRange(1, 1_000_000), default=5000, show_default=True,
              help="How many URLs to analyse.")
@click.option("--concurrency", type=click.IntRange(1, 10_000), default=200, show_default=True,
              help="URLs in flight at once (engine and ceiling alike).")
@click.option("--latency-ms", type=click.FloatRange(min=0), default=100, show_default=True,
              help="The emulator's median latency per answer.")
@click.option("--mode", type=click.Choice(MODES), default="engine", show_default=True,
              help="What to measure against the ceiling: the engine in this process; also `linkmeter serve` "
                   "(API + runner + SQLite) from submission to stored result (embedded); also the Celery mode "
                   "(serve + --workers `linkmeter worker` processes over RabbitMQ, PostgreSQL, Redis) and the 2012 "
                   "design (celery); or the 2012 design alone (chord-per-call).")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True,
              help="--mode celery / chord-per-call: worker processes.")
@click.option("--chord-processes", type=click.IntRange(1, 512), default=CHORD_PROCESSES,
              help="Prefork pool processes per chord-per-call worker [default: one per CPU, Celery's default; "
                   "16-24 is its best on two cores].")
@click.option("--chord-urls", type=click.IntRange(1, 1_000_000), default=None,
              help="Run chord-per-call on this many URLs (the same workload shape) instead of --urls: it is slow. "
                   "Its URLs/s is compared as measured.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench(n: int, concurrency: int, latency_ms: float, mode: str, workers: int, chord_processes: int,
          chord_urls: int | None, as_json: bool) -> None:
    """Measure throughput against the ceiling (a bare aiohttp loop making the same calls) in one run.

    The emulator runs in a separate process; the engine and then the ceiling run in this one, and the
    ceiling once more at the end (ratios use the mean of the two: the machine's speed drifts). Reports
    URLs/s, calls/s, p50/p99 per URL, CPU per call, peak memory and the ratio engine/ceiling.

    --mode embedded also starts `linkmeter serve` (a separate process, SQLite in a temporary directory,
    the runner at the same concurrency) between the two ceilings, submits the same URLs through POST
    /api/v1/analyses and measures from the first submission until every analysis is stored; p50/p99 are
    queued-to-stored per URL, CPU is the server's, calls are the engine run's. Adds the ratio
    embedded/ceiling.

    --mode celery does the same with the Celery mode: a fresh PostgreSQL database, `linkmeter serve` and
    --workers `linkmeter worker` processes (about --concurrency URLs in flight in all) over RabbitMQ and
    Redis (LINKMETER_BENCH_DATABASE_URL or a PostgreSQL DATABASE_URL, LINKMETER_BROKER_URL and
    LINKMETER_REDIS_URL; default: each on its standard local port), then runs chord-per-call, and reports
    the workers' memory and the ratios celery/ceiling and celery/chord-per-call.

    --mode chord-per-call runs the 2012 design (one Celery task per provider call with blocking HTTP, each
    round of a URL a chord, --workers prefork workers of --chord-processes processes, results in
    PostgreSQL) against the same emulator. It lives in the benchmark code only.
    """
    try:
        figures = loops.run(_bench(n, concurrency, latency_ms, mode, workers=workers,
                                     chord_processes=chord_processes, chord_urls=chord_urls))
    except ServiceUnavailable as exc:
        raise click.ClickException(f"--mode {mode} needs PostgreSQL, RabbitMQ and Redis: {exc}") from exc
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    _print(figures)


def _print(figures: dict[str, Any]) -> None:
    click.echo(f"linkmeter bench: {figures['urls']} URLs, concurrency {figures['concurrency']}, emulator latency "
               f"{figures['latency_ms']:g} ms")
    click.echo(f"{'':16}{'URLs':>6}{'URLs/s':>10}{'calls/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'CPU ms/call':>13}"
               f"{'emulator CPU':>14}")
    rows = [("engine", figures["engine"]), ("embedded", figures["embedded"]), ("celery", figures["celery"]),
            ("chord-per-call", figures["chord_per_call"]), ("ceiling", figures["ceiling"])]
    for name, row in (r for r in rows if r[1] is not None):
        click.echo(f"{name:16}{row.get('urls', figures['urls']):>6}{row['urls_per_s']:>10}{row['calls_per_s']:>10}"
                   f"{row['p50_url_ms']:>10}{row['p99_url_ms']:>10}{row['cpu_ms_per_call']:>13}"
                   f"{row['emulator_cpu_share'] or '-':>14}")
    click.echo(f"ratio engine/ceiling: {figures['ratio']:.3f}   URL statuses: {figures['statuses']}   "
               f"peak RSS: {figures['peak_rss_mb']} MB")
    if figures["embedded"] is not None:
        click.echo(f"ratio embedded/ceiling: {figures['ratio_embedded']:.3f}   URL statuses: "
                   f"{figures['embedded']['statuses']}   submitting took {figures['embedded']['submit_seconds']} s")
    if figures["celery"] is not None:
        celery = figures["celery"]
        click.echo(f"ratio celery/ceiling: {figures['ratio_celery']:.3f}   URL statuses: {celery['statuses']}   "
                   f"submitting took {celery['submit_seconds']} s")
        click.echo(f"celery workers: {figures['workers']} x {celery['threads_per_worker']} chunk threads, "
                   f"{celery['urls_per_worker']} URLs in flight each, RSS "
                   f"{celery['worker_rss_mb']} MB (peak {celery['worker_hwm_mb']} MB, PSS {celery['worker_pss_mb']} "
                   "MB)")
    if figures["chord_per_call"] is not None:
        chord = figures["chord_per_call"]
        click.echo(f"ratio chord-per-call/ceiling: {figures['ratio_chord']:.3f}   URL statuses: {chord['statuses']}"
                   f"   submitting took {chord['submit_seconds']} s")
        click.echo(f"chord-per-call workers: {figures['workers']} x {chord['processes_per_worker']} prefork "
                   f"processes, RSS {chord['worker_rss_mb']} MB (peak {chord['worker_hwm_mb']} MB, PSS "
                   f"{chord['worker_pss_mb']} MB)")
    if figures["ratio_celery_chord"] is not None:
        click.echo(f"ratio celery/chord-per-call: {figures['ratio_celery_chord']:.1f}")


async def _bench(n: int, concurrency: int, latency_ms: float, mode: str = "engine", *, workers: int = 2,
                 chord_processes: int = CHORD_PROCESSES, chord_urls: int | None = None) -> dict[str, Any]:
    services: Services | None = None
    if mode in ("celery", "chord-per-call"):
        services = Services.from_env()
        await asyncio.to_thread(check_services, services)  # before minutes of engine run, not after
    with tempfile.TemporaryDirectory(prefix="linkmeter-bench-") as tmp:
        process, info = await _start_emulator(latency_ms)
        try:
            # The 2012 design's workers are other processes: they read the emulator's CA from a file.
            environ = {**os.environ, **environment(info, ca_file=write_ca(info, tmp))}
            urls = workload(n)
            emulator_cpu = [_cpu_seconds(process.pid)]
            engine_figures, recording, statuses = await _run_engine(info, urls, concurrency)
            emulator_cpu.append(_cpu_seconds(process.pid))
            dns_server = info.dns
            if dns_server is None:
                raise click.ClickException("the emulator runs no DNS server: the ceiling cannot resolve its hosts")

            async def replay_ceiling() -> CeilingRun:
                before = _cpu_seconds(process.pid)
                run = await replay(recording, concurrency=concurrency, port_map=info.port_map,
                                   dns_server=dns_server, ca_pem=info.ca_pem)
                after = _cpu_seconds(process.pid)
                ceiling_emulator_cpu.append(after - before if after is not None and before is not None else None)
                return run

            # The ceiling twice, right after the engine and at the end, and their mean: the machine's speed
            # drifts over minutes (other tenants), and one sample at one end of a long run drifts with it.
            ceiling_emulator_cpu: list[float | None] = []
            ceilings = [await replay_ceiling()]
            embedded: dict[str, Any] | None = None
            celery: dict[str, Any] | None = None
            chord: dict[str, Any] | None = None
            if mode == "embedded":
                embedded = await _run_embedded(urls, info, concurrency, Path(tmp), recording.total, process.pid)
            if mode == "celery" and services is not None:
                celery = await _run_celery(urls, info, concurrency, workers, services, Path(tmp), recording.total,
                                           process.pid)
            if mode in ("celery", "chord-per-call") and services is not None:
                chord_workload = workload(chord_urls) if chord_urls else urls
                chord = await _run_chord(chord_workload, environ, workers, chord_processes, services, Path(tmp),
                                         process.pid)
            ceilings.append(await replay_ceiling())
        finally:
            await _stop(process)
    ceiling_seconds = statistics.mean(run.seconds for run in ceilings)
    ceiling_figures = Figures(ceiling_seconds, len(recording.calls), ceilings[0].calls,
                              statistics.mean(run.cpu_seconds for run in ceilings),
                              [t for run in ceilings for t in run.url_seconds])
    engine_rate = n / engine_figures.seconds
    ceiling_rate = len(recording.calls) / ceiling_seconds if ceiling_seconds else 0.0
    return {
        "urls": n,
        "concurrency": concurrency,
        "latency_ms": latency_ms,
        "workers": workers if mode in ("celery", "chord-per-call") else None,
        "engine": {**engine_figures.as_dict(),
                   "emulator_cpu_share": _share(emulator_cpu[0], emulator_cpu[1], engine_figures.seconds)},
        "ceiling": {**ceiling_figures.as_dict(), "errors": sum(run.errors for run in ceilings),
                    "emulator_cpu_share": _share(0.0, _total(ceiling_emulator_cpu), sum(r.seconds for r in ceilings)),
                    "runs_urls_per_s": [round(len(recording.calls) / run.seconds, 1) for run in ceilings]},
        "ratio": round(engine_rate / ceiling_rate, 3) if ceiling_rate else 0.0,
        "embedded": embedded,
        "ratio_embedded": _ratio(embedded, ceiling_rate),
        "celery": celery,
        "ratio_celery": _ratio(celery, ceiling_rate),
        "chord_per_call": chord,
        "ratio_chord": _ratio(chord, ceiling_rate),
        "ratio_celery_chord": _ratio(celery, chord["urls"] / chord["seconds"]) if chord and chord["seconds"] else None,
        "statuses": statuses,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _ratio(row: dict[str, Any] | None, against: float) -> float | None:
    """A mode's URLs/s over ``against`` (URLs/s)."""
    if not row or not row["seconds"] or not against:
        return None
    return round(int(row["urls"]) / float(row["seconds"]) / against, 3)


async def _run_celery(urls: list[str], info: EmulatorInfo, concurrency: int, workers: int, services: Services,
                      workdir: Path, calls: int, emulator_pid: int) -> dict[str, Any]:
    from linkmeter.bench.celery_mode import CeleryBenchError, figures_of, run_celery

    emulator_before = _cpu_seconds(emulator_pid)
    try:
        run = await run_celery(urls, emulator_url=info.url, services=services, workers=workers,
                               concurrency=concurrency, workdir=workdir)
    except CeleryBenchError as exc:
        raise click.ClickException(str(exc)) from exc
    figures = Figures(run.seconds, len(urls), calls, run.cpu_seconds, run.url_seconds)
    return {**figures.as_dict(), "urls": len(urls), **figures_of(run),
            "emulator_cpu_share": _share(emulator_before, _cpu_seconds(emulator_pid), run.seconds)}


async def _run_chord(urls: list[str], environ: dict[str, str], workers: int, chord_processes: int,
                     services: Services, workdir: Path, emulator_pid: int) -> dict[str, Any]:
    from linkmeter.bench.chord_run import ChordBenchError, figures_of, run_chord_per_call

    emulator_before = _cpu_seconds(emulator_pid)
    try:
        run = await run_chord_per_call(urls, environ=environ, services=services, workers=workers,
                                       processes_per_worker=chord_processes, workdir=workdir)
    except ChordBenchError as exc:
        raise click.ClickException(str(exc)) from exc
    figures = Figures(run.seconds, len(urls), run.requests, run.cpu_seconds, run.url_seconds)
    return {**figures.as_dict(), "urls": len(urls), "processes_per_worker": chord_processes, **figures_of(run),
            "emulator_cpu_share": _share(emulator_before, _cpu_seconds(emulator_pid), run.seconds)}


async def _run_embedded(urls: list[str], info: EmulatorInfo, concurrency: int, workdir: Path, calls: int,
                        emulator_pid: int) -> dict[str, Any]:
    from linkmeter.bench.embedded import EmbeddedBenchError, run_embedded

    emulator_before = _cpu_seconds(emulator_pid)  # over the whole run, submissions included
    try:
        run = await run_embedded(urls, emulator_url=info.url, concurrency=concurrency, workdir=workdir,
                                 cpu_of=_cpu_seconds)
    except EmbeddedBenchError as exc:
        raise click.ClickException(str(exc)) from exc
    figures = Figures(run.seconds, len(urls), calls, run.cpu_seconds, run.url_seconds)
    return {**figures.as_dict(), "urls": len(urls), "submit_seconds": round(run.submit_seconds, 3),
            "statuses": run.statuses,
            "emulator_cpu_share": _share(emulator_before, _cpu_seconds(emulator_pid), run.seconds)}


def _cpu_seconds(pid: int) -> float | None:
    """CPU seconds a process has used (Linux /proc), to tell whether the emulator was the bottleneck."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _total(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def _share(before: float | None, after: float | None, seconds: float) -> float | None:
    """The emulator's CPU use over a phase as a fraction of one core (near 1.0: it was the bottleneck)."""
    if before is None or after is None or seconds <= 0:
        return None
    return round((after - before) / seconds, 2)


async def _run_engine(info: EmulatorInfo, urls: list[str], concurrency: int
                      ) -> tuple[Figures, Recording, dict[str, int]]:
    engine = build_engine(os.environ, relax_rate_limits=True, emulator=info)
    recording = Recording()
    instrument(engine, recording)
    tune_garbage_collector()  # as `linkmeter serve` and `linkmeter worker` run the engine
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


async def _start_emulator(latency_ms: float) -> tuple[asyncio.subprocess.Process, EmulatorInfo]:
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
    return process, EmulatorInfo.from_json(json.loads(line))


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
