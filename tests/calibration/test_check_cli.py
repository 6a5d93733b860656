"""`harmowam check` through the CLI: exit codes and messages for each kind of mismatch, health problems,
and missing, corrupted, truncated or mismatched calibration files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests are not packages (--import-mode=importlib)
from test_verify import hold, sample_cal  # noqa: E402

from calibration.files import calibration_path, dumps, save_calibration  # noqa: E402
from hardware.arms import KOCH_LEADER, SO101  # noqa: E402
from hardware.emulator import Emulator  # noqa: E402
from harmowam_ctl.cli import main  # noqa: E402


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path))
    return tmp_path


def check(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_all_well(root: Path, capsys: pytest.CaptureFixture) -> None:
    cal = sample_cal(SO101)
    save_calibration(cal, SO101, "arm", root)
    with Emulator(SO101) as emu:
        hold(emu, cal)
        code, out, err = check(capsys, "--arm", "so101", "--port", emu.port, "--calibration", "arm")
    assert code == 0, err
    assert "OK: every servo answers and holds this calibration" in out
    assert "shoulder_pan" in out and "sts3215" in out and "12.0" in out
    assert str(calibration_path(SO101, "arm", root)) in out


@pytest.mark.parametrize(("joint", "field", "value"), [
    ("elbow_flex", "homing_offset", 40), ("wrist_flex", "range_min", 100), ("gripper", "range_max", 4000),
])
def test_mismatch_names_joint_field_and_values(root: Path, capsys, joint: str, field: str, value: int) -> None:
    cal = sample_cal(SO101)
    save_calibration(cal, SO101, "arm", root)
    with Emulator(SO101) as emu:
        hold(emu, sample_cal(SO101, **{joint: {field: value}}))
        code, out, err = check(capsys, "--arm", "so101", "--port", emu.port, "--calibration", "arm")
    assert code == 1
    expected = getattr(cal[joint], field)
    assert f"{joint}: {field} should be {expected}, the servo has {value}" in err
    assert f"PROBLEM: {joint}: {field} should be {expected}, the servo has {value}" in out
    assert "OK:" not in out


def test_leader_drive_mode_mismatch_and_json(root: Path, capsys) -> None:
    cal = sample_cal(KOCH_LEADER)
    save_calibration(cal, KOCH_LEADER, "lead", root)
    with Emulator(KOCH_LEADER) as emu:
        hold(emu, sample_cal(KOCH_LEADER, elbow_flex={"drive_mode": 0}))
        code, out, err = check(capsys, "--arm", "koch", "--leader", "--port", emu.port, "--calibration", "lead", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False and report["arm"] == "koch-leader"
    assert [(f["joint"], f["field"], f["expected"], f["found"]) for f in report["findings"]] == [
        ("elbow_flex", "drive_mode", 1, 0)]
    assert [r["joint"] for r in report["servos"]][2] == "elbow_flex"
    assert report["calibration"].endswith("teleoperators/koch_leader/lead.json")


def test_missing_motor_and_health(root: Path, capsys) -> None:
    cal = sample_cal(SO101)
    save_calibration(cal, SO101, "arm", root)
    with Emulator(SO101, faults="dead=6,voltage=1") as emu:
        hold(emu, cal)
        emu.servos[2].set("Max_Temperature_Limit", 38)  # 30 C: a warning only
        code, out, err = check(capsys, "--arm", "so101", "--port", emu.port, "--calibration", "arm")
    assert code == 1
    assert "PROBLEM: gripper: id should be 6, the servo has no reply" in out
    assert "PROBLEM: shoulder_pan: voltage should be" in out
    assert "warning: elbow_flex: temperature" in out
    assert "2 problem(s)" in err


def test_warnings_alone_pass(root: Path, capsys) -> None:
    cal = sample_cal(SO101)
    save_calibration(cal, SO101, "arm", root)
    with Emulator(SO101) as emu:
        hold(emu, cal)
        emu.servos[2].set("Max_Temperature_Limit", 38)
        code, out, err = check(capsys, "--arm", "so101", "--port", emu.port, "--calibration", "arm")
    assert code == 0 and "warning: elbow_flex: temperature" in out and "OK:" in out


@pytest.mark.parametrize(("content", "says"), [
    (None, ["no calibration 'arm' for a so101", "harmowam calibrate --arm so101 --port <PORT> --calibration arm"]),
    (b"", ["the file is empty", "Recalibrate"]),
    ("cut", ["the file was cut off", "restore a backup"]),
    (b"{not json", ["not valid JSON", "Recalibrate"]),
    ("extra-joint", ["unknown joint 'tool'", "calibration of another arm"]),
    ("wrong-id", ["joint 'elbow_flex' has id 7 but on a so101 it is motor id 3", "another arm"]),
])
def test_bad_calibration_files(root: Path, capsys, content, says: list[str]) -> None:
    path = calibration_path(SO101, "arm", root)
    path.parent.mkdir(parents=True)
    good = dumps(sample_cal(SO101))
    if content == "cut":
        content = good[: len(good) // 2].encode()
    elif content == "extra-joint":
        doc = json.loads(good)
        doc["tool"] = doc["gripper"]
        content = json.dumps(doc).encode()
    elif content == "wrong-id":
        doc = json.loads(good)
        doc["elbow_flex"]["id"] = 7
        content = json.dumps(doc).encode()
    if content is not None:
        path.write_bytes(content)
    code, out, err = check(capsys, "--arm", "so101", "--port", "/dev/harmowam-not-opened", "--calibration", "arm")
    assert code == 1
    for text in says:
        assert text in err
    if content is not None:
        assert str(path) in err  # names the file


def test_bad_options_and_port(root: Path, capsys) -> None:
    save_calibration(sample_cal(SO101), SO101, "arm", root)
    code, _, err = check(capsys, "--arm", "so101", "--port", "/dev/harmowam-nope", "--calibration", "arm")
    assert code == 1 and "does not exist" in err
    code, _, err = check(capsys, "--arm", "so101", "--port", "/dev/x", "--calibration", "arm", "--baud", "-5")
    assert code == 2 and "--baud" in err


def test_exit_code_of_the_real_program(root: Path) -> None:
    """The installed `harmowam` entry point, in its own process."""
    cal = sample_cal(SO101)
    save_calibration(cal, SO101, "arm", root)
    with Emulator(SO101) as emu:
        hold(emu, sample_cal(SO101, shoulder_lift={"range_max": 3000}))
        exe = str(Path(sys.executable).parent / "harmowam")
        proc = subprocess.run([exe, "check", "--arm", "so101", "--port", emu.port, "--calibration", "arm"],
                              capture_output=True, text=True, env={**os.environ}, timeout=60)
    assert proc.returncode == 1
    assert "shoulder_lift: range_max should be 3200, the servo has 3000" in proc.stderr


def test_old_name_flag_still_works_and_says_its_new_name(root: Path, capsys) -> None:
    cal = sample_cal(SO101)
    save_calibration(cal, SO101, "arm", root)
    with Emulator(SO101) as emu:
        hold(emu, cal)
        code, out, err = check(capsys, "--arm", "so101", "--port", emu.port, "--name", "arm")
    assert code == 0, err
    assert "OK: every servo answers" in out and str(calibration_path(SO101, "arm", root)) in out
    hint = [line for line in err.splitlines() if "--name" in line]
    assert hint == ["harmowam check: --name is now --calibration; --name still works for now "
                    "(write --calibration arm, as for harmowam run/teleop/record)"]
