"""Property tests (hypothesis) for the Feetech and Dynamixel incremental decoders and Dynamixel stuffing.

The resynchronisation properties are stated so that they are *always* true, not true with high odds:
a garbage prefix may open a frame whose LEN swallows the bytes that follow, and a garbage frame passes
the checksum with ~1/256 odds (CRC: ~1/65536), so "garbage + a valid frame -> the frame is decoded" is
false now and then. What is always true, and tested here:

* position argument: fed byte by byte, a decoder either decodes the valid frame exactly where it lies,
  or some *other* decoded packet reaches past the start of the valid frame (it swallowed part of it);
  the decoder never skips the valid frame otherwise. With no 0xFF in the garbage, nothing can start
  there and the valid frame is the only packet.
* repetition: when no header pattern occurs inside the valid frame (or across two copies of it), a
  frame opened in garbage spans at most 4 + max_length (Feetech) / 7 + max_length (Dynamixel) bytes;
  past it, the first copy whose start is reached decodes. So garbage followed by
  ceil(span / len(frame)) + 1 copies always yields the frame, for the exact LEN and for the default bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from hardware.protocol import dynamixel as dx
from hardware.protocol import feetech as ft
from hardware.protocol.common import MAX_BUFFER, Packet

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# bytes that matter to the framing (header, stuffing, 0x55 status marker) come up far more often than 1/256
interesting_byte = st.one_of(st.sampled_from([0xFF, 0xFD, 0x00, 0x55, 0xFE, 0x02]), st.integers(0, 255))


def byte_strings(max_size: int, min_size: int = 0) -> st.SearchStrategy[bytes]:
    return st.lists(interesting_byte, min_size=min_size, max_size=max_size).map(bytes)


@dataclass(frozen=True)
class Fam:
    name: str
    mod: ModuleType
    header: bytes  # the bytes that open a frame
    front: int  # bytes before the first LEN-counted byte: total = front + LEN

    def frame(self, status: bool, sid: int, code: int, params: bytes) -> bytes:
        if status:
            return self.mod.encode_status(sid, code, params)
        return self.mod.encode_instruction(sid, code, params)

    def length_field(self, frame: bytes) -> int:
        return frame[3] if self.mod is ft else frame[5] | (frame[6] << 8)

    def decoder(self, status: bool, max_length: int | None = None):
        if max_length is None:
            return self.mod.Decoder(status=status)
        return self.mod.Decoder(status=status, max_length=max_length)


FEETECH = Fam("feetech", ft, b"\xff\xff", 4)
DYNAMIXEL = Fam("dynamixel", dx, b"\xff\xff\xfd", 7)
FAMS = [pytest.param(FEETECH, id="feetech"), pytest.param(DYNAMIXEL, id="dynamixel")]


def ids(fam: Fam) -> st.SearchStrategy[int]:
    if fam is FEETECH:
        return st.integers(0, ft.BROADCAST_ID)
    return st.one_of(st.integers(0, dx.MAX_ID), st.just(dx.BROADCAST_ID))


def codes(fam: Fam, status: bool) -> st.SearchStrategy[int]:
    if status and fam is FEETECH:
        return st.integers(0, 0x7F)
    return st.integers(0, 0xFF)


@st.composite
def frames(draw, fam: Fam, status: bool, max_params: int = 24, params=None):
    """(expected packet, wire bytes) of a random valid frame."""
    sid, code = draw(ids(fam)), draw(codes(fam, status))
    data = draw(params if params is not None else byte_strings(max_params))
    return Packet(sid, code, data, 0), fam.frame(status, sid, code, data)


@st.composite
def noisy_streams(draw, fam: Fam, status: bool, max_pieces: int = 6) -> bytes:
    """Garbage that looks like the real thing: random bytes, valid frames, cut frames, corrupted frames."""
    pieces = []
    for _ in range(draw(st.integers(0, max_pieces))):
        kind = draw(st.sampled_from(["bytes", "frame", "cut", "flip", "header"]))
        if kind == "bytes":
            pieces.append(draw(byte_strings(20)))
        elif kind == "header":
            pieces.append(fam.header + draw(byte_strings(4)))
        else:
            _, frame = draw(frames(fam, status, max_params=12))
            if kind == "cut":
                frame = frame[: draw(st.integers(1, len(frame) - 1))]
            elif kind == "flip":
                i = draw(st.integers(0, len(frame) - 1))
                frame = frame[:i] + bytes([frame[i] ^ draw(st.integers(1, 255))]) + frame[i + 1 :]
            pieces.append(frame)
    return b"".join(pieces)


@st.composite
def cut_frame_then(draw, fam: Fam, status: bool, longest: int) -> bytes:
    """Garbage that ends in the head of a frame no longer than ``longest`` parameter bytes."""
    prefix = draw(st.one_of(st.just(b""), byte_strings(12)))
    _, frame = draw(frames(fam, status, max_params=longest))
    return prefix + frame[: draw(st.integers(1, len(frame) - 1))]


chunk_plans = st.lists(st.integers(1, 17), min_size=1, max_size=8)


def chunked(data: bytes, plan: list[int]) -> list[bytes]:
    out, i, k = [], 0, 0
    while i < len(data):
        n = plan[k % len(plan)]
        out.append(data[i : i + n])
        i, k = i + n, k + 1
    return out


def run(dec, pieces) -> list[Packet]:
    got: list[Packet] = []
    for piece in pieces:
        got += dec.feed(piece)
    return got


def key(p: Packet) -> tuple[int, int, bytes]:
    """A packet without ``trailing`` (which by design depends on how the bytes arrived)."""
    return (p.id, p.code, p.params)


# --- decoders never raise, and what they return is sane --------------------------------------------

max_lengths = st.one_of(st.none(), st.integers(-3, 0x1_0000 + 5))


@pytest.mark.parametrize("fam", FAMS)
@PROPS
@given(data=st.data(), status=st.booleans(), max_length=max_lengths, plan=chunk_plans)
def test_decoder_never_raises_and_returns_sane_packets(fam, data, status, max_length, plan):
    stream = data.draw(st.one_of(byte_strings(300), noisy_streams(fam, status)))
    dec = fam.decoder(status, max_length)
    got = run(dec, chunked(stream, plan))
    assert dec.packets == len(got)
    assert 0 <= dec.pending <= MAX_BUFFER
    assert dec.discarded_bytes + dec.pending <= len(stream)
    for p in got:
        assert 0 <= p.id <= 0xFE and 0 <= p.code <= 0xFF
        if fam is FEETECH:
            assert len(p.params) + 2 <= dec.max_length
            if status:
                assert p.code <= 0x7F
            # a decoded frame is, byte for byte, somewhere in the input
            assert fam.frame(status, p.id, p.code, p.params) in stream
        else:
            assert p.id != 0xFD
            assert len(p.params) + (4 if status else 3) <= dec.max_length  # unstuffing only shrinks
    if fam is FEETECH:
        # every byte is accounted for: in a decoded frame, discarded, or still pending
        assert sum(len(p.params) + 6 for p in got) + dec.discarded_bytes + dec.pending == len(stream)


@pytest.mark.parametrize("fam", FAMS)
@PROPS
@given(stream=byte_strings(400), status=st.booleans(), plan=st.lists(st.integers(0, 9), min_size=1, max_size=8))
def test_feeding_empty_and_tiny_chunks_never_raises(fam, stream, status, plan):
    dec = fam.decoder(status)
    i = 0
    for n in plan * (len(stream) // max(1, sum(plan)) + 1):
        dec.feed(stream[i : i + n])
        i += n
    dec.feed(stream[i:])
    assert dec.pending <= MAX_BUFFER


# --- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fam", FAMS)
@PROPS
@given(data=st.data(), status=st.booleans(), plan=chunk_plans)
def test_any_valid_frame_round_trips_in_any_chunking(fam, data, status, plan):
    expected, frame = data.draw(frames(fam, status, max_params=60))
    assert len(frame) == fam.front + fam.length_field(frame)
    dec = fam.decoder(status)
    assert run(dec, chunked(frame, plan)) == [expected]
    assert (dec.pending, dec.discarded_bytes, dec.checksum_errors) == (0, 0, 0)
    # the tightest bound that admits the frame still admits it
    assert fam.decoder(status, fam.length_field(frame)).feed(frame) == [expected]


@pytest.mark.parametrize("fam", FAMS)
@PROPS
@given(data=st.data(), status=st.booleans(), plan=chunk_plans)
def test_back_to_back_frames_all_decode_in_order(fam, data, status, plan):
    pairs = data.draw(st.lists(frames(fam, status), min_size=1, max_size=8))
    stream = b"".join(frame for _, frame in pairs)
    dec = fam.decoder(status)
    assert [key(p) for p in run(dec, chunked(stream, plan))] == [key(e) for e, _ in pairs]
    assert (dec.pending, dec.discarded_bytes, dec.checksum_errors) == (0, 0, 0)


# --- chunking never changes the result -----------------------------------------------------------


@pytest.mark.parametrize("fam", FAMS)
@PROPS
@given(data=st.data(), status=st.booleans(), max_length=max_lengths, plan=chunk_plans)
def test_chunking_never_changes_decoded_packets_or_counters(fam, data, status, max_length, plan):
    stream = data.draw(st.one_of(noisy_streams(fam, status), byte_strings(200)))

    def outcome(pieces):
        dec = fam.decoder(status, max_length)
        got = run(dec, pieces)
        # discarded vs pending may split differently: a trailing byte that cannot start a frame is
        # dropped at once when it arrives with others, kept until the next feed when it arrives alone
        return [key(p) for p in got], dec.checksum_errors, dec.discarded_bytes + dec.pending

    whole = outcome([stream])
    assert outcome(chunked(stream, plan)) == whole
    assert outcome([bytes([b]) for b in stream]) == whole


@pytest.mark.parametrize("fam", FAMS)
@PROPS
@given(data=st.data(), status=st.booleans(), delta=st.integers(-3, 3))
def test_frame_decodes_iff_its_len_is_within_max_length(fam, data, status, delta):
    expected, frame = data.draw(frames(fam, status))
    length = fam.length_field(frame)
    dec = fam.decoder(status, max_length=length + delta)
    got = dec.feed(frame)
    assert got == ([expected] if length <= dec.max_length else [])


# --- resynchronisation after garbage --------------------------------------------------------------


@pytest.mark.parametrize("fam", FAMS)
@PROPS
@given(data=st.data(), status=st.booleans())
def test_garbage_then_one_frame_is_decoded_unless_a_garbage_frame_swallowed_it(fam, data, status):
    expected, frame = data.draw(frames(fam, status))
    garbage = data.draw(
        st.one_of(noisy_streams(fam, status), byte_strings(60), cut_frame_then(fam, status, len(expected.params)))
    )
    dec = fam.decoder(status, max_length=fam.length_field(frame))
    start, end = len(garbage), len(garbage) + len(frame)
    decoded = []  # (packet, stream position just after its last byte)
    for i, b in enumerate(garbage + frame):
        decoded += [(p, i + 1 - p.trailing) for p in dec.feed(bytes([b]))]
    in_place = [p for p, stop in decoded if key(p) == key(expected) and stop == end]
    swallowers = [p for p, stop in decoded if stop > start and not (key(p) == key(expected) and stop == end)]
    assert in_place or swallowers
    event("frame decoded in place" if in_place else "a garbage frame swallowed the valid one")
    if 0xFF not in garbage:
        assert [key(p) for p, _ in decoded] == [key(expected)]


def _no_inner_header(fam: Fam, frame: bytes) -> bool:
    """The header pattern occurs in frame+frame only where a copy starts."""
    return (frame + frame).find(fam.header, 1) == len(frame)


def _without_header_runs(fam: Fam, params: bytes) -> bytes:
    """Break every header-like run inside the parameters (0xFF after 0xFF -> 0xFE)."""
    out = bytearray()
    for b in params:
        out.append(0xFE if b == 0xFF and out and out[-1] == 0xFF else b)
    return bytes(out)


@pytest.mark.parametrize("fam", FAMS)
@PROPS
@given(data=st.data(), status=st.booleans())
def test_garbage_then_repeated_frame_always_resyncs(fam, data, status):
    garbage = data.draw(st.one_of(noisy_streams(fam, status), byte_strings(80)))
    params = byte_strings(24).map(lambda p: _without_header_runs(fam, p))
    expected, frame = data.draw(frames(fam, status, params=params))
    assume(_no_inner_header(fam, frame))
    exact = fam.length_field(frame)
    for max_length in (exact, None):
        dec = fam.decoder(status, max_length)
        span = fam.front + dec.max_length  # longest frame a garbage header can open
        copies = math.ceil(span / len(frame)) + 1
        got = dec.feed(garbage + frame * copies)
        assert key(expected) in [key(p) for p in got], (max_length, copies)
        # and from then on it is in sync: the last copy is the last packet
        assert key(got[-1]) == key(expected)


# --- Dynamixel byte stuffing ----------------------------------------------------------------------

stuffy = st.lists(st.sampled_from([0xFF, 0xFD, 0x00]) | interesting_byte, max_size=64).map(bytes)


@PROPS
@given(x=stuffy)
def test_unstuff_inverts_stuff(x):
    assert dx.unstuff(dx.stuff(x)) == x


@PROPS
@given(x=stuffy)
def test_stuffed_payload_has_no_header_pattern(x):
    s = dx.stuff(x)
    i = s.find(b"\xff\xff\xfd")
    while i >= 0:
        assert s[i + 3 : i + 4] == b"\xfd", (x.hex(), s.hex())
        i = s.find(b"\xff\xff\xfd", i + 1)
    # one FD per occurrence (the pattern cannot overlap itself), nothing else changes
    assert len(s) - len(x) == x.count(b"\xff\xff\xfd")
    assert (s == x) == (b"\xff\xff\xfd" not in x)


@PROPS
@given(sid=st.one_of(st.integers(0, dx.MAX_ID), st.just(dx.BROADCAST_ID)), code=st.integers(0, 255), params=stuffy, status=st.booleans())
def test_encoded_dynamixel_frame_is_stuffed_and_len_counts_stuffed_bytes(sid, code, params, status):
    frame = dx.encode_status(sid, code, params) if status else dx.encode_instruction(sid, code, params)
    assert frame[:4] == dx.HEADER
    assert len(frame) == 7 + (frame[5] | (frame[6] << 8))
    payload = frame[7:-2]
    assert payload == dx.stuff((bytes([dx.STATUS, code]) if status else bytes([code])) + params)
    assert int.from_bytes(frame[-2:], "little") == dx.crc16(frame[:-2])
    (p,) = dx.Decoder(status=status).feed(frame)
    assert (p.id, p.code, p.params) == (sid, code, params)


@FEW
@given(x=byte_strings(40))
def test_feetech_value_round_trip_any_two_bytes(x):
    raw = x[:2].ljust(2, b"\x00")
    for sign_bit in (10, 11, 15):
        value = ft.decode_value(raw, sign_bit)
        if raw[1] >> (sign_bit - 8 + 1) == 0:  # no bits above the sign bit: a canonical encoding
            if value != 0 or raw == b"\x00\x00":
                assert ft.encode_value(value, 2, sign_bit) == raw
