"""Precise wake-ups for the servo tick.

asyncio's timers wake up to ~1 ms late: the selector's timeout is rounded up to whole milliseconds
(epoll), which alone would use up the 1 ms jitter budget of a 100 Hz tick. ``Metronome`` waits in a
helper thread instead (``time.sleep`` is a nanosleep: tens of microseconds late) and wakes the loop
through ``call_soon_threadsafe``. Under a ``FakeClock`` it simply awaits ``clock.sleep_until``.

``spin_s`` (default ``DEFAULT_SPIN_S``, 0: off): wake the loop that much early and busy-wait the rest
on the loop's own thread, so the hand-over from the helper thread to the loop (a pipe write, the loop's
``epoll`` waking, the scheduler running the loop's thread) happens before the deadline, not after it.
It costs the loop up to ``spin_s`` of CPU per wait. ``harmowam bench loop --spin-ms`` measures it.
"""

from __future__ import annotations

import asyncio
import threading
import time

from harmowam_ctl.clock import Clock, MonotonicClock

DEFAULT_SPIN_S = 0.0  # module doc; a benchmark may change it before building a runtime


class Metronome:
    def __init__(self, clock: Clock, spin_s: float | None = None) -> None:
        self.clock = clock
        self.spin_s = DEFAULT_SPIN_S if spin_s is None else float(spin_s)
        self._real = isinstance(clock, MonotonicClock)
        self._cv = threading.Condition()
        self._job: tuple[float, asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self.rt_priority: int | None = None  # set before the first wait: its thread asks for SCHED_FIFO
        self.rt_refused: str | None = None  # why it was not granted

    async def sleep_until(self, t: float) -> None:
        if not self._real:
            await self.clock.sleep_until(t)
            return
        if t - time.monotonic() <= 0:
            await asyncio.sleep(0)
            return
        if self.spin_s > 0:
            if t - self.spin_s - time.monotonic() > 0:
                await self._wait(t - self.spin_s)
            while time.monotonic() < t:  # the last stretch on the loop's own thread (module doc)
                pass
            return
        await self._wait(t)

    async def _wait(self, t: float) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._cv:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="metronome", daemon=True)
                self._thread.start()
            self._job = (t, loop, fut)
            self._cv.notify()
        try:
            await fut
        finally:
            with self._cv:
                if self._job is not None and self._job[2] is fut:
                    self._job = None
                    self._cv.notify()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def _run(self) -> None:
        if self.rt_priority:
            from hardware.realtime import set_realtime

            self.rt_refused = set_realtime(self.rt_priority)
        while True:
            with self._cv:
                while self._job is None and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                t, loop, fut = self._job  # type: ignore[misc]
                delay = t - time.monotonic()
                if delay > 0.002:  # coarse part: interruptible, so a cancelled wait frees the thread
                    self._cv.wait(delay - 0.002)
                    continue  # re-check: the job may have been cancelled or replaced
                self._job = None
            while (delay := t - time.monotonic()) > 0:
                time.sleep(delay)
            if not fut.done():
                loop.call_soon_threadsafe(_wake, fut)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
