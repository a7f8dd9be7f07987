"""Slots: the handler slots of one worker."""

from __future__ import annotations

import asyncio

import pytest

from worker.slots import Slots


def test_free_slots_are_taken_without_waiting_until_none_is_left() -> None:
    slots = Slots(2)
    assert slots.take_now()
    assert slots.take_now()
    assert not slots.take_now()
    slots.give()
    assert slots.take_now()


@pytest.mark.asyncio
async def test_waiting_tasks_get_slots_in_the_order_they_asked() -> None:
    slots, order = Slots(1), []
    assert slots.take_now()

    async def wait(name: str) -> None:
        await slots.take()
        order.append(name)

    waiters = [asyncio.create_task(wait(name)) for name in "abc"]
    await asyncio.sleep(0)
    assert not slots.take_now()  # free or not, the waiting tasks go first
    for _ in waiters:
        slots.give()
        await asyncio.sleep(0)
    await asyncio.gather(*waiters)
    assert order == ["a", "b", "c"]


@pytest.mark.asyncio
async def test_a_task_cancelled_while_waiting_takes_no_slot() -> None:
    slots = Slots(1)
    assert slots.take_now()
    gone = asyncio.create_task(slots.take())
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    slots.give()
    assert slots.take_now()
    assert not slots.take_now()


@pytest.mark.asyncio
async def test_a_slot_handed_to_a_task_cancelled_at_that_moment_goes_to_the_next() -> None:
    slots = Slots(1)
    assert slots.take_now()
    first = asyncio.create_task(slots.take())
    second = asyncio.create_task(slots.take())
    await asyncio.sleep(0)
    slots.give()  # the slot is handed to `first` ...
    first.cancel()  # ... which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)  # the slot went on to `second`
    assert not slots.take_now()
