"""The homing and range arithmetic (calibration/wizards/frames.py), checked against the emulator's servo
model and LeRobot's formulas, including the overflow and wrap-around cases."""

from __future__ import annotations

import pytest

from calibration.wizards.frames import Frame, RangeTracker, home, shifted, wrap_half
from hardware.tables import Family

F, D = Family.FEETECH, Family.DYNAMIXEL


def test_wrap_half() -> None:
    assert [wrap_half(v) for v in (0, 2047, 2048, -2048, -2049, 4096, 4095, 6000)] == [
        0, 2047, -2048, -2048, 2047, 0, -1, 1904]


@pytest.mark.parametrize("actual", [0, 1, 40, 2047, 2048, 2049, 4000, 4095])
def test_feetech_homing_reads_2048_and_never_overflows(actual: int) -> None:
    frame = home(F, actual)
    assert -2047 <= frame.homing_offset <= 2047
    if actual == 0:  # needs -2048: one tick short, reads 2047
        assert (frame.homing_offset, frame.present(actual)) == (-2047, 2047)
    else:
        assert frame.present(actual) == 2048
        assert frame.homing_offset == actual - 2048  # LeRobot's is pos - 2047: its mid reads 2047


def test_lerobot_overflow_case_is_fine_here() -> None:
    """LeRobot: Present_Position 4095 -> offset 4095 - 2047 = 2048 -> ValueError 'Magnitude 2048 exceeds
    2047'. Here the same pose gets offset 2047 and reads 2048."""
    from lerobot.motors.encoding_utils import encode_sign_magnitude

    with pytest.raises(ValueError, match="exceeds 2047"):
        encode_sign_magnitude(4095 - 2047, 11)
    frame = home(F, 4095)
    encode_sign_magnitude(frame.homing_offset, 11)  # fits
    assert frame.present(4095) == 2048


@pytest.mark.parametrize("drive_mode", [0, 1])
@pytest.mark.parametrize("actual", [-300, 0, 1500, 4095, 9000])
def test_dynamixel_homing(actual: int, drive_mode: int) -> None:
    frame = home(D, actual, drive_mode)
    assert frame.present(actual) == 2048
    assert frame.present(actual + 10) == 2048 + (-10 if drive_mode else 10)
    assert frame.actual(frame.present(actual + 7)) == actual + 7


def test_frames_match_the_emulated_servos() -> None:
    """The arithmetic is the one the emulator's servos apply (and the reference's formulas)."""
    from hardware.arms import KOCH_LEADER, SO101
    from hardware.emulator import Emulator

    with Emulator(SO101) as emu:
        s = emu.servos[0]
        for off in (-2047, -5, 0, 900, 2047):
            s.set("Homing_Offset", off)
            assert Frame(F, off).present(round(s.mech_position())) == s.get("Present_Position")
    with Emulator(KOCH_LEADER) as emu:
        s = emu.servos[2]
        for off, dm in ((-3000, 0), (-3000, 1), (4000, 1), (0, 0)):
            s.set("Homing_Offset", off)
            s.set("Drive_Mode", dm)
            assert Frame(D, off, dm).present(round(s.mech_position())) == s.get("Present_Position")


def test_convert_between_frames() -> None:
    old, new = Frame(F, 1500), Frame(F, -300)
    for actual in (0, 100, 2000, 4095):
        assert old.convert(old.present(actual), new) == new.present(actual)
    old, new = Frame(D, 100, 1), Frame(D, -2000, 0)
    for actual in (-50, 0, 3000):
        assert old.convert(old.present(actual), new) == new.present(actual)


@pytest.mark.parametrize("start", [-2047, -100, 0, 1900, 2047])
@pytest.mark.parametrize("s", [-2047, -700, 0, 1, 1500, 2047])
def test_feetech_shift(start: int, s: int) -> None:
    frame = Frame(F, start)
    moved, done = shifted(frame, s)
    assert -2047 <= moved.homing_offset <= 2047
    assert done in (s - 1, s, s + 1)
    if abs(wrap_half(start + s)) < 2048:
        assert done == s
    for actual in (0, 1234, 4095):
        assert moved.present(actual) == (frame.present(actual) - done) % 4096
    with pytest.raises(ValueError):
        shifted(frame, 2048)


def test_dynamixel_shift() -> None:
    moved, done = shifted(Frame(D, 100, 1), 700)
    assert done == 700 and moved == Frame(D, -600, 1)


def test_range_tracker_unwraps() -> None:
    t = RangeTracker(2048)
    for r in (3000, 4000, 4095, 10, 500, 400):  # crosses 4095 -> 0 going up
        t.update(r)
    assert (t.lo, t.hi, t.position) == (2048, 4096 + 500, 4096 + 400)
    t.reset(100)
    for r in (50, 4090, 3000, 3500):  # crosses 0 -> 4095 going down
        t.update(r)
    assert (t.lo, t.hi, t.span) == (3000 - 4096, 100, 100 - (3000 - 4096))


def test_invalid_frames() -> None:
    with pytest.raises(ValueError):
        Frame(F, 2048)
    with pytest.raises(ValueError):
        Frame(F, 0, 1)
    with pytest.raises(ValueError):
        Frame(D, 2_000_000)
