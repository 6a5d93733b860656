"""`harmowam calibrate` as a user meets it: the real program in a pseudo-terminal (pexpect), keys typed,
the emulated joints moved by hand from the test while the program samples them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pexpect
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests are not packages (--import-mode=importlib)
from test_wizard_calibrate import eeprom  # noqa: E402

from calibration.files import calibration_path, load_calibration, save_calibration  # noqa: E402
from calibration.model import ArmCalibration  # noqa: E402
from hardware.arms import KOCH_LEADER, SO101, ArmProfile  # noqa: E402
from hardware.emulator import Emulator  # noqa: E402

HARMOWAM = str(Path(sys.executable).parent / "harmowam")


def spawn(args: list[str], root: Path) -> pexpect.spawn:
    env = {**os.environ, "HF_LEROBOT_CALIBRATION": str(root), "TERM": "xterm", "HARMOWAM_LOG": "warning"}
    return pexpect.spawn(HARMOWAM, args, env=env, timeout=20, encoding="utf-8", dimensions=(40, 120))


# the emulator runs as a thread of this process; the child execs right after the fork
pytestmark = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")


def hands(child: pexpect.spawn, emu: Emulator, deltas: dict[int, int], step: int = 200, pause: float = 0.03) -> None:
    """Move joints by hand (all at once), slowly enough for the program's sampling (50 Hz) to follow,
    reading what the program draws meanwhile (a terminal nobody reads blocks its writer)."""
    done = dict.fromkeys(deltas, 0)
    while any(done[i] != d for i, d in deltas.items()):
        for i, d in deltas.items():
            k = max(-step, min(step, d - done[i]))
            emu.motion.move_by_hand(i, k)
            done[i] += k
        child.expect(pexpect.TIMEOUT, timeout=pause)
    child.expect(pexpect.TIMEOUT, timeout=0.15)  # a hand rests at the end of a range: sampled even under load


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF, timeout=20)
    child.close()
    return child.exitstatus


@pytest.mark.parametrize(("profile", "args"), [(SO101, ["--arm", "so101"]), (KOCH_LEADER, ["--arm", "koch", "--leader"])],
                         ids=["so101", "koch-leader"])
def test_interactive_calibration_end_to_end(profile: ArmProfile, args: list[str], tmp_path: Path) -> None:
    with Emulator(profile) as emu:
        child = spawn(["calibrate", *args, "--port", emu.port, "--calibration", "bench", "--rate", "50"], tmp_path)
        child.expect("Torque goes OFF now")
        child.expect("step 1/6: homing at mid-range")
        child.expect("Move every joint to the MIDDLE")
        child.expect("shoulder_pan")  # the live table
        child.send("\r")
        child.expect("step 2/6: recording ranges")
        child.send("\r")  # too early: nothing moved yet
        child.expect("moved only")
        moving = [i for i, m in enumerate(profile.motors) if not m.full_turn]
        for delta in (-400, 900, -500):
            hands(child, emu, dict.fromkeys(moving, delta))
        child.expect(pexpect.TIMEOUT, timeout=0.2)
        child.send("\r")
        child.expect("step 3/6: review")
        child.expect("Press Enter to write this calibration")
        child.send("\r")
        child.expect("step 6/6: verify")
        child.expect(r"rad")
        child.send("\r")
        child.expect("Calibration saved to")
        assert finish(child) == 0
        cal = load_calibration(profile, "bench", root=tmp_path)
        for i, m in enumerate(profile.motors):
            jc = cal[m.joint]
            assert emu.servos[i].get("Homing_Offset") == jc.homing_offset
            if not m.full_turn:
                assert jc.range_max - jc.range_min == 900  # swept -400..+500
        assert all(s.get("Torque_Enable") == 0 for s in emu.servos)


@pytest.mark.parametrize(("how", "at"), [("ctrl-c", "middle"), ("ctrl-c", "ranges"), ("esc", "ranges"), ("q", "review"),
                                         ("ctrl-c", "review")])
def test_cancel_from_the_terminal(how: str, at: str, tmp_path: Path) -> None:
    with Emulator(SO101) as emu:
        old_path = save_calibration(ArmCalibration.centered(SO101), SO101, "bench", tmp_path)
        old = old_path.read_bytes()
        for s in emu.servos:
            s.set("Torque_Enable", 1)
        before = eeprom(emu)
        child = spawn(["calibrate", "--arm", "so101", "--port", emu.port, "--calibration", "bench", "--rate", "50"], tmp_path)
        child.expect("Move every joint to the MIDDLE")
        if at in ("ranges", "review"):
            child.send("\r")
            child.expect("recording ranges")
            hands(child, emu, {i: 300 for i in range(6) if i != 4})
            child.expect(pexpect.TIMEOUT, timeout=0.2)
        if at == "review":
            child.send("\r")
            child.expect("Press Enter to write")
        {"ctrl-c": child.sendintr, "q": lambda: child.send("q"), "esc": lambda: child.send("\x1b")}[how]()
        child.expect("Cancelled: nothing was written")
        assert finish(child) == 130
        assert eeprom(emu) == before
        assert all(s.get("Torque_Enable") == 0 for s in emu.servos)
        assert old_path.read_bytes() == old
        assert [p.name for p in old_path.parent.iterdir()] == ["bench.json"]


def test_bad_name_and_wrong_port(tmp_path: Path) -> None:
    with Emulator(SO101) as emu:
        child = spawn(["calibrate", "--arm", "so101", "--port", emu.port, "--calibration", "../x"], tmp_path)
        child.expect("--calibration")
        child.expect("cannot be used as a file name")
        assert finish(child) == 2
    child = spawn(["calibrate", "--arm", "so101", "--port", "/dev/harmowam-nope", "--calibration", "a"], tmp_path)
    child.expect("does not exist")
    assert finish(child) == 1
    child = spawn(["calibrate", "--arm", "so101", "--leader", "--port", "/dev/null", "--calibration", "a", "--rate", "0"], tmp_path)
    child.expect("--rate")
    assert finish(child) == 2
    assert not calibration_path(SO101, "a", tmp_path).exists()


def test_missing_motor_is_named(tmp_path: Path) -> None:
    with Emulator(SO101, faults="dead=3") as emu:
        child = spawn(["calibrate", "--arm", "so101", "--port", emu.port, "--calibration", "bench"], tmp_path)
        child.expect("elbow_flex")
        assert finish(child) == 1
