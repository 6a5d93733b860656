"""The calibration wizard (state machine) against the emulator, with scripted joint motions: the test
moves the emulated joints by hand while the wizard samples them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from lerobot.motors.motors_bus import MotorCalibration

from calibration.files import calibration_path, load_calibration
from calibration.wizards.calibrate import CalibrateWizard, Event, Step
from hardware.arms import KOCH, KOCH_LEADER, SO100_LEADER, SO101, SO101_LEADER, ArmProfile
from hardware.bus import open_bus
from hardware.emulator import Emulator
from hardware.tables import Family

RAD = 2 * math.pi / 4096
LATENCY_S = 0.05  # as `harmowam calibrate` opens the bus: a loaded test machine never misses a deadline


# --- helpers (imported by the other wizard tests) ---------------------------------------------------
def set_actual(emu: Emulator, index: int, ticks: float) -> None:
    """Put joint ``index`` at mechanical position ``ticks`` (a hand moves it there)."""
    emu.motion.move_by_hand(index, ticks - emu.servos[index].mech_position())


async def sweep(wiz: CalibrateWizard, emu: Emulator, index: int, delta: int, step: int = 400) -> None:
    """Move joint ``index`` by ``delta`` ticks in hand-sized steps, the wizard sampling after each."""
    await sweep_all(wiz, emu, {index: delta}, step)


async def sweep_all(wiz: CalibrateWizard, emu: Emulator, deltas: dict[int, int], step: int = 400) -> None:
    """Move several joints at once by ``deltas`` ticks, at most ``step`` between two samples."""
    done = dict.fromkeys(deltas, 0)
    while any(done[i] != d for i, d in deltas.items()):
        for i, d in deltas.items():
            k = max(-step, min(step, d - done[i]))
            emu.motion.move_by_hand(i, k)
            done[i] += k
        await wiz.handle(Event.SAMPLE)
        assert not wiz.alert, wiz.alert


def eeprom(emu: Emulator) -> list[bytes]:
    """Every servo's persisted EEPROM and the EEPROM area as the servo uses it now."""
    out = []
    for s in emu.servos:
        top = 40 if s.family is Family.FEETECH else 64
        out.append(bytes(s.mem.persisted[:top]) + bytes(s.mem.ram[:top]))
    return out


def run_ranges_for(profile: ArmProfile) -> dict[int, tuple[int, int]]:
    """index -> (down, up) ticks each joint is swept from the mid pose (full-turn joints: a little)."""
    return {i: (-40, 40) if m.full_turn else (-500 - 50 * i, 600 + 30 * i) for i, m in enumerate(profile.motors)}


async def record_all(wiz: CalibrateWizard, emu: Emulator, sweeps: dict[int, tuple[int, int]]) -> None:
    """Every joint down, up, and back to the middle (all at once, as two hands would never do; the
    wizard does not care)."""
    await sweep_all(wiz, emu, {i: down for i, (down, up) in sweeps.items()})
    await sweep_all(wiz, emu, {i: up - down for i, (down, up) in sweeps.items()})
    await sweep_all(wiz, emu, {i: -up for i, (down, up) in sweeps.items()})


async def calibrate(profile: ArmProfile, emu: Emulator, tmp_path: Path, mids: list[float] | None = None,
                    name: str = "arm") -> CalibrateWizard:
    """A whole calibration up to VERIFYING; the bus stays open only inside."""
    async with open_bus(profile, emu.port, latency_s=LATENCY_S) as bus:
        wiz = CalibrateWizard(bus, profile, name, root=tmp_path)
        assert await wiz.start() is Step.MIDDLE, wiz.message
        for i, t in enumerate(mids or []):
            set_actual(emu, i, t)
        assert await wiz.handle(Event.CONFIRM) is Step.RANGES
        await record_all(wiz, emu, run_ranges_for(profile))
        assert await wiz.handle(Event.CONFIRM) is Step.REVIEW, wiz.problems
        assert await wiz.handle(Event.CONFIRM) is Step.VERIFYING, wiz.message
        await wiz.handle(Event.SAMPLE)
        wiz.final_rows = wiz.rows()  # type: ignore[attr-defined]
        assert await wiz.handle(Event.CONFIRM) is Step.DONE
    return wiz


# --- every arm -------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", [SO101, SO101_LEADER, SO100_LEADER, KOCH, KOCH_LEADER], ids=lambda p: p.name)
async def test_calibrates_every_arm(profile: ArmProfile, tmp_path: Path) -> None:
    mids = [2100.0, 1000.0, 3000.0, 2048.0, 500.0, 2500.0]
    with Emulator(profile) as emu:
        emu.servos[0].set("Torque_Enable", 1)  # a servo holding: the wizard must release it
        wiz = await calibrate(profile, emu, tmp_path, mids)
        cal = load_calibration(profile, "arm", root=tmp_path)
        assert cal == wiz.result and cal.source == calibration_path(profile, "arm", tmp_path)
        emu.power_cycle()  # what the servos hold must be in EEPROM, not only RAM
        for i, m in enumerate(profile.motors):
            s, jc = emu.servos[i], cal[m.joint]
            assert s.get("Torque_Enable") == 0
            assert s.get("Homing_Offset") == jc.homing_offset
            assert (s.get("Min_Position_Limit"), s.get("Max_Position_Limit")) == (jc.range_min, jc.range_max)
            if profile.family is Family.FEETECH:
                assert s.get("Lock") == 1  # relocked after writing (power-up default too)
                assert jc.drive_mode == 0
            else:
                assert s.get("Drive_Mode") & 1 == jc.drive_mode == m.drive_mode
            if m.full_turn:
                assert (jc.range_min, jc.range_max) == (0, 4095)
            else:
                down, up = run_ranges_for(profile)[i]
                if m.drive_mode:  # the inverted joint reads the motor's motion backwards
                    down, up = -up, -down
                # the mid pose reads 2048: the range is where it was swept around it
                assert (jc.range_min, jc.range_max) == (2048 + down, 2048 + up)
            # the arm is back at the mid pose: 2048 there, i.e. near 0 rad
            assert s.get("Present_Position") == 2048
        assert not any(f.severity == "error" for f in wiz.findings)


async def test_verify_step_shows_radians(tmp_path: Path) -> None:
    with Emulator(SO101) as emu:
        wiz = await calibrate(SO101, emu, tmp_path, [2048.0] * 6)
    rows = wiz.final_rows  # type: ignore[attr-defined]
    for r in rows:
        jc = wiz.result[r.joint]
        assert r.rad == pytest.approx((2048 - jc.mid) * RAD)


async def test_lerobot_loads_the_saved_file(tmp_path: Path) -> None:
    """The file is LeRobot's: its SO101Follower reads it from its own calibration folder."""
    from lerobot.robots.so_follower import SO101Follower, SO101FollowerConfig

    with Emulator(SO101) as emu:
        wiz = await calibrate(SO101, emu, tmp_path, [2100.0, 1000.0, 3000.0, 2048.0, 500.0, 2500.0], "lab")
    robot = SO101Follower(SO101FollowerConfig(port="/dev/none", id="lab", calibration_dir=tmp_path / "robots" / "so_follower"))
    assert robot.calibration == {j: MotorCalibration(**c.as_dict()) for j, c in wiz.result.items()}
    doc = json.loads(calibration_path(SO101, "lab", tmp_path).read_text())
    assert list(doc) == list(SO101.joints)


async def test_lerobot_bus_agrees_with_the_servos(tmp_path: Path) -> None:
    """LeRobot's own bus, given our file, finds the servos calibrated (``is_calibrated``) and reads the
    positions in degrees as our radians say."""
    from lerobot.motors import Motor, MotorNormMode
    from lerobot.motors.feetech import FeetechMotorsBus

    from calibration.model import radians_to_lerobot_degrees

    with Emulator(SO101) as emu:
        wiz = await calibrate(SO101, emu, tmp_path, [2100.0, 1000.0, 3000.0, 2048.0, 500.0, 2500.0])
        emu.motion.move_by_hand(1, 333)
        bus = FeetechMotorsBus(
            emu.port, {m.joint: Motor(m.id, "sts3215", MotorNormMode.DEGREES) for m in SO101.motors},
            calibration={j: MotorCalibration(**c.as_dict()) for j, c in wiz.result.items()},
        )
        bus.connect()
        try:
            assert bus.is_calibrated
            deg = bus.sync_read("Present_Position")
        finally:
            bus.disconnect(disable_torque=False)
        raw = emu.servos[1].get("Present_Position")
    ours = wiz.result["shoulder_lift"].to_radians(raw)
    assert deg["shoulder_lift"] == pytest.approx(radians_to_lerobot_degrees(ours), abs=1e-6)


# --- wrap-around, far from centre, overflow -------------------------------------------------------
async def test_wrap_around_never_corrupts_the_range(tmp_path: Path) -> None:
    """A joint homed away from its mid-range: its range crosses 4095 -> 0 in the homed frame. LeRobot's
    min/max of raw readings would give ~0..4095; the wizard unwraps and re-centres."""
    with Emulator(SO101) as emu:
        async with open_bus(SO101, emu.port, latency_s=LATENCY_S) as bus:
            wiz = CalibrateWizard(bus, SO101, "arm", root=tmp_path)
            await wiz.start()
            await wiz.handle(Event.CONFIRM)
            await record_all(wiz, emu, {i: (-300, 300) for i in range(6) if i != 2})
            await sweep(wiz, emu, 2, -100)
            await sweep(wiz, emu, 2, 2600)  # readings go 1948 -> 4095 -> 0 -> 452
            seen = [r.present for r in wiz.rows()]
            assert seen[2] == (2048 + 2500) % 4096  # the raw reading did wrap
            assert await wiz.handle(Event.CONFIRM) is Step.REVIEW, wiz.problems
            jc = wiz.result["elbow_flex"]
            assert jc.range_max - jc.range_min == 2600
            assert abs(jc.mid - 2048) <= 1
            assert any("wrap" in n and "elbow_flex" in n for n in wiz.notes)
            await wiz.handle(Event.CONFIRM)
            assert wiz.state is Step.VERIFYING, wiz.message
            # the servo now reads the joint's current pose (the top of its range) as range_max
            assert emu.servos[2].get("Present_Position") == jc.range_max
            await sweep(wiz, emu, 2, -2600)
            assert emu.servos[2].get("Present_Position") == jc.range_min
            await wiz.handle(Event.CONFIRM)


@pytest.mark.parametrize("actual", [0.0, 4095.0, 40.0, 4096.0 * 3 + 7])
async def test_mid_pose_far_from_centre_or_at_the_overflow(actual: float, tmp_path: Path) -> None:
    """The homing offset is wrapped into the register (+-2047): actual 0 would need -2048 (LeRobot's
    'Magnitude 2048 exceeds 2047'); it is re-centred by one tick instead of crashing."""
    with Emulator(SO101) as emu:
        wiz = await calibrate(SO101, emu, tmp_path, [actual, 2048.0, 2048.0, 2048.0, 2048.0, 2048.0])
        jc = wiz.result["shoulder_pan"]
        assert abs(jc.homing_offset) <= 2047
        s = emu.servos[0]
        assert s.get("Homing_Offset") == jc.homing_offset
        assert jc.range_min <= s.get("Present_Position") <= jc.range_max
        mid_reads = s.get("Present_Position")
    if actual % 4096 == 0:
        assert jc.homing_offset == -2047 and mid_reads == 2047
        assert any("shoulder_pan" in n and "-2048" in n for n in wiz.notes)
    else:
        assert mid_reads == 2048


async def test_existing_offsets_and_limits_are_replaced(tmp_path: Path) -> None:
    """Servos that held another calibration (offsets, narrow limits) end with the new one; the old
    offset is taken into account while recording (the readings are converted, not misread)."""
    with Emulator(SO101) as emu:
        for s, off in zip(emu.servos, (1500, -1700, 3, 900, -2047, 2047)):
            s.set("Homing_Offset", off)
            s.set("Min_Position_Limit", 1000)
            s.set("Max_Position_Limit", 1100)
        wiz = await calibrate(SO101, emu, tmp_path, [2100.0, 1000.0, 3000.0, 2048.0, 500.0, 2500.0])
        for i, (m, s) in enumerate(zip(SO101.motors, emu.servos)):
            assert s.get("Present_Position") == 2048
            if not m.full_turn:
                down, up = run_ranges_for(SO101)[i]
                assert (s.get("Min_Position_Limit"), s.get("Max_Position_Limit")) == (2048 + down, 2048 + up)
            assert s.get("Homing_Offset") == wiz.result[m.joint].homing_offset


# --- Koch drive mode --------------------------------------------------------------------------------
async def test_koch_leader_elbow_is_inverted(tmp_path: Path) -> None:
    with Emulator(KOCH_LEADER) as emu:
        wiz = await calibrate(KOCH_LEADER, emu, tmp_path, [2048.0, 2048.0, 1500.0, 2048.0, 2048.0, 2048.0])
        elbow = emu.servos[2]
        assert elbow.get("Drive_Mode") & 1 == 1 and wiz.result["elbow_flex"].drive_mode == 1
        before = elbow.get("Present_Position")
        emu.motion.move_by_hand(2, 100)  # the motor turns +100: the inverted joint reads -100
        assert elbow.get("Present_Position") == before - 100
        other = emu.servos[3]
        before = other.get("Present_Position")
        emu.motion.move_by_hand(3, 100)
        assert other.get("Present_Position") == before + 100
    from lerobot.teleoperators.koch_leader import KochLeader, KochLeaderConfig

    leader = KochLeader(KochLeaderConfig(port="/dev/none", id="arm", calibration_dir=tmp_path / "teleoperators" / "koch_leader"))
    assert leader.calibration["elbow_flex"].drive_mode == 1


async def test_koch_follower_previously_inverted_joint_is_reset(tmp_path: Path) -> None:
    """A follower servo left inverted (Drive_Mode 1) gets the profile's drive mode 0; the recording
    converts its inverted readings into the new frame correctly."""
    with Emulator(KOCH) as emu:
        emu.servos[2].set("Drive_Mode", 1)
        emu.servos[2].set("Homing_Offset", 4000)
        wiz = await calibrate(KOCH, emu, tmp_path, [2048.0, 2048.0, 1500.0, 2048.0, 2048.0, 2048.0])
        assert emu.servos[2].get("Drive_Mode") & 1 == 0
        down, up = run_ranges_for(KOCH)[2]
        assert (wiz.result["elbow_flex"].range_min, wiz.result["elbow_flex"].range_max) == (2048 + down, 2048 + up)
