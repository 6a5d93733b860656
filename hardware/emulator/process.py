"""``EmulatorProcess``: the emulator in its own Python process, for timing that shares no GIL.

    with EmulatorProcess("so101", baud=1_000_000, faults="drop=0.1") as proc:
        port = proc.port   # read from the child's first stdout line

It runs ``python -m hardware.emulator --arm ...``; ``stop()`` sends SIGTERM and waits for the exit
(SIGKILL after a grace period). The child's log output goes to a temporary file, quoted in errors.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hardware.arms import ArmProfile
from hardware.emulator.faults import FaultSpec, parse_faults

_REPO_ROOT = Path(__file__).resolve().parents[2]


class EmulatorProcess:
    def __init__(
        self,
        arm: ArmProfile | str,
        baud: int = 1_000_000,
        faults: FaultSpec | str | None = None,
        *,
        seed: int = 0,
        physics: str = "kinematic",
        start_timeout_s: float = 20.0,
    ) -> None:
        self.arm_name = arm.name if isinstance(arm, ArmProfile) else str(arm)
        self.baud = int(baud)
        self.faults = parse_faults(faults)
        self.seed = seed
        self.physics = physics
        self.start_timeout_s = start_timeout_s
        self.port: str | None = None
        self.returncode: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = None

    @property
    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "hardware.emulator", "--arm", self.arm_name, "--baud", str(self.baud)]
        cmd += ["--physics", self.physics, "--seed", str(self.seed)]
        spec = self.faults.to_spec()
        return cmd + (["--faults", spec] if spec else [])

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> str:
        if self._proc is not None:
            assert self.port is not None
            return self.port
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=self._log, env=env)
        assert self._proc.stdout is not None
        line = b""
        deadline = time.monotonic() + self.start_timeout_s
        fd = self._proc.stdout.fileno()
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            if not ready:
                self._fail(f"printed no port within {self.start_timeout_s:.0f} s")
            chunk = os.read(fd, 256)
            if not chunk:
                self._fail("exited before printing its port")
            line += chunk
        self.port = line.decode(errors="replace").splitlines()[0].strip()
        if not self.port.startswith("/dev/"):
            self._fail(f"printed {self.port!r} instead of a port path")
        return self.port

    def _fail(self, what: str) -> None:
        self.stop()
        log = self._read_log()
        raise RuntimeError(f"emulator process ({' '.join(self.command)}) {what}; exit code {self.returncode}\n{log}")

    def _read_log(self) -> str:
        if self._log is None:
            return ""
        try:
            self._log.seek(0)
            return self._log.read().decode(errors="replace")[-4000:]
        except (OSError, ValueError):
            return ""

    @property
    def log_text(self) -> str:
        """What the child wrote to stderr so far."""
        return self._read_log()

    def stop(self, timeout_s: float = 5.0) -> int | None:
        """SIGTERM, wait; SIGKILL if it does not exit within ``timeout_s``. Returns the exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return self.returncode
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        self.returncode = proc.returncode
        return self.returncode

    def __enter__(self) -> EmulatorProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._log is not None:
            self._log.close()
            self._log = None
