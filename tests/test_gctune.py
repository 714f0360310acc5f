"""The long-running processes' collector settings."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from linkmeter.gctune import YOUNG_THRESHOLD, tune_garbage_collector


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_young_objects_are_collected_less_often_and_start_up_is_frozen() -> None:
    tune_garbage_collector()
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD > 700
    assert gc.get_freeze_count() > 0
