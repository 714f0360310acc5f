"""Garbage-collector settings for `linkmeter serve` and `linkmeter worker` (in ``linkmeter.gctune``: the bench too)."""

from linkmeter.gctune import YOUNG_THRESHOLD as YOUNG_THRESHOLD
from linkmeter.gctune import tune_garbage_collector as tune_garbage_collector
