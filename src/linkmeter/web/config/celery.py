"""The Celery app (Celery mode: LINKMETER_BROKER_URL set), configured from the environment.

Built on first use (``celery_app()``), not at import: importing this module reads no setting. ``celery -A
linkmeter.web.config.celery`` still finds the app (the module's ``app`` attribute builds it).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from linkmeter.engine import env
from linkmeter.engine.settings import DEFAULT_URL_DEADLINE, SettingsError, redis_url, url_deadline

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "linkmeter.web.config.settings")

MAX_PRIORITY = 10  # RabbitMQ message priorities 0..10; services.PRIORITY_SINGLE is the top
HOUSEKEEPING_PRIORITY = 9  # closing batches, webhooks and the periodic jobs go ahead of bulk work
TASKS_MODULE = "linkmeter.web.jobs.tasks"
# The task names (the tasks are defined in TASKS_MODULE; the dispatcher sends them by name).
RUN_CHUNK = "linkmeter.run_chunk"
CLOSE_BATCH = "linkmeter.close_batch"
DELIVER_WEBHOOK = "linkmeter.deliver_webhook"
WATCHDOG = "linkmeter.watchdog"
REQUEUE_ORPHANS = "linkmeter.requeue_orphans"
SPAM_JOB = "linkmeter.spam_job"
SPAM_DAILY = "linkmeter.spam_daily"
REFILL_DEFERRED = "linkmeter.refill_deferred"
SPAM_DAILY_SECONDS = 24 * 3600


@dataclass(frozen=True)
class CelerySettings:
    """LINKMETER_* settings of the Celery mode; see docs/scale-out.md. Read through ``linkmeter.engine.env``;
    the variables the engine reads too (LINKMETER_URL_DEADLINE, LINKMETER_REDIS_URL) by the engine's own
    readers, and the watchdog's grace from the Django settings (the embedded runner's too)."""

    broker_url: str | None = None  # LINKMETER_BROKER_URL; unset: embedded mode
    redis_url: str | None = None  # LINKMETER_REDIS_URL: the chord (result) backend, and the engine's state
    queue: str = "linkmeter"  # LINKMETER_QUEUE
    chunk_size: int = 25  # LINKMETER_CHUNK_SIZE: analyses per task
    batch_lanes: int = 16  # LINKMETER_BATCH_LANES: a batch's chunks in the queue (or running) at once
    worker_urls: int = 200  # LINKMETER_WORKER_URLS: URLs in flight per worker process, whatever its chunks
    url_deadline: float = DEFAULT_URL_DEADLINE  # LINKMETER_URL_DEADLINE (the engine's): sizes the chunk backstop
    watchdog_interval: float = 15.0  # LINKMETER_WATCHDOG_INTERVAL
    orphan_interval: float = 30.0  # LINKMETER_ORPHAN_INTERVAL
    orphan_age: float = 120.0  # LINKMETER_ORPHAN_AGE: queued this long with no message waiting = lost
    webhook_secret: str = ""  # LINKMETER_WEBHOOK_SECRET: HMAC key; callbacks are refused without one
    webhook_tries: int = 8  # LINKMETER_WEBHOOK_TRIES
    webhook_backoff: float = 2.0  # LINKMETER_WEBHOOK_BACKOFF: first retry delay, doubling each time
    webhook_timeout: float = 10.0  # LINKMETER_WEBHOOK_TIMEOUT: per POST
    public_url: str = ""  # LINKMETER_PUBLIC_URL: makes the webhook's results_url absolute

    @property
    def enabled(self) -> bool:
        return self.broker_url is not None

    @property
    def chunk_time_limit(self) -> float:
        """How long a chunk may take before the backstop gives up on it: its analyses run concurrently,
        each within the URL deadline, then one write."""
        return 2 * self.url_deadline + 60

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> CelerySettings:
        """Raises SettingsError naming the bad variable."""
        broker = env.optional(environ, "LINKMETER_BROKER_URL")
        backend = redis_url(environ)
        if broker is not None and backend is None:
            raise SettingsError("LINKMETER_BROKER_URL needs LINKMETER_REDIS_URL too (the chord backend and the "
                                "workers' shared rate limits)")
        return cls(
            broker_url=broker,
            redis_url=backend,
            queue=env.text(environ, "LINKMETER_QUEUE", cls.queue),
            chunk_size=env.whole(environ, "LINKMETER_CHUNK_SIZE", cls.chunk_size, positive=True),
            batch_lanes=env.whole(environ, "LINKMETER_BATCH_LANES", cls.batch_lanes, positive=True),
            worker_urls=env.whole(environ, "LINKMETER_WORKER_URLS", cls.worker_urls, positive=True),
            url_deadline=url_deadline(environ),
            watchdog_interval=env.number(environ, "LINKMETER_WATCHDOG_INTERVAL", cls.watchdog_interval,
                                         positive=True),
            orphan_interval=env.number(environ, "LINKMETER_ORPHAN_INTERVAL", cls.orphan_interval, positive=True),
            orphan_age=env.number(environ, "LINKMETER_ORPHAN_AGE", cls.orphan_age),
            webhook_secret=environ.get("LINKMETER_WEBHOOK_SECRET", ""),  # a key: used exactly as given
            webhook_tries=env.whole(environ, "LINKMETER_WEBHOOK_TRIES", cls.webhook_tries, positive=True),
            webhook_backoff=env.number(environ, "LINKMETER_WEBHOOK_BACKOFF", cls.webhook_backoff),
            webhook_timeout=env.number(environ, "LINKMETER_WEBHOOK_TIMEOUT", cls.webhook_timeout, positive=True),
            public_url=env.text(environ, "LINKMETER_PUBLIC_URL").rstrip("/"),
        )


def task_queue(name: str) -> Queue:
    """The one queue, with message priorities (declared with x-max-priority: an existing queue of the same
    name declared without it is refused by RabbitMQ; delete it or choose another LINKMETER_QUEUE)."""
    return Queue(name, Exchange(name, type="direct"), routing_key=name,
                 queue_arguments={"x-max-priority": MAX_PRIORITY})


def create_app(settings: CelerySettings, *, main: bool = True) -> Celery:
    """A Celery app for these settings (``main``: the process's current app, whose tasks workers run)."""
    app = Celery("linkmeter", set_as_current=main)
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "result_backend": settings.redis_url,
        "broker_connection_retry_on_startup": True,
        "broker_heartbeat": 30,
        # Publisher confirms: enqueue returns once RabbitMQ has the message (none lost if it crashes then).
        "broker_transport_options": {"confirm_publish": True},
        "task_publish_retry_policy": {"max_retries": 3, "interval_start": 0, "interval_step": 0.5,
                                      "interval_max": 2},
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_disable_rate_limits": True,
        "worker_hijack_root_logger": False,  # Django's LOGGING (structured logs) applies in workers too
        # Celery's Django fixup would otherwise close every database connection before and after every task
        # (a new PostgreSQL backend per chunk); connections are dropped after errors by the tasks themselves.
        "CELERY_DB_REUSE_MAX": 1000,
        "task_queues": (task_queue(settings.queue),),
        "task_default_queue": settings.queue,
        "task_default_exchange": settings.queue,
        "task_default_routing_key": settings.queue,
        "task_queue_max_priority": MAX_PRIORITY,
        "task_default_priority": 0,
        "result_expires": 6 * 3600,
        # Redis down: give up on a chord's bookkeeping after a few seconds (the sweeper closes its batch).
        "result_backend_transport_options": {"retry_policy": {"max_retries": 4, "interval_start": 0,
                                                              "interval_step": 0.5, "interval_max": 1}},
        # A task running when the broker connection drops keeps running (its result is stored, and its
        # redelivered copy finds the work done): say so explicitly.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "timezone": "UTC",
        # A chunk's backstop: its analyses run concurrently, each within the URL deadline, then one write.
        "task_annotations": {RUN_CHUNK: {"soft_time_limit": int(settings.chunk_time_limit),
                                         "time_limit": int(settings.chunk_time_limit) + 30}},
        "beat_schedule": {
            "watchdog": {"task": WATCHDOG, "schedule": settings.watchdog_interval,
                         "options": {"priority": HOUSEKEEPING_PRIORITY, "expires": settings.watchdog_interval}},
            "requeue-orphans": {"task": REQUEUE_ORPHANS, "schedule": settings.orphan_interval,
                                "options": {"priority": HOUSEKEEPING_PRIORITY,
                                            "expires": settings.orphan_interval}},
            # Deferred cells filled in the background (LINKMETER_DEFER_INTERVAL, read by the Django settings).
            "refill-deferred": {"task": REFILL_DEFERRED, "schedule": _defer_interval(),
                                "options": {"priority": HOUSEKEEPING_PRIORITY, "expires": _defer_interval()}},
            # The daily spam retrain (a candidate, promoted when it passes the check; one at a time).
            "spam-daily": {"task": SPAM_DAILY, "schedule": SPAM_DAILY_SECONDS,
                           "options": {"priority": HOUSEKEEPING_PRIORITY, "expires": SPAM_DAILY_SECONDS}},
        },
    }
    app.conf.update(config)
    if main:
        app.conf.include = [TASKS_MODULE]
    return app


def _defer_interval() -> float:
    from django.conf import settings as django_settings

    return float(django_settings.LINKMETER["DEFER_INTERVAL_SECONDS"])


@functools.cache
def celery_settings() -> CelerySettings:
    """This process's Celery settings, read from its environment on first use. Raises SettingsError."""
    return CelerySettings.from_env(os.environ)


@functools.cache
def celery_app() -> Celery:
    """This process's Celery app (the current app, whose tasks workers run), built on first use. Raises
    SettingsError."""
    return create_app(celery_settings())


def __getattr__(name: str) -> Celery:
    # ``celery -A linkmeter.web.config.celery`` looks for an ``app`` attribute.
    if name == "app":
        return celery_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
