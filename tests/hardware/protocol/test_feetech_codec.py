"""Feetech SCS/STS codec (hardware.protocol.feetech) against the verified frames of
shared/reference/servo-protocols.md §1.6 and §4, plus the decoder's edge cases.

Expected bytes are written out by hand from the reference, never computed with the code under test.
"""

from __future__ import annotations

import pytest

from hardware.protocol import feetech as ft
from hardware.protocol.common import MAX_BUFFER, Packet
from hardware.tables import STS3215


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def pos(value: int) -> bytes:
    """Goal/Present_Position bytes (sign bit 15), encoded by the code under test."""
    return ft.encode_value(value, 2, 15)


def decode_all(data: bytes, *, status: bool, **kw) -> list[Packet]:
    return ft.Decoder(status=status, **kw).feed(data)


# --- §1.6: every verified instruction frame, byte for byte -------------------------------------------

INSTRUCTION_VECTORS = [
    ("PING id1", lambda: ft.ping(1), "FF FF 01 02 01 FB", ft.Instruction.PING),
    ("READ id1 Present_Position(56,2)", lambda: ft.read(1, 56, 2), "FF FF 01 04 02 38 02 BE", ft.Instruction.READ),
    ("READ id1 model (3,2)", lambda: ft.read(1, 3, 2), "FF FF 01 04 02 03 02 F3", ft.Instruction.READ),
    ("WRITE id1 Torque_Enable=1", lambda: ft.write(1, 40, b"\x01"), "FF FF 01 04 03 28 01 CE", ft.Instruction.WRITE),
    (
        "WRITE id1 Goal_Position=2048",
        lambda: ft.write(1, 42, pos(2048)),
        "FF FF 01 05 03 2A 00 08 C4",
        ft.Instruction.WRITE,
    ),
    (
        "REG_WRITE id1 Goal_Position=2048",
        lambda: ft.reg_write(1, 42, pos(2048)),
        "FF FF 01 05 04 2A 00 08 C3",
        ft.Instruction.REG_WRITE,
    ),
    ("ACTION broadcast", lambda: ft.action(), "FF FF FE 02 05 FA", ft.Instruction.ACTION),
    (
        "SYNC_READ addr56 len2 ids 1..6",
        lambda: ft.sync_read(56, 2, [1, 2, 3, 4, 5, 6]),
        "FF FF FE 0A 82 38 02 01 02 03 04 05 06 26",
        ft.Instruction.SYNC_READ,
    ),
    (
        "SYNC_WRITE addr42 len2 id1=2048 id2=1024",
        lambda: ft.sync_write(42, 2, {1: pos(2048), 2: pos(1024)}),
        "FF FF FE 0A 83 2A 02 01 00 08 02 00 04 39",
        ft.Instruction.SYNC_WRITE,
    ),
]


@pytest.mark.parametrize(("name", "build", "expected", "instruction"), INSTRUCTION_VECTORS, ids=[v[0] for v in INSTRUCTION_VECTORS])
def test_builder_matches_reference_frame(name, build, expected, instruction):
    assert build().hex(" ").upper() == expected


@pytest.mark.parametrize(("name", "build", "expected", "instruction"), INSTRUCTION_VECTORS, ids=[v[0] for v in INSTRUCTION_VECTORS])
def test_reference_instruction_frame_decodes(name, build, expected, instruction):
    frame = h(expected)
    assert decode_all(frame, status=False) == [Packet(frame[2], int(instruction), frame[5:-1], 0)]


def test_reference_frames_back_to_back_in_one_stream():
    stream = b"".join(h(v[2]) for v in INSTRUCTION_VECTORS)
    got = decode_all(stream, status=False)
    assert [(p.id, p.code) for p in got] == [(h(v[2])[2], int(v[3])) for v in INSTRUCTION_VECTORS]


# --- §1.6: the status replies --------------------------------------------------------------------

STATUS_VECTORS = [
    ("PING reply", 1, 0, b"", "FF FF 01 02 00 FC"),
    ("Present_Position 2048", 1, 0, h("00 08"), "FF FF 01 04 00 00 08 F2"),
    ("model 777", 1, 0, h("09 03"), "FF FF 01 04 00 09 03 EE"),
]


@pytest.mark.parametrize(("name", "sid", "error", "data", "expected"), STATUS_VECTORS, ids=[v[0] for v in STATUS_VECTORS])
def test_encode_status_matches_reference(name, sid, error, data, expected):
    assert ft.encode_status(sid, error, data).hex(" ").upper() == expected


@pytest.mark.parametrize(("name", "sid", "error", "data", "expected"), STATUS_VECTORS, ids=[v[0] for v in STATUS_VECTORS])
def test_reference_status_decodes(name, sid, error, data, expected):
    assert decode_all(h(expected), status=True) == [Packet(sid, error, data, 0)]


def test_reference_status_values():
    (position,) = decode_all(h("FF FF 01 04 00 00 08 F2"), status=True)
    reg = STS3215.register("Present_Position")
    assert ft.decode_value(position.params, reg.sign_bit) == 2048
    (model,) = decode_all(h("FF FF 01 04 00 09 03 EE"), status=True)
    assert ft.decode_value(model.params) == 777 == STS3215.model_number


# --- §4 checksum vectors -------------------------------------------------------------------------


def test_checksum_reference_vectors():
    assert ft.checksum(h("01 02 01")) == 0xFB
    assert ft.checksum(h("FE 0A 82 38 02 01 02 03 04 05 06")) == 0x26
    assert ft.checksum(b"") == 0xFF
    assert ft.checksum(bytes([0xFF] * 300)) == (~(0xFF * 300)) & 0xFF  # only the low byte of the sum counts


def test_checksum_accepts_bytearray_and_memoryview():
    body = h("01 04 02 38 02")
    assert ft.checksum(bytearray(body)) == ft.checksum(memoryview(body)) == 0xBE


# --- frame layout and argument checks -------------------------------------------------------------


def test_frame_layout_len_is_params_plus_two():
    frame = ft.encode_instruction(7, 0x03, bytes(range(10)))
    assert frame[:2] == b"\xff\xff"
    assert frame[2] == 7 and frame[3] == 12 and frame[4] == 0x03
    assert len(frame) == frame[3] + 4
    assert frame[-1] == (~sum(frame[2:-1])) & 0xFF


def test_default_action_is_broadcast_and_unicast_action_allowed():
    assert ft.action() == h("FF FF FE 02 05 FA")
    assert ft.action(3) == bytes([0xFF, 0xFF, 3, 2, 5, (~(3 + 2 + 5)) & 0xFF])


def test_reset_uses_instruction_0x0a():
    assert ft.reset(1) == bytes([0xFF, 0xFF, 1, 2, 0x0A, (~(1 + 2 + 0x0A)) & 0xFF])


def test_longest_allowed_packet_and_one_more():
    frame = ft.encode_instruction(1, ft.Instruction.WRITE, bytes(ft.MAX_LENGTH - 2))
    assert frame[3] == ft.MAX_LENGTH
    with pytest.raises(ValueError, match="too long"):
        ft.encode_instruction(1, ft.Instruction.WRITE, bytes(ft.MAX_LENGTH - 1))


@pytest.mark.parametrize("sid", [-1, 0xFF, 256])
def test_invalid_id_raises(sid):
    with pytest.raises(ValueError):
        ft.ping(sid)


@pytest.mark.parametrize("sid", [0, 1, ft.MAX_ID, ft.BROADCAST_ID])
def test_valid_ids(sid):
    assert ft.ping(sid)[2] == sid


def test_status_error_byte_must_fit_seven_bits():
    assert ft.encode_status(1, 0x7F)[4] == 0x7F
    with pytest.raises(ValueError):
        ft.encode_status(1, 0x80)
    with pytest.raises(ValueError):
        ft.encode_status(1, -1)


def test_sync_write_rejects_wrong_value_size():
    with pytest.raises(ValueError, match="id 2"):
        ft.sync_write(42, 2, {1: b"\x00\x08", 2: b"\x00"})


def test_sync_write_keeps_mapping_order():
    frame = ft.sync_write(42, 2, {6: pos(1), 1: pos(2)})
    assert frame[7:13] == bytes([6, 1, 0, 1, 2, 0])


@pytest.mark.parametrize(("address", "size"), [(256, 1), (-1, 1), (0, 256)])
def test_read_address_or_size_out_of_byte_range(address, size):
    with pytest.raises(ValueError):
        ft.read(1, address, size)


def test_status_length_matches_reference_formula():
    # §1.5: a sync read of n servos returns n x (6 + len) bytes
    assert ft.status_length(2) == 8 == len(h("FF FF 01 04 00 00 08 F2"))
    assert ft.status_length(0) == 6


def test_enums_match_reference_tables():
    assert {i.name: i.value for i in ft.Instruction} == {
        "PING": 0x01,
        "READ": 0x02,
        "WRITE": 0x03,
        "REG_WRITE": 0x04,
        "ACTION": 0x05,
        "RESET": 0x0A,
        "SYNC_READ": 0x82,
        "SYNC_WRITE": 0x83,
    }
    assert {e.name: e.value for e in ft.StatusError} == {
        "VOLTAGE": 0x01,
        "SENSOR": 0x02,
        "OVERHEAT": 0x04,
        "OVERCURRENT": 0x08,
        "OVERLOAD": 0x20,
    }
    assert (ft.BROADCAST_ID, ft.MAX_ID, ft.MAX_LENGTH) == (0xFE, 0xFD, 250)


# --- sign-magnitude values (§1.2) -----------------------------------------------------------------

VALUE_VECTORS = [
    # value, size, sign bit, bytes
    (2048, 2, 15, "00 08"),
    (-2048, 2, 15, "00 88"),
    (-1, 2, 15, "01 80"),
    (32767, 2, 15, "FF 7F"),
    (-32767, 2, 15, "FF FF"),
    (2047, 2, 11, "FF 07"),
    (-2047, 2, 11, "FF 0F"),
    (-1, 2, 11, "01 08"),
    (1000, 2, 10, "E8 03"),
    (-1000, 2, 10, "E8 07"),
    (0, 2, 15, "00 00"),
    (777, 2, None, "09 03"),
    (254, 1, None, "FE"),
]


@pytest.mark.parametrize(("value", "size", "sign_bit", "expected"), VALUE_VECTORS)
def test_encode_value_vectors(value, size, sign_bit, expected):
    assert ft.encode_value(value, size, sign_bit) == h(expected)
    assert ft.decode_value(h(expected), sign_bit) == value


def test_sign_magnitude_is_not_twos_complement():
    assert ft.encode_value(-5, 2, 15) == h("05 80")
    assert ft.encode_value(-5, 2, 15) != (-5).to_bytes(2, "little", signed=True)


def test_negative_zero_decodes_to_zero():
    assert ft.decode_value(h("00 80"), 15) == 0
    assert ft.decode_value(h("00 08"), 11) == 0


@pytest.mark.parametrize(
    ("value", "size", "sign_bit"),
    [(32768, 2, 15), (-32768, 2, 15), (2048, 2, 11), (-2048, 2, 11), (1024, 2, 10), (-1024, 2, 10)],
)
def test_magnitude_at_or_above_sign_bit_raises(value, size, sign_bit):
    with pytest.raises(ValueError, match="sign bit"):
        ft.encode_value(value, size, sign_bit)


@pytest.mark.parametrize(("value", "size"), [(-1, 1), (-1, 2), (256, 1), (65536, 2)])
def test_unsigned_out_of_range_raises(value, size):
    with pytest.raises(ValueError):
        ft.encode_value(value, size)


def test_sign_bit_beyond_field_width_raises():
    # sign bit 15 in a 1-byte field: 200 is below the sign bit but not below 256 after setting it
    with pytest.raises(ValueError, match="byte"):
        ft.encode_value(-200, 1, 15)


@pytest.mark.parametrize("name", [n for n, r in STS3215.registers.items() if r.sign_bit is not None])
def test_every_signed_sts_register_round_trips_its_extremes(name):
    reg = STS3215.register(name)
    top = (1 << reg.sign_bit) - 1
    for value in (-top, -1, 0, 1, top):
        raw = ft.encode_value(value, reg.size, reg.sign_bit)
        assert len(raw) == reg.size
        assert ft.decode_value(raw, reg.sign_bit) == value


# --- the incremental decoder ----------------------------------------------------------------------


def test_byte_by_byte_feed_yields_the_frame_on_its_last_byte():
    frame = h("FF FF 01 04 00 00 08 F2")
    dec = ft.Decoder(status=True)
    for b in frame[:-1]:
        assert dec.feed(bytes([b])) == []
    assert dec.pending == len(frame) - 1
    assert dec.feed(frame[-1:]) == [Packet(1, 0, h("00 08"), 0)]
    assert dec.pending == 0 and dec.packets == 1 and dec.discarded_bytes == 0


def test_sync_read_replies_of_six_servos_decode_in_order_with_trailing_counts():
    replies = [ft.encode_status(i, 0, pos(100 * i)) for i in range(1, 7)]
    got = ft.Decoder(status=True, max_length=4).feed(b"".join(replies))
    assert [(p.id, ft.decode_value(p.params, 15)) for p in got] == [(i, 100 * i) for i in range(1, 7)]
    assert [p.trailing for p in got] == [8 * (6 - i) for i in range(1, 7)]


def test_feed_accepts_bytearray_and_memoryview():
    frame = h("FF FF 01 02 00 FC")
    assert ft.Decoder(status=True).feed(bytearray(frame)) == [Packet(1, 0, b"", 0)]
    assert ft.Decoder(status=True).feed(memoryview(frame)) == [Packet(1, 0, b"", 0)]


def test_noise_before_a_frame_is_discarded():
    noise = h("00 FF 12 FF 34 56")
    dec = ft.Decoder(status=True)
    assert dec.feed(noise + h("FF FF 01 02 00 FC")) == [Packet(1, 0, b"", 0)]
    assert dec.discarded_bytes == len(noise)


def test_extra_ff_before_header_is_skipped():
    # FF FF FF 01 ...: the first candidate has ID 0xFF (invalid) -> slide by one
    assert decode_all(h("FF FF FF 01 02 00 FC"), status=True) == [Packet(1, 0, b"", 0)]


def test_corrupt_checksum_is_counted_and_the_next_frame_still_decodes():
    bad = bytearray(h("FF FF 01 04 00 00 08 F2"))
    bad[-1] ^= 0x01
    dec = ft.Decoder(status=True)
    got = dec.feed(bytes(bad) + h("FF FF 02 02 00 FB"))
    assert got == [Packet(2, 0, b"", 0)]
    assert dec.checksum_errors == 1


def test_status_decoder_rejects_error_byte_above_0x7f():
    body = bytes([1, 2, 0x80])
    frame = b"\xff\xff" + body + bytes([ft.checksum(body)])
    assert decode_all(frame, status=True) == []
    # the same bytes are a valid *instruction* frame (code 0x80)
    assert decode_all(frame, status=False) == [Packet(1, 0x80, b"", 0)]


def test_instruction_decoder_accepts_sync_codes_above_0x7f():
    frame = h("FF FF FE 0A 82 38 02 01 02 03 04 05 06 26")
    assert decode_all(frame, status=True) == []  # 0x82 cannot be a status ERR byte
    assert decode_all(frame, status=False)[0].code == 0x82


def test_length_below_two_is_not_a_frame():
    assert decode_all(h("FF FF 01 01 FF FF 01 02 00 FC"), status=True) == [Packet(1, 0, b"", 0)]
    assert decode_all(h("FF FF 01 00 FD"), status=True) == []


def test_max_length_rejects_longer_frames_and_resyncs():
    long_reply = ft.encode_status(1, 0, bytes(4))  # LEN 6
    short_reply = ft.encode_status(2, 0, bytes(2))  # LEN 4
    dec = ft.Decoder(status=True, max_length=4)
    assert dec.feed(long_reply + short_reply) == [Packet(2, 0, bytes(2), 0)]
    assert dec.discarded_bytes == len(long_reply)
    assert decode_all(long_reply, status=True, max_length=6) == [Packet(1, 0, bytes(4), 0)]


@pytest.mark.parametrize("max_length", [3, 4, 5, 6])
def test_max_length_boundary_is_inclusive(max_length):
    reply = ft.encode_status(1, 0, bytes(2))  # LEN 4
    got = ft.Decoder(status=True, max_length=max_length).feed(reply)
    assert got == ([Packet(1, 0, bytes(2), 0)] if max_length >= 4 else [])


def test_truncated_frame_followed_by_a_valid_one_slides_by_one_byte():
    # the cut frame announces LEN 6 and so swallows the head of the next frame; its checksum fails
    # and the decoder must move on by one byte, not by the announced length
    cut = ft.encode_status(1, 0, bytes(4))[:-3]
    good = ft.encode_status(2, 0, pos(-42))
    dec = ft.Decoder(status=True)
    got = dec.feed(cut + good)
    assert [(p.id, ft.decode_value(p.params, 15)) for p in got] == [(2, -42)]
    assert dec.checksum_errors == 1


def test_rejected_frame_is_still_at_the_front_of_the_buffer_when_try_decode_reports_it():
    """Contract relied on by hardware.bus.link.tracking_decoder (it reads the id of a garbled reply)."""
    seen = []

    class Spy(ft.Decoder):
        def _try_decode(self):
            errors = self.checksum_errors
            result = super()._try_decode()
            if self.checksum_errors != errors:
                seen.append(self._buf[2])
            return result

    bad = bytearray(ft.encode_status(5, 0, bytes(2)))
    bad[-1] ^= 1
    assert Spy(status=True).feed(bytes(bad) + ft.encode_status(6, 0)) == [Packet(6, 0, b"", 0)]
    assert seen == [5]


def test_a_garbage_header_can_swallow_a_valid_frame_when_the_checksum_happens_to_match():
    """Why the resync properties are not 'garbage + frame -> frame': this is the ~1/256 case, on purpose."""
    valid = ft.ping(2)  # FF FF 02 02 01 FA
    # a stray header "FF FF id 06" claims the 6 bytes of `valid` as its body; pick the id whose checksum fits
    (sid,) = [i for i in range(0xFE) if ft.checksum(bytes([i, 6]) + valid[:-1]) == valid[-1]]
    got = ft.Decoder(status=False).feed(bytes([0xFF, 0xFF, sid, 6]) + valid)
    assert got == [Packet(sid, 0xFF, valid[1:-1], 0)]  # the bogus frame, and `valid` is gone
    # with max_length at the expected reply's LEN the stray header is refused and `valid` survives
    assert ft.Decoder(status=False, max_length=2).feed(bytes([0xFF, 0xFF, sid, 6]) + valid) == [Packet(2, 1, b"", 0)]


def test_max_length_is_clamped_to_protocol_bounds():
    assert ft.Decoder(status=True, max_length=10_000).max_length == ft.MAX_LENGTH
    assert ft.Decoder(status=True, max_length=0).max_length == 2


def test_a_frame_waiting_for_bytes_stays_pending():
    dec = ft.Decoder(status=False)
    assert dec.feed(h("FF FF 01 09 03 2A")) == []
    assert dec.pending == 6 and dec.discarded_bytes == 0


def test_reset_forgets_a_partial_frame():
    dec = ft.Decoder(status=True)
    dec.feed(h("FF FF 01 04 00 00"))
    dec.reset()
    assert dec.pending == 0 and dec.discarded_bytes == 6
    assert dec.feed(h("08 F2 FF FF 01 02 00 FC")) == [Packet(1, 0, b"", 0)]


def test_garbage_flood_is_not_stored():
    dec = ft.Decoder(status=True)
    for _ in range(20):
        assert dec.feed(bytes(range(0xFF)) * 4) == []
    assert dec.pending <= 1
    assert dec.pending <= MAX_BUFFER
