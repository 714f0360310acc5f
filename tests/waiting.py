"""Waiting for a condition in tests: ``wait_until`` (and ``wait_until_async``) instead of hand-written polling loops.

Both call ``predicate`` until it returns something truthy and return that value. After ``timeout`` seconds
they fail with a ``WaitTimeout`` (an ``AssertionError``, so pytest shows it as a failed assertion) that says
what was waited for and the last value the predicate returned. ``message`` may be a callable, evaluated only
on failure, to describe the state at that moment (a log tail, the rows in the database).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import cast

Message = str | Callable[[], str]
AsyncMessage = str | Callable[[], Awaitable[str] | str]


class WaitTimeout(AssertionError):
    """The predicate did not hold within the timeout."""


def wait_until[T](predicate: Callable[[], T], timeout: float, *, interval: float = 0.05,
                  message: Message = "") -> T:
    """``predicate()`` once it is truthy, checked every ``interval`` seconds for at most ``timeout`` seconds."""
    give_up = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        left = give_up - time.monotonic()
        if left <= 0:
            raise WaitTimeout(_failure(predicate, timeout, message, value))
        time.sleep(min(interval, left))


# The timeout is a parameter (not the caller's asyncio.timeout) so that the failure can say what it waited for.
async def wait_until_async[T](predicate: Callable[[], Awaitable[T] | T], timeout: float, *,  # noqa: ASYNC109
                              interval: float = 0.05, message: AsyncMessage = "") -> T:
    """The same on an event loop: ``predicate`` and ``message`` may be coroutine functions."""
    give_up = time.monotonic() + timeout
    while True:
        value = await _result(predicate)
        if value:
            return value
        left = give_up - time.monotonic()
        if left <= 0:
            described = await _result(message) if callable(message) else message
            raise WaitTimeout(_failure(predicate, timeout, described, value))
        await asyncio.sleep(min(interval, left))


async def _result[T](call: Callable[[], Awaitable[T] | T]) -> T:
    value = call()
    if inspect.isawaitable(value):
        return cast(T, await value)
    return value


def _failure(predicate: Callable[..., object], timeout: float, message: Message, last: object) -> str:
    what = (message() if callable(message) else message) or getattr(predicate, "__qualname__", repr(predicate))
    return f"timed out after {timeout:g}s waiting for {what}; last value: {last!r}"
