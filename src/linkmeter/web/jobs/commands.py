"""The Celery-mode processes behind `linkmeter worker`, `linkmeter beat` and `linkmeter migrate`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from linkmeter.emulator.client import EmulatorInfo, EmulatorUnreachable, fetch_info_sync

EXIT_OK, EXIT_USAGE = 0, 2
WORKER_CONN_MAX_AGE = 60  # seconds a worker thread keeps its database connection


class CommandError(RuntimeError):
    """Something the user can fix (no broker configured, a bad setting, an unreachable emulator)."""


def run_worker(*, concurrency: int, queues: str | None, loglevel: str, emulator: str | None,
               hostname: str | None) -> int:
    """A Celery worker process: the threads pool (``concurrency`` chunk tasks at once) feeding this
    process's one event loop and engine. Returns the exit status."""
    from linkmeter.web.jobs.supervisor import follow_supervisor

    if not follow_supervisor():  # started by `--processes N`: stop with the supervisor, even a kill -9'd one
        print("linkmeter worker: the supervising `linkmeter worker --processes` is gone; not starting",
              file=sys.stderr)
        return EXIT_OK
    try:
        environ = _setup(loglevel, need_broker=True)
        info = _emulator_info(emulator) if emulator else None
        from linkmeter.engine.plan import PlanError
        from linkmeter.engine.settings import SettingsError

        try:
            from linkmeter.web.config.celery import celery_app, celery_settings
            from linkmeter.web.gctune import tune_garbage_collector
            from linkmeter.web.jobs import tasks, worker

            del tasks  # imported to register the tasks

            from linkmeter.web import metrics

            app, settings = celery_app(), celery_settings()
            # Bad settings fail here, before any message is taken.
            worker.start(worker.WorkerOptions(environ=environ, emulator=info, relax_rate_limits=info is not None,
                                              chunk_threads=concurrency))
            tune_garbage_collector()  # after start-up: what it loaded is never rescanned
            metrics.worker_exporter_from_env(environ)  # this process's /metrics, when LINKMETER_METRICS_PORT is set
        except (SettingsError, PlanError, OSError) as exc:
            raise CommandError(str(exc)) from exc
    except CommandError as exc:
        print(f"linkmeter worker: {exc}", file=sys.stderr)
        return EXIT_USAGE
    argv = ["worker", "--pool", "threads", "--concurrency", str(concurrency), "--queues", queues or settings.queue,
            "--loglevel", loglevel.upper(), "--hostname", hostname or f"linkmeter-{os.getpid()}@%h",
            "--without-gossip", "--without-mingle"]
    try:
        app.worker_main(argv)
    finally:
        worker.shutdown()
    return EXIT_OK


def run_beat(*, loglevel: str, schedule: str | None) -> int:
    """Celery beat: sends the watchdog and the orphan sweep on their intervals. Run exactly one."""
    try:
        environ = _setup(loglevel, need_broker=True)
        from linkmeter.engine.settings import SettingsError

        try:
            from linkmeter.web.config.celery import celery_app

            app = celery_app()
        except SettingsError as exc:
            raise CommandError(str(exc)) from exc
    except CommandError as exc:
        print(f"linkmeter beat: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from django.conf import settings

    path = schedule or str(Path(settings.DATA_DIR) / "celerybeat-schedule")
    del environ
    app.start(["beat", "--loglevel", loglevel.upper(), "--schedule", path])
    return EXIT_OK


def run_migrate() -> int:
    """Create or update the database tables (DATABASE_URL, else the embedded SQLite file)."""
    from django.db import DatabaseError

    try:
        _setup(None, need_broker=False)
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=1)
    except (CommandError, DatabaseError) as exc:
        print(f"linkmeter migrate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _setup(loglevel: str | None, *, need_broker: bool) -> dict[str, str]:
    if need_broker and not os.environ.get("LINKMETER_BROKER_URL", "").strip():
        raise CommandError("LINKMETER_BROKER_URL is not set (e.g. amqp://guest:guest@127.0.0.1:5672//); "
                           "without a broker `linkmeter serve` runs the analyses itself")
    if loglevel:
        os.environ["LINKMETER_LOG_LEVEL"] = loglevel.upper()
    # A worker's task threads live as long as it does: each keeps its database connection.
    os.environ.setdefault("LINKMETER_DB_CONN_MAX_AGE", str(WORKER_CONN_MAX_AGE))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "linkmeter.web.config.settings")
    import django
    from django.core.exceptions import ImproperlyConfigured

    try:
        django.setup()
    except (ImproperlyConfigured, ValueError) as exc:
        raise CommandError(f"bad settings: {exc}") from exc
    return dict(os.environ)


def _emulator_info(url: str) -> EmulatorInfo:
    """What the emulator at ``url`` says about itself: the worker's engine points at it (its CA taken as it is)."""
    try:
        return fetch_info_sync(url)
    except EmulatorUnreachable as exc:
        raise CommandError(str(exc)) from exc
