"""Arm profiles as data: which servo sits at which ID, under which LeRobot joint name, with which limits.

Joint angles are radians with zero at the middle of the calibrated range (LeRobot's DEGREES convention,
in radians). Limits are defaults for a freshly calibrated arm: the safety filter of the runtime narrows
them further with the calibration file. SO-100 and SO-101 share the geometry of the SO-101 URDF
(TheRobotStudio/SO-ARM100); the Koch limits are conservative defaults (no offline model to take them from).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Mapping

from hardware.tables import Family, ServoModel, model

JOINT_NAMES = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")


class Role(str, Enum):
    FOLLOWER = "follower"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class MotorSpec:
    id: int
    joint: str
    model_name: str
    limits_rad: tuple[float, float]
    full_turn: bool = False  # calibrated to the fixed range 0..4095 (LeRobot does this for wrist_roll etc.)
    drive_mode: int = 0  # 1: inverted joint (LeRobot sets it for the Koch leader's elbow)
    gear_ratio: str = ""  # informational, e.g. "1/345"

    @property
    def model(self) -> ServoModel:
        return model(self.model_name)


@dataclass(frozen=True, slots=True)
class ArmProfile:
    name: str
    family: Family
    role: Role
    lerobot_type: str  # calibration folder name since LeRobot 0.4.3
    legacy_lerobot_types: tuple[str, ...]  # older folder names, read as a fallback
    motors: tuple[MotorSpec, ...]
    baud: int = 1_000_000
    supply_voltage: float = 12.0
    description: str = ""

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(m.id for m in self.motors)

    @property
    def joints(self) -> tuple[str, ...]:
        return tuple(m.joint for m in self.motors)

    def motor(self, key: int | str) -> MotorSpec:
        for m in self.motors:
            if m.id == key or m.joint == key:
                return m
        raise KeyError(f"{self.name} has no motor {key!r} (joints: {', '.join(self.joints)})")

    def describe(self, servo_id: int) -> str:
        """'id 3 (elbow_flex)' for error messages."""
        for m in self.motors:
            if m.id == servo_id:
                return f"id {servo_id} ({m.joint})"
        return f"id {servo_id}"


# SO-101 URDF joint limits (rad), zero at mid-range.
_SO_LIMITS = {
    "shoulder_pan": (-1.92, 1.92),
    "shoulder_lift": (-1.745, 1.745),
    "elbow_flex": (-1.69, 1.69),
    "wrist_flex": (-1.658, 1.658),
    "wrist_roll": (-2.744, 2.841),
    "gripper": (-0.175, 1.745),
}


def _so_motors(gears: Mapping[str, str]) -> tuple[MotorSpec, ...]:
    return tuple(
        MotorSpec(
            id=i + 1,
            joint=j,
            model_name="sts3215",
            limits_rad=_SO_LIMITS[j],
            full_turn=(j == "wrist_roll"),
            gear_ratio=gears.get(j, "1/345"),
        )
        for i, j in enumerate(JOINT_NAMES)
    )


_SO101_LEADER_GEARS = {
    "shoulder_pan": "1/191",
    "shoulder_lift": "1/345",
    "elbow_flex": "1/191",
    "wrist_flex": "1/147",
    "wrist_roll": "1/147",
    "gripper": "1/147",
}

_KOCH_LIMITS = {
    "shoulder_pan": (-1.57, 1.57),
    "shoulder_lift": (-1.57, 1.57),
    "elbow_flex": (-1.57, 1.57),
    "wrist_flex": (-1.57, 1.57),
    "wrist_roll": (-2.7, 2.7),
    "gripper": (-0.2, 1.5),
}
_KOCH_FULL_TURN = ("shoulder_pan", "wrist_roll")


def _koch_motors(models: Mapping[str, str], inverted: tuple[str, ...] = ()) -> tuple[MotorSpec, ...]:
    return tuple(
        MotorSpec(
            id=i + 1,
            joint=j,
            model_name=models[j],
            limits_rad=_KOCH_LIMITS[j],
            full_turn=j in _KOCH_FULL_TURN,
            drive_mode=1 if j in inverted else 0,
        )
        for i, j in enumerate(JOINT_NAMES)
    )


SO100 = ArmProfile(
    "so100", Family.FEETECH, Role.FOLLOWER, "so_follower", ("so100_follower",), _so_motors({}),
    supply_voltage=12.0, description="SO-100 follower: 6x STS3215 (1/345); SO-101 geometry",
)
SO101 = ArmProfile(
    "so101", Family.FEETECH, Role.FOLLOWER, "so_follower", ("so101_follower",), _so_motors({}),
    supply_voltage=12.0, description="SO-101 follower: 6x STS3215 (1/345)",
)
SO100_LEADER = ArmProfile(
    "so100-leader", Family.FEETECH, Role.LEADER, "so_leader", ("so100_leader",), _so_motors({}),
    supply_voltage=5.0, description="SO-100 leader: STS3215 with the gears removed",
)
SO101_LEADER = ArmProfile(
    "so101-leader", Family.FEETECH, Role.LEADER, "so_leader", ("so101_leader",),
    _so_motors(_SO101_LEADER_GEARS), supply_voltage=5.0,
    description="SO-101 leader: STS3215 with mixed gear ratios (1/191, 1/345, 1/147)",
)
KOCH = ArmProfile(
    "koch", Family.DYNAMIXEL, Role.FOLLOWER, "koch_follower", ("koch_follower",),
    _koch_motors({j: ("xl430-w250" if i < 2 else "xl330-m288") for i, j in enumerate(JOINT_NAMES)}),
    supply_voltage=12.0, description="Koch v1.1 follower: 2x XL430-W250 (ids 1-2) + 4x XL330-M288",
)
KOCH_LEADER = ArmProfile(
    "koch-leader", Family.DYNAMIXEL, Role.LEADER, "koch_leader", ("koch_leader",),
    _koch_motors({j: "xl330-m077" for j in JOINT_NAMES}, inverted=("elbow_flex",)),
    supply_voltage=5.0, description="Koch v1.1 leader: 6x XL330-M077, elbow inverted",
)

ARMS: Mapping[str, ArmProfile] = MappingProxyType(
    {a.name: a for a in (SO100, SO101, SO100_LEADER, SO101_LEADER, KOCH, KOCH_LEADER)}
)


def arms_with_models(family: Family, models: Mapping[int, int]) -> tuple[ArmProfile, ...]:
    """The arm profiles of ``family`` whose every motor id answers with its model number in ``models``
    (id -> model number, e.g. from pings): which arm is plugged in, when it is not the one asked for."""
    return tuple(
        a for a in ARMS.values()
        if a.family is family and all(models.get(m.id) == m.model.model_number for m in a.motors)
    )


def arm(name: str) -> ArmProfile:
    try:
        return ARMS[name]
    except KeyError:
        raise KeyError(f"unknown arm {name!r}; choose one of: {', '.join(ARMS)}") from None
