"""What a bus hands back: readings with their timestamp and the servo error bits seen with them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntFlag


class ServoFault(IntFlag):
    """Servo error bits, one flag set for both families.

    Feetech: the status packet's ERR byte (VOLTAGE, SENSOR, OVERHEAT, OVERCURRENT, OVERLOAD keep
    their Feetech bit values). Dynamixel: ERR bit 7 becomes ALERT; the bus then reads
    Hardware_Error_Status (70) once and adds VOLTAGE, OVERHEAT, ENCODER, ELECTRICAL_SHOCK, OVERLOAD.
    """

    NONE = 0
    VOLTAGE = 0x01
    SENSOR = 0x02
    OVERHEAT = 0x04
    OVERCURRENT = 0x08
    OVERLOAD = 0x20
    ELECTRICAL_SHOCK = 0x40
    ENCODER = 0x80
    ALERT = 0x100


@dataclass(frozen=True, slots=True)
class Reading:
    """One register of one servo.

    ``t`` (time.monotonic) estimates when the servo sampled it: when the request finished on the
    wire (write() returned + request bytes x 10 bit-times), never after the reply's arrival.
    """

    value: int
    t: float
    faults: ServoFault = ServoFault.NONE


@dataclass(frozen=True, slots=True)
class SyncReading:
    """One register of several servos, ``t`` as in Reading (a retry keeps the first try's ``t``).

    ``faults`` holds only the ids with a fault bit set.
    """

    values: dict[int, int]
    t: float
    faults: dict[int, ServoFault] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PingReply:
    id: int
    model_number: int
    firmware: tuple[int, int]  # Feetech (major, minor); Dynamixel (version, 0), as tables.ServoModel
    t: float
    faults: ServoFault = ServoFault.NONE


@dataclass(slots=True)
class ServoStats:
    replies: int = 0  # valid status packets received
    missing: int = 0  # expected status packets that never came within a try
    corrupt: int = 0  # expected status packets that came garbled


@dataclass(slots=True)
class BusStats:
    """Counters of one bus since it was created. ``bus.stats`` returns a copy."""

    transactions: int = 0  # operations asked of the bus (read, sync_read, ...), not counting retries
    retries: int = 0  # extra tries sent on the wire
    timeouts: int = 0  # tries that ended at their deadline with replies still missing
    corrupt_replies: int = 0
    missing_replies: int = 0
    recovered: int = 0  # operations that failed a try and then succeeded
    stale_replies: int = 0  # late replies to an earlier try, recognised and dropped
    bytes_tx: int = 0
    bytes_rx: int = 0
    per_servo: dict[int, ServoStats] = field(default_factory=dict)

    def servo(self, servo_id: int) -> ServoStats:
        stats = self.per_servo.get(servo_id)
        if stats is None:
            stats = self.per_servo[servo_id] = ServoStats()
        return stats

    def copy(self) -> BusStats:
        out = BusStats(
            self.transactions, self.retries, self.timeouts, self.corrupt_replies, self.missing_replies,
            self.recovered, self.stale_replies, self.bytes_tx, self.bytes_rx,
        )
        out.per_servo = {i: ServoStats(s.replies, s.missing, s.corrupt) for i, s in self.per_servo.items()}
        return out
