"""ArmIO.check_calibration against the emulator: a Dynamixel joint whose drive mode differs from the file
is refused (its positions would mean the opposite direction); differing position limits only warn."""

from __future__ import annotations

import pytest

from calibration import ArmCalibration, JointCalibration
from hardware.arms import arm as arm_by_name
from hardware.bus import open_bus
from hardware.emulator import Emulator
from harmowam_ctl.armio import ArmIO, CalibrationMismatch


def _with(cal: ArmCalibration, joint: str, **change: int) -> ArmCalibration:
    joints = dict(cal)
    j = joints[joint]
    fields = {"id": j.id, "drive_mode": j.drive_mode, "homing_offset": j.homing_offset,
              "range_min": j.range_min, "range_max": j.range_max, **change}
    joints[joint] = JointCalibration(**fields)
    return ArmCalibration(joints)


async def _check(profile_name: str, cal_of: object) -> list[str]:
    profile = arm_by_name(profile_name)
    with Emulator(profile) as emu:
        held = ArmCalibration.centered(profile, drive_modes=False)
        for s in emu.servos:  # the servos hold `held`'s offsets, limits and drive modes
            jc = held.joint(s.id)
            s.set("Homing_Offset", jc.homing_offset)
            s.set("Min_Position_Limit", jc.range_min)
            s.set("Max_Position_Limit", jc.range_max)
            if profile.family.name == "DYNAMIXEL":
                s.set("Drive_Mode", jc.drive_mode)
        bus = open_bus(profile, emu.port)
        await bus.open()
        try:
            return await ArmIO(bus, profile, cal_of(held)).check_calibration()
        finally:
            await bus.close()


async def test_the_same_calibration_passes_without_warnings() -> None:
    assert await _check("koch", lambda held: held) == []


async def test_a_dynamixel_drive_mode_that_differs_is_refused() -> None:
    with pytest.raises(CalibrationMismatch, match=r"elbow_flex: drive_mode is 0 on the servo, 1 in the file"):
        await _check("koch", lambda held: _with(held, "elbow_flex", drive_mode=1))


async def test_other_position_limits_only_warn() -> None:
    warnings = await _check("so101", lambda held: _with(held, "wrist_flex", range_min=held["wrist_flex"].range_min + 50))
    assert len(warnings) == 1 and "wrist_flex: range_min" in warnings[0]
