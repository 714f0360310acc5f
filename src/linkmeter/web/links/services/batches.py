"""Closing a batch whose analyses are all final, and the delivery state of its webhook."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from linkmeter.web.links.models import FINAL_STATUSES, Batch, BatchItem, CallbackStatus


@dataclass(frozen=True, slots=True)
class BatchClosing:
    finished: bool  # every analysis of the batch is final (finished_at is set)
    send_webhook: bool  # this call moved the webhook from pending to sending: deliver it now


def batch_close(*, batch_id: int) -> BatchClosing:
    """Close a batch whose analyses are all final: its finish time, and the start of its webhook (once:
    of concurrent closers, one gets ``send_webhook``). A batch with work left stays open; closing it is
    idempotent."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().filter(pk=batch_id).first()
        if batch is None:
            return BatchClosing(finished=False, send_webhook=False)
        pending = BatchItem.objects.filter(batch_id=batch_id).exclude(analysis__status__in=list(FINAL_STATUSES))
        if pending.exists():
            return BatchClosing(finished=False, send_webhook=False)
        fields = []
        if batch.finished_at is None:
            batch.finished_at = timezone.now()
            fields.append("finished_at")
        send = batch.callback_status == CallbackStatus.PENDING
        if send:
            batch.callback_status = CallbackStatus.SENDING
            fields.append("callback_status")
        if fields:
            batch.save(update_fields=fields)
        return BatchClosing(finished=True, send_webhook=send)


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    attempts: int  # tries made so far
    status: str  # CallbackStatus: sending (try again later), delivered or failed; "" if it was not being sent


def batch_webhook_record(*, batch_id: int, delivered: bool, error: str = "", retryable: bool = True,
                         max_tries: int = 8) -> WebhookAttempt:
    """Record one delivery try of a batch's webhook. It ends delivered, or failed when the error is not
    worth retrying or ``max_tries`` tries were made; otherwise it stays sending. Only a webhook being
    sent is changed."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().filter(pk=batch_id, callback_status=CallbackStatus.SENDING).first()
        if batch is None:
            return WebhookAttempt(0, "")
        batch.callback_attempts += 1
        batch.callback_last_error = "" if delivered else error[:2000]
        if delivered:
            batch.callback_status = CallbackStatus.DELIVERED
            batch.callback_sent_at = timezone.now()
        elif not retryable or batch.callback_attempts >= max_tries:
            batch.callback_status = CallbackStatus.FAILED
        batch.save(update_fields=["callback_attempts", "callback_last_error", "callback_status", "callback_sent_at"])
        return WebhookAttempt(batch.callback_attempts, batch.callback_status)


def batch_webhook_reset(*, batch_id: int) -> None:
    """A webhook whose next try could not be scheduled (broker down) goes back to pending: the sweeper
    starts it again."""
    Batch.objects.filter(pk=batch_id, callback_status=CallbackStatus.SENDING).update(
        callback_status=CallbackStatus.PENDING)
