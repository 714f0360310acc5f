"""Garbage-collector settings for the long-running processes (`linkmeter serve`, `linkmeter worker`)."""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000  # allocations between young-generation collections (Python's default: 700)


def tune_garbage_collector() -> None:
    """A long-running process allocating many short-lived objects (the engine, the ORM) spent about a fifth
    of its CPU in the cycle collector with the default thresholds (measured with `linkmeter bench --mode
    embedded`): collect young objects less often, and never rescan what start-up loaded. Call once the
    process has loaded what it runs on."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 20, 50)
