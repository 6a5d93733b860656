"""calibration.units: our radians <-> LeRobot's normalised units, checked against LeRobot's own bus code."""

from __future__ import annotations

import numpy as np
import pytest

from calibration import ArmCalibration, JointCalibration
from calibration.model import RAD_PER_TICK
from calibration.units import (
    DEG, RAD, RANGE_0_100, RANGE_M100_100, FEATURE_NAMES, JointUnits, UnitsConverter, UnitsError, check_fits,
    dataset_units, lerobot_units, parse_units, radians,
)
from hardware.arms import JOINT_NAMES, KOCH, SO101
from hardware.tables import Family


def _cal(profile, ranges, drive_modes=None):
    drive_modes = drive_modes or [0] * 6
    return ArmCalibration({
        j: JointCalibration(id=i + 1, drive_mode=drive_modes[i], homing_offset=0, range_min=lo, range_max=hi, joint=j)
        for i, (j, (lo, hi)) in enumerate(zip(JOINT_NAMES, ranges))
    })


SO_RANGES = [(812, 3301), (900, 3100), (1000, 3000), (850, 3250), (0, 4095), (2000, 3400)]


def _lerobot_bus(kind, cal, robot):
    from lerobot.motors import Motor, MotorCalibration, MotorNormMode

    if robot == "so":
        from lerobot.motors.feetech import FeetechMotorsBus as Bus
        model = "sts3215"
    else:
        from lerobot.motors.dynamixel import DynamixelMotorsBus as Bus
        model = "xl330-m288"
    body = {"deg": MotorNormMode.DEGREES, "m100": MotorNormMode.RANGE_M100_100}[kind]
    motors = {j: Motor(i + 1, model, MotorNormMode.RANGE_0_100 if j == "gripper" else body) for i, j in enumerate(JOINT_NAMES)}
    calib = {j: MotorCalibration(**cal[j].as_dict()) for j in JOINT_NAMES}
    return Bus(port="/dev/null", motors=motors, calibration=calib)


@pytest.mark.parametrize("robot,kind,robot_type", [("so", "deg", "so_follower"), ("koch", "m100", "koch_follower")])
def test_matches_lerobots_own_normalisation(robot, kind, robot_type):
    cal = _cal(SO101 if robot == "so" else KOCH, SO_RANGES)
    bus = _lerobot_bus(kind, cal, robot)
    units = lerobot_units(robot_type)
    conv = UnitsConverter(units, cal, Family.FEETECH if robot == "so" else Family.DYNAMIXEL)
    rng = np.random.default_rng(0)
    for _ in range(20):
        ticks = {i + 1: int(rng.integers(lo, hi + 1)) for i, (lo, hi) in enumerate(SO_RANGES)}
        theirs = bus._normalize(ticks)
        rad = cal.positions_to_radians(ticks)
        ours = conv.to_units(rad)
        np.testing.assert_allclose(ours, [theirs[i + 1] for i in range(6)], atol=1e-9)
        back = conv.to_radians(ours)
        np.testing.assert_allclose(back, rad, atol=1e-12)
        # and LeRobot turns our values back into the same goal ticks (it truncates: allow one tick)
        goals = bus._unnormalize({i + 1: float(v) for i, v in enumerate(ours)})
        assert all(abs(goals[i + 1] - ticks[i + 1]) <= 1 for i in range(6))


def test_feetech_drive_mode_inverts_the_range_kinds_like_lerobot():
    cal = _cal(SO101, SO_RANGES, drive_modes=[0, 0, 0, 0, 0, 1])
    bus = _lerobot_bus("deg", cal, "so")
    conv = UnitsConverter(lerobot_units("so_follower"), cal, Family.FEETECH)
    ticks = {i + 1: (lo + hi) // 2 + 100 for i, (lo, hi) in enumerate(SO_RANGES)}
    theirs = bus._normalize(ticks)
    np.testing.assert_allclose(conv.to_units(cal.positions_to_radians(ticks)), [theirs[i + 1] for i in range(6)], atol=1e-9)


def test_the_issue_numbers_gripper_is_not_a_degree():
    """The issue's example: the degree helper applied to a 0..100 gripper gives 1.258 rad for a true 0.771."""
    cal = ArmCalibration.simulated(SO101)
    conv = UnitsConverter(lerobot_units("so_follower"), cal, Family.FEETECH)
    rad = np.zeros(6)
    rad[5] = 0.771
    v = conv.to_units(rad)
    assert 0 < v[5] < 100 and abs(v[5] - 72.08) < 0.5
    assert conv.to_radians(v)[5] == pytest.approx(0.771)
    assert np.radians(v[5]) != pytest.approx(0.771, abs=0.1)


def test_joint_order_of_the_file_is_honoured():
    cal = ArmCalibration.simulated(SO101)
    names = tuple(reversed(FEATURE_NAMES))
    conv = UnitsConverter(radians(names), cal, Family.FEETECH)
    rad = np.arange(6.0) / 10
    np.testing.assert_allclose(conv.to_units(rad), rad[::-1])
    np.testing.assert_allclose(conv.to_radians(rad[::-1]), rad)
    assert not conv.identity
    assert UnitsConverter(radians(), cal, Family.FEETECH).identity


def test_dataset_units_from_info():
    feat = {"dtype": "float32", "shape": [6], "names": list(FEATURE_NAMES)}
    so = dataset_units({"robot_type": "so_follower", "features": {"action": feat}})
    assert so.kinds == (DEG,) * 5 + (RANGE_0_100,) and so.robot_type == "so_follower"
    assert dataset_units({"robot_type": "so101_follower", "features": {"action": feat}}).robot_type == "so_follower"
    koch = dataset_units({"robot_type": "koch_follower", "features": {"action": feat}})
    assert koch.kinds == (RANGE_M100_100,) * 5 + (RANGE_0_100,)
    ours = dataset_units({"robot_type": "so101_follower", "features": {"action": {**feat, "units": "rad"}}})
    assert ours.is_radians
    with pytest.raises(UnitsError, match="--policy-units"):
        dataset_units({"robot_type": "aloha", "features": {"action": feat}})
    with pytest.raises(UnitsError, match="no 'action'"):
        dataset_units({"robot_type": "so_follower", "features": {}})


def test_parse_and_json_round_trip():
    u = parse_units("lerobot", robot_type="so_follower")
    assert parse_units(u.as_json(), robot_type=None) == u
    assert parse_units("rad", robot_type=None).is_radians
    assert parse_units("lerobot-range", robot_type="so_follower").kinds[0] == RANGE_M100_100
    with pytest.raises(UnitsError, match="use one of"):
        parse_units("degrees", robot_type="so_follower")
    with pytest.raises(UnitsError):
        JointUnits(FEATURE_NAMES, (RAD,) * 5 + ("furlongs",))


def test_fit_refuses_other_arms_and_joint_sets():
    check_fits(lerobot_units("so_follower"), "so_follower", ("so101_follower",))
    check_fits(lerobot_units("so101_follower"), "so_follower")
    with pytest.raises(UnitsError, match="koch_follower"):
        check_fits(lerobot_units("koch_follower"), "so_follower")
    with pytest.raises(UnitsError, match="7 joints"):
        check_fits(JointUnits(FEATURE_NAMES + ("x.pos",), (DEG,) * 7, "so_follower"), "so_follower")
    with pytest.raises(UnitsError, match="another robot"):
        check_fits(JointUnits(FEATURE_NAMES[:5] + ("claw.pos",), (DEG,) * 6, None), "so_follower")
    assert RAD_PER_TICK > 0
