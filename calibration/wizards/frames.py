"""How a servo turns its mechanical position into ``Present_Position``, and the homing arithmetic.

``Frame(family, homing_offset, drive_mode)`` is what a servo holds in EEPROM:

* Feetech STS3215 (single-turn feedback, Phase bit 4 = 0): ``present = (actual - offset) mod 4096``;
  ``offset`` is sign-magnitude with sign bit 11, so it can only be -2047..2047. No drive mode.
* Dynamixel X series: ``present = d * actual + offset`` with ``d = -1`` when Drive_Mode bit 0 is set
  (the offset's sign is not reversed); no wrap.

Homing puts the pose the user holds at ``CENTER_TICK`` (2048). The Feetech offset is computed modulo
one turn and wrapped into the register's range, so it can never overflow (LeRobot's "Magnitude 2048
exceeds 2047" crash): the one pose that would need -2048 (= +2048) gets -2047 and reads 2047 instead
of 2048 (one tick, 0.09 degrees). ``shifted`` re-centres a frame by ``s`` ticks the same way.

``RangeTracker`` keeps the min/max of a joint's readings *unwrapped*: each new reading moves the
tracked position by the shortest way round (at most half a turn between two samples, far more than a
hand moves a joint in one sample period), so a reading that crosses 4095 -> 0 continues the range
instead of corrupting it.
"""

from __future__ import annotations

from dataclasses import dataclass

from calibration.model import CENTER_TICK, HOMING_OFFSET_LIMIT, TICKS_PER_TURN
from hardware.tables import Family

HALF_TURN = TICKS_PER_TURN // 2


def wrap_half(ticks: int) -> int:
    """``ticks`` modulo one turn, into -2048..2047."""
    return (ticks + HALF_TURN) % TICKS_PER_TURN - HALF_TURN


@dataclass(frozen=True, slots=True)
class Frame:
    family: Family
    homing_offset: int = 0
    drive_mode: int = 0

    def __post_init__(self) -> None:
        limit = HOMING_OFFSET_LIMIT[self.family]
        if abs(self.homing_offset) > limit:
            raise ValueError(f"homing offset {self.homing_offset} is outside -{limit}..{limit}")
        if self.family is Family.FEETECH and self.drive_mode:
            raise ValueError("Feetech servos have no drive mode")

    @property
    def _d(self) -> int:
        return -1 if self.drive_mode & 1 else 1

    def actual(self, present: int) -> int:
        """The mechanical position behind a reading (Feetech: modulo one turn, 0..4095)."""
        if self.family is Family.FEETECH:
            return (present + self.homing_offset) % TICKS_PER_TURN
        return self._d * (present - self.homing_offset)

    def present(self, actual: int) -> int:
        """What the servo reads at mechanical position ``actual``."""
        if self.family is Family.FEETECH:
            return (actual - self.homing_offset) % TICKS_PER_TURN
        return self._d * actual + self.homing_offset

    def convert(self, present: int, to: Frame) -> int:
        """A reading taken in this frame, as the servo would read it in frame ``to``."""
        return to.present(self.actual(present))


def home(family: Family, actual: int, drive_mode: int = 0, target: int = CENTER_TICK) -> Frame:
    """The frame in which mechanical position ``actual`` reads ``target`` (Feetech: ``target - 1`` in the
    one case where the exact offset does not fit the register; see the module doc)."""
    if family is Family.FEETECH:
        offset = wrap_half(actual - target)
        return Frame(family, max(offset, -HOMING_OFFSET_LIMIT[family]), 0)
    d = -1 if drive_mode & 1 else 1
    return Frame(family, target - d * actual, drive_mode)


def shifted(frame: Frame, s: int) -> tuple[Frame, int]:
    """A frame whose readings are ``s'`` ticks lower than ``frame``'s, and ``s'`` (== ``s``, or one
    tick off for Feetech when the exact offset, +-2048, does not fit). ``s`` must be within half a turn
    for Feetech; Dynamixel offsets must stay within the register (ValueError otherwise)."""
    if frame.family is Family.FEETECH:
        if not -HALF_TURN < s < HALF_TURN:
            raise ValueError(f"a Feetech frame can shift by less than half a turn, not {s}")
        offset = wrap_half(frame.homing_offset + s)
        if offset == -HALF_TURN:
            offset = -HOMING_OFFSET_LIMIT[frame.family]
        done = wrap_half(offset - frame.homing_offset)
        return Frame(frame.family, offset, 0), done
    return Frame(frame.family, frame.homing_offset - s, frame.drive_mode), s


class RangeTracker:
    """Unwrapped min/max of one joint's readings (see the module doc)."""

    def __init__(self, first: int) -> None:
        self.reset(first)

    def reset(self, first: int) -> None:
        self.last = int(first)
        self.position = int(first)  # unwrapped
        self.lo = self.hi = self.position

    def update(self, reading: int) -> int:
        """Add a reading; return the unwrapped position."""
        self.position += wrap_half(int(reading) - self.last)
        self.last = int(reading)
        self.lo = min(self.lo, self.position)
        self.hi = max(self.hi, self.position)
        return self.position

    @property
    def span(self) -> int:
        return self.hi - self.lo
