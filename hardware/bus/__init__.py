"""Async servo buses over USB serial: one worker thread per port, typed errors, timestamps, stats.

    from hardware.bus import open_bus
    async with open_bus(arms.SO101, "/dev/ttyACM0") as bus:
        await bus.verify(arms.SO101)              # every motor there, with the right model
        reading = await bus.sync_read("Present_Position", [1, 2, 3, 4, 5, 6])
        await bus.sync_write("Goal_Position", {1: 2048, 2: 2048})

``FeetechBus(port, baud=1_000_000, *, retries=2, latency_s=None, profile=None, return_delay_s=500e-6,
handoff="direct")``; ``DynamixelBus`` the same. ``profile`` names motors in errors ("id 3
(elbow_flex)"); ``return_delay_s`` is the servos' reply delay the timeouts assume (factory 500 us);
``latency_s`` the margin on top of the wire time (default 4 ms, plus an FTDI latency timer).

Values are decoded integers (Feetech sign-magnitude, Dynamixel two's complement, per register); a
register is a table name or ``(address, size)`` (raw unsigned unless it matches a named register).
Every reading carries ``t`` (time.monotonic: when the request finished on the wire) and the servo
error bits (``ServoFault``). Errors come from ``hardware.errors``; ``PortDisconnectedError`` (here)
when an open port stops working. ``bus.stats`` counts transactions, retries, timeouts, corrupt,
missing and stale replies; ``bus.faults`` holds the latest error bits per id. ``close()`` never
changes servo state (torque stays as it is).
"""

from __future__ import annotations

from typing import Any

from hardware.arms import ArmProfile
from hardware.tables import Family
from hardware.bus.base import ServoBus
from hardware.bus.dynamixel import DynamixelBus
from hardware.bus.feetech import FeetechBus
from hardware.bus.port import PortDisconnectedError
from hardware.bus.types import BusStats, PingReply, Reading, ServoFault, ServoStats, SyncReading

__all__ = [
    "BusStats",
    "DynamixelBus",
    "FeetechBus",
    "PingReply",
    "PortDisconnectedError",
    "Reading",
    "ServoBus",
    "ServoFault",
    "ServoStats",
    "SyncReading",
    "open_bus",
]


def open_bus(profile: ArmProfile, port: str, baud: int | None = None, **kw: Any) -> FeetechBus | DynamixelBus:
    """The bus class for ``profile``'s family, at ``profile.baud`` unless told (not opened yet)."""
    cls = FeetechBus if profile.family is Family.FEETECH else DynamixelBus
    kw.setdefault("profile", profile)
    return cls(port, profile.baud if baud is None else baud, **kw)
