"""The `harmowam` command: emulate, scan, bench bus, and what bad input looks like."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harmowam_ctl.cli import main

HARMOWAM = [sys.executable, "-m", "harmowam_ctl.cli"]


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "emulate" in capsys.readouterr().out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_emulate_prints_port_first_and_stops_cleanly(sig):
    proc = subprocess.Popen(
        [*HARMOWAM, "emulate", "--arm", "so101"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        first = proc.stdout.readline().strip()
        assert first.startswith("/dev/pts/"), first
        assert os.path.exists(first)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_emulate_bad_arm_names_the_option():
    r = subprocess.run([*HARMOWAM, "emulate", "--arm", "so102"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "--arm" in r.stderr and "so101" in r.stderr and r.stderr.splitlines()[-1].startswith("harmowam emulate")


def test_unknown_flag_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["scan", "--port", "/dev/null", "--family", "feetech", "--bogus"])
    assert exc.value.code == 2
    assert "--bogus" in capsys.readouterr().err


def test_scan_missing_port_says_what_to_do(capsys):
    assert main(["scan", "--port", "/dev/ttyDOESNOTEXIST", "--arm", "so101"]) == 1
    err = capsys.readouterr().err
    assert "/dev/ttyDOESNOTEXIST does not exist" in err
    assert "find-port" in err


def test_scan_regular_file_is_not_a_port(tmp_path: Path, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("hello")
    assert main(["scan", "--port", str(f), "--family", "feetech"]) == 1
    assert "regular file" in capsys.readouterr().err


def test_scan_needs_arm_or_family(capsys):
    assert main(["scan", "--port", "/dev/null"]) == 2
    assert "--arm" in capsys.readouterr().err


def test_scan_emulated_arm_lists_every_joint(capsys):
    from hardware.emulator import Emulator

    with Emulator("so101") as emu:
        assert main(["scan", "--port", emu.port, "--arm", "so101", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["joint"] for r in rows] == [
        "shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper",
    ]
    assert all(r["model"] == "sts3215" for r in rows)
    assert all(0 <= r["position"] < 4096 for r in rows)


def test_scan_reports_dead_motor_by_name(capsys):
    from hardware.emulator import Emulator

    with Emulator("so101", faults="dead=3") as emu:
        assert main(["scan", "--port", emu.port, "--arm", "so101"]) == 1
    err = capsys.readouterr().err
    assert "elbow_flex" in err and "3" in err


def test_bench_bus_json_is_physically_honest():
    """The cycle can never beat the wire; LeRobot's cycle is timed in the same run."""
    r = subprocess.run(
        [*HARMOWAM, "bench", "bus", "--arm", "so101", "--cycles", "200", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for key in ("cycle_ms_median", "cycle_ms_p99", "wire_limit_ms", "lerobot_cycle_ms_median"):
        assert isinstance(out[key], float) and out[key] > 0, key
    # 14 B sync read + 6 x 8 B replies + 26 B sync write at 10 us a byte, return delay 0
    assert out["wire_limit_ms"] == pytest.approx(0.88, abs=1e-6)
    assert out["cycle_ms_median"] >= out["wire_limit_ms"]
    assert out["lerobot_cycle_ms_median"] >= out["wire_limit_ms"]
    assert out["cycle_ms_p99"] >= out["cycle_ms_median"]


def test_bench_bus_bad_cycles_names_the_flag(capsys):
    assert main(["bench", "bus", "--cycles", "3"]) == 2
    err = capsys.readouterr().err
    assert "--cycles" in err and "10" in err


def test_bench_sim_json_reports_render_and_step(capsys):
    assert main(["bench", "sim", "--samples", "20", "--resolution", "32", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["resolution"] == [32, 32]
    for key in ("render_front_ms", "render_wrist_ms", "step_ms"):
        assert 0 < out[key]["median"] <= out[key]["p99"], key
    assert out["mj_steps_per_control_step"] == pytest.approx(16.67, abs=0.01)


def test_bench_sim_bad_resolution_names_the_flag(capsys):
    assert main(["bench", "sim", "--resolution", "4"]) == 2
    assert "--resolution" in capsys.readouterr().err
