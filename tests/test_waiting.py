"""wait_until and wait_until_async: the truthy value once it comes, else a failure naming what and the last value."""

from __future__ import annotations

import itertools

import pytest

from tests.waiting import WaitTimeout, wait_until, wait_until_async


def test_the_first_truthy_value_is_returned() -> None:
    counter = itertools.count()
    assert wait_until(lambda: next(counter) >= 3 and "ready", 2, interval=0.001) == "ready"


def test_a_timeout_says_what_was_waited_for_and_the_last_value() -> None:
    with pytest.raises(WaitTimeout, match=r"timed out after 0.05s waiting for the queue to fill; last value: \[\]"):
        wait_until(list, 0.05, interval=0.01, message=lambda: "the queue to fill")


async def test_the_async_variant_awaits_coroutine_predicates_and_messages() -> None:
    counter = itertools.count()

    async def reached() -> int:
        return next(counter) if next(counter) > 4 else 0

    async def described() -> str:
        return "never"

    assert await wait_until_async(reached, 2, interval=0.001) > 4
    with pytest.raises(WaitTimeout, match="waiting for never; last value: None"):
        await wait_until_async(lambda: None, 0.05, interval=0.01, message=described)
