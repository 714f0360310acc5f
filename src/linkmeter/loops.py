"""The event loop every linkmeter process runs on: uvloop where it is installed, else asyncio's own.

uvloop runs the same asyncio code with a loop written in C (libuv); the engine and the emulator spend a
large share of their CPU in the loop itself (sockets, TLS, timers), so it is their cheapest speed-up.
``LINKMETER_EVENT_LOOP=asyncio`` keeps the standard loop (to compare, or to rule uvloop out)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

CHOICES = ("auto", "uvloop", "asyncio")


class LoopSettingError(ValueError):
    """LINKMETER_EVENT_LOOP names an unknown loop, or uvloop when it is not installed."""


def loop_factory(environ: Mapping[str, str] | None = None) -> Callable[[], asyncio.AbstractEventLoop]:
    """The factory for new event loops under LINKMETER_EVENT_LOOP (auto: uvloop if installed)."""
    choice = (environ if environ is not None else os.environ).get("LINKMETER_EVENT_LOOP", "auto").strip().lower()
    if choice not in CHOICES:
        raise LoopSettingError(f"LINKMETER_EVENT_LOOP must be one of {', '.join(CHOICES)}, not {choice!r}")
    if choice == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise LoopSettingError("LINKMETER_EVENT_LOOP=uvloop, but uvloop is not installed") from None
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run[T](coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the chosen loop."""
    return asyncio.run(coroutine, loop_factory=loop_factory())


def new_event_loop() -> asyncio.AbstractEventLoop:
    return loop_factory()()
