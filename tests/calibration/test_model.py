"""Calibration model: validation, ticks <-> radians, goals, limits, emulator calibrations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from calibration.model import (
    RAD_PER_TICK,
    ArmCalibration,
    CalibrationError,
    InvalidCalibration,
    JointCalibration,
    ProfileMismatch,
    lerobot_degrees_to_radians,
    radians_to_lerobot_degrees,
)
from hardware.arms import ARMS, JOINT_NAMES, KOCH, KOCH_LEADER, SO101


def _cal(**over: JointCalibration) -> ArmCalibration:
    """A plausible SO-101 calibration (odd and even range sums, a full-turn wrist_roll)."""
    base = {
        "shoulder_pan": JointCalibration(1, 0, -1234, 812, 3301),
        "shoulder_lift": JointCalibration(2, 0, 500, 900, 3200),
        "elbow_flex": JointCalibration(3, 0, 12, 880, 3105),
        "wrist_flex": JointCalibration(4, 0, -7, 860, 3210),
        "wrist_roll": JointCalibration(5, 0, 60, 0, 4095),
        "gripper": JointCalibration(6, 0, 1400, 2020, 3450),
    }
    base.update(over)
    return ArmCalibration(base)


# --- JointCalibration validation -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field", "text"),
    [
        ({"range_min": -1}, "range_min", "outside 0..4095"),
        ({"range_max": 4096}, "range_max", "outside 0..4095"),
        ({"range_min": 3000, "range_max": 3000}, "range_min", "must be below"),
        ({"range_min": 3001, "range_max": 3000}, "range_min", "must be below"),
        ({"drive_mode": 2}, "drive_mode", r"0 \(normal\) or 1 \(inverted\)"),
        ({"drive_mode": -1}, "drive_mode", r"0 \(normal\) or 1 \(inverted\)"),
        ({"id": 0}, "id", "outside 1..253"),
        ({"id": True}, "id", "must be an integer"),
        ({"homing_offset": 1.5}, "homing_offset", "must be an integer"),
        ({"range_max": "3000"}, "range_max", "must be an integer"),
    ],
)
def test_joint_validation_names_joint_and_field(kwargs: dict, field: str, text: str) -> None:
    args = {"id": 3, "drive_mode": 0, "homing_offset": 0, "range_min": 1000, "range_max": 3000,
            "joint": "elbow_flex"}
    args.update(kwargs)
    with pytest.raises(InvalidCalibration, match=text) as ei:
        JointCalibration(**args)
    assert ei.value.joint == "elbow_flex" and ei.value.field == field
    assert "elbow_flex" in str(ei.value) and field in str(ei.value)
    assert isinstance(ei.value, CalibrationError) and isinstance(ei.value, ValueError)


def test_joint_accepts_numpy_integers_and_edges() -> None:
    jc = JointCalibration(np.int64(2), 1, np.int32(-2047), 0, 4095)
    assert type(jc.id) is int and type(jc.homing_offset) is int
    assert jc.mid == 2047.5


# --- ArmCalibration structure ----------------------------------------------------------------------
def test_order_and_joint_names_filled_in() -> None:
    cal = _cal()
    shuffled = ArmCalibration({n: cal[n] for n in reversed(JOINT_NAMES)})
    assert tuple(shuffled) == JOINT_NAMES
    assert shuffled.ids == (1, 2, 3, 4, 5, 6)
    assert [c.joint for c in shuffled.values()] == list(JOINT_NAMES)
    assert shuffled == cal
    assert cal.joint(3) is cal["elbow_flex"] and cal.joint("gripper").id == 6
    with pytest.raises(KeyError, match="no motor id 9"):
        cal.joint(9)


def test_missing_unknown_duplicate_and_misfiled_joints() -> None:
    cal = _cal()
    joints = dict(cal)
    del joints["wrist_flex"]
    with pytest.raises(ProfileMismatch, match="'wrist_flex' has no calibration") as ei:
        ArmCalibration(joints)
    assert ei.value.joint == "wrist_flex"
    with pytest.raises(ProfileMismatch, match="unknown joint 'wrist_yaw'"):
        ArmCalibration({**cal, "wrist_yaw": JointCalibration(7, 0, 0, 0, 4095)})
    with pytest.raises(ProfileMismatch, match="both have motor id 2"):
        ArmCalibration({**cal, "elbow_flex": JointCalibration(2, 0, 0, 100, 4000)})
    with pytest.raises(ProfileMismatch, match="'gripper' was given for joint 'elbow_flex'"):
        ArmCalibration({**cal, "elbow_flex": cal["gripper"]})


def test_for_profile_checks_ids_and_homing_offsets() -> None:
    cal = _cal()
    assert cal.for_profile(SO101) is cal
    swapped = _cal(shoulder_pan=JointCalibration(7, 0, 0, 100, 4000))
    with pytest.raises(ProfileMismatch, match="'shoulder_pan' has motor id 7 .* id 1 on a so101") as ei:
        swapped.for_profile(SO101)
    assert ei.value.joint == "shoulder_pan"
    # +-2047 is all a Feetech Homing_Offset holds; a Dynamixel one holds much more
    big = _cal(elbow_flex=JointCalibration(3, 0, 3000, 880, 3105))
    with pytest.raises(InvalidCalibration, match="'elbow_flex': homing_offset 3000 is outside -2047..2047") as e2:
        big.for_profile(SO101)
    assert e2.value.field == "homing_offset"
    assert big.for_profile(KOCH) is big


def test_drive_mode_one_on_feetech_is_warned_about() -> None:
    cal = _cal(elbow_flex=JointCalibration(3, 1, 12, 880, 3105))
    with capture_logs() as logs:
        cal.for_profile(SO101)
        cal.for_profile(KOCH_LEADER)
    warned = [e for e in logs if e["event"] == "calibration.drive_mode_ignored"]
    assert len(warned) == 1 and warned[0]["joint"] == "elbow_flex" and warned[0]["arm"] == "so101"


# --- conversions -----------------------------------------------------------------------------------
def test_to_radians_convention() -> None:
    cal = _cal()
    pan = cal["shoulder_pan"]  # 812..3301: mid 2056.5, a half tick
    assert cal.to_radians("shoulder_pan", 2056.5) == 0.0
    assert cal.to_radians(1, 2056.5 + 1024) == pytest.approx(math.pi / 2, abs=1e-15)
    assert cal.to_radians("shoulder_pan", 812) == pytest.approx(-(2056.5 - 812) * 2 * math.pi / 4096)
    assert pan.to_radians(3301) == -pan.to_radians(812)
    # full-turn 0..4095: mid 2047.5
    assert cal.to_radians("wrist_roll", 2047.5) == 0.0
    # readings are not clamped: a joint pushed past its range reads past it
    assert cal.to_radians("gripper", 4000) > cal.limits_rad()["gripper"][1]


def test_drive_mode_does_not_change_the_conversion() -> None:
    """Decision (module doc): the servo applies the drive mode; LeRobot's DEGREES ignores it too."""
    normal = _cal()
    inverted = _cal(elbow_flex=JointCalibration(3, 1, 12, 880, 3105))
    ticks = np.arange(0, 4096, 13)
    assert [inverted.to_radians("elbow_flex", t) for t in ticks] == [
        normal.to_radians("elbow_flex", t) for t in ticks
    ]
    assert inverted.radians_to_goals(np.full(6, 0.3)) == normal.radians_to_goals(np.full(6, 0.3))


@given(st.sampled_from(JOINT_NAMES), st.floats(-5000, 9000, allow_nan=False))
def test_to_ticks_inverts_to_radians(joint: str, ticks: float) -> None:
    cal = _cal()
    assert cal.to_ticks(joint, cal.to_radians(joint, ticks)) == pytest.approx(ticks, abs=1e-9)


def test_positions_to_radians_vector() -> None:
    cal = _cal()
    reading = {6: 3000, 5: 100, 4: 2035, 3: 1992, 2: 2050, 1: 4000}  # any key order
    rad = cal.positions_to_radians(reading)
    assert rad.shape == (6,) and rad.dtype == np.float64
    expected = [cal.to_radians(n, reading[cal[n].id]) for n in JOINT_NAMES]
    np.testing.assert_array_equal(rad, expected)
    with pytest.raises(ValueError, match=r"lack motor id 4 \(wrist_flex\)"):
        cal.positions_to_radians({k: v for k, v in reading.items() if k != 4})
    with pytest.raises(ValueError, match="motor id 8"):
        cal.positions_to_radians({**reading, 8: 0})


def test_goals_round_and_clamp() -> None:
    cal = _cal()
    lo, hi = cal.limits_rad_arrays()
    goals = cal.radians_to_goals(np.zeros(6))
    assert goals == {c.id: round(c.mid) for c in cal.values()}  # 2056.5 rounds to even, 2056
    assert all(type(v) is int for v in goals.values())
    assert cal.radians_to_goals(np.full(6, 100.0)) == {c.id: c.range_max for c in cal.values()}
    assert cal.radians_to_goals([-100.0] * 6) == {c.id: c.range_min for c in cal.values()}
    assert cal.radians_to_goals(hi) == {c.id: c.range_max for c in cal.values()}
    assert cal.radians_to_goals(lo) == {c.id: c.range_min for c in cal.values()}
    one = cal.radians_to_goals(np.array([0.1, -0.2, 0.3, -0.4, 0.5, 0.6]))
    assert one[1] == round(2056.5 + 0.1 / RAD_PER_TICK)
    with pytest.raises(ValueError, match="expected 6 joint angles"):
        cal.radians_to_goals(np.zeros(5))
    with pytest.raises(ValueError, match="goal for elbow_flex is nan"):
        cal.radians_to_goals([0, 0, float("nan"), 0, 0, 0])
    with pytest.raises(ValueError, match="not a finite"):
        cal["gripper"].goal(float("inf"))
    assert cal["gripper"].goal(-9.0) == 2020


def test_every_tick_in_range_survives_the_round_trip() -> None:
    cal = _cal()
    for n in JOINT_NAMES:
        c = cal[n]
        for t in range(c.range_min, c.range_max + 1, 3):
            reading = {j.id: j.range_min for j in cal.values()}
            reading[c.id] = t
            assert cal.radians_to_goals(cal.positions_to_radians(reading))[c.id] == t


def test_limits_rad() -> None:
    cal = _cal()
    lim = cal.limits_rad()
    assert tuple(lim) == JOINT_NAMES
    lo, hi = cal.limits_rad_arrays()
    for i, n in enumerate(JOINT_NAMES):
        assert lim[n] == (cal.to_radians(n, cal[n].range_min), cal.to_radians(n, cal[n].range_max))
        assert (lo[i], hi[i]) == pytest.approx(lim[n], abs=1e-15)
        assert lim[n][0] == -lim[n][1]  # zero is mid-range
    assert lim["wrist_roll"][1] == pytest.approx(2047.5 * 2 * math.pi / 4096)


# --- emulator calibrations -------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(ARMS))
def test_centered_calibrations(name: str) -> None:
    profile = ARMS[name]
    for cal in (ArmCalibration.centered(profile), ArmCalibration.simulated(profile)):
        lim = cal.limits_rad()
        for m in profile.motors:
            c = cal[m.joint]
            assert c.mid == 2048 and c.homing_offset == 0 and c.id == m.id
            assert 0 <= c.range_min and c.range_max <= 4095
            assert lim[m.joint][0] <= m.limits_rad[0] and m.limits_rad[1] <= lim[m.joint][1]
            if m.full_turn:
                assert (c.range_min, c.range_max) == (1, 4095)
            else:  # just wide enough: one tick less would not cover the limits
                half = c.range_max - 2048
                assert (half - 1) * RAD_PER_TICK < max(abs(a) for a in m.limits_rad)
    assert ArmCalibration.simulated(KOCH_LEADER)["elbow_flex"].drive_mode == 0
    assert ArmCalibration.centered(KOCH_LEADER)["elbow_flex"].drive_mode == 1


def test_simulated_matches_the_mujoco_arm() -> None:
    from hardware.sim.arm import rad_to_ticks, ticks_to_rad

    cal = ArmCalibration.simulated(SO101)
    for n in JOINT_NAMES:
        for t in [*range(0, 4096, 7), 2048, 2048.25, 4095, -10.0, 4200.5]:
            assert cal.to_radians(n, t) == ticks_to_rad(t)
        for r in np.linspace(-3, 3, 61):
            assert cal.to_ticks(n, r) == pytest.approx(rad_to_ticks(r), abs=1e-9)
    assert cal.radians_to_goals(np.zeros(6)) == {i: 2048 for i in range(1, 7)}


# --- LeRobot degrees -------------------------------------------------------------------------------
def test_lerobot_degrees_scale_is_4096_over_4095() -> None:
    # one tick is 360/4095 LeRobot degrees (LeRobot divides by resolution - 1), 360/4096 true degrees
    assert radians_to_lerobot_degrees(RAD_PER_TICK) == pytest.approx(360 / 4095, rel=1e-14)
    half_turn = radians_to_lerobot_degrees(math.pi)
    assert half_turn == pytest.approx(2048 * 360 / 4095, rel=1e-14)
    assert half_turn - math.degrees(math.pi) == pytest.approx(180 / 4095, rel=1e-9)  # 0.044 deg: not noise
    assert half_turn / math.degrees(math.pi) == pytest.approx(4096 / 4095, rel=1e-14)


@given(st.floats(-10, 10, allow_nan=False))
def test_lerobot_degrees_round_trip(rad: float) -> None:
    assert lerobot_degrees_to_radians(radians_to_lerobot_degrees(rad)) == pytest.approx(rad, abs=1e-13)


def test_lerobot_degrees_vectorised() -> None:
    rad = np.linspace(-3, 3, 7)
    deg = radians_to_lerobot_degrees(rad)
    assert isinstance(deg, np.ndarray) and deg.shape == (7,)
    np.testing.assert_allclose(deg, [radians_to_lerobot_degrees(float(r)) for r in rad], rtol=0, atol=0)
    np.testing.assert_allclose(lerobot_degrees_to_radians(deg), rad, rtol=0, atol=1e-14)
    assert isinstance(radians_to_lerobot_degrees(0.5), float)
