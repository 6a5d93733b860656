"""Dynamixel Protocol 2.0 codec (hardware.protocol.dynamixel) against the 13 verified e-Manual frames of
shared/reference/servo-protocols.md §2.7 and the CRC vectors of §4, plus byte stuffing and decoder edge cases.

Expected bytes are written out by hand; where a CRC has to be computed for a new frame, the test uses the
bitwise CRC-16/BUYPASS of §2.3 (``crc_ref``), an implementation independent of the table-driven one under test.
"""

from __future__ import annotations

import random

import pytest

from hardware.protocol import dynamixel as dx
from hardware.protocol.common import MAX_BUFFER, Packet
from hardware.tables import XL330_M288


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def crc_ref(data: bytes) -> int:
    """§2.3, verbatim algorithm: poly 0x8005, init 0, no reflection, no final XOR."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def with_crc(without_crc: bytes) -> bytes:
    return without_crc + crc_ref(without_crc).to_bytes(2, "little")


def u32(value: int) -> bytes:
    return dx.encode_value(value, 4, signed=True)


# --- §2.7: instruction frames --------------------------------------------------------------------

INSTRUCTION_VECTORS = [
    ("Ping id1", lambda: dx.ping(1), "FF FF FD 00 01 03 00 01 19 4E", dx.Instruction.PING),
    ("Ping broadcast", lambda: dx.ping(0xFE), "FF FF FD 00 FE 03 00 01 31 42", dx.Instruction.PING),
    ("Read id1 addr132 len4", lambda: dx.read(1, 132, 4), "FF FF FD 00 01 07 00 02 84 00 04 00 1D 15", dx.Instruction.READ),
    (
        "Write id1 addr116 = 512",
        lambda: dx.write(1, 116, u32(512)),
        "FF FF FD 00 01 09 00 03 74 00 00 02 00 00 CA 89",
        dx.Instruction.WRITE,
    ),
    ("Reboot id1", lambda: dx.reboot(1), "FF FF FD 00 01 03 00 08 2F 4E", dx.Instruction.REBOOT),
    (
        "Clear id1",
        lambda: dx.encode_instruction(1, dx.Instruction.CLEAR, h("01 44 58 4C 22")),
        "FF FF FD 00 01 08 00 10 01 44 58 4C 22 B1 DC",
        dx.Instruction.CLEAR,
    ),
    (
        "Factory reset id1 option 1",
        lambda: dx.factory_reset(1, 0x01),
        "FF FF FD 00 01 04 00 06 01 A1 E6",
        dx.Instruction.FACTORY_RESET,
    ),
    (
        "Sync Read 132/4 ids 1,2",
        lambda: dx.sync_read(132, 4, [1, 2]),
        "FF FF FD 00 FE 09 00 82 84 00 04 00 01 02 CE FA",
        dx.Instruction.SYNC_READ,
    ),
    (
        "Sync Write 116/4 id1=150 id2=170",
        lambda: dx.sync_write(116, 4, {1: u32(150), 2: u32(170)}),
        "FF FF FD 00 FE 11 00 83 74 00 04 00 01 96 00 00 00 02 AA 00 00 00 82 87",
        dx.Instruction.SYNC_WRITE,
    ),
    (
        "Bulk Read id1(144,2) id2(146,1)",
        lambda: dx.bulk_read([(1, 144, 2), (2, 146, 1)]),
        "FF FF FD 00 FE 0D 00 92 01 90 00 02 00 02 92 00 01 00 1A 05",
        dx.Instruction.BULK_READ,
    ),
]
_IDS = [v[0] for v in INSTRUCTION_VECTORS]


@pytest.mark.parametrize(("name", "build", "expected", "instruction"), INSTRUCTION_VECTORS, ids=_IDS)
def test_builder_matches_reference_frame(name, build, expected, instruction):
    assert build().hex(" ").upper() == expected


@pytest.mark.parametrize(("name", "build", "expected", "instruction"), INSTRUCTION_VECTORS, ids=_IDS)
def test_reference_instruction_frame_decodes(name, build, expected, instruction):
    frame = h(expected)
    assert dx.Decoder(status=False).feed(frame) == [Packet(frame[4], int(instruction), frame[8:-2], 0)]


@pytest.mark.parametrize(("name", "build", "expected", "instruction"), INSTRUCTION_VECTORS, ids=_IDS)
def test_reference_frame_crc_matches_independent_crc(name, build, expected, instruction):
    frame = h(expected)
    assert int.from_bytes(frame[-2:], "little") == crc_ref(frame[:-2]) == dx.crc16(frame[:-2])


def test_reference_frames_back_to_back_in_one_stream():
    stream = b"".join(h(v[2]) for v in INSTRUCTION_VECTORS)
    got = dx.Decoder(status=False).feed(stream)
    assert [(p.id, p.code) for p in got] == [(h(v[2])[4], int(v[3])) for v in INSTRUCTION_VECTORS]


# --- §2.7: status frames -------------------------------------------------------------------------

STATUS_VECTORS = [
    ("Ping status (model 1030 fw 38)", 1, 0, h("06 04 26"), "FF FF FD 00 01 07 00 55 00 06 04 26 65 5D"),
    ("Read status 166", 1, 0, h("A6 00 00 00"), "FF FF FD 00 01 08 00 55 00 A6 00 00 00 8C C0"),
    ("Write status no error", 1, 0, b"", "FF FF FD 00 01 04 00 55 00 A1 0C"),
    ("Sync read id2 status 2079", 2, 0, h("1F 08 00 00"), "FF FF FD 00 02 08 00 55 00 1F 08 00 00 BA BE"),
]
_SIDS = [v[0] for v in STATUS_VECTORS]


@pytest.mark.parametrize(("name", "sid", "error", "data", "expected"), STATUS_VECTORS, ids=_SIDS)
def test_encode_status_matches_reference(name, sid, error, data, expected):
    assert dx.encode_status(sid, error, data).hex(" ").upper() == expected


@pytest.mark.parametrize(("name", "sid", "error", "data", "expected"), STATUS_VECTORS, ids=_SIDS)
def test_reference_status_decodes(name, sid, error, data, expected):
    assert dx.Decoder(status=True).feed(h(expected)) == [Packet(sid, error, data, 0)]


def test_reference_status_values():
    dec = dx.Decoder(status=True)
    ping, read, sync = dec.feed(h(STATUS_VECTORS[0][4]) + h(STATUS_VECTORS[1][4]) + h(STATUS_VECTORS[3][4]))
    assert dx.decode_value(ping.params[:2]) == 1030 and ping.params[2] == 38
    reg = XL330_M288.register("Present_Position")
    assert dx.decode_value(read.params, reg.signed) == 166
    assert dx.decode_value(sync.params, reg.signed) == 2079


# --- §4 and §2.3 CRC -----------------------------------------------------------------------------


def test_crc_reference_vectors():
    assert dx.crc16(h("FF FF FD 00 01 03 00 01")) == 0x4E19
    assert dx.crc16(h("FF FF FD 00 FE 09 00 82 84 00 04 00 01 02")) == 0xFACE
    assert dx.crc16(b"") == 0


def test_crc_table_driven_equals_bitwise_reference():
    rng = random.Random(20240601)
    for n in list(range(0, 9)) + [64, 255, 1024]:
        for _ in range(25):
            blob = bytes(rng.randrange(256) for _ in range(n))
            assert dx.crc16(blob) == crc_ref(blob)
    for b in range(256):
        assert dx.crc16(bytes([b])) == crc_ref(bytes([b]))


def test_crc_accepts_bytearray_and_memoryview():
    data = h("FF FF FD 00 01 03 00 01")
    assert dx.crc16(bytearray(data)) == dx.crc16(memoryview(data)) == 0x4E19


# --- byte stuffing (§2.4) ------------------------------------------------------------------------

STUFF_VECTORS = [
    ("", ""),
    ("FF FF FD", "FF FF FD FD"),
    ("FF FF FD 00", "FF FF FD FD 00"),
    ("FF FF FD FD", "FF FF FD FD FD"),
    ("FF FF FF FD", "FF FF FF FD FD"),
    ("FF FF FD FF FF FD", "FF FF FD FD FF FF FD FD"),
    ("FF FD FF FD", "FF FD FF FD"),
    ("FD FF FF", "FD FF FF"),
    ("03 74 00 FF FF FD 00", "03 74 00 FF FF FD FD 00"),
]


@pytest.mark.parametrize(("raw", "stuffed"), STUFF_VECTORS)
def test_stuff_and_unstuff_vectors(raw, stuffed):
    assert dx.stuff(h(raw)) == h(stuffed)
    assert dx.unstuff(h(stuffed)) == h(raw)


def test_write_with_header_pattern_in_data_is_stuffed_len_and_crc_over_stuffed_bytes():
    data = h("FF FF FD 00")  # Goal_Position bytes that look like a header
    frame = dx.write(1, 116, data)
    # LEN = INST + 2 addr + 4 data + 1 stuffing byte + 2 CRC = 10
    expected = with_crc(h("FF FF FD 00 01 0A 00 03 74 00 FF FF FD FD 00"))
    assert frame == expected
    assert dx.Decoder(status=False).feed(frame) == [Packet(1, dx.Instruction.WRITE, h("74 00") + data, 0)]


def test_address_bytes_take_part_in_stuffing():
    # address 0xFFFF followed by data FD: the pattern spans the address and the data
    frame = dx.write(1, 0xFFFF, b"\xfd")
    assert frame == with_crc(h("FF FF FD 00 01 07 00 03 FF FF FD FD"))


def test_status_with_header_pattern_in_data_round_trips():
    # Present_Current = -1 (FF FF) followed by a velocity byte 0xFD: the case of a real XL330 sync read
    data = h("FF FF FD 00 00 00")
    frame = dx.encode_status(3, 0, data)
    assert frame == with_crc(h("FF FF FD 00 03 0B 00 55 00 FF FF FD FD 00 00 00"))
    assert dx.Decoder(status=True).feed(frame) == [Packet(3, 0, data, 0)]


def test_header_and_crc_are_never_stuffed():
    frame = dx.ping(1)
    assert frame.startswith(dx.HEADER) and frame[4] == 1
    assert dx.stuff(dx.HEADER) == h("FF FF FD FD 00")  # so the codec must not pass the header through stuff()
    assert frame.count(b"\xfd") == 1


# --- value encoding (two's complement) ----------------------------------------------------------

VALUE_VECTORS = [
    (512, 4, True, "00 02 00 00"),
    (-1, 4, True, "FF FF FF FF"),
    (-2048, 4, True, "00 F8 FF FF"),
    (2**31 - 1, 4, True, "FF FF FF 7F"),
    (-(2**31), 4, True, "00 00 00 80"),
    (-1, 2, True, "FF FF"),
    (-32768, 2, True, "00 80"),
    (4095, 4, False, "FF 0F 00 00"),
    (2**32 - 1, 4, False, "FF FF FF FF"),
    (1, 1, False, "01"),
]


@pytest.mark.parametrize(("value", "size", "signed", "expected"), VALUE_VECTORS)
def test_encode_value_vectors(value, size, signed, expected):
    assert dx.encode_value(value, size, signed) == h(expected)
    assert dx.decode_value(h(expected), signed) == value


def test_twos_complement_is_not_sign_magnitude():
    assert dx.encode_value(-5, 2, signed=True) == h("FB FF")


@pytest.mark.parametrize(
    ("value", "size", "signed"),
    [(2**31, 4, True), (-(2**31) - 1, 4, True), (-1, 4, False), (2**32, 4, False), (32768, 2, True), (256, 1, False)],
)
def test_value_out_of_range_raises_value_error(value, size, signed):
    with pytest.raises(ValueError, match="does not fit"):
        dx.encode_value(value, size, signed)


@pytest.mark.parametrize("name", [n for n, r in XL330_M288.registers.items() if r.signed])
def test_every_signed_x_register_round_trips_its_extremes(name):
    reg = XL330_M288.register(name)
    lo, hi = -(1 << (8 * reg.size - 1)), (1 << (8 * reg.size - 1)) - 1
    for value in (lo, -1, 0, 1, hi):
        assert dx.decode_value(dx.encode_value(value, reg.size, True), True) == value


# --- argument checks ------------------------------------------------------------------------------


@pytest.mark.parametrize("sid", [-1, 0xFD, 0xFF, 256])
def test_invalid_id_raises(sid):
    with pytest.raises(ValueError):
        dx.ping(sid)


@pytest.mark.parametrize("sid", [0, 1, dx.MAX_ID, dx.BROADCAST_ID])
def test_valid_ids(sid):
    assert dx.ping(sid)[4] == sid


def test_status_error_byte_range():
    assert dx.encode_status(1, 0xFF)[8] == 0xFF  # ALERT bit and any error number are legal
    with pytest.raises(ValueError):
        dx.encode_status(1, 0x100)
    with pytest.raises(ValueError):
        dx.encode_status(1, -1)


@pytest.mark.parametrize(("address", "size"), [(0x10000, 4), (-1, 4), (132, 0x10000), (132, -1)])
def test_read_address_or_length_out_of_range_raises_value_error(address, size):
    # was OverflowError from int.to_bytes (not a ValueError): callers catching ValueError missed it
    with pytest.raises(ValueError):
        dx.read(1, address, size)


def test_write_and_bulk_read_address_out_of_range_raise_value_error():
    with pytest.raises(ValueError):
        dx.write(1, 0x10000, b"\x00")
    with pytest.raises(ValueError):
        dx.bulk_read([(1, 0x10000, 1)])


def test_sync_write_rejects_wrong_value_size():
    with pytest.raises(ValueError, match="id 2"):
        dx.sync_write(116, 4, {1: u32(1), 2: b"\x00\x00"})


def test_status_length_and_enums():
    assert dx.status_length(4) == 15 == len(h(STATUS_VECTORS[1][4]))
    assert dx.status_length(0) == 11 == len(h(STATUS_VECTORS[2][4]))
    assert {i.name: i.value for i in dx.Instruction} == {
        "PING": 0x01,
        "READ": 0x02,
        "WRITE": 0x03,
        "REG_WRITE": 0x04,
        "ACTION": 0x05,
        "FACTORY_RESET": 0x06,
        "REBOOT": 0x08,
        "CLEAR": 0x10,
        "SYNC_READ": 0x82,
        "SYNC_WRITE": 0x83,
        "BULK_READ": 0x92,
        "BULK_WRITE": 0x93,
    }
    assert [e.value for e in dx.ResultError] == list(range(8))
    assert (dx.ALERT, dx.STATUS, dx.BROADCAST_ID, dx.MAX_ID) == (0x80, 0x55, 0xFE, 0xFC)
    assert dx.HEADER == h("FF FF FD 00")


def test_reg_write_and_action_layout():
    assert dx.reg_write(1, 116, u32(512)) == with_crc(h("FF FF FD 00 01 09 00 04 74 00 00 02 00 00"))
    assert dx.action() == with_crc(h("FF FF FD 00 FE 03 00 05"))
    assert dx.action(1) == with_crc(h("FF FF FD 00 01 03 00 05"))


# --- the incremental decoder ----------------------------------------------------------------------


def test_byte_by_byte_feed_yields_the_frame_on_its_last_byte():
    frame = h(STATUS_VECTORS[1][4])
    dec = dx.Decoder(status=True)
    for b in frame[:-1]:
        assert dec.feed(bytes([b])) == []
    assert dec.feed(frame[-1:]) == [Packet(1, 0, h("A6 00 00 00"), 0)]
    assert dec.pending == 0 and dec.discarded_bytes == 0 and dec.packets == 1


def test_six_sync_read_replies_decode_in_order():
    replies = [dx.encode_status(i, 0, u32(-1000 * i)) for i in range(1, 7)]
    got = dx.Decoder(status=True, max_length=8).feed(b"".join(replies))
    assert [(p.id, dx.decode_value(p.params, True)) for p in got] == [(i, -1000 * i) for i in range(1, 7)]
    assert [p.trailing for p in got] == [15 * (6 - i) for i in range(1, 7)]


def test_status_decoder_ignores_instruction_frames_and_vice_versa():
    assert dx.Decoder(status=True).feed(dx.ping(1)) == []
    status = dx.encode_status(1, 0)
    assert dx.Decoder(status=False).feed(status) == [Packet(1, dx.STATUS, b"\x00", 0)]


def test_alert_bit_and_error_number_reach_the_packet():
    (p,) = dx.Decoder(status=True).feed(dx.encode_status(4, dx.ALERT | dx.ResultError.ACCESS))
    assert p.code & dx.ALERT and p.code & 0x7F == dx.ResultError.ACCESS


def test_stuffed_pattern_is_not_taken_for_a_header():
    # FF FF FD FD is stuffed data, never a header: a decoder that lost sync must slide over it
    stream = h("FF FF FD FD 00 01 07 00") + dx.encode_status(1, 0)
    assert dx.Decoder(status=True).feed(stream) == [Packet(1, 0, b"", 0)]


def test_reserved_byte_fd_never_opens_a_frame_even_with_a_valid_crc():
    bogus = with_crc(h("FF FF FD FD 01 04 00 55 00"))  # would be a valid status if FD were allowed
    assert dx.Decoder(status=True).feed(bogus) == []
    assert dx.Decoder(status=True).feed(bogus + dx.encode_status(1, 0)) == [Packet(1, 0, b"", 0)]


def test_truncated_frame_followed_by_a_valid_one_slides_by_one_byte():
    cut = dx.encode_status(1, 0, bytes(4))[:-5]  # announces 15 bytes, 10 present
    good = dx.encode_status(2, 0, u32(-42))
    dec = dx.Decoder(status=True)
    got = dec.feed(cut + good)
    assert [(p.id, dx.decode_value(p.params, True)) for p in got] == [(2, -42)]
    assert dec.checksum_errors == 1


@pytest.mark.parametrize("max_length", [6, 7, 8, 9])
def test_max_length_boundary_is_inclusive(max_length):
    reply = dx.encode_status(1, 0, bytes(3))  # LEN 7
    got = dx.Decoder(status=True, max_length=max_length).feed(reply)
    assert got == ([Packet(1, 0, bytes(3), 0)] if max_length >= 7 else [])


@pytest.mark.parametrize("bad_id", [0xFD, 0xFF])
def test_invalid_id_in_stream_is_skipped(bad_id):
    good = dx.encode_status(1, 0)
    bogus = bytearray(good)
    bogus[4] = bad_id
    bogus[-2:] = crc_ref(bytes(bogus[:-2])).to_bytes(2, "little")
    assert dx.Decoder(status=True).feed(bytes(bogus) + good) == [Packet(1, 0, b"", 0)]


def test_corrupt_crc_is_counted_and_the_next_frame_still_decodes():
    bad = bytearray(dx.encode_status(1, 0, u32(7)))
    bad[-2] ^= 0xFF
    dec = dx.Decoder(status=True)
    assert dec.feed(bytes(bad) + dx.encode_status(2, 0)) == [Packet(2, 0, b"", 0)]
    assert dec.checksum_errors == 1


def test_length_below_minimum_is_not_a_frame():
    # status needs LEN >= 4 (0x55, ERR, CRC); instruction LEN >= 3 (INST, CRC)
    short_status = with_crc(h("FF FF FD 00 01 03 00 55"))
    assert dx.Decoder(status=True).feed(short_status) == []
    assert dx.Decoder(status=False).feed(short_status) == [Packet(1, 0x55, b"", 0)]


def test_max_length_rejects_longer_frames_and_resyncs():
    long_reply = dx.encode_status(1, 0, bytes(8))  # LEN 12
    short_reply = dx.encode_status(2, 0, bytes(4))  # LEN 8
    dec = dx.Decoder(status=True, max_length=8)
    assert dec.feed(long_reply + short_reply) == [Packet(2, 0, bytes(4), 0)]
    assert dec.discarded_bytes == len(long_reply)


def test_max_length_is_capped_so_a_frame_always_fits_the_buffer():
    # Regression: max_length up to 0xFFFF let a long frame exceed MAX_BUFFER while it arrived in
    # pieces; the buffer trim then cut its head off and the frame was lost (yet decoded when fed whole).
    dec = dx.Decoder(status=False, max_length=0xFFFF)
    assert dec.max_length + 7 <= MAX_BUFFER
    frame = dx.encode_instruction(1, dx.Instruction.WRITE, bytes(dec.max_length - 3))
    assert len(frame) == MAX_BUFFER
    got = []
    for i in range(0, len(frame), 100):
        got += dec.feed(frame[i : i + 100])
    assert got == [Packet(1, dx.Instruction.WRITE, bytes(dec.max_length - 3), 0)]
    assert dx.Decoder(status=False, max_length=0).max_length == 3
    # the bus assigns the bound per transaction: the cap holds for assignment too
    dec.max_length = 0xFFFF
    assert dec.max_length == MAX_BUFFER - 7
    dec.max_length = 8
    assert dec.max_length == 8


def test_rejected_frame_is_still_at_the_front_of_the_buffer_when_try_decode_reports_it():
    """Contract relied on by hardware.bus.link.tracking_decoder (it reads the id of a garbled reply)."""
    seen = []

    class Spy(dx.Decoder):
        def _try_decode(self):
            errors = self.checksum_errors
            result = super()._try_decode()
            if self.checksum_errors != errors:
                seen.append(self._buf[4])
            return result

    bad = bytearray(dx.encode_status(5, 0, bytes(2)))
    bad[-1] ^= 1
    assert Spy(status=True).feed(bytes(bad) + dx.encode_status(6, 0)) == [Packet(6, 0, b"", 0)]
    assert seen == [5]


def test_reset_forgets_a_partial_frame():
    dec = dx.Decoder(status=True)
    dec.feed(dx.encode_status(1, 0)[:6])
    dec.reset()
    assert dec.pending == 0 and dec.discarded_bytes == 6
    assert dec.feed(dx.encode_status(2, 0)) == [Packet(2, 0, b"", 0)]
