"""Feetech SCS/STS packet codec (the protocol LeRobot calls "protocol 0"; STS3215 servos).

Frames, host to servo and servo to host::

    FF FF | ID | LEN | INSTR or ERR | P1 .. PN | CHK      LEN = N + 2
    CHK = ~(ID + LEN + INSTR/ERR + P1 + .. + PN) & 0xFF

Multi-byte fields are little-endian (STS/SMS series); signed fields are sign-magnitude with a
per-field sign bit (see ``hardware.tables``). Pure functions and a byte-incremental decoder: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import IntEnum, IntFlag

from hardware.protocol.common import Packet, StreamDecoder

HEADER = b"\xff\xff"
BROADCAST_ID = 0xFE
MAX_ID = 0xFD  # highest unicast ID a servo can hold
MAX_LENGTH = 250  # largest LEN byte the vendor SDK accepts
STATUS_OVERHEAD = 6  # FF FF ID LEN ERR .. CHK


class Instruction(IntEnum):
    PING = 0x01
    READ = 0x02
    WRITE = 0x03
    REG_WRITE = 0x04
    ACTION = 0x05
    RESET = 0x0A
    SYNC_READ = 0x82
    SYNC_WRITE = 0x83


class StatusError(IntFlag):
    """Bits of the status packet's ERR byte (the same layout as the Status register, address 65)."""

    VOLTAGE = 0x01
    SENSOR = 0x02
    OVERHEAT = 0x04
    OVERCURRENT = 0x08
    OVERLOAD = 0x20


def checksum(body: bytes | bytearray | memoryview) -> int:
    """Checksum over ID, LEN, INSTR/ERR and parameters (everything between header and CHK)."""
    return ~sum(body) & 0xFF


def _frame(servo_id: int, code: int, params: bytes) -> bytes:
    if not 0 <= servo_id <= BROADCAST_ID:
        raise ValueError(f"servo id {servo_id} is outside 0..{BROADCAST_ID}")
    if len(params) + 2 > MAX_LENGTH:
        raise ValueError(f"packet too long: {len(params)} parameter bytes (at most {MAX_LENGTH - 2})")
    body = bytes((servo_id, len(params) + 2, code)) + params
    return HEADER + body + bytes((checksum(body),))


def encode_instruction(servo_id: int, instruction: int, params: bytes = b"") -> bytes:
    return _frame(servo_id, int(instruction), bytes(params))


def encode_status(servo_id: int, error: int, data: bytes = b"") -> bytes:
    if not 0 <= error <= 0x7F:
        raise ValueError(f"status error byte {error:#x} is outside 0..0x7f")
    return _frame(servo_id, error, bytes(data))


# --- value encoding -------------------------------------------------------------------------------


def encode_value(value: int, size: int, sign_bit: int | None = None) -> bytes:
    """Encode an integer register value: sign-magnitude when the field has a sign bit, little-endian."""
    if sign_bit is not None:
        magnitude = abs(value)
        if magnitude >= 1 << sign_bit:
            raise ValueError(f"magnitude {magnitude} does not fit below sign bit {sign_bit}")
        raw = magnitude | (1 << sign_bit) if value < 0 else magnitude
    else:
        if value < 0:
            raise ValueError(f"value {value} is negative but the field is unsigned")
        raw = value
    if raw >= 1 << (8 * size):
        raise ValueError(f"value {value} does not fit in {size} byte(s)")
    return raw.to_bytes(size, "little")


def decode_value(data: bytes | bytearray | memoryview, sign_bit: int | None = None) -> int:
    raw = int.from_bytes(bytes(data), "little")
    if sign_bit is not None and raw & (1 << sign_bit):
        return -(raw & ((1 << sign_bit) - 1))
    return raw


# --- instruction builders -------------------------------------------------------------------------


def ping(servo_id: int) -> bytes:
    return encode_instruction(servo_id, Instruction.PING)


def read(servo_id: int, address: int, size: int) -> bytes:
    return encode_instruction(servo_id, Instruction.READ, bytes((address, size)))


def write(servo_id: int, address: int, data: bytes) -> bytes:
    return encode_instruction(servo_id, Instruction.WRITE, bytes((address,)) + bytes(data))


def reg_write(servo_id: int, address: int, data: bytes) -> bytes:
    return encode_instruction(servo_id, Instruction.REG_WRITE, bytes((address,)) + bytes(data))


def action(servo_id: int = BROADCAST_ID) -> bytes:
    return encode_instruction(servo_id, Instruction.ACTION)


def reset(servo_id: int) -> bytes:
    return encode_instruction(servo_id, Instruction.RESET)


def sync_read(address: int, size: int, servo_ids: Iterable[int]) -> bytes:
    return encode_instruction(BROADCAST_ID, Instruction.SYNC_READ, bytes((address, size, *servo_ids)))


def sync_write(address: int, size: int, data: Mapping[int, bytes]) -> bytes:
    params = bytearray((address, size))
    for servo_id, value in data.items():
        if len(value) != size:
            raise ValueError(f"sync write to id {servo_id}: {len(value)} bytes given, {size} expected")
        params.append(servo_id)
        params += value
    return encode_instruction(BROADCAST_ID, Instruction.SYNC_WRITE, bytes(params))


def status_length(data_size: int) -> int:
    """Bytes on the wire of one status packet carrying ``data_size`` data bytes."""
    return STATUS_OVERHEAD + data_size


# --- decoding -------------------------------------------------------------------------------------


class Decoder(StreamDecoder):
    """Incremental decoder of Feetech frames.

    ``status=True`` decodes servo replies (the ERR byte must be <= 0x7F, as the vendor SDK checks);
    ``status=False`` decodes host instructions (what the emulator receives). ``max_length`` bounds the
    LEN byte; a bus that knows the reply it waits for passes the exact length so that a corrupt LEN
    can never make it wait for bytes that will not come. ``feed`` never raises: bytes that cannot
    start a valid frame are dropped one at a time and the search for ``FF FF`` resumes.
    """

    def __init__(self, *, status: bool, max_length: int = MAX_LENGTH) -> None:
        super().__init__()
        self.status = status
        self.max_length = max(2, min(max_length, MAX_LENGTH))

    def _try_decode(self) -> Packet | None | int:
        buf = self._buf
        if len(buf) < 2:
            return None
        if buf[0] != 0xFF or buf[1] != 0xFF:
            # jump to the next possible header start
            nxt = buf.find(b"\xff", 1)
            return nxt if nxt > 0 else len(buf)
        if len(buf) < 4:
            return None
        servo_id, length = buf[2], buf[3]
        if servo_id > BROADCAST_ID or length < 2 or length > self.max_length:
            return 1
        total = length + 4
        if self.status and len(buf) >= 5 and buf[4] > 0x7F:
            return 1
        if len(buf) < total:
            return None
        if buf[total - 1] != checksum(memoryview(buf)[2 : total - 1]):
            self.checksum_errors += 1
            return 1
        packet = Packet(servo_id, buf[4], bytes(buf[5 : total - 1]), len(buf) - total)
        del buf[:total]
        return packet
