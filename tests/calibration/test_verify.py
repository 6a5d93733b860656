"""calibration.verify against the emulator: every kind of difference between what the servos hold and a
calibration file is found and named (joint, field, expected, found); health findings; no false alarms."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests are not packages (--import-mode=importlib)
from test_wizard_calibrate import LATENCY_S  # noqa: E402

from calibration.model import ArmCalibration, JointCalibration  # noqa: E402
from calibration.verify import ERROR, WARNING, Finding, servo_health, survey, verify_calibration  # noqa: E402
from hardware.arms import KOCH, KOCH_LEADER, SO101, ArmProfile  # noqa: E402
from hardware.bus import open_bus  # noqa: E402
from hardware.emulator import Emulator  # noqa: E402
from hardware.tables import Family  # noqa: E402

RANGES = [(812, 3301), (900, 3200), (880, 3105), (860, 3210), (0, 4095), (2020, 3450)]
OFFSETS = [-1234, 500, 12, -7, 60, 1400]


def sample_cal(profile: ArmProfile, **changes: dict[str, int]) -> ArmCalibration:
    """A calibration like a real one (full-turn joints 0..4095, as LeRobot writes them: wrist_roll, and
    shoulder_pan on a Koch); ``changes``: joint -> fields to override."""
    joints = {}
    for i, m in enumerate(profile.motors):
        lo, hi = (0, 4095) if m.full_turn else RANGES[i]
        fields = {"id": m.id, "drive_mode": m.drive_mode if profile.family is Family.DYNAMIXEL else 0,
                  "homing_offset": OFFSETS[i], "range_min": lo, "range_max": hi}
        fields.update(changes.get(m.joint, {}))
        joints[m.joint] = JointCalibration(**fields, joint=m.joint)
    return ArmCalibration(joints)


def hold(emu: Emulator, cal: ArmCalibration) -> None:
    """Make the emulated servos hold ``cal`` (as a finished calibration leaves them)."""
    for s, jc in zip(emu.servos, cal.values()):
        s.set("Homing_Offset", jc.homing_offset)
        s.set("Min_Position_Limit", jc.range_min)
        s.set("Max_Position_Limit", jc.range_max)
        if s.family is Family.DYNAMIXEL:
            s.set("Drive_Mode", jc.drive_mode | 4)  # other bits are not the calibration's business


async def findings(emu: Emulator, profile: ArmProfile, cal: ArmCalibration) -> list[Finding]:
    async with open_bus(profile, emu.port, latency_s=LATENCY_S) as bus:
        return await verify_calibration(bus, profile, cal)


@pytest.mark.parametrize("profile", [SO101, KOCH, KOCH_LEADER], ids=lambda p: p.name)
async def test_servos_that_hold_the_file_give_no_findings(profile: ArmProfile) -> None:
    cal = sample_cal(profile)
    with Emulator(profile) as emu:
        hold(emu, cal)
        assert await findings(emu, profile, cal) == []


@pytest.mark.parametrize(("joint", "field", "value"), [
    ("shoulder_pan", "homing_offset", -1200),
    ("elbow_flex", "range_min", 900),
    ("gripper", "range_max", 3400),
    ("wrist_flex", "homing_offset", 7),  # the sign: -7 in the file, +7 in the servo
])
async def test_each_difference_is_named(joint: str, field: str, value: int) -> None:
    cal = sample_cal(SO101)
    with Emulator(SO101) as emu:
        hold(emu, sample_cal(SO101, **{joint: {field: value}}))
        found = await findings(emu, SO101, cal)
    assert found == [Finding(joint, field, getattr(cal[joint], field), value, ERROR, found[0].hint)]
    assert "recalibrate" in found[0].hint and "harmowam calibrate --arm so101" in found[0].hint
    assert joint in str(found[0]) and str(value) in str(found[0])


async def test_dynamixel_drive_mode_difference() -> None:
    cal = sample_cal(KOCH_LEADER)
    with Emulator(KOCH_LEADER) as emu:
        hold(emu, sample_cal(KOCH_LEADER, elbow_flex={"drive_mode": 0}))
        found = await findings(emu, KOCH_LEADER, cal)
    assert [(f.joint, f.field, f.expected, f.found) for f in found] == [("elbow_flex", "drive_mode", 1, 0)]


async def test_feetech_file_with_drive_mode_is_a_warning() -> None:
    cal = sample_cal(SO101, elbow_flex={"drive_mode": 1})
    with Emulator(SO101) as emu:
        hold(emu, cal)
        found = await findings(emu, SO101, cal)
    assert [(f.joint, f.field, f.severity) for f in found] == [("elbow_flex", "drive_mode", WARNING)]


async def test_missing_wrong_model_and_firmware() -> None:
    cal = sample_cal(SO101)
    with Emulator(SO101, faults="dead=3,model=5:2825") as emu:
        hold(emu, cal)
        emu.servos[1].set("Firmware_Minor_Version", 9)
        found = await findings(emu, SO101, cal)
    by_joint = {f.joint: f for f in found}
    assert set(by_joint) == {"elbow_flex", "wrist_roll", "shoulder_lift"}
    assert (by_joint["elbow_flex"].field, by_joint["elbow_flex"].found) == ("id", "no reply")
    assert "setup-motors" in by_joint["elbow_flex"].hint
    assert (by_joint["wrist_roll"].field, by_joint["wrist_roll"].expected) == ("model", "sts3215")
    assert by_joint["wrist_roll"].found == "unknown (2825)"
    assert (by_joint["shoulder_lift"].field, by_joint["shoulder_lift"].expected, by_joint["shoulder_lift"].found) == (
        "firmware", "3.10", "3.9")


async def test_koch_models_differ_but_firmware_per_model_agrees() -> None:
    """XL430 and XL330 run different firmware versions: not a finding (only within one model)."""
    cal = sample_cal(KOCH)
    with Emulator(KOCH) as emu:
        hold(emu, cal)
        async with open_bus(KOCH, emu.port, latency_s=LATENCY_S) as bus:
            servos = await survey(bus, KOCH)
            assert {s.firmware for s in servos.values()} == {(46, 0), (52, 0)}
            assert await verify_calibration(bus, KOCH, cal, servos) == []


async def test_calibration_the_servos_cannot_hold_is_refused() -> None:
    """A Dynamixel-sized homing offset given for Feetech servos: an error before any bus traffic."""
    from calibration.model import InvalidCalibration

    with Emulator(SO101) as emu:
        async with open_bus(SO101, emu.port, latency_s=LATENCY_S) as bus:
            with pytest.raises(InvalidCalibration, match="homing_offset 5000"):
                await verify_calibration(bus, SO101, sample_cal(KOCH, elbow_flex={"homing_offset": 5000}))


async def test_health_rows_and_findings() -> None:
    with Emulator(SO101, faults="voltage=2") as emu:
        emu.servos[3].set("Max_Temperature_Limit", 35)  # 30 C now: within 10 C of it
        emu.servos[4].set("Max_Temperature_Limit", 25)  # above it
        async with open_bus(SO101, emu.port, latency_s=LATENCY_S) as bus:
            rows, found = await servo_health(bus, SO101)
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0]["voltage_v"] == 12.0 and rows[0]["temperature_c"] == 30 and rows[0]["model"] == "sts3215"
    assert rows[0]["firmware"] == "3.10"
    kinds = {(f.joint, f.field, f.severity) for f in found}
    assert kinds == {("shoulder_lift", "voltage", ERROR), ("wrist_flex", "temperature", WARNING),
                     ("wrist_roll", "temperature", ERROR)}
    volt = next(f for f in found if f.field == "voltage")
    assert "power supply" in volt.hint


async def test_health_of_a_healthy_koch_leader() -> None:
    with Emulator(KOCH_LEADER) as emu:
        async with open_bus(KOCH_LEADER, emu.port, latency_s=LATENCY_S) as bus:
            rows, found = await servo_health(bus, KOCH_LEADER)
    assert found == [] and all(r["voltage_v"] == 5.0 for r in rows)
