"""Dispatch to Celery: a batch's analyses as chunk tasks in a chord whose callback closes the batch, fed into the
queue a few chunks at a time (its lanes)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from celery import Celery, chain, chord
from celery.canvas import Signature

from linkmeter.web.config.celery import CLOSE_BATCH, HOUSEKEEPING_PRIORITY, RUN_CHUNK, CelerySettings

log = logging.getLogger(__name__)


def chunked(ids: Sequence[int], size: int) -> list[list[int]]:
    return [list(ids[start:start + size]) for start in range(0, len(ids), max(1, size))]


HEAD_CHUNKS = 4  # re-dispatched work's first chunks go at its priority, the rest one step below


def chunk_priority(priority: int, index: int, head: int = HEAD_CHUNKS) -> int:
    """A large batch's tail waits one priority step below its first ``head`` chunks: the first chunks of a
    batch submitted later by another account of the same plan overtake it (plan priorities are at least two
    steps apart: the tail stays above lower plans' bulk work)."""
    return priority if index < head else max(0, priority - 1)


def chunk_signatures(app: Celery, ids: Sequence[int], *, priority: int, size: int,
                     head: int = HEAD_CHUNKS) -> list[Signature]:
    # Immutable: in a lane (a chain) a chunk must not be handed the previous chunk's summary as its ids.
    return [app.signature(RUN_CHUNK, args=(chunk,), immutable=True,
                          options={"priority": chunk_priority(priority, index, head)})
            for index, chunk in enumerate(chunked(ids, size))]


def batch_lanes(app: Celery, ids: Sequence[int], *, priority: int, size: int, lanes: int) -> list[Signature]:
    """A batch's chunks in at most ``lanes`` lanes: chunk i goes to lane i mod lanes, and a lane is a chain, so
    only its first chunk is in the queue at first and each next one is published when the one before has
    run. A batch of any size thus holds at most ``lanes`` messages in the queue: a batch of another account
    of its tier submitted later waits behind those, not behind the whole batch. The lanes' first chunks go
    at the batch's priority, the rest one step below."""
    chunks = chunk_signatures(app, ids, priority=priority, size=size, head=lanes)
    if len(chunks) <= lanes:
        return chunks
    return [chain(*chunks[lane::lanes]) for lane in range(lanes)]


def publish_batch(app: Celery, ids: Sequence[int], *, priority: int, batch_id: int, chunk_size: int,
                  lanes: int) -> None:
    """The batch's lanes as a chord: the callback closes the batch once every chunk has run. With no ids
    (every URL was answered by an earlier analysis) only the callback. Raises when the broker cannot
    be reached."""
    close = app.signature(CLOSE_BATCH, args=(batch_id,), immutable=True,
                          options={"priority": HOUSEKEEPING_PRIORITY})
    if not ids:
        close.apply_async()
        return
    chord(batch_lanes(app, ids, priority=priority, size=chunk_size, lanes=lanes), close).apply_async()


def publish_chunks(app: Celery, work: Iterable[tuple[int, int]], *, chunk_size: int) -> int:
    """Analyses (id, priority) as chunk tasks of their priority, with no chord (re-dispatches: the sweeper
    closes their batches). Returns the tasks sent; raises when the broker cannot be reached."""
    by_priority: dict[int, list[int]] = defaultdict(list)
    for pk, priority in work:
        by_priority[priority].append(pk)
    sent = 0
    for priority, ids in sorted(by_priority.items(), reverse=True):
        for signature in chunk_signatures(app, ids, priority=priority, size=chunk_size):
            signature.apply_async()
            sent += 1
    return sent


class CeleryDispatcher:
    """The Dispatcher of the Celery mode. Publishes on its own thread, in submission order, so a request
    never waits on the broker; when the broker is down the analyses stay queued in the database and the
    periodic orphan sweep dispatches them later."""

    def __init__(self, app: Celery, settings: CelerySettings) -> None:
        self.app = app
        self.settings = settings
        self.delivers_webhooks = bool(settings.webhook_secret)
        self._publisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="linkmeter-publish")

    def enqueue(self, analysis_ids: Sequence[int], *, priority: int, batch_id: int | None = None) -> None:
        ids = list(analysis_ids)
        if not ids and batch_id is None:
            return
        self._publisher.submit(self._publish, ids, priority, batch_id)

    def _publish(self, ids: list[int], priority: int, batch_id: int | None) -> None:
        try:
            if batch_id is None:
                publish_chunks(self.app, ((pk, priority) for pk in ids), chunk_size=self.settings.chunk_size)
            else:
                publish_batch(self.app, ids, priority=priority, batch_id=batch_id,
                              chunk_size=self.settings.chunk_size, lanes=self.settings.batch_lanes)
        except Exception:
            log.exception("could not hand %d analyses of batch %s to the broker; they stay queued and the orphan "
                          "sweep dispatches them", len(ids), batch_id, extra={"batch_id": batch_id})

    def close(self) -> None:
        """Publish what is waiting, then stop the publishing thread."""
        self._publisher.shutdown(wait=True)
