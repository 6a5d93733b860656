"""``Metronome``: precise wake-ups for the servo tick, with the optional busy-wait of the last stretch."""

from __future__ import annotations

import asyncio
import time

import pytest

from harmowam_ctl import metronome
from harmowam_ctl.clock import MonotonicClock
from harmowam_ctl.metronome import Metronome


@pytest.mark.parametrize("spin_s", [0.0, 0.002])
def test_never_wakes_early_and_the_spin_runs_on_the_loop_thread(spin_s):
    m = Metronome(MonotonicClock(), spin_s=spin_s)
    late: list[float] = []
    loop_free: list[float] = []  # how often a helper task ran while the tick waited

    async def main():
        ran = 0

        async def helper():
            nonlocal ran
            while True:
                ran += 1
                await asyncio.sleep(0)

        h = asyncio.create_task(helper())
        try:
            for _ in range(20):
                t = time.monotonic() + 0.005
                before = ran
                await m.sleep_until(t)
                late.append(time.monotonic() - t)
                loop_free.append(ran - before)
        finally:
            h.cancel()

    try:
        asyncio.run(main())
    finally:
        m.close()
    assert min(late) >= 0.0  # never before the deadline
    assert all(n > 0 for n in loop_free)  # the coarse part of the wait leaves the loop free


def test_default_spin_comes_from_the_module_setting(monkeypatch):
    assert Metronome(MonotonicClock()).spin_s == metronome.DEFAULT_SPIN_S == 0.0  # off as shipped
    monkeypatch.setattr(metronome, "DEFAULT_SPIN_S", 0.0003)
    assert Metronome(MonotonicClock()).spin_s == 0.0003
