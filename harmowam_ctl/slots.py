"""Latest-value slots: a writer replaces the value, readers see the newest one (or wait for a newer one).

Never a queue: a slow reader skips values, nothing piles up, nothing goes stale behind a backlog.
``Slot`` is for one event loop (``put`` from the loop thread; ``put_threadsafe`` from another thread).
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class Slot(Generic[T]):
    """The newest value with a version counter (0 = nothing yet). ``put`` replaces, ``latest`` peeks."""

    def __init__(self) -> None:
        self._value: T | None = None
        self._version = 0
        self._changed: asyncio.Event | None = None  # made by the first waiter, dropped at the next put

    @property
    def version(self) -> int:
        return self._version

    def latest(self) -> T | None:
        return self._value

    def put(self, value: T) -> int:
        self._value = value
        self._version += 1
        if self._changed is not None:
            self._changed.set()  # waiters of this version wake; later ones wait on a new event
            self._changed = None
        return self._version

    def put_threadsafe(self, loop: asyncio.AbstractEventLoop, value: T) -> None:
        loop.call_soon_threadsafe(self.put, value)

    async def wait_newer(self, version: int) -> tuple[T, int]:
        """The value and its version once the version is above ``version`` (at once when it already is)."""
        while self._version <= version:
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()
        assert self._value is not None
        return self._value, self._version
