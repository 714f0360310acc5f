"""The Celery tasks (thin: they take ids and call services or the worker runtime; each is idempotent).

Shared tasks: they bind to the app ``web.config.celery.celery_app()`` builds, so importing this module reads
no setting. A worker started without `linkmeter worker` (``celery -A linkmeter.web.config.celery worker``)
starts its runtime when Celery's worker initialises.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from celery.exceptions import Retry
from celery.signals import worker_init, worker_shutdown
from django.conf import settings
from django.db import DatabaseError, close_old_connections

from linkmeter.engine.observe import logging_context
from linkmeter.web import runtime
from linkmeter.web.config.celery import (
    CLOSE_BATCH,
    DELIVER_WEBHOOK,
    HOUSEKEEPING_PRIORITY,
    REFILL_DEFERRED,
    REQUEUE_ORPHANS,
    RUN_CHUNK,
    SPAM_DAILY,
    SPAM_JOB,
    WATCHDOG,
    celery_app,
    celery_settings,
)
from linkmeter.web.jobs import celery_dispatch, refill, webhook, worker
from linkmeter.web.links.models import CallbackStatus
from linkmeter.web.links.selectors.workers import (
    analyses_orphaned,
    analyses_priorities,
    batch_webhook_summary,
    batches_unclosed,
)
from linkmeter.web.links.services.batches import batch_close, batch_webhook_record, batch_webhook_reset
from linkmeter.web.links.services.deferred import batch_webhook_renotify
from linkmeter.web.links.services.queue import analysis_recover

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2  # the watchdog re-queues a lost analysis once, then fails it
RETRY_ON = (DatabaseError,)  # e.g. PostgreSQL restarting: retried with backoff 1, 2, 4 ... 60 s, ~8 min in all
MAX_RETRIES = 12


class DatabaseTask(Task[Any, Any]):
    """Drops this thread's database connection after a database error, so the retry opens a fresh one."""

    def on_retry(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if isinstance(exc, DatabaseError):
            close_old_connections()


# Its soft and hard time limits come from the settings: the app's task_annotations (config/celery.py).
@shared_task(bind=True, base=DatabaseTask, name=RUN_CHUNK, autoretry_for=RETRY_ON, retry_backoff=1,
             retry_backoff_max=60, retry_jitter=True, max_retries=MAX_RETRIES)
def run_chunk(self: DatabaseTask, analysis_ids: list[int]) -> dict[str, int]:
    """Run these analyses (the final ones are skipped); returns a ChunkSummary as a dict."""
    delivery = self.request.delivery_info or {}
    # Redelivered (its worker died or lost the broker) or retried: what it left running is ours to finish.
    takeover = bool(delivery.get("redelivered")) or bool(self.request.retries)
    try:
        return worker.current().run_chunk(analysis_ids, takeover=takeover).as_dict()
    except DatabaseError:
        close_old_connections()
        raise


@shared_task(bind=True, base=DatabaseTask, name=CLOSE_BATCH, ignore_result=True, autoretry_for=RETRY_ON,
             retry_backoff=1, retry_backoff_max=60, retry_jitter=True, max_retries=MAX_RETRIES)
def close_batch(self: DatabaseTask, batch_id: int) -> None:
    """The chord callback: close the batch once its analyses are final, and start its webhook."""
    with logging_context(batch_id=batch_id):
        closing = batch_close(batch_id=batch_id)
        if not closing.finished:
            log.info("batch %d has analyses still running elsewhere; the sweeper closes it when they end", batch_id)
            return
        if closing.send_webhook:
            try:
                deliver_webhook.apply_async((batch_id,), priority=HOUSEKEEPING_PRIORITY)
            except Exception:
                batch_webhook_reset(batch_id=batch_id)  # the sweeper starts it again
                raise


@shared_task(bind=True, base=DatabaseTask, name=DELIVER_WEBHOOK, ignore_result=True, autoretry_for=RETRY_ON,
             retry_backoff=1, retry_backoff_max=60, retry_jitter=True, max_retries=MAX_RETRIES)
def deliver_webhook(self: DatabaseTask, batch_id: int) -> None:
    """POST the batch's signed summary; retried with exponential backoff; the outcome is kept on the batch."""
    with logging_context(batch_id=batch_id):
        summary = batch_webhook_summary(batch_id)
        if summary is None or summary.pop("callback_status") != CallbackStatus.SENDING:
            return  # delivered or given up already (a duplicate task)
        url = summary.pop("callback_url")
        settings = celery_settings()
        if settings.public_url:
            summary["results_url"] = settings.public_url + summary["results_url"]
        if settings.webhook_secret:
            runtime = worker.current()
            outcome = runtime.call(webhook.post(runtime.running_engine.http, url, webhook.encode(summary),
                                                secret=settings.webhook_secret, within=settings.webhook_timeout,
                                                event=str(summary["event"])),
                                   timeout=settings.webhook_timeout + 5)
        else:
            outcome = webhook.Delivery(False, False, "LINKMETER_WEBHOOK_SECRET is not set on the workers")
        attempt = batch_webhook_record(batch_id=batch_id, delivered=outcome.delivered, error=outcome.error,
                                                retryable=outcome.retryable, max_tries=settings.webhook_tries)
        if attempt.status == CallbackStatus.DELIVERED:
            log.info("webhook of batch %d delivered to %s (HTTP %s, try %d)", batch_id, url, outcome.status,
                     attempt.attempts)
        elif attempt.status == CallbackStatus.FAILED:
            log.warning("webhook of batch %d to %s failed for good after %d tries: %s", batch_id, url,
                        attempt.attempts, outcome.error)
        elif attempt.status == CallbackStatus.SENDING:
            countdown = settings.webhook_backoff * 2 ** (attempt.attempts - 1)
            log.info("webhook of batch %d to %s failed (try %d): %s; next try in %gs", batch_id, url,
                     attempt.attempts, outcome.error, countdown)
            try:
                raise self.retry(countdown=countdown, max_retries=None)
            except Retry:
                raise
            except Exception:
                batch_webhook_reset(batch_id=batch_id)  # could not schedule the retry: the sweeper will
                raise


@shared_task(name=WATCHDOG, ignore_result=True)
def watchdog() -> None:
    """Analyses running past their deadline plus grace (their worker is gone): re-queued and dispatched
    again once, then failed."""
    grace = settings.LINKMETER["WATCHDOG_GRACE_SECONDS"]  # LINKMETER_WATCHDOG_GRACE, as the embedded runner's
    recovered = analysis_recover(max_attempts=MAX_ATTEMPTS, grace_seconds=grace)
    if recovered.requeued:
        celery_dispatch.publish_chunks(celery_app(), analyses_priorities(recovered.requeued),
                                       chunk_size=celery_settings().chunk_size)
    if recovered.requeued or recovered.failed:
        log.warning("watchdog: re-queued %d and failed %d analyses past their deadline", len(recovered.requeued),
                    recovered.failed)


@shared_task(name=REQUEUE_ORPHANS, ignore_result=True)
def requeue_orphans() -> None:
    """Analyses queued with no message (the broker was down when they were submitted, or lost them) are
    dispatched again; finished batches whose chord callback never came are closed."""
    settings = celery_settings()
    waiting = queue_depth()
    if waiting == 0:
        orphans = analyses_orphaned(older_than_seconds=settings.orphan_age)
        if orphans:
            sent = celery_dispatch.publish_chunks(celery_app(), orphans, chunk_size=settings.chunk_size)
            log.warning("re-dispatched %d analyses queued for over %gs with no task waiting (%d tasks)",
                        len(orphans), settings.orphan_age, sent)
    for batch_id in batches_unclosed(finished_before_seconds=settings.orphan_age):
        log.warning("batch %d finished without its chord callback; closing it now", batch_id,
                    extra={"batch_id": batch_id})
        close_batch.apply_async((batch_id,), priority=HOUSEKEEPING_PRIORITY)


def queue_depth() -> int | None:
    """Messages waiting in the queue (not yet delivered to a worker); None when the broker does not say."""
    queue = celery_settings().queue
    try:
        with celery_app().connection_for_read() as connection:
            channel: Any = connection.default_channel
            declared = channel.queue_declare(queue=queue, passive=True)
            return int(declared.message_count)
    except Exception:
        log.warning("could not read the depth of queue %s", queue, exc_info=True)
        return None


@shared_task(name=REFILL_DEFERRED, ignore_result=True)
def refill_deferred() -> None:
    """Rounds of the refiller on this worker's engine, for up to one interval: deferred cells called again as
    their providers' rates allow, stored in place; the batches left with no deferred cell have their webhook
    told again."""
    settings = refill.RefillSettings.from_django()
    if settings.max_age <= 0:
        return
    runtime = worker.current()
    report = refill.refill_rounds_blocking(runtime.running_engine, runtime.call, settings)
    if report.filled or report.gave_up:
        log.info("deferred cells: %d filled, %d still waiting, %d settled otherwise, %d given up",
                 report.filled, report.waiting, report.settled, report.gave_up)
    for batch_id in batch_webhook_renotify(batch_ids=report.batches):
        deliver_webhook.apply_async((batch_id,), priority=HOUSEKEEPING_PRIORITY)


@shared_task(name=SPAM_JOB, ignore_result=True)
def spam_job(job_id: int) -> None:
    """A spam training or rescoring job (its row, created by the service, is the lock: one of each kind)."""
    from linkmeter.web.links.services import spam_learning

    spam_learning.job_run(job_id)


@shared_task(name=SPAM_DAILY, ignore_result=True)
def spam_daily() -> None:
    from linkmeter.web.links.services import spam_learning

    spam_learning.retrain_if_due()


def send_spam_job(job_id: int) -> None:
    """The Celery mode's runtime.spam_jobs: one task per job, run by whichever worker takes it."""
    spam_job.apply_async((job_id,), priority=HOUSEKEEPING_PRIORITY)


@worker_init.connect
def _start_runtime(**_: Any) -> None:
    if not isinstance(runtime.installed(), worker.WorkerRuntime):  # `linkmeter worker` started it already
        worker.start()


@worker_shutdown.connect
def _close_runtime(**_: Any) -> None:
    worker.shutdown()
