"""The one I/O thread of a bus, and how a result gets back to the event loop.

Jobs run strictly one after another, in submission order, so a transaction is never interleaved
with another on the wire. A job whose awaiting task was cancelled still runs to its end (stopping
mid-transaction would leave a reply on the wire); its result is dropped.

Two hand-offs are implemented so they can be measured against each other (see ``handoff_round_trip``
in tests/hardware/bus/bench_cycle.py):

- ``"direct"`` (default): a ``queue.SimpleQueue`` feeds the thread, which resolves an asyncio
  future with ``loop.call_soon_threadsafe``. One future and one queue item per call.
- ``"executor"``: ``loop.run_in_executor`` on a one-thread ``ThreadPoolExecutor`` (a
  concurrent.futures.Future wrapped into an asyncio one, plus the executor's bookkeeping).

Measured on the 2-core dev VM (2026-11): a no-op job round trip took 25-58 us direct vs 34-71 us
with the executor, and the SO-101 control cycle on the paced emulator 0.98-1.00 ms direct vs
1.00-1.07 ms with the executor; hence "direct".
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

Handoff = Literal["direct", "executor"]




class Worker:
    def __init__(self, name: str, handoff: Handoff = "direct") -> None:
        if handoff not in ("direct", "executor"):
            raise ValueError(f"handoff must be 'direct' or 'executor', not {handoff!r}")
        self.name = name
        self.handoff = handoff
        self._queue: queue.SimpleQueue | None = None
        self._thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._in_flight = 0  # jobs submitted whose result has not reached the loop yet (direct hand-off)

    @property
    def idle(self) -> bool:
        """True when the thread has no job queued or running (so the port is free for the loop thread).

        Only meaningful on the event loop's thread: the count drops when the result is handed back there.
        """
        return self._executor is None and self._queue is not None and self._in_flight == 0

    def _set_result(self, fut: asyncio.Future, result: Any) -> None:
        self._in_flight -= 1
        if not fut.done():
            fut.set_result(result)

    def _set_exception(self, fut: asyncio.Future, exc: BaseException) -> None:
        self._in_flight -= 1
        if not fut.done():
            fut.set_exception(exc)

    @property
    def native_id(self) -> int | None:
        """The OS thread id of the I/O thread (direct hand-off, once started), e.g. for its CPU priority."""
        t = self._thread
        return t.native_id if t is not None else None

    @property
    def running(self) -> bool:
        return self._thread is not None or self._executor is not None

    def start(self) -> None:
        if self.running:
            return
        if self.handoff == "executor":
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        else:
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._run, args=(self._queue,), name=self.name, daemon=True)
            self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        """Run ``fn(*args)`` on the thread; the returned future resolves on the calling loop."""
        loop = asyncio.get_running_loop()
        if self._executor is not None:
            return loop.run_in_executor(self._executor, fn, *args)
        if self._queue is None:
            raise RuntimeError("the bus is not open: call `await bus.open()` first")
        fut = loop.create_future()
        self._in_flight += 1
        self._queue.put((fn, args, fut, loop))
        return fut

    def stop(self) -> None:
        """Ask the thread to finish after the jobs already queued. Does not wait."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        if self._queue is not None:
            self._queue.put(None)
            self._queue = None
        self._thread = None

    def _run(self, jobs: queue.SimpleQueue) -> None:
        get = jobs.get
        while True:
            item = get()
            if item is None:
                return
            fn, args, fut, loop = item
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the awaiting task, which re-raises it
                callback, value = self._set_exception, exc
            else:
                callback, value = self._set_result, result
            with contextlib.suppress(RuntimeError):  # the loop closed while the job ran: nobody waits
                loop.call_soon_threadsafe(callback, fut, value)
