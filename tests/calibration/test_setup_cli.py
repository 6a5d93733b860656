"""`harmowam setup-motors` and `harmowam find-port` as a user runs them: through a pseudo-terminal (pexpect).

The emulator runs in this test process and the CLI in a child on its pty; the test plugs motors in
(``setup_rig``) when the CLI asks, as a user would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests are not packages (--import-mode=importlib)
from setup_rig import factory_emulator, plug, plug_all, servo  # noqa: E402

# pexpect forks while the emulator's thread runs; the child execs at once
pytestmark = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
ORDER = ["gripper", "wrist_roll", "wrist_flex", "elbow_flex", "shoulder_lift", "shoulder_pan"]


def spawn(*args: str) -> pexpect.spawn:
    child = pexpect.spawn(PY, ["-m", "harmowam_ctl.cli", *args], cwd=str(ROOT), encoding="utf-8",
                          timeout=30, dimensions=(50, 220))
    return child


@pytest.fixture
def emulator():
    made = []

    def make(arm_name: str, faults: str | None = None):
        emu = factory_emulator(arm_name, faults)
        emu.start()
        made.append(emu)
        return emu

    yield make
    for emu in made:
        emu.stop()


def test_setup_motors_interactive_full_run(emulator):
    emu = emulator("so101")
    child = spawn("setup-motors", "--arm", "so101", "--port", emu.port)
    child.expect("Set up the 6 motors of the so101")
    child.expect(r"\[Enter\] continue")
    child.send("\r")
    for joint in ORDER:
        child.expect(f"Connect ONLY the {joint} motor")
        child.expect(r"\[Enter\] continue")
        plug(emu, joint)
        child.send("\r")
    child.expect("connect all 6 motors")
    child.expect(r"\[Enter\] continue")
    plug_all(emu)
    child.send("\r")
    child.expect("All 6 motors answer at their ids, 1000000 baud, right models")
    child.expect(r"joint\s+id\s+model\s+firmware\s+volts\s+status")
    for joint, i in zip(reversed(ORDER), range(1, 7)):
        child.expect(rf"{joint}\s+{i}\s+sts3215\s+3\.10\s+12\.0\s+ok")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert [servo(emu, j).get("ID") for j in reversed(ORDER)] == [1, 2, 3, 4, 5, 6]


def test_ctrl_c_at_a_prompt_cancels_cleanly(emulator):
    emu = emulator("so101")
    child = spawn("setup-motors", "--arm", "so101", "--port", emu.port)
    child.expect(r"\[Enter\] continue")
    child.send("\r")
    child.expect("Connect ONLY the gripper motor")
    child.expect(r"\[Enter\] continue")
    plug(emu, "gripper")
    child.send("\r")
    child.expect("gripper: set to id 6")
    child.expect("Connect ONLY the wrist_roll motor")
    child.expect(r"\[q\] quit")
    child.sendintr()  # Ctrl-C
    child.expect("Set-up cancelled")
    child.expect(r"Motors set up so far: gripper \(id 6\)")
    child.expect("Nothing was written to the wrist_roll motor")
    child.expect("interrupted")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert servo(emu, "gripper").get("ID") == 6


def test_a_problem_screen_then_quit(emulator):
    emu = emulator("so101", "vlimits=6:4.0-8.4")
    child = spawn("setup-motors", "--arm", "so101", "--port", emu.port)
    child.expect(r"\[Enter\] continue")
    child.send("\r")
    child.expect(r"\[Enter\] continue")
    plug(emu, "gripper")
    child.send("\r")
    child.expect("The gripper motor cannot be used as it is")
    child.expect(r"above this motor's maximum \(8\.4 V\)")
    child.expect(r"\[r/Enter\] retry   \[q\] quit")
    child.send("x")  # not an answer here: ignored
    child.send("q")
    child.expect("Set-up cancelled")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert servo(emu, "gripper").get("ID") == 1


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "harmowam_ctl.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)


def test_setup_motors_without_a_terminal_says_so(emulator):
    emu = emulator("so101")
    r = run("setup-motors", "--arm", "so101", "--port", emu.port)  # stdin is /dev/null
    assert r.returncode == 1
    assert "this command is interactive: run it in a terminal" in r.stderr and "Traceback" not in r.stderr


def test_setup_motors_bad_port_and_bad_options():
    r = run("setup-motors", "--arm", "so101", "--port", "/dev/ttyACM_nope")
    assert r.returncode == 1
    assert "serial port /dev/ttyACM_nope does not exist" in r.stderr and "harmowam find-port" in r.stderr
    r = run("setup-motors", "--port", "/dev/ttyACM0")
    assert r.returncode == 2 and "--arm" in r.stderr
    r = run("setup-motors", "--arm", "so102", "--port", "/dev/ttyACM0")
    assert r.returncode == 2 and "so101" in r.stderr
    r = run("--help")
    assert "find-port" in r.stdout and "setup-motors" in r.stdout


FIND_PORT = """
import sys
from pathlib import Path
from calibration.wizards.find_port import FindPortWizard
from calibration.wizards.ui_setup import run_ui
listing = Path(sys.argv[1])
sys.exit(run_ui(FindPortWizard(lambda: listing.read_text().split(), settle_s=0.2, poll_s=0.02)))
"""


def test_find_port_interactive_with_a_fake_port_list(tmp_path):
    listing = tmp_path / "ports"
    listing.write_text("/dev/ttyS0 /dev/ttyACM0")
    child = pexpect.spawn(PY, ["-c", FIND_PORT, str(listing)], cwd=str(ROOT), encoding="utf-8", timeout=30)
    child.expect("Plug the arm's USB cable in")
    child.expect(r"\[Enter\] continue")
    child.send("\r")
    child.expect("Serial ports now: /dev/ttyACM0, /dev/ttyS0")
    child.expect(r"\[Enter\] continue")
    listing.write_text("/dev/ttyS0")
    child.send("\r")
    child.expect("The arm's port is /dev/ttyACM0")
    child.expect(r"\[Enter\] continue")
    listing.write_text("/dev/ttyS0 /dev/ttyACM0")
    child.send("\r")
    child.expect("/dev/ttyACM0 is back")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
