"""URL slots: a cap on URLs in flight whose waiters are served by priority, then in arrival order."""

from __future__ import annotations

import asyncio

import pytest

from linkmeter.web.jobs.slots import PrioritySlots


async def test_never_more_holders_than_slots() -> None:
    slots, holding, peak = PrioritySlots(3), 0, 0

    async def hold() -> None:
        nonlocal holding, peak
        async with slots.slot():
            holding += 1
            peak = max(peak, holding)
            await asyncio.sleep(0.01)
            holding -= 1

    await asyncio.gather(*(hold() for _ in range(20)))
    assert peak == 3 and slots.in_use == 0 and slots.waiting == 0


async def test_a_freed_slot_goes_to_the_highest_priority_waiter_then_to_the_earliest() -> None:
    slots, order = PrioritySlots(1), []
    await slots.acquire()

    async def wait(name: str, priority: int) -> None:
        async with slots.slot(priority):
            order.append(name)

    waiters = [asyncio.create_task(wait(name, priority))
               for name, priority in [("bulk-1", 0), ("bulk-2", 0), ("single", 9), ("bulk-3", 0), ("api", 5)]]
    await asyncio.sleep(0)
    assert slots.waiting == 5
    slots.release()
    await asyncio.gather(*waiters)
    assert order == ["single", "api", "bulk-1", "bulk-2", "bulk-3"]


async def test_a_cancelled_waiter_loses_nothing_for_the_others() -> None:
    slots = PrioritySlots(1)
    await slots.acquire()
    gone = asyncio.create_task(slots.acquire(5))
    stays = asyncio.create_task(slots.acquire(1))
    await asyncio.sleep(0)
    gone.cancel()
    slots.release()
    await stays
    assert gone.cancelled() and slots.in_use == 1
    slots.release()
    assert slots.in_use == 0


async def test_a_waiter_cancelled_as_it_is_handed_the_slot_passes_it_on() -> None:
    slots = PrioritySlots(1)
    await slots.acquire()
    first = asyncio.create_task(slots.acquire())
    second = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    slots.release()  # hands the slot to `first`...
    first.cancel()  # ...which is cancelled before it runs
    await second
    assert first.cancelled() and slots.in_use == 1


def test_a_pool_of_no_slots_is_refused() -> None:
    with pytest.raises(ValueError):
        PrioritySlots(0)
