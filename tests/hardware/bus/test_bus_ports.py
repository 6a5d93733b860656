"""Bad input: each a short typed error naming cause and fix, and nothing waits past its timeout."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import textwrap
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardware import arms
from hardware.bus import FeetechBus, PortDisconnectedError, open_bus
from hardware.bus import port as port_mod
from hardware.emulator import Emulator
from hardware.errors import (
    NoResponseError,
    NoServosFoundError,
    NotASerialPortError,
    PortBusyError,
    PortNotFoundError,
    PortPermissionError,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def silent_pty() -> Iterator[str]:
    """A pty whose other end is held open but never read or answered: a port with nothing attached."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    try:
        yield os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


async def test_missing_port_lists_the_ports_that_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ttyACM0", "ttyUSB3"):
        (tmp_path / name).touch()
    monkeypatch.setattr(port_mod, "PORT_PATTERNS", (str(tmp_path / "ttyACM*"), str(tmp_path / "ttyUSB*")))
    with pytest.raises(PortNotFoundError) as info:
        await FeetechBus("/dev/ttyACM_not_here").open()
    message = str(info.value)
    assert "/dev/ttyACM_not_here does not exist" in message
    assert f"ports that exist now: {tmp_path}/ttyACM0, {tmp_path}/ttyUSB3" in message
    monkeypatch.setattr(port_mod, "PORT_PATTERNS", (str(tmp_path / "none*"),))
    with pytest.raises(PortNotFoundError, match="no serial ports are present"):
        await FeetechBus("/dev/ttyACM_not_here").open()


@pytest.mark.parametrize("kind", ["file", "directory", "/dev/null"])
async def test_not_a_serial_port(tmp_path: Path, kind: str) -> None:
    path = {"file": tmp_path / "notes.txt", "directory": tmp_path, "/dev/null": Path("/dev/null")}[kind]
    if kind == "file":
        path.write_text("hello")
    bus = FeetechBus(str(path))
    with pytest.raises(NotASerialPortError) as info:
        await bus.open()
    expected = {"file": "a regular file", "directory": "a directory", "/dev/null": "not a terminal"}[kind]
    assert expected in str(info.value) and "/dev/ttyACM0" in str(info.value)
    assert not bus.is_open
    await bus.close()  # fine after a failed open


async def test_port_already_open_by_another_bus(so101_emu: Emulator) -> None:
    # a 20 ms reply margin, as the fixtures use: the in-process emulator shares the GIL with the test
    async with FeetechBus(so101_emu.port, latency_s=0.02) as first:
        second = FeetechBus(so101_emu.port, latency_s=0.02)
        with pytest.raises(PortBusyError, match="another program has it open"):
            await second.open()
        assert (await first.ping(1)).model_number == 777
    async with second:  # free again once the first bus closed
        assert (await second.ping(1)).model_number == 777


_UNPRIVILEGED_OPEN = textwrap.dedent(
    """
    import asyncio, os, sys
    from hardware.bus import FeetechBus
    from hardware.errors import PortPermissionError
    os.setgroups([]); os.setgid(65534); os.setuid(65534)   # imports done as root, then drop to nobody
    try:
        asyncio.run(FeetechBus(sys.argv[1]).open())
    except PortPermissionError as exc:
        print("PortPermissionError:", exc)
    except BaseException as exc:
        print(type(exc).__name__, exc)
    """
)


async def test_port_without_permission(silent_pty: str) -> None:
    if os.geteuid() == 0:
        # root opens anything: run the open in a child process that drops to uid/gid 65534 (nobody)
        os.chmod(silent_pty, 0o600)
        proc = subprocess.run(
            [sys.executable, "-c", _UNPRIVILEGED_OPEN, silent_pty],
            capture_output=True, text=True, timeout=60, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        out = proc.stdout + proc.stderr
        assert out.startswith("PortPermissionError:"), out
        assert "dialout" in out and f"no permission to open serial port {silent_pty}" in out
    else:
        os.chmod(silent_pty, 0)
        with pytest.raises(PortPermissionError, match="dialout"):
            await FeetechBus(silent_pty).open()


async def test_port_with_nothing_attached(silent_pty: str) -> None:
    async with open_bus(arms.SO101, silent_pty) as bus:
        started = time.monotonic()
        with pytest.raises(NoServosFoundError) as info:
            await bus.verify(arms.SO101)
        # 6 motors x 3 tries x ~5 ms, then one try per motor at each other Feetech baud
        assert time.monotonic() - started < 1.5
        with pytest.raises(NoResponseError, match=r"id 1 \(shoulder_pan\) did not answer a ping"):
            await bus.ping(1)
    assert info.value.other_baud is None
    assert f"no servo answered on {silent_pty} at 1000000 baud" in str(info.value)
    assert "power supply" in str(info.value)


async def test_port_vanishing_while_open(so101_emu: Emulator) -> None:
    async with FeetechBus(so101_emu.port) as bus:
        await bus.ping(1)
        so101_emu.stop()  # closes the pty: like pulling the USB cable
        started = time.monotonic()
        with pytest.raises(PortDisconnectedError, match="stopped working: Input/output error"):
            await bus.read(1, "Present_Position")
        assert time.monotonic() - started < 0.5
