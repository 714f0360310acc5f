"""The `linkmeter` command line: serve, worker, beat, migrate, analyze, demo, emulate, bench, providers, user,
key."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from typing import IO

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from linkmeter import __version__, loops
from linkmeter.assembly import build_engine
from linkmeter.emulator.client import EmulatorUnreachable, fetch_info
from linkmeter.emulator.knobs import Knobs, parse_rate_limit
from linkmeter.engine.plan import PlanError
from linkmeter.engine.results import UrlResult, UrlStatus
from linkmeter.engine.runner import Engine
from linkmeter.engine.settings import SettingsError
from linkmeter.inputs import InvalidLine, UrlList, numbered_lines, read_urls
from linkmeter.output import print_table, printable, render_csv, render_json, stdout_console

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
STDIN_NAME, STDIN_LINE = "<stdin>", "stdin line"  # click.File's name for '-'; the label of its lines


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="linkmeter")
def main() -> None:
    """linkmeter gathers numbers about links from many providers, in dependent rounds.

    Start with `linkmeter serve --demo` (the web service; no internet needed), or `linkmeter demo`, then
    `linkmeter analyze URL...`.
    """
    try:
        loops.loop_factory()  # every command runs on this loop: a bad LINKMETER_EVENT_LOOP stops them all here
    except loops.LoopSettingError as exc:
        raise click.UsageError(str(exc)) from None


@main.command()
@click.argument("urls", nargs=-1)
@click.option("--file", "-f", "file", type=click.File("r", encoding="utf-8", errors="replace"),
              help="Read URLs from a file, one per line ('-' for standard input, like a URL argument '-'). "
                   "Blank lines and # comments are ignored.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document {\"results\": [...]}.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV: one row per URL, one column per signal.")
@click.option("--providers", "providers", metavar="A,B",
              help="Only these providers (and what they need), e.g. --providers page,rdap.")
@click.option("--emulator", metavar="URL",
              help="Point every provider at a running `linkmeter emulate` (e.g. http://127.0.0.1:8765).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=None, metavar="S",
              help="Deadline per URL in seconds [default: LINKMETER_URL_DEADLINE or 60].")
@click.option("--concurrency", type=click.IntRange(min=1, max=5000), default=20, show_default=True,
              help="URLs in flight at once.")
def analyze(urls: tuple[str, ...], file: IO[str] | None, as_json: bool, as_csv: bool, providers: str | None,
            emulator: str | None, timeout: float | None, concurrency: int) -> None:
    """Analyse URLs and print their numbers.

    A URL argument '-' reads URLs from standard input, one per line, as --file - does (e.g. `cat urls.txt |
    linkmeter analyze -`); they are listed where the '-' stands among the arguments, --file's after them.

    A bad line (no scheme, unsupported scheme, too long, unparseable) is reported with its line number
    and the other URLs still run. Exit status: 0 when every URL was analysed (done or partial), 1 when a
    URL failed or an input line was invalid, 2 on a usage error.
    """
    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    from_stdin = file is not None and file.name == STDIN_NAME
    if urls.count("-") + from_stdin > 1:
        raise click.UsageError("standard input can be read once: give '-' (or --file -) only once")
    items: list[tuple[str, str]] = []
    for position, text in enumerate(urls, start=1):
        if text == "-":
            items += numbered_lines(click.open_file("-", encoding="utf-8", errors="replace"), STDIN_LINE)
        else:
            items.append((f"argument {position}", text))
    if file is not None:
        items += numbered_lines(file, STDIN_LINE if from_stdin else "line")
    if not items:
        raise click.UsageError("give URLs as arguments or with --file (try: linkmeter analyze https://example.org/)")
    url_list = read_urls(items)
    err = Console(stderr=True)
    _report_invalid(err, url_list.invalid)
    select = [name.strip() for name in providers.split(",") if name.strip()] if providers is not None else None
    if select == []:
        raise click.UsageError("--providers names no provider (try: --providers page,rdap)")
    try:
        info = loops.run(fetch_info(emulator)) if emulator else None
        engine = build_engine(os.environ, select=select, relax_rate_limits=info is not None, url_deadline=timeout,
                              emulator=info)
        results = loops.run(_run(engine, url_list, concurrency, err))
    except (PlanError, SettingsError, EmulatorUnreachable) as exc:
        err.print(f"linkmeter: {exc}", style="red", markup=False, highlight=False, soft_wrap=True)
        sys.exit(EXIT_USAGE)
    if as_json:
        click.echo(render_json(results, url_list.invalid))
    elif as_csv:
        click.echo(render_csv(results, engine.plan), nl=False)
    else:
        print_table(stdout_console(), results, engine.plan)
    failed = sum(1 for r in results if r.status is UrlStatus.FAILED)
    if failed:
        err.print(f"{failed} of {len(results)} URL(s) failed", style="red", highlight=False)
    sys.exit(EXIT_FAILED if failed or url_list.invalid else EXIT_OK)


def _report_invalid(err: Console, invalid: Sequence[InvalidLine]) -> None:
    for line in invalid:
        # soft_wrap: one report per line, whatever the width, so `grep 'line 12'` finds all of it.
        err.print(f"{line.source}: skipped {printable(repr(line.text))}: {line.message} [{line.code}]",
                  style="yellow", markup=False, highlight=False, soft_wrap=True)


async def _run(engine: Engine, url_list: UrlList, concurrency: int, err: Console) -> list[UrlResult]:
    order = {url: index for index, url in enumerate(url_list.urls)}
    results: list[UrlResult] = []
    progress = Progress(TextColumn("analysing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=err, transient=True, disable=not err.is_terminal)
    try:
        with progress:
            task = progress.add_task("urls", total=len(url_list.urls))
            async for result in engine.analyze_many(url_list.urls, concurrency=concurrency):
                results.append(result)
                progress.advance(task)
    finally:
        await engine.close()
    results.sort(key=lambda r: order.get(r.url, len(order)))
    return results


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="HTTP port for the APIs and the plain-http synthetic web (0: any free port).")
@click.option("--https-port", type=click.IntRange(0, 65535), default=8766, show_default=True,
              help="HTTPS port for the synthetic web (0: any free port).")
@click.option("--dns-port", type=click.IntRange(0, 65535), default=8753, show_default=True,
              help="UDP/TCP port of the DNS server (0: any free port).")
@click.option("--latency-ms", type=click.FloatRange(min=0), default=0, show_default=True,
              help="Median response latency; answers spread realistically around it.")
@click.option("--error-rate", type=click.FloatRange(0, 1), default=0, show_default=True,
              help="Fraction of requests answered with a 5xx (SERVFAIL for DNS).")
@click.option("--rate-limit", "rate_limits", multiple=True, metavar="PROVIDER=N/s",
              help="Answer 429 with Retry-After above this rate (repeatable).")
@click.option("--hang", "hang", multiple=True, metavar="PROVIDER",
              help="Accept this provider's requests and never answer (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same answers.")
@click.option("--slow-scale", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Multiply the slowness some APIs show on top of --latency-ms (PageSpeed's seconds-long runs, "
                   "crt.sh's big domains, Mastodon's slow* instances); 0: --latency-ms only (the benchmark's).")
@click.option("--published-limits/--no-published-limits", default=True, show_default=True,
              help="Enforce the APIs' own published per-client limits (Facebook's 10 requests per URL per hour, "
                   "PhishTank's requests per window); --rate-limit knobs apply either way.")
@click.option("--ready-json", is_flag=True, help="Print one JSON line describing the emulator once it is up.")
def emulate(host: str, port: int, https_port: int, dns_port: int, latency_ms: float, error_rate: float,
            rate_limits: tuple[str, ...], hang: tuple[str, ...], seed: int, slow_scale: float,
            published_limits: bool, ready_json: bool) -> None:
    """Run the emulator: every provider's API, a synthetic web and a DNS server, with no internet.

    Providers: point `linkmeter analyze --emulator http://HOST:PORT` at it.
    """
    import json

    from linkmeter.emulator.parts import served_providers
    from linkmeter.emulator.server import RunningEmulator, serve_forever
    from linkmeter.providers.registry import PROVIDERS

    served = served_providers()
    known = {cls.name for cls in PROVIDERS if cls.name in served}  # the providers whose answers it emulates
    try:
        limits = dict(parse_rate_limit(text) for text in rate_limits)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--rate-limit") from exc
    for name in [*limits, *(h.lower() for h in hang)]:
        if name not in known:
            raise click.BadParameter(f"unknown provider {name!r} (known: {', '.join(sorted(known))})",
                                     param_hint="--rate-limit/--hang")
    knobs = Knobs(latency_ms=latency_ms, error_rate=error_rate, rate_limits=limits,
                  hang=frozenset(h.lower() for h in hang), seed=seed, slow_scale=slow_scale,
                  published_limits=published_limits)

    def ready(emulator: RunningEmulator) -> None:
        if ready_json:
            print(json.dumps(emulator.info().to_json()), flush=True)
        else:
            err = Console(stderr=True)
            err.print(f"linkmeter emulator on {emulator.url} (https {emulator.https_port}, dns "
                      f"{emulator.host}:{emulator.dns_port}, seed {seed})", highlight=False)
            err.print(f"try: linkmeter analyze --emulator {emulator.url} https://news.example.org/a/1",
                      highlight=False)

    try:
        loops.run(serve_forever(host=host, port=port, https_port=https_port, dns_port=dns_port,
                                knobs=knobs, ready=ready))
    except OSError as exc:
        raise click.ClickException(f"cannot start the emulator: {exc}") from exc
    except KeyboardInterrupt:
        pass


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0: any free port; the first line printed says which).")
@click.option("--demo", is_flag=True,
              help="Also start the built-in emulator and point every provider at it: no internet needed.")
@click.option("--emulator", metavar="URL",
              help="Point every provider at a running `linkmeter emulate` (e.g. http://127.0.0.1:8765).")
def serve(host: str, port: int, demo: bool, emulator: str | None) -> None:
    """Run the web service: the web UI, the REST API (/api/v1, docs at /api/docs) and the runner.

    Migrates the database first: SQLite under LINKMETER_DATA_DIR (default ./data) unless DATABASE_URL is
    set. Live mode (the default) asks every provider over the internet, so it needs internet access;
    keyed providers also need LINKMETER_<NAME>_API_KEY. --demo needs neither. Stops on Ctrl+C or
    SIGTERM; analyses still queued or running are taken up again on the next start. Exit status 2 when
    the port is taken or a setting is bad.
    """
    if demo and emulator:
        raise click.UsageError("choose one of --demo and --emulator")
    from linkmeter.web.serve import run_server

    sys.exit(run_server(host=host, port=port, demo=demo, emulator=emulator))


MAX_PROCESSES = 256


def _process_count(ctx: click.Context, param: click.Parameter, value: str) -> int:
    """`--processes`: a number of worker processes, or `auto` (also 0): one per CPU this process may use."""
    text = str(value).strip().lower()
    try:
        count = 0 if text == "auto" else int(text)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a number of processes nor 'auto'") from None
    if not 0 <= count <= MAX_PROCESSES:
        raise click.BadParameter(f"{count} is not between 0 (auto) and {MAX_PROCESSES}")
    return count


@main.command()
@click.option("--concurrency", "-c", type=click.IntRange(1, 1000), default=32, show_default=True,
              help="Chunk tasks each worker process holds at once; their URLs share the process's "
                   "LINKMETER_WORKER_URLS slots (200), highest priority first, so spare chunks wait ready "
                   "while others finish their slowest URLs.")
@click.option("--processes", default="1", show_default=True, metavar="N|auto", callback=_process_count,
              help="Worker processes to run, under this one command: 'auto' or 0 for one per CPU it may use "
                   "(affinity and cgroup CPU quota). Each is a full worker (its own event loop, engine and Celery "
                   "consumer) named NAME-1, NAME-2, ... with LINKMETER_METRICS_PORT, PORT+1, ...; one that dies is "
                   "restarted after a backoff. 1: this process is the worker.")
@click.option("--queues", "-Q", metavar="A,B", default=None,
              help="Queues to take tasks from [default: LINKMETER_QUEUE, else linkmeter].")
@click.option("--loglevel", "-l", type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
              default="info", show_default=True)
@click.option("--emulator", metavar="URL",
              help="Point every provider at a running `linkmeter emulate` (tests, demos, the benchmark).")
@click.option("--hostname", "-n", metavar="NAME", default=None,
              help="Celery node name [default: linkmeter-<pid>@<host>; with --processes, NAME-1, NAME-2, ... "
                   "(the suffix goes before the @)].")
def worker(concurrency: int, processes: int, queues: str | None, loglevel: str, emulator: str | None,
           hostname: str | None) -> None:
    """Run Celery worker processes (Celery mode: LINKMETER_BROKER_URL, LINKMETER_REDIS_URL, DATABASE_URL).

    One event loop and one HTTP pool per process, many URLs in flight; a process uses one core, so run
    one per core: `--processes auto` starts them (fresh processes, not forks) and supervises them, on as
    many hosts as needed. Stops after the tasks in progress on SIGTERM (with --processes: passed on to
    every worker, as are SIGINT and SIGQUIT). Exit status 2 when a setting is missing or bad; with
    --processes, 1 when a worker keeps crashing right after its start or did not stop cleanly. See
    docs/scale-out.md.
    """
    count = processes
    if count == 0:
        from linkmeter.web.jobs.supervisor import available_cpus

        count = available_cpus()
    if count > 1:
        from linkmeter.web.jobs.supervisor import run_supervisor

        sys.exit(run_supervisor(count, concurrency=concurrency, queues=queues, loglevel=loglevel,
                                emulator=emulator, hostname=hostname))
    from linkmeter.web.jobs.commands import run_worker

    sys.exit(run_worker(concurrency=concurrency, queues=queues, loglevel=loglevel, emulator=emulator,
                        hostname=hostname))


@main.command()
@click.option("--loglevel", "-l", type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
              default="info", show_default=True)
@click.option("--schedule", metavar="PATH", default=None,
              help="Where beat keeps its schedule state [default: LINKMETER_DATA_DIR/celerybeat-schedule].")
def beat(loglevel: str, schedule: str | None) -> None:
    """Run Celery beat: the watchdog and the orphan sweep, periodically (run exactly one)."""
    from linkmeter.web.jobs.commands import run_beat

    sys.exit(run_beat(loglevel=loglevel, schedule=schedule))


@main.command()
def migrate() -> None:
    """Create or update the database tables (DATABASE_URL, else SQLite under LINKMETER_DATA_DIR)."""
    from linkmeter.web.jobs.commands import run_migrate

    sys.exit(run_migrate())


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of the table.")
def demo(as_json: bool) -> None:
    """Analyse sample URLs against a built-in emulator: real-looking numbers with no internet."""
    from linkmeter.demo import run_demo

    sys.exit(run_demo(as_json=as_json))


@main.command()
@click.option("--signals/--no-signals", default=True, show_default=True,
              help="After the table, every provider's needs, wants and signals.")
def providers(signals: bool) -> None:
    """List the providers as the providers page does (group, default set, key and whether it is set, from the
    environment), then what each needs and the signals it provides."""
    from rich.table import Table

    from linkmeter.assembly import build_providers, build_settings
    from linkmeter.engine.provider import GROUPS
    from linkmeter.providers.registry import PROVIDER_CLASSES

    try:
        keys_set = {p.name: bool(p.config.api_key) for p in build_providers(build_settings(os.environ))}
    except SettingsError:  # the table still says which variable holds each key
        keys_set = {cls.name: bool(os.environ.get(cls.key_variable())) for cls in PROVIDER_CLASSES}
    order = {group: index for index, group in enumerate(GROUPS)}
    classes = sorted(PROVIDER_CLASSES, key=lambda cls: order.get(cls.group, len(order)))  # stable: listing order
    console = Console(width=min(100, shutil.get_terminal_size((100, 24)).columns))
    table = Table(box=None, pad_edge=False, header_style="bold")
    for heading in ("provider", "group", "default set", "key", "key set", "key variable"):
        table.add_column(heading, overflow="fold")
    for cls in classes:
        takes = cls.takes_key()
        key_set = "-" if takes == "none" else "yes" if keys_set.get(cls.name) else "no"
        table.add_row(cls.name, cls.group, "yes" if cls.in_default_set else "no", takes, key_set,
                      cls.key_variable() if takes != "none" else "-")
    console.print(table, markup=False, highlight=False)
    if not signals:
        return
    for cls in classes:
        needs = ", ".join(cls.needs) or "-"
        wants = ", ".join(cls.wants) or "-"
        console.print(f"\n[bold]{cls.name}[/bold]  needs: {needs}  wants: {wants}", highlight=False)
        for signal, spec in cls.provides.items():
            unit = f" [{spec.unit}]" if spec.unit else ""
            console.print(f"    {signal:32} {spec.type.__name__:5} {spec.description}{unit}",
                          markup=False, highlight=False)


@main.group()
def user() -> None:
    """Accounts: create, list, set a plan, disable (the admin at /admin/ does the same)."""


def _accounts(action: str, **options: object) -> None:
    from linkmeter.web.plans.commands import run

    sys.exit(run(action, **options))


@user.command("create")
@click.argument("username")
@click.option("--email", default="", help="The user's e-mail address.")
@click.option("--plan", default="free", show_default=True, help="The plan's code (free, pro, unlimited).")
@click.option("--admin", is_flag=True, help="May use the admin at /admin/ (staff and superuser).")
@click.option("--password", "password_option", metavar="TEXT", default=None,
              help="The password (prefer --password-prompt or LINKMETER_NEW_PASSWORD: a command line is visible "
                   "to other users of the machine).")
@click.option("--password-prompt", is_flag=True, help="Ask for the password on the terminal.")
@click.option("--no-password", is_flag=True, help="No password: the account uses API keys only.")
def user_create(username: str, email: str, plan: str, admin: bool, password_option: str | None,
                password_prompt: bool, no_password: bool) -> None:
    """Create an account. Exit status 1 when the name is taken or the password too weak."""
    password = password_option or os.environ.get("LINKMETER_NEW_PASSWORD") or None
    if password_prompt:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if password is None and not no_password:
        raise click.UsageError("give --password-prompt, LINKMETER_NEW_PASSWORD, --password or --no-password")
    _accounts("user_create", username=username, password=None if no_password else password, email=email,
              plan=plan, admin=admin)


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def user_list(as_json: bool) -> None:
    """List the accounts with their plan and number of active keys."""
    _accounts("user_list", as_json=as_json)


@user.command("set-plan")
@click.argument("username")
@click.argument("plan")
def user_set_plan(username: str, plan: str) -> None:
    """Put an account on a plan (by its code): what the admin, the usage page and the API then show."""
    _accounts("user_set_plan", username=username, plan=plan)


@user.command("disable")
@click.argument("username")
def user_disable(username: str) -> None:
    """Disable an account: no login, and none of its keys works (in every web process within seconds)."""
    _accounts("user_disable", username=username)


@main.group()
def key() -> None:
    """API keys: create (shown once), list, revoke."""


@key.command("create")
@click.argument("username")
@click.option("--name", required=True, help="What the key is for.")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(["read", "submit"]),
              help="read (GET calls) and/or submit (POST calls) [default: both].")
@click.option("--expires-days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Expire after this many days [default: never].")
def key_create(username: str, name: str, scopes: tuple[str, ...], expires_days: float | None) -> None:
    """Create a key for USERNAME and print it, alone on stdout, this one time (only its hash is kept)."""
    _accounts("key_create", username=username, name=name, scopes=list(scopes), expires_days=expires_days)


@key.command("list")
@click.argument("username")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def key_list(username: str, as_json: bool) -> None:
    """List USERNAME's keys by their public id (never the key itself)."""
    _accounts("key_list", username=username, as_json=as_json)


@key.command("revoke")
@click.argument("key_id")
def key_revoke(key_id: str) -> None:
    """Revoke a key by its public id (lmk_...): refused by every web process within 1 s when they share
    Redis, within 5 s otherwise."""
    _accounts("key_revoke", key_id=key_id)


def _register_bench() -> None:
    from linkmeter.bench.command import bench

    main.add_command(bench)


def _register_spam() -> None:
    from linkmeter.web.jobs.spamcommands import spam

    main.add_command(spam)


_register_bench()
_register_spam()


if __name__ == "__main__":
    main()
