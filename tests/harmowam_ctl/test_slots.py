"""The latest-value slot shared by the runtime's pipeline and the leader arm."""

from __future__ import annotations

import asyncio

from harmowam_ctl.slots import Slot


async def test_slot_keeps_only_the_newest() -> None:
    slot: Slot[int] = Slot()
    assert slot.latest() is None and slot.version == 0
    assert slot.put(1) == 1 and slot.put(2) == 2
    assert slot.latest() == 2 and slot.version == 2
    waiter = asyncio.create_task(slot.wait_newer(2))
    await asyncio.sleep(0)
    assert not waiter.done()
    slot.put(3)
    assert await asyncio.wait_for(waiter, 1.0) == (3, 3)
    assert await slot.wait_newer(0) == (3, 3)  # already newer: at once


async def test_a_waiter_after_a_put_waits_for_the_next_one() -> None:
    slot: Slot[str] = Slot()
    first = asyncio.create_task(slot.wait_newer(0))
    await asyncio.sleep(0)
    slot.put("a")
    assert await asyncio.wait_for(first, 1.0) == ("a", 1)
    second = asyncio.create_task(slot.wait_newer(1))
    await asyncio.sleep(0)
    assert not second.done()  # the event the first waiter used does not wake it
    slot.put("b")
    assert await asyncio.wait_for(second, 1.0) == ("b", 2)


async def test_put_threadsafe_from_another_thread() -> None:
    slot: Slot[int] = Slot()
    loop = asyncio.get_running_loop()
    await asyncio.to_thread(slot.put_threadsafe, loop, 7)
    assert await asyncio.wait_for(slot.wait_newer(0), 1.0) == (7, 1)
