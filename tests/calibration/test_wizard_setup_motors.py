"""setup-motors state machine against the emulator, one motor plugged in at a time (``setup_rig``)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests are not packages (--import-mode=importlib)
from setup_rig import factory_emulator, plug, plug_all, servo  # noqa: E402

from calibration.wizards.setup_motors import (  # noqa: E402
    Answer,
    MotorInfo,
    MotorResult,
    SetupMotorsWizard,
    State,
    check_motor,
)
from hardware.arms import arm  # noqa: E402
from hardware.bus import open_bus  # noqa: E402

FAST = (1_000_000, 57_600)  # the target and factory bauds: enough where the test is not about the scan


class Writes:
    """A bus factory that records every register write (to prove "nothing written")."""

    def __init__(self) -> None:
        self.log: list[tuple[int, int, str, int]] = []  # (baud, id, register, value)
        self.hook = None  # async callable(register, value) run before each write

    def __call__(self, profile, port, baud):
        bus = open_bus(profile, port, baud)
        real = bus.write

        async def write(servo_id, register, value):
            if self.hook is not None:
                await self.hook(register, value)
            self.log.append((bus.baud, servo_id, register, value))
            await real(servo_id, register, value)

        bus.write = write
        return bus


@pytest.fixture
async def rig():
    made = []

    def make(arm_name: str, faults: str | None = None, **kw):
        emu = factory_emulator(arm_name, faults)
        port = emu.start()
        writes = Writes()
        wiz = SetupMotorsWizard(arm(arm_name), port, bus_factory=writes, **kw)
        made.append((emu, wiz))
        return emu, wiz, writes

    yield make
    for emu, wiz in made:
        await wiz.close()
        emu.stop()


async def connect_and_go(wiz: SetupMotorsWizard, emu, joint: str):
    plug(emu, joint)
    return await wiz.step(Answer.CONTINUE)


async def run_all(wiz, emu, *, until: str | None = None):
    """Start, then plug each asked motor alone and continue; stop before ``until`` or at CONNECT_ALL."""
    screen = await wiz.start()
    assert screen.state is State.START
    screen = await wiz.step(Answer.CONTINUE)
    while screen.state is State.CONNECT:
        if screen.joint == until:
            return screen
        screen = await connect_and_go(wiz, emu, screen.joint)
    return screen


def assert_set_up(emu, profile) -> None:
    """After a power cycle (EEPROM only), every motor holds its ID and the bus baud."""
    emu.power_cycle()
    for spec in profile.motors:
        s = servo(emu, spec.joint)
        assert s.get("ID") == spec.id, spec.joint
        assert s.baud == profile.baud, spec.joint


async def test_so101_full_setup_one_motor_at_a_time(rig):
    emu, wiz, writes = rig("so101", scan_bauds=FAST)
    screen = await run_all(wiz, emu)
    assert screen.state is State.CONNECT_ALL
    assert [j for j in wiz.results] == ["gripper", "wrist_roll", "wrist_flex", "elbow_flex", "shoulder_lift", "shoulder_pan"]
    assert not wiz.results["shoulder_pan"].written  # factory id 1 at 1 Mbaud is already its target
    assert all(wiz.results[j].written for j in ("gripper", "wrist_roll", "wrist_flex", "elbow_flex", "shoulder_lift"))
    # Feetech: unlocked before the EEPROM write, ID last, locked again
    grip = [(reg, v) for _, _, reg, v in writes.log[:4]]
    assert grip == [("Torque_Enable", 0), ("Lock", 0), ("ID", 6), ("Lock", 1)]
    plug_all(emu)
    screen = await wiz.step(Answer.CONTINUE)
    assert screen.state is State.DONE and screen.final
    assert [(r.joint, r.id, r.model, r.status) for r in screen.table] == [
        (m.joint, m.id, "sts3215", "ok") for m in wiz.profile.motors
    ]
    assert all(servo(emu, m.joint).get("Lock") == 1 for m in wiz.profile.motors)
    assert_set_up(emu, wiz.profile)


async def test_koch_full_setup_changes_baud_then_id(rig):
    emu, wiz, writes = rig("koch")  # every baud the family supports is scanned
    screen = await run_all(wiz, emu)
    assert screen.state is State.CONNECT_ALL
    for spec in wiz.profile.motors:
        r = wiz.results[spec.joint]
        assert r.written and (r.info.id, r.info.baud) == (1, 57_600)
    grip = [(baud, sid, reg, v) for baud, sid, reg, v in writes.log[:3]]
    # the baud first at the old baud, then the ID (last) at the new baud, addressed to the old ID
    assert grip == [(57_600, 1, "Torque_Enable", 0), (57_600, 1, "Baud_Rate", 3), (1_000_000, 1, "ID", 6)]
    plug_all(emu)
    screen = await wiz.step(Answer.CONTINUE)
    assert screen.state is State.DONE
    assert {r.model for r in screen.table} == {"xl430-w250", "xl330-m288"}
    assert_set_up(emu, wiz.profile)


async def test_resume_after_a_crash_halfway(rig):
    emu, wiz, writes = rig("koch", scan_bauds=FAST)
    screen = await run_all(wiz, emu, until="elbow_flex")  # gripper, wrist_roll, wrist_flex done
    assert screen.joint == "elbow_flex"
    await wiz.close()  # the program dies here...
    elbow = servo(emu, "elbow_flex")
    elbow.set("Baud_Rate", 3)  # ...and in the middle of the elbow: its baud was written, not its ID
    emu.power_cycle()

    writes2 = Writes()
    wiz2 = SetupMotorsWizard(wiz.profile, emu.port, bus_factory=writes2, scan_bauds=FAST)
    screen = await run_all(wiz2, emu)
    assert screen.state is State.CONNECT_ALL
    for joint in ("gripper", "wrist_roll", "wrist_flex"):
        assert not wiz2.results[joint].written
        assert any(joint in line and "nothing written" in line for line in screen.lines)
    assert wiz2.results["elbow_flex"].written and (wiz2.results["elbow_flex"].info.id, wiz2.results["elbow_flex"].info.baud) == (1, 1_000_000)
    assert {sid for _, sid, reg, _ in writes2.log if reg == "ID"} == {1}  # only the unfinished motors got IDs
    assert [v for _, _, reg, v in writes2.log if reg == "ID"] == [3, 2]  # elbow, shoulder_lift (pan is id 1)
    plug_all(emu)
    assert (await wiz2.step(Answer.CONTINUE)).state is State.DONE
    await wiz2.close()
    assert_set_up(emu, wiz.profile)


async def test_wrong_model_is_named_and_nothing_is_written(rig):
    emu, wiz, writes = rig("koch", faults="model=6:1060", scan_bauds=FAST)  # an XL430 where the gripper goes
    screen = await run_all(wiz, emu)  # stops at the gripper, the first motor
    assert screen.state is State.PROBLEM and screen.joint == "gripper"
    text = " ".join(screen.lines)
    assert "xl430-w250" in text and "needs a xl330-m288" in text and "gripper" in text
    assert writes.log == []
    screen = await wiz.step(Answer.RETRY)  # the same wrong motor: the same answer
    assert screen.state is State.PROBLEM and writes.log == []
    screen = await wiz.step(Answer.CANCEL)
    assert screen.state is State.CANCELLED and screen.final
    assert any("Nothing was written to the gripper motor" in line for line in screen.lines)
    assert servo(emu, "gripper").get("ID") == 1


async def test_wrong_voltage_motor_is_refused(rig):
    # the gripper is a lower-voltage variant (limits 4.0-8.4 V) on this 12 V arm: its voltage bit is set
    emu, wiz, writes = rig("so101", faults="vlimits=6:4.0-8.4", scan_bauds=FAST)
    await wiz.start()
    await wiz.step(Answer.CONTINUE)
    screen = await connect_and_go(wiz, emu, "gripper")
    assert screen.state is State.PROBLEM
    text = " ".join(screen.lines)
    assert "12.0 V" in text and "maximum (8.4 V)" in text and "Switch the power off" in text
    assert writes.log == []


async def test_12v_motor_on_a_7v4_supply_asks_and_no_puts_it_back(rig):
    # every motor reads a 7.4 V supply; the gripper's limits say 4.0-14.0 V (a 12 V variant), the others 4.0-8.4
    others = "+".join(f"{i}:4.0-8.4" for i in range(1, 6))
    emu, wiz, writes = rig("so101", faults=f"supply=7.4,vlimits={others}", scan_bauds=FAST)
    await wiz.start()
    await wiz.step(Answer.CONTINUE)
    screen = await connect_and_go(wiz, emu, "gripper")
    assert screen.state is State.CONFIRM
    assert any("7.4 V" in line and "14.0 V" in line and "12 V" in line for line in screen.lines)
    assert writes.log == []
    screen = await wiz.step(Answer.NO)  # the user swaps the motor
    assert screen.state is State.CONNECT and screen.joint == "gripper" and writes.log == []
    screen = await wiz.step(Answer.CONTINUE)
    assert screen.state is State.CONFIRM
    screen = await wiz.step(Answer.YES)  # keep it anyway
    assert screen.state is State.CONNECT and screen.joint == "wrist_roll"
    assert servo(emu, "gripper").get("ID") == 6
    screen = await connect_and_go(wiz, emu, "wrist_roll")  # a 7.4 V variant next to the 12 V gripper
    assert screen.state is State.CONFIRM
    assert any("differ from the gripper motor's (4.0-14.0 V)" in line for line in screen.lines)


async def test_firmware_mismatch_warns_with_both_versions(rig):
    emu, wiz, writes = rig("so101", faults="firmware=5:3.9", scan_bauds=FAST)
    screen = await run_all(wiz, emu, until="wrist_roll")
    screen = await connect_and_go(wiz, emu, "wrist_roll")
    assert screen.state is State.CONFIRM
    warning = next(line for line in screen.lines if "firmware" in line and line.startswith("Warning"))
    assert "3.9" in warning and "3.10" in warning and "gripper" in warning
    screen = await wiz.step(Answer.YES)
    assert screen.state is State.CONNECT and screen.joint == "wrist_flex"
    assert servo(emu, "wrist_roll").get("ID") == 5


async def test_two_fresh_motors_at_once_get_a_clear_instruction(rig):
    emu, wiz, writes = rig("so101", scan_bauds=FAST)
    await wiz.start()
    await wiz.step(Answer.CONTINUE)
    plug(emu, "gripper", "wrist_roll")  # both answer at id 1, 1 Mbaud: their replies collide
    screen = await wiz.step(Answer.CONTINUE)
    assert screen.state is State.PROBLEM
    text = " ".join(screen.lines)
    assert "two motors answer at the same ID" in text and "Unplug every motor except the gripper" in text
    assert writes.log == []
    plug(emu, "gripper")
    screen = await wiz.step(Answer.RETRY)
    assert screen.state is State.CONNECT and screen.joint == "wrist_roll"
    assert servo(emu, "gripper").get("ID") == 6 and servo(emu, "wrist_roll").get("ID") == 1


async def test_a_set_motor_left_on_the_bus_is_reported(rig):
    emu, wiz, writes = rig("so101", scan_bauds=FAST)
    await run_all(wiz, emu, until="wrist_roll")
    plug(emu, "gripper", "wrist_roll")
    screen = await wiz.step(Answer.CONTINUE)
    assert screen.state is State.PROBLEM
    assert "2 motors answer" in screen.title
    assert any("id 6 at 1000000 baud" in line and "id 1 at 1000000 baud" in line for line in screen.lines)


async def test_full_scan_finds_a_motor_anywhere_and_reports_progress(rig):
    seen = []
    emu, wiz, writes = rig("so101", scan_bauds=(500_000,), on_progress=lambda w, f: seen.append((w, f)))
    grip = servo(emu, "gripper")
    grip.set("ID", 37)
    grip.set("Baud_Rate", 1)  # 500000
    await wiz.start()
    await wiz.step(Answer.CONTINUE)
    screen = await connect_and_go(wiz, emu, "gripper")
    assert screen.state is State.CONNECT and screen.joint == "wrist_roll"
    assert (wiz.results["gripper"].info.id, wiz.results["gripper"].info.baud) == (37, 500_000)
    assert any(w.startswith("full scan") for w, _ in seen) and seen[-1][1] == 1.0
    assert grip.get("ID") == 6 and grip.baud == 1_000_000


async def test_nothing_connected_says_what_was_scanned(rig):
    emu, wiz, writes = rig("so101", scan_bauds=(1_000_000,))
    await wiz.start()
    await wiz.step(Answer.CONTINUE)
    screen = await wiz.step(Answer.CONTINUE)  # nothing plugged
    assert screen.state is State.PROBLEM and "No motor answers" in screen.title
    assert any("ids 0..253" in line and "1000000" in line for line in screen.lines)
    assert screen.answers == (Answer.RETRY, Answer.CANCEL)


async def test_final_verification_failure_then_retry(rig):
    emu, wiz, writes = rig("so101", scan_bauds=FAST)
    await run_all(wiz, emu)
    plug(emu, "shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "gripper")  # wrist_roll's cable is loose
    screen = await wiz.step(Answer.CONTINUE)
    assert screen.state is State.FAILED and screen.answers == (Answer.RETRY, Answer.CANCEL)
    row = next(r for r in screen.table if r.joint == "wrist_roll")
    assert row.status.startswith("missing")
    assert sum(r.status == "ok" for r in screen.table) == 5
    plug_all(emu)
    screen = await wiz.step(Answer.RETRY)
    assert screen.state is State.DONE


async def test_final_check_finds_a_motor_left_at_another_baud(rig):
    emu, wiz, writes = rig("koch", scan_bauds=FAST)
    await run_all(wiz, emu)
    servo(emu, "wrist_flex").set("Baud_Rate", 1)  # someone swapped in a fresh motor afterwards
    servo(emu, "wrist_flex").set("ID", 1)
    plug_all(emu)
    screen = await wiz.step(Answer.CONTINUE)
    assert screen.state is State.FAILED
    assert any("id 1, 57600 baud" in line and "not set up" in line for line in screen.lines)
    assert next(r for r in screen.table if r.joint == "wrist_flex").status.startswith("missing")


async def test_cancel_during_the_eeprom_writes_finishes_them_first(rig):
    emu, wiz, writes = rig("koch", scan_bauds=FAST)
    await wiz.start()
    await wiz.step(Answer.CONTINUE)
    plug(emu, "gripper")
    started = asyncio.Event()

    async def slow(register, value):
        if register == "Baud_Rate":
            started.set()
            await asyncio.sleep(0.05)  # Ctrl-C lands between the baud and the ID writes

    writes.hook = slow
    task = asyncio.ensure_future(wiz.step(Answer.CONTINUE))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    grip = servo(emu, "gripper")
    assert (grip.get("ID"), grip.baud) == (6, 1_000_000)  # both written: never a half-set motor
    screen = await wiz.cancel()
    assert screen.state is State.CANCELLED
    assert any("writes had started: they were finished first" in line for line in screen.lines)
    assert any("gripper (id 6)" in line for line in screen.lines)


async def test_cancel_at_a_prompt_writes_nothing(rig):
    emu, wiz, writes = rig("so101", scan_bauds=FAST)
    await run_all(wiz, emu, until="wrist_flex")
    screen = await wiz.step(Answer.CANCEL)
    assert screen.state is State.CANCELLED
    assert any("Nothing was written to the wrist_flex motor" in line for line in screen.lines)
    assert any("run the same command again" in line.lower() for line in screen.lines)
    with pytest.raises(ValueError, match="does not fit"):
        await wiz.step(Answer.YES)


async def test_a_bad_port_fails_at_start(tmp_path):
    from hardware.errors import NotASerialPortError, PortNotFoundError

    with pytest.raises(PortNotFoundError):
        await SetupMotorsWizard(arm("so101"), str(tmp_path / "ttyACM9")).start()
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(NotASerialPortError):
        await SetupMotorsWizard(arm("so101"), str(f)).start()


def _info(**kw) -> MotorInfo:
    base = dict(id=1, baud=1_000_000, model_number=777, firmware=(3, 10), voltage_v=12.0, vmin_v=4.0, vmax_v=14.0)
    return MotorInfo(**{**base, **kw})


def test_check_motor_rules():
    so, leader = arm("so101"), arm("so101-leader")
    grip = so.motor("gripper")
    assert check_motor(so, grip, _info(), []) == ([], [])
    assert "model number 2825" in check_motor(so, grip, _info(model_number=2825), [])[0][0]
    assert "below this motor's minimum" in check_motor(so, grip, _info(voltage_v=3.0), [])[0][0]
    from hardware.bus import ServoFault

    assert "input voltage error" in check_motor(so, grip, _info(faults=ServoFault.VOLTAGE), [])[0][0]
    # a 7.4 V supply on a 12 V motor: a follower is warned, a leader (low torque by design) is not
    assert check_motor(so, grip, _info(voltage_v=7.4), [])[1]
    assert check_motor(leader, leader.motor("gripper"), _info(voltage_v=5.0), []) == ([], [])
    done = [MotorResult("wrist_roll", _info(firmware=(3, 9)), True)]
    assert "3.10 differs from 3.9 on wrist_roll" in check_motor(so, grip, _info(), done)[1][0]
    koch = arm("koch")  # different models may run different firmware
    xl430 = MotorResult("shoulder_pan", _info(model_number=1060, firmware=(46, 0)), True)
    assert check_motor(koch, koch.motor("gripper"), _info(model_number=1200, firmware=(52, 0), voltage_v=5.0, vmax_v=7.0), [xl430]) == ([], [])


def test_emulator_supply_vlimits_and_firmware_faults():
    """The emulator keys these tests rely on: parsed, round-tripped, and visible on the servos."""
    from hardware.emulator import Emulator, parse_faults

    spec = parse_faults("supply=7.4,vlimits=6:4.0-8.4,firmware=3:3.9+4:45")
    assert parse_faults(spec.to_spec()) == spec
    emu = Emulator("so101", faults="supply=12.0,vlimits=6:4.0-8.4,firmware=3:3.9")
    assert servo(emu, "gripper").get("Max_Voltage_Limit") == 84
    assert servo(emu, "gripper").get("Status") & 0x01  # 12 V above its 8.4 V: the voltage bit
    assert servo(emu, "wrist_roll").get("Status") == 0
    assert (servo(emu, "elbow_flex").get("Firmware_Major_Version"), servo(emu, "elbow_flex").get("Firmware_Minor_Version")) == (3, 9)
    koch = Emulator("koch", faults="supply=5.0,firmware=4:45")
    assert servo(koch, "wrist_flex").get("Firmware_Version") == 45
    assert servo(koch, "shoulder_pan").get("Present_Input_Voltage") == 50
    for bad in ("supply=0", "supply=x", "vlimits=6:9-4", "vlimits=6", "firmware=1:300", "firmware=1:a"):
        with pytest.raises(ValueError, match="fault spec"):
            parse_faults(bad)
