"""Timeouts, the FTDI latency timer, a responsive event loop, and the control cycle on a paced emulator."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from hardware import arms
from hardware.bus import DynamixelBus, FeetechBus, ServoFault, open_bus
from hardware.bus import port as port_mod
from hardware.bus.dynamixel import hardware_faults
from hardware.emulator import Emulator, EmulatorProcess
from hardware.errors import NoResponseError

IDS = [1, 2, 3, 4, 5, 6]


def test_timeout_is_wire_time_plus_return_delays_plus_margin() -> None:
    bus = FeetechBus("/dev/x", 1_000_000)
    # SYNC_READ of 6 x 2 bytes: 14 bytes out, 6 x 8 bytes back, 6 return delays of 500 us, 4 ms margin
    assert bus.link.timeout(14, 6, 2) == pytest.approx(62e-5 + 6 * 500e-6 + 0.004)
    slow = DynamixelBus("/dev/x", 57_600, latency_s=0.001, return_delay_s=0.0)
    assert slow.link.timeout(14, 1, 4) == pytest.approx((14 + 15) * 10 / 57_600 + 0.001)


def test_dynamixel_hardware_error_bits() -> None:
    assert hardware_faults(0x00) == ServoFault.NONE
    assert hardware_faults(0x01) == ServoFault.VOLTAGE
    every = ServoFault.VOLTAGE | ServoFault.OVERHEAT | ServoFault.ENCODER | ServoFault.ELECTRICAL_SHOCK
    assert hardware_faults(0x3D) == every | ServoFault.OVERLOAD


async def test_ftdi_latency_timer_is_added_and_warned(
    so101_emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sysfs = tmp_path / "sys"
    (sysfs / "ttyUSB7").mkdir(parents=True)
    (sysfs / "ttyUSB7" / "latency_timer").write_text("16\n")
    monkeypatch.setattr(port_mod, "SYSFS_USB_SERIAL", str(sysfs))
    link = tmp_path / "ttyUSB7"
    link.symlink_to(so101_emu.port)  # the emulated bus, seen under an FTDI name
    with capture_logs() as logs:
        async with FeetechBus(str(link), retries=0) as bus:
            assert bus.adapter_latency_s == pytest.approx(0.016)
            assert (await bus.ping(1)).model_number == 777
            started = time.monotonic()
            with pytest.raises(NoResponseError):
                await bus.read(9, "Present_Position")  # nobody has id 9: waits the whole timeout
            assert time.monotonic() - started >= 0.016
    warnings = [e for e in logs if e["event"] == "ftdi_latency_timer_high"]
    assert len(warnings) == 1 and warnings[0]["latency_ms"] == 16
    assert "echo 1 | sudo tee" in warnings[0]["fix"] and "latency_timer" in warnings[0]["fix"]
    (sysfs / "ttyUSB7" / "latency_timer").write_text("1\n")
    with capture_logs() as logs:
        async with FeetechBus(str(link)) as bus:
            assert bus.adapter_latency_s == pytest.approx(0.001)
    assert not [e for e in logs if e["event"] == "ftdi_latency_timer_high"]


async def test_event_loop_keeps_ticking_during_slow_transactions(make_emulator) -> None:  # type: ignore[no-untyped-def]
    emu = make_emulator("so101", faults="dead=6")
    gaps: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.002)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async with FeetechBus(emu.port, latency_s=0.05) as bus:  # ~50 ms per try, 3 tries
        stop = asyncio.Event()
        tick = asyncio.create_task(ticker(stop))
        started = time.monotonic()
        with pytest.raises(NoResponseError):
            await bus.sync_read("Present_Position", IDS)
        elapsed = time.monotonic() - started
        stop.set()
        await tick
    assert elapsed >= 0.15
    assert len(gaps) >= 30  # a blocked loop would give one tick
    assert max(gaps) < 0.05


async def test_cancelled_caller_does_not_desync_the_bus(so101_emu: Emulator) -> None:
    async with FeetechBus(so101_emu.port) as bus:
        await bus.sync_write("Goal_Position", {i: 1800 + i for i in IDS})
        task = asyncio.create_task(bus.sync_read("Goal_Position", IDS))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for i in IDS:  # the next callers get their own replies
            assert (await bus.read(i, "Goal_Position")).value == 1800 + i


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@pytest.mark.parametrize("arm", ["so101", "koch"])
async def test_control_cycle_on_a_paced_emulator_process(arm: str) -> None:
    """Sync read + sync write of 6 motors at 1 Mbaud against the emulator in its own process.

    The bound is loose (a shared 2-core machine); ``bench_cycle.py`` measures against the goal
    (1.25 x wire).
    """
    profile = arms.arm(arm)
    with EmulatorProcess(arm) as emu:
        assert emu.port is not None
        async with open_bus(profile, emu.port) as bus:
            await bus.verify(profile)
            for i in IDS:
                await bus.write(i, "Return_Delay_Time", 0)
            start = (await bus.sync_read("Present_Position", IDS)).values
            times = []
            for k in range(300):
                t0 = time.perf_counter()
                await bus.sync_read("Present_Position", IDS)
                await bus.sync_write("Goal_Position", {i: p + (k % 20) for i, p in start.items()})
                times.append(time.perf_counter() - t0)
            stats = bus.stats
    wire = 0.00088 if arm == "so101" else 0.00154  # bytes of both packets and 6 replies at 10 us a byte
    median = statistics.median(times)
    assert median >= wire * 0.95  # the emulator really paces
    # loose: catches a polling sleep or a 16 ms latency timer, not a busy machine
    assert median < 5 * wire, f"median cycle {median * 1e3:.2f} ms, p99 {_percentile(times, 0.99) * 1e3:.2f} ms"
    assert stats.retries <= 15  # a few timeouts when the machine is busy; not one in twenty cycles
