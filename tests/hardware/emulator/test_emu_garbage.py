"""Garbage and hostile input never crash the emulator; valid requests still work afterwards."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.emulator import Emulator
from hardware.protocol import dynamixel as dxl
from hardware.protocol import feetech as ft


def test_random_bytes_over_the_wire(make_client):
    rng = random.Random(1)
    for arm, codec, family in (("so101", ft, "feetech"), ("koch", dxl, "dynamixel")):
        with Emulator(arm) as emu:
            client = make_client(emu.port, family=family)
            for _ in range(30):
                client.ser.write(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
            client.ser.write(b"\xff\xff" * 50 + b"\xff\xff\xfd\x00" * 20)  # header storms
            time.sleep(0.05)
            assert emu._thread is not None and emu._thread.is_alive()
            reply = client.one(codec.ping(2), timeout=0.3)
            assert reply.id == 2


def test_unholdable_feetech_id_is_ignored(make_client):
    with Emulator("so101") as emu:
        client = make_client(emu.port)
        assert client.one(ft.write(2, 5, b"\xff")).id == 2
        assert client.one(ft.ping(2)).id == 2


def test_valid_frames_with_bad_checksums_are_counted(make_client):
    with Emulator("so101") as emu:
        client = make_client(emu.port)
        frame = bytearray(ft.ping(1))
        frame[-1] ^= 0x55
        assert client.silent(bytes(frame))
        assert emu.stats.checksum_errors == 1


_ft_inst = st.sampled_from([0x01, 0x02, 0x03, 0x04, 0x05, 0x0A, 0x82, 0x83, 0x00, 0x7F, 0xFF])
_dxl_inst = st.sampled_from([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08, 0x10, 0x82, 0x83, 0x92, 0x93, 0x00, 0x55])


@pytest.fixture(scope="module")
def ft_emu():
    return Emulator("so101")  # not started: the handlers are driven directly, without a pty


@pytest.fixture(scope="module")
def dxl_emu():
    return Emulator("koch")


@settings(max_examples=300, deadline=None)
@given(
    sid=st.sampled_from([0, 1, 3, 6, 0xFE, 0x20]),
    inst=_ft_inst,
    params=st.one_of(
        st.binary(max_size=40),
        st.tuples(st.sampled_from([3, 5, 6, 7, 8, 9, 31, 33, 40, 42, 46, 55, 56, 250]), st.binary(max_size=6)).map(
            lambda t: bytes([t[0]]) + t[1]
        ),
    ),
)
def test_feetech_any_well_framed_instruction_is_handled(ft_emu, sid, inst, params):
    emu = ft_emu
    packets = emu.protocol.decoder.feed(ft.encode_instruction(sid, inst, params))
    assert len(packets) == 1
    for reply in emu.protocol.handle(packets[0], [s for s in emu.servos if s.baud], time.monotonic()):
        assert isinstance(reply.frame, bytes)


@settings(max_examples=300, deadline=None)
@given(
    sid=st.sampled_from([0, 1, 2, 5, 0xFE, 0x30]),
    inst=_dxl_inst,
    params=st.one_of(
        st.binary(max_size=40),
        st.tuples(st.sampled_from([0, 7, 8, 9, 10, 11, 20, 48, 64, 68, 104, 116, 132, 300]), st.binary(max_size=6)).map(
            lambda t: t[0].to_bytes(2, "little") + t[1]
        ),
    ),
)
def test_dynamixel_any_well_framed_instruction_is_handled(dxl_emu, sid, inst, params):
    emu = dxl_emu
    packets = emu.protocol.decoder.feed(dxl.encode_instruction(sid, inst, params))
    assert len(packets) == 1
    for reply in emu.protocol.handle(packets[0], [s for s in emu.servos if s.baud], time.monotonic()):
        assert isinstance(reply.frame, bytes)



def test_feetech_absurd_position_limits_do_not_crash_a_goal_write():
    """Regression (found by the property test above): a limit written beyond what Goal_Position can
    hold (e.g. Max_Position_Limit = 65023) must saturate the goal, not raise inside the emulator."""
    emu = Emulator("so101")
    servos = [s for s in emu.servos if s.baud]
    handle = emu.protocol.handle
    for frame in (
        ft.write(6, 9, (65023).to_bytes(2, "little") + (65023).to_bytes(2, "little")),  # Min/Max limits
        ft.write(6, 40, bytes([0x8B, 0x72, 0x31])),  # torque byte, acceleration, goal low byte
    ):
        (packet,) = emu.protocol.decoder.feed(frame)
        handle(packet, servos, time.monotonic())
    assert emu.servo(6).get("Goal_Position") == 32767  # saturated at the largest encodable goal
