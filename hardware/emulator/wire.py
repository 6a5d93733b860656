"""The half-duplex wire as one sequential resource, and the client's baud rate as the pty reports it.

A pseudo-terminal moves bytes instantly and ignores the baud rate, so the emulator keeps wire time
itself. Each byte takes 10 bit-times (8N1). A request that arrives at ``t`` is put on the wire as a
real adapter would send it: starting at ``t`` or when the previous traffic ends, whichever is later,
for ``len * 10 / baud`` seconds. Each reply starts after its servo's Return_Delay_Time counted from the
end of the previous traffic (the request, or the previous reply of a SYNC/BULK READ) and is handed to
the pty only once its last byte would have left the wire. So a client's round trip is never shorter
than the real wire time; the pty and scheduling add a few tens of microseconds on top.
"""

from __future__ import annotations

import fcntl
import heapq
import itertools
import struct
import termios
from dataclasses import dataclass, field

BITS_PER_BYTE = 10

# struct termios2 (asm-generic): 4 flags, c_line, c_cc[19], c_ispeed, c_ospeed -> 44 bytes.
_TERMIOS2_SIZE = 44
_TCGETS2 = 0x80000000 | (_TERMIOS2_SIZE << 16) | (ord("T") << 8) | 0x2A
_ISPEED_OFFSET = 36
_SPEEDS = {getattr(termios, n): int(n[1:]) for n in dir(termios) if n[:1] == "B" and n[1:].isdigit()}


def client_baud(master_fd: int) -> int | None:
    """The baud rate the client set on the pty's slave side (input speed), None if unknown.

    ``TCGETS2`` gives the exact rate, custom rates included (pyserial sets 250000 or 128000 with
    BOTHER); ``tcgetattr`` is the fallback and knows only the standard B-constants.
    """
    buf = bytearray(_TERMIOS2_SIZE)
    try:
        fcntl.ioctl(master_fd, _TCGETS2, buf)
        speed = struct.unpack_from("I", buf, _ISPEED_OFFSET)[0]
        if speed:
            return int(speed)
    except OSError:
        pass
    try:
        return _SPEEDS.get(termios.tcgetattr(master_fd)[4])
    except termios.error:
        return None


def wire_time(n_bytes: int, baud: int) -> float:
    return n_bytes * BITS_PER_BYTE / baud


@dataclass(order=True)
class Outgoing:
    due: float
    seq: int
    frame: bytes = field(compare=False)


class Wire:
    """Books wire time and holds the replies until they are due."""

    def __init__(self) -> None:
        self.free_at = 0.0  # when the last booked traffic leaves the wire
        self._queue: list[Outgoing] = []
        self._seq = itertools.count()

    def request(self, arrived: float, n_bytes: int, baud: int) -> float:
        """Book a request that reached us at ``arrived``; return when its last byte is on the wire."""
        end = max(arrived, self.free_at) + wire_time(n_bytes, baud)
        self.free_at = end
        return end

    def reply(self, delay_s: float, n_bytes: int, baud: int) -> float:
        """Book a reply after the current traffic plus ``delay_s``; return when its last byte is out."""
        end = self.free_at + delay_s + wire_time(n_bytes, baud)
        self.free_at = end
        return end

    def send_at(self, due: float, frame: bytes) -> None:
        heapq.heappush(self._queue, Outgoing(due, next(self._seq), frame))

    @property
    def next_due(self) -> float | None:
        return self._queue[0].due if self._queue else None

    def pop_due(self, now: float) -> Outgoing | None:
        if self._queue and self._queue[0].due <= now:
            return heapq.heappop(self._queue)
        return None

    def clear(self) -> None:
        self._queue.clear()
        self.free_at = 0.0
