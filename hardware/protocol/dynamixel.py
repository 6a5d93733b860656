"""Dynamixel Protocol 2.0 packet codec (XL330 / XL430 on the Koch arms).

Frames::

    instruction:  FF FF FD 00 | ID | LEN_L LEN_H | INST | P1 .. PN | CRC_L CRC_H   LEN = N + 3
    status:       FF FF FD 00 | ID | LEN_L LEN_H | 55 | ERR | P1 .. PN | CRC_L CRC_H  LEN = N + 4

LEN counts the bytes after byte stuffing: inside INST..params every ``FF FF FD`` is followed by an
extra ``FD``. The CRC (CRC-16/BUYPASS: poly 0x8005, init 0) covers header to last parameter, as sent.
Control-table values are little-endian, signed ones two's complement. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import IntEnum

from hardware.protocol.common import MAX_BUFFER, Packet, StreamDecoder

HEADER = b"\xff\xff\xfd\x00"
BROADCAST_ID = 0xFE
MAX_ID = 0xFC
STATUS = 0x55
MAX_LENGTH = 1024  # LEN bound used by the decoders (the SDK's buffers are 4096; replies here are short)
STATUS_OVERHEAD = 11  # header 4, ID, LEN 2, 0x55, ERR, CRC 2


class Instruction(IntEnum):
    PING = 0x01
    READ = 0x02
    WRITE = 0x03
    REG_WRITE = 0x04
    ACTION = 0x05
    FACTORY_RESET = 0x06
    REBOOT = 0x08
    CLEAR = 0x10
    SYNC_READ = 0x82
    SYNC_WRITE = 0x83
    BULK_READ = 0x92
    BULK_WRITE = 0x93


class ResultError(IntEnum):
    """Bits 0..6 of the status ERR byte: why an instruction was refused."""

    NONE = 0x00
    RESULT_FAIL = 0x01
    INSTRUCTION = 0x02
    CRC = 0x03
    DATA_RANGE = 0x04
    DATA_LENGTH = 0x05
    DATA_LIMIT = 0x06
    ACCESS = 0x07


ALERT = 0x80  # ERR bit 7: a hardware error is latched; read Hardware_Error_Status (70)


def _make_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _make_table()


def crc16(data: bytes | bytearray | memoryview) -> int:
    crc = 0
    for b in data:
        crc = ((crc << 8) ^ _CRC_TABLE[((crc >> 8) ^ b) & 0xFF]) & 0xFFFF
    return crc


def stuff(payload: bytes) -> bytes:
    """Insert an ``FD`` after every ``FF FF FD`` in INST..params."""
    if b"\xff\xff\xfd" not in payload:
        return payload
    out = bytearray()
    for b in payload:
        out.append(b)
        if b == 0xFD and len(out) >= 3 and out[-3] == 0xFF and out[-2] == 0xFF:
            out.append(0xFD)
    return bytes(out)


def unstuff(payload: bytes) -> bytes:
    """Remove the ``FD`` that follows every ``FF FF FD`` (the inverse of ``stuff``)."""
    return payload.replace(b"\xff\xff\xfd\xfd", b"\xff\xff\xfd")


def _frame(servo_id: int, payload: bytes) -> bytes:
    if not 0 <= servo_id <= BROADCAST_ID or servo_id == 0xFD:
        raise ValueError(f"servo id {servo_id} is outside 0..{MAX_ID} and not broadcast ({BROADCAST_ID})")
    body = stuff(payload)
    length = len(body) + 2
    if length > 0xFFFF:
        raise ValueError("packet too long")
    frame = HEADER + bytes((servo_id,)) + length.to_bytes(2, "little") + body
    return frame + crc16(frame).to_bytes(2, "little")


def encode_instruction(servo_id: int, instruction: int, params: bytes = b"") -> bytes:
    return _frame(servo_id, bytes((int(instruction),)) + bytes(params))


def encode_status(servo_id: int, error: int, data: bytes = b"") -> bytes:
    if not 0 <= error <= 0xFF:
        raise ValueError(f"status error byte {error} is outside 0..255")
    return _frame(servo_id, bytes((STATUS, error)) + bytes(data))


# --- value encoding -------------------------------------------------------------------------------


def encode_value(value: int, size: int, signed: bool = False) -> bytes:
    """Little-endian, two's complement when ``signed``."""
    try:
        return int(value).to_bytes(size, "little", signed=signed)
    except OverflowError:
        kind = "signed" if signed else "unsigned"
        raise ValueError(f"value {value} does not fit in {size} {kind} byte(s)") from None


def decode_value(data: bytes | bytearray | memoryview, signed: bool = False) -> int:
    return int.from_bytes(bytes(data), "little", signed=signed)


def _u16(v: int) -> bytes:
    """Address or length field. ValueError (like every other bad argument here), not OverflowError."""
    v = int(v)
    if not 0 <= v <= 0xFFFF:
        raise ValueError(f"{v} does not fit in an unsigned 16-bit field")
    return v.to_bytes(2, "little")


# --- instruction builders -------------------------------------------------------------------------


def ping(servo_id: int) -> bytes:
    return encode_instruction(servo_id, Instruction.PING)


def read(servo_id: int, address: int, size: int) -> bytes:
    return encode_instruction(servo_id, Instruction.READ, _u16(address) + _u16(size))


def write(servo_id: int, address: int, data: bytes) -> bytes:
    return encode_instruction(servo_id, Instruction.WRITE, _u16(address) + bytes(data))


def reg_write(servo_id: int, address: int, data: bytes) -> bytes:
    return encode_instruction(servo_id, Instruction.REG_WRITE, _u16(address) + bytes(data))


def action(servo_id: int = BROADCAST_ID) -> bytes:
    return encode_instruction(servo_id, Instruction.ACTION)


def reboot(servo_id: int) -> bytes:
    return encode_instruction(servo_id, Instruction.REBOOT)


def factory_reset(servo_id: int, option: int = 0x02) -> bytes:
    return encode_instruction(servo_id, Instruction.FACTORY_RESET, bytes((option,)))


def sync_read(address: int, size: int, servo_ids: Iterable[int]) -> bytes:
    return encode_instruction(
        BROADCAST_ID, Instruction.SYNC_READ, _u16(address) + _u16(size) + bytes(tuple(servo_ids))
    )


def sync_write(address: int, size: int, data: Mapping[int, bytes]) -> bytes:
    params = bytearray(_u16(address) + _u16(size))
    for servo_id, value in data.items():
        if len(value) != size:
            raise ValueError(f"sync write to id {servo_id}: {len(value)} bytes given, {size} expected")
        params.append(servo_id)
        params += value
    return encode_instruction(BROADCAST_ID, Instruction.SYNC_WRITE, bytes(params))


def bulk_read(requests: Iterable[tuple[int, int, int]]) -> bytes:
    """``requests``: (servo id, address, size) triples."""
    params = bytearray()
    for servo_id, address, size in requests:
        params.append(servo_id)
        params += _u16(address) + _u16(size)
    return encode_instruction(BROADCAST_ID, Instruction.BULK_READ, bytes(params))


def status_length(data_size: int) -> int:
    """Bytes on the wire of one status packet with ``data_size`` data bytes (before any stuffing)."""
    return STATUS_OVERHEAD + data_size


# --- decoding -------------------------------------------------------------------------------------


class Decoder(StreamDecoder):
    """Incremental Protocol 2.0 decoder.

    ``status=True`` decodes servo replies (``Packet.code`` is the ERR byte and ``params`` the data);
    ``status=False`` decodes instructions (``code`` is the instruction). ``feed`` never raises.
    ``max_length`` bounds LEN (also when assigned later); it is capped so that a whole frame
    (7 + LEN bytes) fits in the buffer (``MAX_BUFFER``): a longer frame fed in pieces would be cut
    by the buffer trim and lost.
    """

    def __init__(self, *, status: bool, max_length: int = MAX_LENGTH) -> None:
        super().__init__()
        self.status = status
        self.max_length = max_length

    @property
    def max_length(self) -> int:
        return self._max_length

    @max_length.setter
    def max_length(self, value: int) -> None:
        self._max_length = max(3, min(int(value), MAX_BUFFER - 7))

    def _try_decode(self) -> Packet | None | int:
        buf = self._buf
        if len(buf) < 3:
            return None
        if buf[0] != 0xFF or buf[1] != 0xFF or buf[2] != 0xFD:
            nxt = buf.find(b"\xff", 1)
            if nxt < 0:
                return len(buf)
            return nxt if nxt > 0 else 1
        if len(buf) < 7:
            return None
        servo_id = buf[4]
        length = buf[5] | (buf[6] << 8)
        min_length = 4 if self.status else 3
        if buf[3] == 0xFD or servo_id in (0xFD, 0xFF) or length < min_length or length > self.max_length:
            return 1
        if self.status and len(buf) >= 8 and buf[7] != STATUS:
            return 1
        total = 7 + length
        if len(buf) < total:
            return None
        received = int.from_bytes(buf[total - 2 : total], "little")
        if received != crc16(memoryview(buf)[: total - 2]):
            self.checksum_errors += 1
            return 1
        payload = unstuff(bytes(buf[7 : total - 2]))
        if self.status:
            packet = Packet(servo_id, payload[1], payload[2:], len(buf) - total)
        else:
            packet = Packet(servo_id, payload[0], payload[1:], len(buf) - total)
        del buf[:total]
        return packet
