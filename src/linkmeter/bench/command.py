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

import aiohttp
import click

from linkmeter import loops
from linkmeter.assembly import build_engine
from linkmeter.bench.ceiling import CeilingRun, replay
from linkmeter.bench.recorder import Recording, instrument
from linkmeter.bench.services import Services, ServiceUnavailable, check_services
from linkmeter.emulator.client import EmulatorInfo, environment, write_ca
from linkmeter.engine.results import UrlStatus
from linkmeter.gctune import tune_garbage_collector
from linkmeter.indicators.spam import SpamIndicator
from linkmeter.providers.registry import PROVIDER_CLASSES, PROVIDER_NAMES

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


MODES = ("engine", "embedded", "celery", "chord-per-call", "api", "search")
# The emulator the bench starts answers every request in the --latency-ms model only (no PageSpeed run of seconds,
# no crt.sh big-domain wait, no slow Mastodon instance) and enforces none of the APIs' own per-client limits
# (Facebook's 10 requests per URL per hour, PhishTank's window): the bench asks each URL once per run and once
# per ceiling replay, far beyond one real client's quota, and measures the engine, not the quotas.
EMULATOR_OPTIONS = ("--slow-scale", "0", "--no-published-limits")


def relaxed_settings() -> dict[str, str]:
    """The documented settings the bench's engine runs with (besides no default rate limits): no concurrency cap
    for the providers whose policy has one (Common Crawl, crt.sh, PageSpeed), since the emulator is not the
    upstream those caps protect. Set in the environment, a variable wins."""
    return {f"LINKMETER_{cls.name.upper()}_CONCURRENCY": "0" for cls in PROVIDER_CLASSES if cls.policy.concurrency}


def batched_providers() -> tuple[str, ...]:
    """The providers that send bulk queries (``max_batch`` > 1)."""
    return tuple(cls.name for cls in PROVIDER_CLASSES if cls.max_batch > 1)
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
                   "design (celery); or the 2012 design alone (chord-per-call); or the API's latency at a fixed "
                   "rate with a key and limits against the same load without (api).")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True,
              help="--mode celery / chord-per-call: worker processes.")
@click.option("--chord-processes", type=click.IntRange(1, 512), default=CHORD_PROCESSES,
              help="Prefork pool processes per chord-per-call worker [default: one per CPU, Celery's default; "
                   "16-24 is its best on two cores].")
@click.option("--chord-urls", type=click.IntRange(1, 1_000_000), default=None,
              help="Run chord-per-call on this many URLs (the same workload shape) instead of --urls: it is slow. "
                   "Its URLs/s is compared as measured.")
@click.option("--bulk/--no-bulk", default=True, show_default=True,
              help="Bulk queries (LINKMETER_BULK): one upstream request for many URLs' keys (Safe Browsing, "
                   "Facebook, Open PageRank, Moz); --no-bulk sends one request per key.")
@click.option("--compare-bulk", is_flag=True,
              help="Also run the engine with bulk queries off (between the two ceilings) and report both runs' "
                   "upstream requests per URL per provider and URLs/s.")
@click.option("--rate", type=click.FloatRange(min=1, max=5000), default=200, show_default=True,
              help="--mode api: requests per second offered (a fixed arrival rate).")
@click.option("--phase-seconds", type=click.FloatRange(min=1, max=600), default=10, show_default=True,
              help="--mode api: the length of one phase of load against one server.")
@click.option("--phases", "pairs", type=click.IntRange(1, 100), default=3, show_default=True,
              help="--mode api: phases per server (with a key, without), interleaved.")
@click.option("--submit-share", type=click.FloatRange(0, 1), default=0.1, show_default=True,
              help="--mode api: the share of requests that are submissions (POST /api/v1/analyses, one URL).")
@click.option("--links", type=click.IntRange(1, 10_000_000), default=None,
              help="--mode search: links per database [default: 1,000,000 on PostgreSQL, 100,000 on SQLite].")
@click.option("--database", "databases", type=click.Choice(("postgresql", "sqlite")), multiple=True,
              help="--mode search: the databases to fill and search (repeatable) [default: both].")
@click.option("--repeats", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="--mode search: timed runs of each query (after one warm-up run) per run.")
@click.option("--runs", type=click.IntRange(1, 100), default=3, show_default=True,
              help="--mode search: runs of the whole set of searches on the one filled database (mean and range).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench(n: int, concurrency: int, latency_ms: float, mode: str, workers: int, chord_processes: int,
          chord_urls: int | None, bulk: bool, compare_bulk: bool, rate: float, phase_seconds: float, pairs: int,
          submit_share: float, links: int | None, databases: tuple[str, ...], repeats: int, runs: int,
          as_json: bool) -> None:
    """Measure throughput against the ceiling (a bare aiohttp loop making the same calls) in one run.

    Every provider runs (the default set and the others, PageSpeed too; keyed ones with the emulator's keys),
    against an emulator whose answers take the --latency-ms model only and which enforces none of the APIs'
    own per-client limits; the engine runs with no default rate limits and no concurrency caps (the settings
    LINKMETER_<NAME>_CONCURRENCY=0 for the providers that have one). The report lists every provider with its
    upstream requests per URL and its call statuses.

    The emulator runs in a separate process; the engine and then the ceiling run in this one, and the
    ceiling once more at the end (ratios use the mean of the two: the machine's speed drifts). Reports
    URLs/s, calls/s, p50/p99 per URL, CPU per call, peak memory and the ratio engine/ceiling, and the
    spam indicator's scoring CPU per URL and its share of the engine's CPU (it runs for every URL).

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

    --mode api measures the REST API, not the engine (no ceiling): two `linkmeter serve` processes (SQLite
    each), one with LINKMETER_AUTH=required and an account on a plan whose rate limits and quotas are all
    checked but never reached (its key made with `linkmeter user create` and `linkmeter key create`), one
    with LINKMETER_AUTH=local (no key, no limits). Each first analyses 20 URLs (--urls, at most) against the
    emulator. A load generator in another process (aiohttp, open loop: each request is due at its time
    whatever the earlier ones do, and its latency counts from then) offers --rate requests/s, GET
    /api/v1/analyses/{id} and a --submit-share of one-URL submissions of an analysed URL (reused, no engine
    work), in --phases phases of --phase-seconds per server, interleaved. Reports p50/p99 per server and per
    kind, the status codes, the servers' CPU per request and what the key and the limits add.
    --mode search measures the links list instead (no emulator, no ceiling): a fresh PostgreSQL database
    (LINKMETER_BENCH_DATABASE_URL's server, else the local one) filled with 1,000,000 links of realistic
    signals and a fresh SQLite one with 100,000 (--links N for both), loaded in bulk with the indexes
    rebuilt after, then --repeats timed runs of each of a set of typical filtered and sorted searches
    through the list's selector: p50 and p95 per search and over all, for each of --runs runs.
    """
    if mode == "api":
        figures = loops.run(_bench_api(min(n, API_SEED_URLS), latency_ms, rate=rate, phase_seconds=phase_seconds,
                                       pairs=pairs, submit_share=submit_share))
        if as_json:
            click.echo(json.dumps(figures, indent=2))
        else:
            _print_api(figures)
        return
    if mode == "search":
        from linkmeter.bench.search import print_search, run_search

        try:
            found = run_search(list(databases or ("postgresql", "sqlite")), links, repeats, runs)
        except (ServiceUnavailable, RuntimeError) as exc:
            raise click.ClickException(str(exc)) from exc
        if as_json:
            click.echo(json.dumps(found, indent=2))
        else:
            print_search(found, click.echo)
        return
    try:
        figures = loops.run(_bench(n, concurrency, latency_ms, mode, workers=workers,
                                     chord_processes=chord_processes, chord_urls=chord_urls, bulk=bulk,
                                     compare_bulk=compare_bulk))
    except ServiceUnavailable as exc:
        raise click.ClickException(f"--mode {mode} needs PostgreSQL, RabbitMQ and Redis: {exc}") from exc
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    _print(figures)


API_SEED_URLS = 20


async def _bench_api(n: int, latency_ms: float, *, rate: float, phase_seconds: float, pairs: int,
                     submit_share: float) -> dict[str, Any]:
    from linkmeter.bench.api_mode import ApiBenchError, run_api

    with tempfile.TemporaryDirectory(prefix="linkmeter-bench-") as tmp:
        process, info = await _start_emulator(latency_ms)
        try:
            await _warm_up(info)
            return await run_api(info.url, Path(tmp), workload(n), rate=rate, phase_seconds=phase_seconds,
                                 pairs=pairs, submit_share=submit_share)
        except ApiBenchError as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            await _stop(process)


def _print_api(figures: dict[str, Any]) -> None:
    click.echo(f"linkmeter bench --mode api: {figures['rate']:g} requests/s offered, {figures['submit_share']:.0%} "
               f"submissions, {len(figures['order'])} phases of {figures['phase_seconds']:g} s "
               f"({' '.join(figures['order'])}), answers of GET /api/v1/analyses/{{id}}: {figures['answer_bytes']} B")
    click.echo(f"{'':8}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'read p50':>10}{'read p99':>10}"
               f"{'submit p50':>12}{'submit p99':>12}{'CPU ms/req':>12}  statuses")
    for name, row in figures["targets"].items():
        click.echo(f"{name:8}{row['count']:>9}{row['p50_ms']:>9}{row['p99_ms']:>9}{row['max_ms']:>9}"
                   f"{row['read']['p50_ms']:>10}{row['read']['p99_ms']:>10}{row['submit']['p50_ms']:>12}"
                   f"{row['submit']['p99_ms']:>12}{row['server_cpu_ms_per_request']:>12}  {row['statuses']}")
        click.echo(f"{'':8}per phase p50 {row['phases_p50_ms']} p99 {row['phases_p99_ms']}; the client fell "
                   f"{row['client_late_ms']} ms behind at worst")
    click.echo(f"machine: sum(range(100000)) took {' and '.join(f'{v} ms' for v in figures['machine_loop_ms'])} before "
               "and after the load (lower is faster; the machine's other tenants slow it)")
    click.echo(f"added by the key and the limits: p50 {figures['added_p50_ms']:+} ms, p99 {figures['added_p99_ms']:+} "
               f"ms, read p50 {figures['added_read_p50_ms']:+} ms, CPU {figures['added_cpu_ms_per_request']:+} ms per "
               "request")


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
               f"peak RSS: {figures['engine']['peak_rss_mb']} MB after the engine run, {figures['peak_rss_mb']} MB "
               "in all")
    if (spam := figures.get("spam_scoring")) is not None:
        click.echo(f"spam indicator on: scoring {spam['cpu_ms_per_url']} ms CPU per URL ({spam['urls']} URLs), "
                   f"{100 * (spam['cpu_share_of_engine'] or 0):.1f} % of the engine's CPU")
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
    _print_providers(figures)


def _print_providers(figures: dict[str, Any]) -> None:
    comparison = figures["bulk_comparison"]
    if comparison is not None:
        on, off = comparison["bulk"], comparison["no_bulk"]
        click.echo(f"bulk queries on: {on['urls_per_s']} URLs/s, {on['calls']} requests; off: {off['urls_per_s']} "
                   f"URLs/s, {off['calls']} requests; throughput on/off {comparison['throughput_bulk_over_no_bulk']}")
        every = comparison["batched_all"]
        click.echo(f"batched providers in all: {every['no_bulk_requests_per_url']} requests per URL off, "
                   f"{every['bulk_requests_per_url']} on: cut x{every['cut']}")
    runs = "on, off" if comparison else ("on" if figures["bulk"] else "off")
    click.echo(f"providers ({len(figures['providers'])}, * = bulk queries), upstream requests per URL with bulk "
               f"queries {runs}, call p50/p99 ms and statuses:")
    main = "bulk" if figures["bulk"] else "no_bulk"
    for row in figures["providers"]:
        name = row["name"] + ("*" if row["batched"] else "")
        rates = "".join(f"{row[label]['requests_per_url']:>10.3f}" for label in ("bulk", "no_bulk") if label in row)
        cut = ""
        if comparison is not None and row["batched"]:
            cut = f"  cut x{comparison['batched'][row['name']]['cut']}"
        calls = ", ".join(f"{status} {count}" for status, count in sorted(row[main]["calls"].items()))
        click.echo(f"  {name:16}{rates}{cut:>12}{row[main]['p50_ms']:>9}{row[main]['p99_ms']:>9}  {calls}")
    if comparison is not None:
        for name, batched in comparison["batched"].items():
            click.echo(f"  {name}: {batched['keys_per_request']} keys per request (max_batch {batched['max_batch']}): "
                       f"cut x{batched['cut']}, at most x{batched['cut_bound']} with every request full")
    relaxed = ", ".join(f"{k}={v}" if k.startswith("LINKMETER_") else f"{k}: {v}"
                        for k, v in figures["relaxed"].items())
    click.echo(f"relaxed for the bench: {relaxed}")


async def _bench(n: int, concurrency: int, latency_ms: float, mode: str = "engine", *, workers: int = 2,
                 chord_processes: int = CHORD_PROCESSES, chord_urls: int | None = None, bulk: bool = True,
                 compare_bulk: bool = False) -> dict[str, Any]:
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
            await _warm_up(info)
            emulator_cpu = [_cpu_seconds(process.pid)]
            engine_run = await _run_engine(info, urls, concurrency, bulk=bulk, data_dir=Path(tmp) / "engine-data")
            engine_figures, recording, statuses = engine_run.figures, engine_run.recording, engine_run.statuses
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
            other: _EngineRun | None = None  # the engine with bulk queries the other way (--compare-bulk)
            if compare_bulk:
                other = await _run_engine(info, urls, concurrency, bulk=not bulk,
                                          data_dir=Path(tmp) / "engine-data-other")
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
    runs = {bulk: engine_run} if other is None else {bulk: engine_run, not bulk: other}
    return {
        "urls": n,
        "concurrency": concurrency,
        "latency_ms": latency_ms,
        "bulk": bulk,
        "relaxed": {**relaxed_settings(), "rate limits": "none (relax_rate_limits)",
                    "emulator": " ".join(EMULATOR_OPTIONS)},
        "providers": _providers_report(runs, n),
        "bulk_comparison": _bulk_comparison(runs, n) if other is not None else None,
        "workers": workers if mode in ("celery", "chord-per-call") else None,
        "engine": {**engine_figures.as_dict(), "peak_rss_mb": engine_run.peak_rss_mb,
                   "emulator_cpu_share": _share(emulator_cpu[0], emulator_cpu[1], engine_figures.seconds)},
        "spam_scoring": _spam_share(engine_run.spam, engine_figures),
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
        "peak_rss_mb": _peak_rss_mb(),
    }


def _spam_share(spam: dict[str, Any] | None, engine: Figures) -> dict[str, Any] | None:
    """The spam scoring's cost with its share of the engine run's CPU."""
    if spam is None:
        return None
    share = spam["urls"] * spam["cpu_ms_per_url"] / 1000 / engine.cpu_seconds if engine.cpu_seconds else None
    return {**spam, "cpu_share_of_engine": None if share is None else round(share, 4)}


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


@dataclass(slots=True)
class _EngineRun:
    figures: Figures
    recording: Recording
    statuses: dict[str, int]  # URL statuses
    calls: dict[str, dict[str, int]]  # provider -> call status -> count
    latency_ms: dict[str, list[float]]  # provider -> its calls' latencies
    keys_sent: dict[str, int]  # batched provider -> keys its bulk requests carried (every attempt)
    peak_rss_mb: float  # this process's peak RSS when the run ended (the first run: the engine's own peak)
    spam: dict[str, Any] | None = None  # the spam indicator's scoring cost, when it ran


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values) or [0.0]
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * share))], 1)


def _providers_report(runs: dict[bool, _EngineRun], n: int) -> list[dict[str, Any]]:
    """Every provider that ran: its upstream requests per URL (per run: bulk on and off) and its call statuses."""
    first = next(iter(runs.values()))
    batched = set(batched_providers())
    rows = []
    for name in first.calls:
        row: dict[str, Any] = {"name": name, "batched": name in batched}
        for on, run in runs.items():
            label = "bulk" if on else "no_bulk"
            requests = run.recording.by_provider().get(name, 0)
            latencies = run.latency_ms.get(name, [])
            row[label] = {"requests": requests, "requests_per_url": round(requests / n, 4),
                          "calls": run.calls.get(name, {}), "p50_ms": _percentile(latencies, 0.5),
                          "p99_ms": _percentile(latencies, 0.99)}
        rows.append(row)
    return rows


def _bulk_comparison(runs: dict[bool, _EngineRun], n: int) -> dict[str, Any]:
    """Bulk queries on against off: URLs/s of each run, and for each batched provider its requests per URL in each
    and how many times fewer bulk queries make."""
    on, off = runs[True], runs[False]
    cut: dict[str, Any] = {}
    on_counts, off_counts = on.recording.by_provider(), off.recording.by_provider()
    for name in batched_providers():
        with_bulk, without = on_counts.get(name, 0), off_counts.get(name, 0)
        keys = on.keys_sent.get(name, 0)
        max_batch = next(cls.max_batch for cls in PROVIDER_CLASSES if cls.name == name)
        fewest = -(-keys // max_batch)  # every request full: the most max_batch allows for these keys
        cut[name] = {"bulk_requests_per_url": round(with_bulk / n, 4),
                     "no_bulk_requests_per_url": round(without / n, 4),
                     "cut": round(without / with_bulk, 1) if with_bulk else None,
                     "keys_per_request": round(keys / with_bulk, 1) if with_bulk else None,
                     "max_batch": max_batch,
                     "cut_bound": round(without / fewest, 1) if fewest else None}
    # In all: every batched provider's requests together, without bulk queries over with them.
    with_bulk = sum(on_counts.get(name, 0) for name in batched_providers())
    without = sum(off_counts.get(name, 0) for name in batched_providers())
    return {
        "bulk": {**on.figures.as_dict(), "statuses": on.statuses},
        "no_bulk": {**off.figures.as_dict(), "statuses": off.statuses},
        "throughput_bulk_over_no_bulk": round(off.figures.seconds / on.figures.seconds, 3)
        if on.figures.seconds else None,
        "batched": cut,
        "batched_all": {"bulk_requests_per_url": round(with_bulk / n, 4),
                        "no_bulk_requests_per_url": round(without / n, 4),
                        "cut": round(without / with_bulk, 1) if with_bulk else None},
    }


async def _run_engine(info: EmulatorInfo, urls: list[str], concurrency: int, *, bulk: bool = True,
                      data_dir: Path | None = None) -> _EngineRun:
    """Every provider (the default set and the others), with the bench's relaxed settings unless the environment
    sets them, bulk queries on or off, files (the Tranco list) under ``data_dir`` (fresh: the list is fetched)."""
    environ = {**relaxed_settings(), **os.environ, "LINKMETER_BULK": "on" if bulk else "off"}
    if data_dir is not None:
        environ["LINKMETER_DATA_DIR"] = str(data_dir)
    engine = build_engine(environ, select=PROVIDER_NAMES, relax_rate_limits=True, emulator=info)
    recording = Recording()
    instrument(engine, recording)
    tune_garbage_collector()  # as `linkmeter serve` and `linkmeter worker` run the engine
    url_seconds: list[float] = []
    statuses = {str(s): 0 for s in UrlStatus}
    calls: dict[str, dict[str, int]] = {p.name: {} for p in engine.plan.providers}
    latency_ms: dict[str, list[float]] = {p.name: [] for p in engine.plan.providers}
    cpu = time.process_time()
    began = time.perf_counter()
    try:
        async for result in engine.analyze_many(urls, concurrency=concurrency):
            url_seconds.append(result.elapsed_ms / 1000)
            statuses[str(result.status)] += 1
            for name, call in result.providers.items():
                counts = calls[name]
                status = str(call.status)
                counts[status] = counts.get(status, 0) + 1
                latency_ms[name].append(call.latency_ms)
    finally:
        await engine.close()
    seconds = time.perf_counter() - began
    keys_sent = {name: batcher.keys_sent for name in batched_providers()
                 if (batcher := engine.calls.batcher(name)) is not None}
    return _EngineRun(Figures(seconds, len(urls), recording.total, time.process_time() - cpu, url_seconds),
                      recording, statuses, calls, latency_ms, keys_sent, _peak_rss_mb(), _spam_cost(engine))


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _spam_cost(engine: Any) -> dict[str, Any] | None:
    """The spam indicator's scoring: URLs scored and CPU per URL (its own counters: scoring is on the loop)."""
    for provider in engine.plan.providers:
        if isinstance(provider, SpamIndicator) and provider.scored:
            return {"urls": provider.scored, "cpu_ms_per_url": round(provider.cpu_seconds / provider.scored * 1000, 4),
                    "cpu_share_of_engine": None}
    return None


async def _warm_up(info: EmulatorInfo) -> None:
    """Have the emulator build its Tranco list (seconds of its CPU, once; it keeps it) before anything is measured:
    otherwise the engine's first URLs wait for that and the ceiling's replay of the same download does not."""
    if "tranco" not in info.providers:
        return
    async with aiohttp.ClientSession() as session, session.get(
            info.base_url("tranco") + "/top-1m.csv.zip", timeout=aiohttp.ClientTimeout(120)) as response:
        await response.read()


async def _start_emulator(latency_ms: float) -> tuple[asyncio.subprocess.Process, EmulatorInfo]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "linkmeter", "emulate", "--port", "0", "--https-port", "0", "--dns-port", "0",
        "--latency-ms", str(latency_ms), "--seed", "7", *EMULATOR_OPTIONS, "--ready-json",
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
