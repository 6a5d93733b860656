"""``FrameRing``: camera frames in one shared-memory segment, written by one process, read by another.

Layout: for each view, ``slots`` slots (a small ring); a slot is a 32-byte header (``seq``, ``index``,
``t_capture``, spare) followed by the H x W x 3 uint8 image. The writer puts frame ``index`` into slot
``index % slots`` under a sequence lock: ``seq`` is odd while the slot is being written, and goes up
by 2 per frame. A reader copies the slot and keeps the copy only when ``seq`` was even and unchanged
around the copy (else the writer lapped it: a newer frame is on its way). ``t_capture`` is
``time.monotonic()`` in the writer, which on Linux is the same clock in every process.

The parent process ``create``s the segment (``multiprocessing.shared_memory``; it ``unlink``s it when
done: it owns the name, and Python's resource tracker removes it should the parent die first); the
child ``attach``es by name with a plain ``mmap`` of ``/dev/shm/NAME`` (Linux), so that it registers
nothing with a resource tracker of its own (which would remove the segment when the child exits). Only one process writes. Nothing here blocks: telling the reader that a
frame is there is the caller's business (``hardware.sim.world_process`` sends a few bytes on a pipe).
"""

from __future__ import annotations

import mmap
import os
import secrets
from collections.abc import Sequence
from typing import Any
from multiprocessing import shared_memory

import numpy as np

from hardware.camera import Frame

HEADER_BYTES = 32
DEFAULT_SLOTS = 3
NAME_PREFIX = "harmowam_frames_"


def _slot_bytes(resolution: tuple[int, int]) -> int:
    w, h = resolution
    size = HEADER_BYTES + w * h * 3
    return (size + 63) // 64 * 64  # keep every header 64-byte aligned


class FrameRing:
    """See the module doc. ``views``: names in order; ``resolution``: (width, height)."""

    def __init__(self, name: str, buf: Any, closer: Any, views: Sequence[str],
                 resolution: tuple[int, int], slots: int, owner: shared_memory.SharedMemory | None) -> None:
        self.views = tuple(views)
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.slots = int(slots)
        self._name = name
        self._owner = owner  # the creator's SharedMemory (it unlinks), else None
        self._closer = closer  # what unmaps: the SharedMemory or the mmap
        w, h = self.resolution
        stride = _slot_bytes(self.resolution)
        need = stride * self.slots * len(self.views)
        if len(buf) < need:
            raise ValueError(f"shared memory {name} holds {len(buf)} bytes, the layout needs {need}")
        self._hdr: list[np.ndarray] = []  # per (view, slot): int64[4] view of the header
        self._t: list[np.ndarray] = []  # per (view, slot): float64[1] view of t_capture
        self._img: list[np.ndarray] = []
        for k in range(len(self.views) * self.slots):
            off = k * stride
            self._hdr.append(np.ndarray((4,), np.int64, buf, off))
            self._t.append(np.ndarray((1,), np.float64, buf, off + 16))
            self._img.append(np.ndarray((h, w, 3), np.uint8, buf, off + HEADER_BYTES))

    @classmethod
    def create(cls, views: Sequence[str], resolution: tuple[int, int], slots: int = DEFAULT_SLOTS) -> FrameRing:
        if not views or slots < 2:
            raise ValueError("a frame ring needs at least one view and two slots")
        size = _slot_bytes((int(resolution[0]), int(resolution[1]))) * slots * len(views)
        name = f"{NAME_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
        shm = shared_memory.SharedMemory(name=name, create=True, size=size)
        ring = cls(name, shm.buf, shm, views, resolution, slots, owner=shm)
        for h in ring._hdr:
            h[:] = (0, -1, 0, 0)
        return ring

    @classmethod
    def attach(cls, name: str, views: Sequence[str], resolution: tuple[int, int], slots: int = DEFAULT_SLOTS) -> FrameRing:
        path = f"/dev/shm/{name}"
        fd = os.open(path, os.O_RDWR)
        try:
            mm = mmap.mmap(fd, 0)
        finally:
            os.close(fd)
        return cls(name, mm, mm, views, resolution, slots, owner=None)

    @property
    def name(self) -> str:
        return self._name

    def _k(self, view: int, slot: int) -> int:
        return view * self.slots + slot

    def write(self, view: int, image: np.ndarray, t_capture: float, index: int) -> int:
        """Store frame ``index`` of ``views[view]``; returns the slot used."""
        slot = index % self.slots
        k = self._k(view, slot)
        hdr = self._hdr[k]
        seq = int(hdr[0])
        hdr[0] = seq + 1  # odd: being written
        self._img[k][...] = image
        hdr[1] = index
        self._t[k][0] = t_capture
        hdr[0] = seq + 2
        return slot

    def read(self, view: int, slot: int) -> Frame | None:
        """A copy of the frame in ``slot`` of ``views[view]``, or ``None`` if empty or written meanwhile."""
        k = self._k(view, slot)
        hdr = self._hdr[k]
        s1 = int(hdr[0])
        if s1 & 1 or int(hdr[1]) < 0:
            return None
        image = self._img[k].copy()
        index, t = int(hdr[1]), float(self._t[k][0])
        if int(hdr[0]) != s1:
            return None
        return Frame(image=image, t_capture=t, index=index, camera=self.views[view])

    def newest(self, view: int) -> Frame | None:
        """The newest complete frame of ``views[view]`` in the ring, or ``None``."""
        best: Frame | None = None
        for slot in range(self.slots):
            f = self.read(view, slot)
            if f is not None and (best is None or f.index > best.index):
                best = f
        return best

    def close(self) -> None:
        """Drop this process's mapping; the creator also removes the name. Safe to call twice."""
        closer, self._closer = self._closer, None
        if closer is None:
            return
        self._hdr, self._t, self._img = [], [], []  # the buffer cannot close while views exist
        try:
            closer.close()
        finally:
            if self._owner is not None:
                try:
                    self._owner.unlink()
                except FileNotFoundError:
                    pass
