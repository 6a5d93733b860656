"""`harmowam bench bus`: time one servo control cycle against the emulator, ours and LeRobot's.

One cycle = sync read of Present_Position of every motor + sync write of Goal_Position to every motor,
each awaited. The emulator runs in its own process and paces replies at the real wire time of the
baud, so the cycle cannot beat ``wire_limit_ms``: the bytes of both packets and the replies at 10
bit-times a byte plus the servos' return delays. LeRobot's FeetechMotorsBus / DynamixelMotorsBus runs
the same cycle on the same emulator in the same run (raw values, no normalisation, for both).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import statistics
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hardware.arms import ArmProfile, arm
from hardware.bus import open_bus
from hardware.emulator import EmulatorProcess
from hardware.protocol import dynamixel, feetech
from hardware.tables import Family
from harmowam_ctl.bench import machine


RETRIES = 2  # immediate retries after a corrupt or missing reply: our bus's default, given to LeRobot too


class BenchBusConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arm: Literal["so100", "so101", "so100-leader", "so101-leader", "koch", "koch-leader"] = "so101"
    baud: int = Field(1_000_000, gt=0)
    cycles: int = Field(1000, ge=10, le=1_000_000)
    warmup: int = Field(50, ge=0)
    lerobot: bool = True  # also time LeRobot's bus


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def wire_limit_s(profile: ArmProfile, baud: int, return_delay_us: float) -> float:
    """Pure wire time of one cycle: both instruction packets, every status reply, every return delay."""
    ids = profile.ids
    n = len(ids)
    codec = feetech if profile.family is Family.FEETECH else dynamixel
    model = profile.motors[0].model
    pos, goal = model.register("Present_Position"), model.register("Goal_Position")
    request = codec.sync_read(pos.address, pos.size, ids)
    replies = n * codec.status_length(pos.size)
    write = codec.sync_write(goal.address, goal.size, {i: bytes(goal.size) for i in ids})
    byte_time = 10.0 / baud
    return (len(request) + replies + len(write)) * byte_time + n * return_delay_us * 1e-6


def _goals(start: dict[int, int], k: int) -> dict[int, int]:
    # a slow +-40 tick sine around the start pose so the emulated arm really moves
    return {i: int(p + 40 * math.sin(k * 0.01 + i)) for i, p in start.items()}


async def _ours(port: str, profile: ArmProfile, cfg: BenchBusConfig) -> dict[str, Any]:
    ids = list(profile.ids)
    async with open_bus(profile, port, cfg.baud, retries=RETRIES) as bus:
        await bus.verify(profile)
        for i in ids:  # as LeRobot's configure_motors and our runtime do: minimum return delay
            await bus.write(i, "Return_Delay_Time", 0)
        delays = [(await bus.read(i, "Return_Delay_Time")).value for i in ids]
        start = (await bus.sync_read("Present_Position", ids)).values
        times: list[float] = []
        cpu0 = 0.0
        for k in range(cfg.warmup + cfg.cycles):
            if k == cfg.warmup:
                cpu0 = time.process_time()
            goals = _goals(start, k)  # outside the timed cycle, as for LeRobot below
            t0 = time.perf_counter()
            await bus.sync_read("Present_Position", ids)
            await bus.sync_write("Goal_Position", goals)
            if k >= cfg.warmup:
                times.append(time.perf_counter() - t0)
        cpu = (time.process_time() - cpu0) / cfg.cycles
        await bus.sync_write("Goal_Position", start)
        stats = bus.stats
    return {
        "times": times,
        "cpu_s_per_cycle": cpu,
        "return_delay_us": 2.0 * max(delays),
        "retries": stats.retries,
        "timeouts": stats.timeouts,
        "corrupt_replies": stats.corrupt_replies,
    }


def _lerobot(port: str, profile: ArmProfile, cfg: BenchBusConfig) -> tuple[list[float], int, float]:
    from lerobot.motors import Motor, MotorNormMode

    motors = {m.joint: Motor(m.id, m.model_name, MotorNormMode.DEGREES) for m in profile.motors}
    if profile.family is Family.FEETECH:
        from lerobot.motors.feetech import FeetechMotorsBus as Bus
    else:
        from lerobot.motors.dynamixel import DynamixelMotorsBus as Bus
    bus = Bus(port=port, motors=motors)
    bus.connect()
    try:
        start = bus.sync_read("Present_Position", normalize=False, num_retry=RETRIES)
        by_id = {profile.motor(j).id: p for j, p in start.items()}
        times: list[float] = []
        failures = 0
        cpu0 = 0.0
        for k in range(cfg.warmup + cfg.cycles):
            if k == cfg.warmup:
                cpu0 = time.process_time()
            goals = {profile.motor(i).joint: v for i, v in _goals(by_id, k).items()}
            t0 = time.perf_counter()
            try:  # the same retry budget as ours; a cycle that still fails counts, with its time
                bus.sync_read("Present_Position", normalize=False, num_retry=RETRIES)
                bus.sync_write("Goal_Position", goals, normalize=False, num_retry=RETRIES)
            except ConnectionError:
                failures += 1
            if k >= cfg.warmup:
                times.append(time.perf_counter() - t0)
        cpu = (time.process_time() - cpu0) / cfg.cycles
        bus.sync_write("Goal_Position", start, normalize=False, num_retry=RETRIES)
    finally:
        bus.disconnect(disable_torque=False)
    return times, failures, cpu


def run(cfg: BenchBusConfig) -> dict[str, Any]:
    profile = arm(cfg.arm)
    with EmulatorProcess(profile.name, baud=cfg.baud) as emu:
        ours = asyncio.run(_ours(emu.port, profile, cfg))
        theirs, lerobot_failures, lerobot_cpu = _lerobot(emu.port, profile, cfg) if cfg.lerobot else (None, 0, 0.0)
    times = ours["times"]
    limit = wire_limit_s(profile, cfg.baud, ours["return_delay_us"])
    median = statistics.median(times)
    result: dict[str, Any] = {
        "benchmark": "bus",
        "arm": profile.name,
        "baud": cfg.baud,
        "motors": len(profile.ids),
        "cycles": cfg.cycles,
        "cycle": "sync read Present_Position + sync write Goal_Position",
        "cycle_ms_median": round(median * 1e3, 4),
        "cycle_ms_p99": round(_percentile(times, 99) * 1e3, 4),
        "cycle_ms_max": round(max(times) * 1e3, 4),
        "wire_limit_ms": round(limit * 1e3, 4),
        "ratio_to_wire_limit": round(median / limit, 3),
        "goal_ratio_to_wire_limit": 1.25,
        "cpu_ms_per_cycle": round(ours["cpu_s_per_cycle"] * 1e3, 4),  # this process's CPU time (all threads)
        "return_delay_us": ours["return_delay_us"],
        "retries": ours["retries"],
        "timeouts": ours["timeouts"],
        "corrupt_replies": ours["corrupt_replies"],
        "machine": machine(),
        "date": dt.date.today().isoformat(),
    }
    if theirs is not None:
        result["lerobot_cycle_ms_median"] = round(statistics.median(theirs) * 1e3, 4)
        result["lerobot_cycle_ms_p99"] = round(_percentile(theirs, 99) * 1e3, 4)
        result["lerobot_failed_cycles"] = lerobot_failures
        result["lerobot_cpu_ms_per_cycle"] = round(lerobot_cpu * 1e3, 4)
    return result


def format_text(r: dict[str, Any]) -> str:
    lines = [
        f"bus cycle on emulated {r['arm']} ({r['motors']} motors, {r['baud']} baud, {r['cycles']} cycles)",
        f"  ours:     median {r['cycle_ms_median']:.3f} ms   p99 {r['cycle_ms_p99']:.3f} ms"
        f"   CPU {r['cpu_ms_per_cycle']:.3f} ms/cycle",
        f"  wire:     {r['wire_limit_ms']:.3f} ms  (ours = {r['ratio_to_wire_limit']:.2f} x wire; goal <= 1.25 x)",
    ]
    if "lerobot_cycle_ms_median" in r:
        lines.append(
            f"  LeRobot:  median {r['lerobot_cycle_ms_median']:.3f} ms   p99 {r['lerobot_cycle_ms_p99']:.3f} ms"
            f"   CPU {r['lerobot_cpu_ms_per_cycle']:.3f} ms/cycle"
        )
    return "\n".join(lines)
