"""Interoperability with LeRobot 0.6.1, called as a peer: its files are ours and ours are its; its
calibration folder is ours; its DEGREES numbers are our radians, converted exactly (4095 vs 4096)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import draccus
import numpy as np
import pytest
from lerobot.motors import Motor, MotorNormMode
from lerobot.motors.dynamixel import DynamixelMotorsBus
from lerobot.motors.feetech import FeetechMotorsBus
from lerobot.motors.motors_bus import MotorCalibration
from lerobot.robots.koch_follower import KochFollower, KochFollowerConfig
from lerobot.robots.so_follower import SO101Follower, SO101FollowerConfig
from lerobot.teleoperators.koch_leader import KochLeader, KochLeaderConfig
from lerobot.teleoperators.so_leader import SO101Leader, SO101LeaderConfig

from calibration.files import calibration_root, dumps, load_calibration, save_calibration
from calibration.model import (
    ArmCalibration,
    JointCalibration,
    lerobot_degrees_to_radians,
    radians_to_lerobot_degrees,
)
from hardware.arms import JOINT_NAMES, KOCH, KOCH_LEADER, SO101, SO101_LEADER

NO_PORT = "/dev/harmowam-no-such-port"  # LeRobot's constructors do not open it


def _lerobot_cal(drive_modes: dict[str, int] | None = None, koch: bool = False) -> dict[str, MotorCalibration]:
    """As LeRobot's calibrate() leaves it: full-turn joints 0..4095 (wrist_roll; on a Koch shoulder_pan too)."""
    ranges = [(0, 4095) if koch else (812, 3301), (900, 3200), (880, 3105), (860, 3210), (0, 4095), (2020, 3450)]
    offsets = [-1234, 500, 12, -7, 60, 1400]
    dm = drive_modes or {}
    return {
        j: MotorCalibration(id=i + 1, drive_mode=dm.get(j, 0), homing_offset=offsets[i],
                            range_min=ranges[i][0], range_max=ranges[i][1])
        for i, j in enumerate(JOINT_NAMES)
    }


def _as_lerobot(cal: ArmCalibration) -> dict[str, MotorCalibration]:
    return {n: MotorCalibration(**c.as_dict()) for n, c in cal.items()}


# --- files -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("robot_cls", "config_cls", "profile", "folder"),
    [
        (SO101Follower, SO101FollowerConfig, SO101, "robots/so_follower"),
        (SO101Leader, SO101LeaderConfig, SO101_LEADER, "teleoperators/so_leader"),
        (KochFollower, KochFollowerConfig, KOCH, "robots/koch_follower"),
        (KochLeader, KochLeaderConfig, KOCH_LEADER, "teleoperators/koch_leader"),
    ],
)
def test_lerobot_writes_we_read(robot_cls, config_cls, profile, folder: str, tmp_path: Path) -> None:
    """LeRobot's own save path (``_save_calibration``, draccus) -> our loader, from its default folder."""
    calib_dir = tmp_path / folder  # what LeRobot derives from HF_LEROBOT_CALIBRATION / <robots|teleoperators> / name
    assert robot_cls.name == profile.lerobot_type
    dev = robot_cls(config_cls(port=NO_PORT, id="lab_arm", calibration_dir=calib_dir))
    dev.calibration = _lerobot_cal({"elbow_flex": 1} if profile is KOCH_LEADER else None, koch=profile.name.startswith("koch"))
    dev._save_calibration()
    ours = load_calibration(profile, "lab_arm", root=tmp_path)
    assert ours.source == calib_dir / "lab_arm.json"
    assert {n: c.as_dict() for n, c in ours.items()} == {
        n: {f: getattr(c, f) for f in ("id", "drive_mode", "homing_offset", "range_min", "range_max")}
        for n, c in dev.calibration.items()
    }
    assert ours.source.read_text() == dumps(ours)  # byte-identical to what LeRobot wrote


@pytest.mark.parametrize(
    ("robot_cls", "config_cls", "profile", "cal"),
    [
        (SO101Follower, SO101FollowerConfig, SO101, None),
        (SO101Leader, SO101LeaderConfig, SO101_LEADER, None),
        (KochLeader, KochLeaderConfig, KOCH_LEADER, ArmCalibration.centered(KOCH_LEADER)),
    ],
)
def test_we_write_lerobot_reads(robot_cls, config_cls, profile, cal, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Our file -> LeRobot's constructor loads it (no connection) into .calibration and its bus."""
    cal = cal or ArmCalibration({n: JointCalibration(**vars(c)) for n, c in _lerobot_cal().items()})
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path))
    path = save_calibration(cal, profile, "blue")
    dev = robot_cls(config_cls(port=NO_PORT, id="blue", calibration_dir=path.parent))
    assert dev.calibration_fpath == path
    assert dev.calibration == _as_lerobot(cal)
    assert dev.bus.calibration == _as_lerobot(cal)


def test_our_text_equals_draccus_output(tmp_path: Path) -> None:
    lr = _lerobot_cal({"gripper": 1})
    target = tmp_path / "x.json"
    with open(target, "w") as f, draccus.config_type("json"):
        draccus.dump(lr, f, indent=4)
    ours = ArmCalibration({n: JointCalibration(**vars(c)) for n, c in lr.items()})
    assert dumps(ours) == target.read_text()
    assert json.loads(target.read_text())["shoulder_pan"] == {
        "id": 1, "drive_mode": 0, "homing_offset": -1234, "range_min": 812, "range_max": 3301
    }


def test_calibration_root_matches_lerobot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LeRobot reads its folder from the environment at import: ask a fresh interpreter each time."""
    names = ("HF_LEROBOT_CALIBRATION", "HF_LEROBOT_HOME", "HF_HOME", "XDG_CACHE_HOME")
    home = str(tmp_path / "home")
    cases = [
        {},
        {"XDG_CACHE_HOME": str(tmp_path / "xdg")},
        {"HF_HOME": str(tmp_path / "hf")},
        {"HF_LEROBOT_HOME": str(tmp_path / "lr"), "HF_HOME": str(tmp_path / "hf")},
        {"HF_LEROBOT_CALIBRATION": "~/custom/calib", "HF_HOME": str(tmp_path / "hf")},
    ]
    code = "from lerobot.utils.constants import HF_LEROBOT_CALIBRATION as c; print(c)"
    base = {k: v for k, v in os.environ.items() if k not in names}
    for env in cases:
        out = subprocess.run([sys.executable, "-c", code], env={**base, "HOME": home, **env},
                             capture_output=True, text=True, timeout=120, check=True).stdout.strip()
        monkeypatch.setenv("HOME", home)
        for k in names:
            if k in env:
                monkeypatch.setenv(k, env[k])
            else:
                monkeypatch.delenv(k, raising=False)
        assert calibration_root() == Path(out), env


# --- numbers ---------------------------------------------------------------------------------------
def _bus(bus_cls, model: str, lr_cal: dict[str, MotorCalibration]):
    motors = {j: Motor(c.id, model, MotorNormMode.DEGREES) for j, c in lr_cal.items()}
    return bus_cls(port=NO_PORT, motors=motors, calibration=lr_cal)


TICKS = sorted({*range(0, 4096, 5), 1, 2047, 2048, 2049, 4094, 4095})


@pytest.mark.parametrize(("bus_cls", "model"), [(FeetechMotorsBus, "sts3215"), (DynamixelMotorsBus, "xl330-m288")])
@pytest.mark.parametrize("drive_mode", [0, 1])
def test_degrees_agree_with_lerobot_normalize(bus_cls, model: str, drive_mode: int) -> None:
    lr_cal = _lerobot_cal({j: drive_mode for j in JOINT_NAMES})
    bus = _bus(bus_cls, model, lr_cal)
    ours = ArmCalibration({n: JointCalibration(**vars(c)) for n, c in lr_cal.items()})
    for joint, c in lr_cal.items():
        lerobot_deg = np.array([bus._normalize({c.id: t})[c.id] for t in TICKS])
        rad = np.array([ours.to_radians(joint, t) for t in TICKS])
        # exact up to float rounding, via the 4096/4095 conversion
        np.testing.assert_allclose(radians_to_lerobot_degrees(rad), lerobot_deg, rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(lerobot_degrees_to_radians(lerobot_deg), rad, rtol=1e-13, atol=1e-14)
        # while plain degrees differ from LeRobot's by the scale: the tolerance above is meaningful
        far = np.abs(rad) > 1.0
        assert np.all(np.abs(np.degrees(rad[far]) - lerobot_deg[far]) > 1e-3)
        np.testing.assert_allclose(lerobot_deg[far] / np.degrees(rad[far]), 4096 / 4095, rtol=1e-12)


def test_lerobot_degrees_give_back_the_exact_goal_ticks() -> None:
    """A LeRobot-degrees dataset drives our arm to the very ticks LeRobot recorded."""
    lr_cal = _lerobot_cal()
    bus = _bus(FeetechMotorsBus, "sts3215", lr_cal)
    ours = ArmCalibration({n: JointCalibration(**vars(c)) for n, c in lr_cal.items()})
    for joint, c in lr_cal.items():
        for t in range(c.range_min, c.range_max + 1):
            deg = bus._normalize({c.id: t})[c.id]
            assert ours[joint].goal(lerobot_degrees_to_radians(deg)) == t
    # LeRobot's own inverse truncates; ours rounds, so they agree to within one tick
    for joint, c in lr_cal.items():
        for deg in np.linspace(-170, 170, 53):
            lr_tick = bus._unnormalize({c.id: float(deg)})[c.id]
            if c.range_min <= lr_tick <= c.range_max:
                assert abs(ours[joint].goal(lerobot_degrees_to_radians(float(deg))) - lr_tick) <= 1


def test_simulated_calibration_through_lerobot_is_mujoco_angle() -> None:
    """The emulator's calibration, handed to LeRobot, reads the MuJoCo joint angle (in LeRobot degrees)."""
    from hardware.sim.arm import ticks_to_rad

    cal = ArmCalibration.simulated(SO101)
    bus = _bus(FeetechMotorsBus, "sts3215", _as_lerobot(cal))
    for joint, c in cal.items():
        for t in (c.range_min, 1500, 2048, 2600, c.range_max):
            deg = bus._normalize({c.id: t})[c.id]
            assert lerobot_degrees_to_radians(deg) == pytest.approx(ticks_to_rad(t), abs=1e-13)
    assert math.isclose(bus._normalize({1: 2048})[1], 0.0, abs_tol=0)
