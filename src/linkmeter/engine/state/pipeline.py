"""Auto-pipelining for Redis: commands issued close together go to Redis as one pipeline (one round trip).

A round trip through redis-py costs ~100 us of CPU whatever it carries, and ~10 us more per command in a
pipeline (measured on the reference machine: docs/benchmarks.md). With hundreds of URLs in flight, cache reads
and writes come in bursts (a loop iteration that receives twenty answers makes twenty writes), so sending
them together cuts the client's CPU per command several times. Commands issued during one loop iteration are
sent together at the start of the next; while ``max_in_flight`` pipelines are on their way, new commands wait
and go in the next one, so batches grow with load on their own and nothing waits on a timer.

Each command gets its own answer or its own error (``raise_on_error=False``); a failed round trip fails every
command in it. Callers bound their own wait (``RedisLink.call``); a cancelled caller's answer is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

MAX_BATCH = 256
MAX_IN_FLIGHT = 2


class AutoPipeline:
    """``client``: returns the redis-py client to pipeline on (looked up per round trip)."""

    def __init__(self, client: Callable[[], Any], *, max_batch: int = MAX_BATCH,
                 max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._client = client
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]] = []
        self._in_flight = 0
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.round_trips = 0  # for tests and the benchmark's notes
        self.commands = 0

    async def execute(self, *args: Any, **options: Any) -> Any:
        """Queue one command (as for ``Redis.execute_command``) and wait for its answer."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((args, options, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        while self._queue and self._in_flight < self._max_in_flight:
            batch, self._queue = self._queue[:self._max_batch], self._queue[self._max_batch:]
            batch = [item for item in batch if not item[2].done()]  # callers that gave up meanwhile
            if not batch:
                continue
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]]) -> None:
        try:
            pipe = self._client().pipeline(transaction=False)
            for args, options, _ in batch:
                pipe.execute_command(*args, **options)
            self.round_trips += 1
            self.commands += len(batch)
            results = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # the whole round trip failed (or we are being shut down)
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else ConnectionError("closed"))
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, _, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        finally:
            self._in_flight -= 1
            if self._queue and not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):  # closing: every caller already got its error
                await task
        for _, _, future in self._queue:
            if not future.done():
                future.set_exception(ConnectionError("the Redis client was closed"))
        self._queue.clear()
