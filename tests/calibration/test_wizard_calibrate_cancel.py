"""Cancel (Ctrl-C, q) at every state, failures while writing or saving, refused confirmations: torque
ends off, the calibration file is untouched (the previous one intact), and the servos hold what they
held before (nothing written before WRITING; a failure during it restores the snapshot)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests are not packages (--import-mode=importlib)
from test_wizard_calibrate import LATENCY_S, eeprom, record_all, run_ranges_for, set_actual, sweep  # noqa: E402

from calibration.files import calibration_path, save_calibration  # noqa: E402
from calibration.model import ArmCalibration
from calibration.wizards.calibrate import CalibrateWizard, Event, Step
from hardware.arms import KOCH_LEADER, SO101, ArmProfile
from hardware.bus import open_bus
from hardware.emulator import Emulator
from hardware.errors import HardwareError

OLD_OFFSETS = (1500, -1700, 3, 900, -2047, 2047)


def prepare(emu: Emulator, profile: ArmProfile, tmp_path: Path) -> tuple[Path, bytes]:
    """Servos holding an old calibration with torque on, and an old file of that name."""
    for s, off in zip(emu.servos, OLD_OFFSETS):
        s.set("Homing_Offset", off if profile.family.value == "feetech" else off * 3)
        s.set("Min_Position_Limit", 1000)
        s.set("Max_Position_Limit", 3000)
        s.set("Torque_Enable", 1)
    path = save_calibration(ArmCalibration.centered(profile), profile, "arm", tmp_path)
    return path, path.read_bytes()


def assert_untouched(emu: Emulator, before: list[bytes], path: Path, old: bytes, backup: bool = False) -> None:
    assert eeprom(emu) == before, "servo EEPROM changed"
    assert all(s.get("Torque_Enable") == 0 for s in emu.servos), "torque left on"
    assert path.read_bytes() == old, "calibration file changed"
    others = [p for p in path.parent.iterdir() if p != path]
    if backup:  # save_calibration copies the old file before it writes: a copy, harmless
        assert len(others) == 1 and others[0].name.endswith(".bak") and others[0].read_bytes() == old
    else:
        assert not others, "backup or temp file left behind"


async def advance_to(wiz: CalibrateWizard, emu: Emulator, target: Step) -> None:
    assert await wiz.start() is Step.MIDDLE
    if target is Step.MIDDLE:
        return
    set_actual(emu, 1, 1200.0)
    assert await wiz.handle(Event.CONFIRM) is Step.RANGES
    await sweep(wiz, emu, 1, -300)
    if target is Step.RANGES:
        return
    await record_all(wiz, emu, run_ranges_for(wiz.profile))
    assert await wiz.handle(Event.CONFIRM) is Step.REVIEW, wiz.problems


@pytest.mark.parametrize("profile", [SO101, KOCH_LEADER], ids=lambda p: p.name)
@pytest.mark.parametrize("at", [Step.MIDDLE, Step.RANGES, Step.REVIEW], ids=lambda s: s.value)
async def test_cancel_before_writing_changes_nothing(profile: ArmProfile, at: Step, tmp_path: Path) -> None:
    with Emulator(profile) as emu:
        path, old = prepare(emu, profile, tmp_path)
        async with open_bus(profile, emu.port, latency_s=LATENCY_S) as bus:
            wiz = CalibrateWizard(bus, profile, "arm", root=tmp_path)
            before = eeprom(emu)  # EEPROM only: torque (RAM) goes off
            await advance_to(wiz, emu, at)
            assert await wiz.handle(Event.CANCEL) is Step.CANCELLED
            assert "nothing was written" in wiz.message
            for event in Event:  # a finished wizard ignores everything
                assert await wiz.handle(event) is Step.CANCELLED
        assert_untouched(emu, before, path, old)


async def test_task_cancelled_while_recording(tmp_path: Path) -> None:
    """Ctrl-C arriving as a cancellation of the task that drives the wizard (asyncio.run's SIGINT
    handling) in the middle of a sample: same result as the CANCEL event."""
    with Emulator(SO101) as emu:
        path, old = prepare(emu, SO101, tmp_path)
        async with open_bus(SO101, emu.port, latency_s=LATENCY_S) as bus:
            wiz = CalibrateWizard(bus, SO101, "arm", root=tmp_path)
            await advance_to(wiz, emu, Step.RANGES)
            for s in emu.servos:
                s.set("Torque_Enable", 1)  # as if something had switched it on again
            before = eeprom(emu)

            async def sampling() -> None:
                while True:
                    await wiz.handle(Event.SAMPLE)

            task = asyncio.create_task(sampling())
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert wiz.state is Step.CANCELLED
        assert_untouched(emu, before, path, old)


class FlakyWrites:
    """Wraps ``bus.write``: after ``ok`` EEPROM-phase writes, fail (``HardwareError``) or hang."""

    def __init__(self, bus, ok: int, mode: str) -> None:
        self.bus, self.ok, self.mode, self.count = bus, ok, mode, 0
        self.real = bus.write
        self.hanging = asyncio.Event()
        self.armed = False
        bus.write = self

    async def __call__(self, servo_id: int, register: str, value: int) -> None:
        if self.armed and register != "Torque_Enable":
            self.count += 1
            if self.count > self.ok:
                self.armed = False  # the restore goes through
                if self.mode == "fail":
                    raise HardwareError(f"id {servo_id} did not answer a write of {register}", ["check the cable"])
                self.hanging.set()
                await asyncio.Event().wait()  # until cancelled
        await self.real(servo_id, register, value)


@pytest.mark.parametrize("profile", [SO101, KOCH_LEADER], ids=lambda p: p.name)
@pytest.mark.parametrize("ok", [0, 7, 17])
async def test_failure_while_writing_restores_the_servos(profile: ArmProfile, ok: int, tmp_path: Path) -> None:
    with Emulator(profile) as emu:
        path, old = prepare(emu, profile, tmp_path)
        async with open_bus(profile, emu.port, latency_s=LATENCY_S) as bus:
            wiz = CalibrateWizard(bus, profile, "arm", root=tmp_path)
            await advance_to(wiz, emu, Step.REVIEW)
            before = eeprom(emu)
            flaky = FlakyWrites(bus, ok, "fail")
            flaky.armed = True
            assert await wiz.handle(Event.CONFIRM) is Step.FAILED
            assert "did not answer" in wiz.message and "set back to their previous calibration" in wiz.message
            assert "file was not touched" in wiz.message
        assert_untouched(emu, before, path, old)
        emu.power_cycle()
        assert eeprom(emu) == before  # and it is what they hold in EEPROM, not only in RAM


async def test_cancel_while_writing_restores_the_servos(tmp_path: Path) -> None:
    with Emulator(SO101) as emu:
        path, old = prepare(emu, SO101, tmp_path)
        async with open_bus(SO101, emu.port, latency_s=LATENCY_S) as bus:
            wiz = CalibrateWizard(bus, SO101, "arm", root=tmp_path)
            await advance_to(wiz, emu, Step.REVIEW)
            before = eeprom(emu)
            flaky = FlakyWrites(bus, 11, "hang")
            flaky.armed = True
            task = asyncio.create_task(wiz.handle(Event.CONFIRM))
            await asyncio.wait_for(flaky.hanging.wait(), 10)
            assert wiz.state is Step.WRITING and wiz.progress[0] == 11
            assert eeprom(emu) != before  # half written...
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert wiz.state is Step.CANCELLED
        assert_untouched(emu, before, path, old)  # ...and restored


async def test_save_failure_restores_the_servos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import calibration.files as files

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with Emulator(SO101) as emu:
        path, old = prepare(emu, SO101, tmp_path)
        async with open_bus(SO101, emu.port, latency_s=LATENCY_S) as bus:
            wiz = CalibrateWizard(bus, SO101, "arm", root=tmp_path)
            await advance_to(wiz, emu, Step.REVIEW)
            before = eeprom(emu)
            monkeypatch.setattr(files.os, "fsync", full_disk)  # the temporary file cannot be written out
            assert await wiz.handle(Event.CONFIRM) is Step.FAILED
            monkeypatch.undo()
            assert f"Could not save {path}" in wiz.message and "No space left" in wiz.message
            assert "previous calibration" in wiz.message
        assert_untouched(emu, before, path, old, backup=True)


async def test_cancel_after_saving_keeps_the_new_file(tmp_path: Path) -> None:
    with Emulator(SO101) as emu:
        path, old = prepare(emu, SO101, tmp_path)
        async with open_bus(SO101, emu.port, latency_s=LATENCY_S) as bus:
            wiz = CalibrateWizard(bus, SO101, "arm", root=tmp_path)
            await advance_to(wiz, emu, Step.REVIEW)
            assert await wiz.handle(Event.CONFIRM) is Step.VERIFYING
            assert await wiz.handle(Event.CANCEL) is Step.DONE
        assert path.read_bytes() != old
        backups = [p for p in path.parent.iterdir() if p.name.endswith(".bak")]
        assert len(backups) == 1 and backups[0].read_bytes() == old  # the previous file, kept
        assert all(s.get("Torque_Enable") == 0 for s in emu.servos)


async def test_confirm_refused_until_every_joint_moved(tmp_path: Path) -> None:
    with Emulator(SO101) as emu:
        async with open_bus(SO101, emu.port, latency_s=LATENCY_S) as bus:
            wiz = CalibrateWizard(bus, SO101, "arm", root=tmp_path)
            await advance_to(wiz, emu, Step.RANGES)  # only shoulder_lift moved (300 ticks)
            assert await wiz.handle(Event.CONFIRM) is Step.RANGES
            unmoved = {p.split()[0] for p in wiz.problems}
            assert unmoved == {"shoulder_pan", "elbow_flex", "wrist_flex", "gripper"}  # wrist_roll: full turn
            assert all("moved only" in p for p in wiz.problems)
            # more than a full turn is refused too; r starts the recording again
            await sweep(wiz, emu, 2, 4200)
            await record_all(wiz, emu, {0: (-300, 300), 3: (-300, 300), 5: (-300, 300)})
            assert await wiz.handle(Event.CONFIRM) is Step.RANGES
            assert [p.split()[0] for p in wiz.problems] == ["elbow_flex"] and "full turn" in wiz.problems[0]
            assert await wiz.handle(Event.RESTART) is Step.RANGES
            assert all(r.lo == r.hi for r in wiz.rows())
            await record_all(wiz, emu, run_ranges_for(SO101))
            assert await wiz.handle(Event.CONFIRM) is Step.REVIEW
            assert not calibration_path(SO101, "arm", tmp_path).exists()  # nothing saved before the end
            await wiz.cancel()


async def test_missing_motor_fails_at_start_with_torque_off(tmp_path: Path) -> None:
    with Emulator(SO101, faults="dead=4") as emu:
        for s in emu.servos:
            s.set("Torque_Enable", 1)
        async with open_bus(SO101, emu.port, latency_s=LATENCY_S) as bus:
            wiz = CalibrateWizard(bus, SO101, "arm", root=tmp_path)
            assert await wiz.start() is Step.FAILED
            assert "wrist_flex" in wiz.message and "could not start" in wiz.message
        assert [s.get("Torque_Enable") for s in emu.servos] == [0, 0, 0, 1, 0, 0]  # the dead one is not heard


async def test_multi_turn_feetech_servo_is_refused(tmp_path: Path) -> None:
    with Emulator(SO101) as emu:
        emu.servos[4].set("Phase", emu.servos[4].get("Phase") | 0x10)
        before = eeprom(emu)
        async with open_bus(SO101, emu.port, latency_s=LATENCY_S) as bus:
            wiz = CalibrateWizard(bus, SO101, "arm", root=tmp_path)
            assert await wiz.start() is Step.FAILED
        assert "wrist_roll" in wiz.message and "multi-turn" in wiz.message and "setup-motors" in wiz.message
        assert eeprom(emu) == before and all(s.get("Torque_Enable") == 0 for s in emu.servos)


async def test_a_motor_going_silent_while_recording_is_reported_not_fatal(tmp_path: Path) -> None:
    with Emulator(SO101) as emu:
        async with open_bus(SO101, emu.port, latency_s=LATENCY_S, retries=0) as bus:
            wiz = CalibrateWizard(bus, SO101, "arm", root=tmp_path)
            await advance_to(wiz, emu, Step.RANGES)
            emu.servos[3].dead = True  # a loose cable
            assert await wiz.handle(Event.SAMPLE) is Step.RANGES
            assert "wrist_flex" in wiz.alert and "did not answer" in wiz.alert
            emu.servos[3].dead = False
            await sweep(wiz, emu, 3, 200)
            assert wiz.alert == ""
            await wiz.cancel()
