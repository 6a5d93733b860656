"""``python -m hardware.emulator``: port on the first stdout line, clean exit on signals, exit 2 on bad args."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import serial

from hardware.emulator import EmulatorProcess, main
from hardware.protocol import feetech as ft

REPO = Path(__file__).resolve().parents[3]


def run_module(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "hardware.emulator", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_prints_port_first_and_exits_cleanly_on_signal(sig):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hardware.emulator", "--arm", "so101"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        port = proc.stdout.readline().strip()
        assert port.startswith("/dev/pts/")
        ser = serial.Serial(port, 1_000_000, timeout=0.5)
        ser.write(ft.ping(4))
        assert ser.read(6) == ft.encode_status(4, 0)
        ser.close()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert out == ""  # nothing after the port line


def test_bad_faults_exit_2_naming_the_key():
    result = run_module("--arm", "so101", "--faults", "bogus=1")
    assert result.returncode == 2
    assert "--faults" in result.stderr and "bogus" in result.stderr and "corrupt" in result.stderr
    result = run_module("--arm", "koch", "--faults", "drop=7")
    assert result.returncode == 2 and "drop" in result.stderr and "[0, 1]" in result.stderr


def test_bad_arm_baud_and_physics_exit_2(capsys):
    for argv, words in (
        (["--arm", "so102"], ["--arm", "so101", "koch-leader"]),
        (["--arm", "so101", "--baud", "12345"], ["--baud", "1000000", "115200"]),
        (["--arm", "koch", "--physics", "mujoco"], ["--physics", "kinematic"]),
        ([], ["--arm"]),
    ):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        err = capsys.readouterr().err
        for w in words:
            assert w in err, (argv, w, err)


def test_emulator_process_context_manager():
    with EmulatorProcess("koch-leader", faults="dead=6") as proc:
        assert proc.port.startswith("/dev/pts/")
        pid = proc.pid
        assert pid is not None and os.path.exists(f"/proc/{pid}")
    assert proc.returncode == 0
    assert proc.port is not None
