"""The terminal toolkit (calibration/tui.py) and the calibration UI loop with scripted keys; the program
with its input from a pipe (no terminal)."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests are not packages (--import-mode=importlib)
from test_wizard_calibrate import LATENCY_S, eeprom  # noqa: E402

from calibration.tui import Keys, Screen, bar, decode_keys, table  # noqa: E402
from calibration.wizards.calibrate import CalibrateWizard, Step  # noqa: E402
from calibration.wizards.ui_calibrate import render_lines, run_ui  # noqa: E402
from hardware.arms import SO101  # noqa: E402
from hardware.bus import open_bus  # noqa: E402
from hardware.emulator import Emulator  # noqa: E402


def test_decode_keys() -> None:
    assert decode_keys(b"q\r\nr\x1b\x1b[A\x1bOB\x7f\x04\n") == [
        "q", "enter", "r", "esc", "up", "down", "backspace", "eof", "enter"]
    assert decode_keys(b"\x1b[1;5C") == ["right"]


def test_table_and_bar() -> None:
    lines = table(["joint", "id", "min"], [["elbow_flex", 3, 812], ["gripper", 6, 2020]])
    assert lines == ["joint       id   min", "----------  --  ----", "elbow_flex   3   812", "gripper      6  2020"]
    assert bar(0.4, 10) == "[####------]  40%"
    assert bar(7, 4) == "[####] 100%" and bar(-1, 4) == "[----]   0%"


def test_screen_live_redraws_in_place() -> None:
    out = io.StringIO()
    screen = Screen(out, live=True)
    screen.render(["a", "b"])
    screen.render(["c"])
    text = out.getvalue()
    assert "\x1b[2A" in text  # moved up over the two lines drawn before
    assert text.index("a") < text.index("\x1b[2A") < text.index("c")
    screen.say("note")
    screen.close()
    assert out.getvalue().endswith("note\n\x1b[?25h")


def test_screen_not_a_terminal_prints_only_permanent_blocks() -> None:
    out = io.StringIO()
    screen = Screen(out)  # StringIO is not a tty
    assert not screen.live
    screen.render(["live"])
    screen.render(["kept"], permanent=True)
    screen.say("said")
    assert out.getvalue() == "kept\nsaid\n"
    assert screen.style("x", "bold") == "x"  # no escape codes into a file


async def test_keys_from_a_pipe() -> None:
    r, w = os.pipe()
    with Keys(r) as keys:
        assert not keys.is_tty
        os.write(w, b"x\n")
        assert await keys.get(1) == "x"
        assert await keys.get(1) == "enter"
        assert await keys.get(0.01) is None
        os.close(w)
        assert await keys.get(1) == "eof"
    os.close(r)


async def test_keys_from_dev_null_cannot_be_opened() -> None:
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        with pytest.raises(OSError):
            Keys(fd).open()
    finally:
        os.close(fd)


class ScriptedKeys:
    """Keys that come from a script: (key, action run before it) pairs; None = let a sample happen."""

    def __init__(self, script):
        self.script = list(script)

    async def get(self, timeout=None):
        await asyncio.sleep(0)
        if not self.script:
            return "q"
        key, action = self.script.pop(0)
        if action:
            action()
        return key


async def test_run_ui_drives_the_wizard(tmp_path: Path) -> None:
    """Enter, samples while a hand moves the joints, r to restart, Enter, Enter, Enter: saved."""
    with Emulator(SO101) as emu:
        def move(d):
            return lambda: [emu.motion.move_by_hand(i, d) for i in (0, 1, 2, 3, 5)]

        script = [("enter", None), (None, move(500)), ("r", None)]  # restart: forget that motion
        script += [(None, move(-300)), (None, move(-300)), (None, move(400)), (None, move(400)), (None, move(-200))]
        script += [("enter", None), ("enter", None), (None, None), ("enter", None)]
        out = io.StringIO()
        async with open_bus(SO101, emu.port, latency_s=LATENCY_S) as bus:
            wiz = CalibrateWizard(bus, SO101, "ui", root=tmp_path)
            assert await run_ui(wiz, ScriptedKeys(script), Screen(out, live=True)) is Step.DONE
        jc = wiz.result["elbow_flex"]
        # restarted at +500 from the mid pose (the motion before r is forgotten), then -600..+200 from there
        assert (jc.range_min, jc.range_max) == (2548 - 600, 2548 + 200)
        text = out.getvalue()
        for title in ("homing at mid-range", "recording ranges", "review", "writing EEPROM", "verify", "done"):
            assert title in text
        assert "EEPROM [" in text  # the write progress bar


async def test_run_ui_cancelled_task_leaves_torque_off(tmp_path: Path) -> None:
    with Emulator(SO101) as emu:
        before = eeprom(emu)

        class Never:
            async def get(self, timeout=None):
                await asyncio.sleep(timeout)
                return None

        async with open_bus(SO101, emu.port, latency_s=LATENCY_S) as bus:
            wiz = CalibrateWizard(bus, SO101, "ui", root=tmp_path)
            task = asyncio.create_task(run_ui(wiz, Never(), Screen(io.StringIO()), rate_hz=50))
            await asyncio.sleep(0.3)
            for s in emu.servos:
                s.set("Torque_Enable", 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert wiz.state is Step.CANCELLED
        assert all(s.get("Torque_Enable") == 0 for s in emu.servos) and eeprom(emu) == before


def test_render_lines_for_each_state() -> None:
    """Problems, notes and alerts reach the screen."""

    class Fake:
        profile, name, min_span, progress = SO101, "x", 64, (3, 30)
        message, problems, notes, alert = "do this", ["elbow_flex moved only 3 ticks"], ["a note"], "read failed"

        def rows(self):
            from calibration.wizards.calibrate import JointRow

            return [JointRow(m.joint, m.id, m.full_turn, 2000, 2000, 1990, 2010, 0.1) for m in SO101.motors]

    fake = Fake()
    for state in (Step.MIDDLE, Step.RANGES, Step.REVIEW, Step.WRITING, Step.VERIFYING, Step.FAILED):
        fake.state = state
        text = "\n".join(render_lines(fake))
        assert "do this" in text and "! elbow_flex moved only 3 ticks" in text and "note: a note" in text
        assert "read failed (retrying)" in text
        assert ("shoulder_pan" in text) == (state is not Step.FAILED)
    fake.state = Step.WRITING
    assert "EEPROM [###" in "\n".join(render_lines(fake))


def test_program_with_input_from_a_pipe(tmp_path: Path) -> None:
    """No terminal: no redraws, one block per state; end of input cancels (exit 130)."""
    with Emulator(SO101) as emu:
        exe = str(Path(sys.executable).parent / "harmowam")
        proc = subprocess.run([exe, "calibrate", "--arm", "so101", "--port", emu.port, "--calibration", "p"], input="\n",
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "HF_LEROBOT_CALIBRATION": str(tmp_path)})
    assert proc.returncode == 130, proc.stderr
    assert "\x1b[" not in proc.stdout
    assert proc.stdout.count("step 1/6") == 1 and proc.stdout.count("step 2/6") == 1
    assert "Cancelled: nothing was written" in proc.stdout
    assert not any(tmp_path.iterdir())


def test_program_without_any_input(tmp_path: Path) -> None:
    """stdin that cannot be read key by key (/dev/null): says so before touching the arm."""
    with Emulator(SO101) as emu:
        for s in emu.servos:
            s.set("Torque_Enable", 1)
        exe = str(Path(sys.executable).parent / "harmowam")
        proc = subprocess.run([exe, "calibrate", "--arm", "so101", "--port", emu.port, "--calibration", "p"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "HF_LEROBOT_CALIBRATION": str(tmp_path)})
        assert proc.returncode == 1
        assert "interactive: run it in a terminal" in proc.stderr and "Traceback" not in proc.stderr
        assert all(s.get("Torque_Enable") == 1 for s in emu.servos)  # untouched
