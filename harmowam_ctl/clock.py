"""Clocks: the monotonic clock the runtime runs on, and a controllable one for tests.

``Clock.now()`` is monotonic seconds; ``await clock.sleep_until(t)`` returns once ``now() >= t``.
``FakeClock`` only moves when a test calls ``advance``/``set``: sleepers whose deadline has come are
woken in deadline order, so a test runs seconds of runtime logic in microseconds, deterministically.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep_until(self, t: float) -> None: ...


class MonotonicClock:
    """``time.monotonic``; ``sleep_until`` sleeps on the event loop (its timer rounds up to ~1 ms: the
    servo tick uses ``harmowam_ctl.metronome`` where that matters)."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep_until(self, t: float) -> None:
        delay = t - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class FakeClock:
    """A clock that moves only when told. ``sleep_until`` suspends until ``advance``/``set`` reaches
    the deadline (a deadline already reached returns at once, after yielding to the loop once)."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = float(start)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep_until(self, t: float) -> None:
        if t <= self._now:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (t, next(self._seq), fut))
        await fut

    @property
    def next_deadline(self) -> float | None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)  # cancelled sleepers
        return self._sleepers[0][0] if self._sleepers else None

    def set(self, t: float) -> None:
        if t < self._now:
            raise ValueError(f"a monotonic clock cannot go back ({t} < {self._now})")
        self._now = float(t)
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    def advance(self, dt: float) -> None:
        self.set(self._now + dt)

    async def run_for(self, duration: float, step: float = 0.001) -> None:
        """Advance ``duration`` seconds in ``step`` increments, letting the loop run woken tasks after
        each step (tasks that await real I/O are not waited for)."""
        end = self._now + duration
        while self._now < end - 1e-12:
            self.set(min(end, self._now + step))
            for _ in range(5):
                await asyncio.sleep(0)
