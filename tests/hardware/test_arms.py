"""Arm profiles (hardware.arms) against LeRobot 0.6.1's robot/teleoperator classes and the reference §2.9."""

from __future__ import annotations

import dataclasses
import math

import pytest
from lerobot.robots.config import RobotConfig
from lerobot.robots.koch_follower import KochFollower, KochFollowerConfig
from lerobot.robots.so_follower import SOFollower, SOFollowerRobotConfig
from lerobot.teleoperators.config import TeleoperatorConfig
from lerobot.teleoperators.koch_leader import KochLeader, KochLeaderConfig
from lerobot.teleoperators.so_leader import SOLeader, SOLeaderTeleopConfig

from hardware.arms import (
    ARMS,
    JOINT_NAMES,
    KOCH,
    KOCH_LEADER,
    SO100,
    SO100_LEADER,
    SO101,
    SO101_LEADER,
    Role,
    arm,
)
from hardware.tables import Family

LEROBOT_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
PROFILES = [SO100, SO101, SO100_LEADER, SO101_LEADER, KOCH, KOCH_LEADER]
_ids = [p.name for p in PROFILES]

# profile -> (LeRobot class, its config class, lerobot_type, legacy names)
LEROBOT = {
    "so100": (SOFollower, SOFollowerRobotConfig, "so_follower", ("so100_follower",)),
    "so101": (SOFollower, SOFollowerRobotConfig, "so_follower", ("so101_follower",)),
    "so100-leader": (SOLeader, SOLeaderTeleopConfig, "so_leader", ("so100_leader",)),
    "so101-leader": (SOLeader, SOLeaderTeleopConfig, "so_leader", ("so101_leader",)),
    "koch": (KochFollower, KochFollowerConfig, "koch_follower", ("koch_follower",)),
    "koch-leader": (KochLeader, KochLeaderConfig, "koch_leader", ("koch_leader",)),
}

EXPECTED_MODELS = {
    "so100": ("sts3215",) * 6,
    "so101": ("sts3215",) * 6,
    "so100-leader": ("sts3215",) * 6,
    "so101-leader": ("sts3215",) * 6,
    "koch": ("xl430-w250",) * 2 + ("xl330-m288",) * 4,
    "koch-leader": ("xl330-m077",) * 6,
}


def test_registry_and_lookup():
    assert list(ARMS) == ["so100", "so101", "so100-leader", "so101-leader", "koch", "koch-leader"]
    for name, profile in ARMS.items():
        assert arm(name) is profile and profile.name == name


@pytest.mark.parametrize("bad", ["so102", "Koch", "", "so100_follower"])
def test_unknown_arm_is_a_key_error_listing_every_choice(bad):
    with pytest.raises(KeyError) as err:
        arm(bad)
    message = str(err.value)
    assert repr(bad) in message
    for name in ARMS:
        assert name in message


@pytest.mark.parametrize("p", PROFILES, ids=_ids)
def test_ids_joints_and_models(p):
    assert p.ids == (1, 2, 3, 4, 5, 6)
    assert p.joints == LEROBOT_JOINTS == JOINT_NAMES
    assert tuple(m.model_name for m in p.motors) == EXPECTED_MODELS[p.name]
    for m in p.motors:
        assert m.model.name == m.model_name
        assert m.model.family is p.family
    assert p.family is (Family.FEETECH if p.name.startswith("so") else Family.DYNAMIXEL)
    assert p.baud == 1_000_000  # LeRobot runs both buses at 1 Mbps


@pytest.mark.parametrize("p", PROFILES, ids=_ids)
def test_profile_matches_lerobots_motor_table(p, tmp_path):
    """Instantiates LeRobot's robot/teleoperator (no port is opened) and compares its bus's motors."""
    cls, config_cls, _, _ = LEROBOT[p.name]
    device = cls(config_cls(port="/dev/null-harmowam-test", id="t", calibration_dir=tmp_path))
    theirs = [(name, motor.id, motor.model) for name, motor in device.bus.motors.items()]
    assert theirs == [(m.joint, m.id, m.model_name) for m in p.motors]


@pytest.mark.parametrize("p", PROFILES, ids=_ids)
def test_lerobot_type_and_legacy_names(p):
    cls, _, lerobot_type, legacy = LEROBOT[p.name]
    assert p.lerobot_type == lerobot_type == cls.name
    assert p.legacy_lerobot_types == legacy
    registry = RobotConfig if p.role is Role.FOLLOWER else TeleoperatorConfig
    for name in legacy:
        assert name in registry.get_known_choices(), name


@pytest.mark.parametrize("p", PROFILES, ids=_ids)
def test_roles(p):
    assert p.role is (Role.LEADER if "leader" in p.name else Role.FOLLOWER)
    assert p.lerobot_type.endswith(p.role.value)


@pytest.mark.parametrize("p", PROFILES, ids=_ids)
def test_limits_are_ordered_finite_radians(p):
    for m in p.motors:
        lo, hi = m.limits_rad
        assert math.isfinite(lo) and math.isfinite(hi)
        assert lo < hi, m.joint
        assert -math.pi <= lo and hi <= math.pi, m.joint


@pytest.mark.parametrize("p", PROFILES, ids=_ids)
def test_full_turn_joints(p):
    full = {m.joint for m in p.motors if m.full_turn}
    # LeRobot calibrates these to the fixed range 0..4095
    assert full == ({"wrist_roll"} if p.family is Family.FEETECH else {"shoulder_pan", "wrist_roll"})


@pytest.mark.parametrize("p", PROFILES, ids=_ids)
def test_drive_modes(p):
    inverted = {m.joint for m in p.motors if m.drive_mode}
    assert inverted == ({"elbow_flex"} if p is KOCH_LEADER else set())
    assert {m.drive_mode for m in p.motors} <= {0, 1}
    if p is KOCH_LEADER:
        assert p.motor("elbow_flex").drive_mode == 1


def test_gear_ratios():
    for p in (SO100, SO101, SO100_LEADER):
        assert {m.gear_ratio for m in p.motors} == {"1/345"}
    assert [m.gear_ratio for m in SO101_LEADER.motors] == ["1/191", "1/345", "1/191", "1/147", "1/147", "1/147"]


def test_so100_and_so101_share_geometry():
    assert [m.limits_rad for m in SO100.motors] == [m.limits_rad for m in SO101.motors]
    assert SO100.motors == SO101.motors


def test_motor_lookup_by_id_and_joint():
    assert KOCH.motor(3) is KOCH.motor("elbow_flex")
    assert KOCH.motor(1).model_name == "xl430-w250"
    with pytest.raises(KeyError) as err:
        KOCH.motor(7)
    assert "koch" in str(err.value)
    for joint in LEROBOT_JOINTS:
        assert joint in str(err.value)
    with pytest.raises(KeyError):
        SO101.motor("wrist")


def test_describe():
    assert SO101.describe(3) == "id 3 (elbow_flex)"
    assert SO101.describe(6) == "id 6 (gripper)"
    assert SO101.describe(9) == "id 9"


def test_profiles_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SO101.baud = 57_600  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        SO101.motors[0].id = 9  # type: ignore[misc]
    with pytest.raises(TypeError):
        ARMS["x"] = SO101  # type: ignore[index]
