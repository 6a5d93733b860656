"""Measure the bus: one control cycle against the paced emulator process, and the thread hand-off.

    .venv/bin/python tests/hardware/bus/bench_cycle.py [--arm so101] [--cycles 2000] [--rounds 3]

Cycle = sync read Present_Position of 6 motors + sync write Goal_Position of 6 motors, each awaited,
at 1 Mbaud, Return_Delay_Time 0 (as LeRobot configures). Rounds alternate our bus with the "direct"
hand-off (call_soon_threadsafe), with the "executor" hand-off (run_in_executor on one thread) and
LeRobot's bus on the same emulator, so a busy machine hurts all three alike. Also times a no-op job
round trip through each hand-off. Not collected by pytest (no test_ prefix).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time

from hardware.arms import ArmProfile, arm
from hardware.bus import open_bus
from hardware.bus.worker import Handoff, Worker
from hardware.emulator import EmulatorProcess
from hardware.protocol import dynamixel, feetech
from hardware.tables import Family


def _summary(times: list[float]) -> str:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"median {statistics.median(ordered) * 1e3:.3f} ms  p99 {p99 * 1e3:.3f} ms"


def wire_s(profile: ArmProfile) -> float:
    codec = feetech if profile.family is Family.FEETECH else dynamixel
    reg = profile.motors[0].model.register
    pos, goal = reg("Present_Position"), reg("Goal_Position")
    ids = profile.ids
    n = len(codec.sync_read(pos.address, pos.size, ids)) + len(ids) * codec.status_length(pos.size)
    n += len(codec.sync_write(goal.address, goal.size, {i: bytes(goal.size) for i in ids}))
    return n * 10 / 1_000_000


async def ours(port: str, profile: ArmProfile, cycles: int, handoff: Handoff) -> list[float]:
    ids = list(profile.ids)
    async with open_bus(profile, port, handoff=handoff) as bus:
        for i in ids:
            await bus.write(i, "Return_Delay_Time", 0)
        start = (await bus.sync_read("Present_Position", ids)).values
        times = []
        for k in range(cycles + 50):
            goals = {i: int(p + 40 * math.sin(k * 0.01 + i)) for i, p in start.items()}
            t0 = time.perf_counter()
            await bus.sync_read("Present_Position", ids)
            await bus.sync_write("Goal_Position", goals)
            if k >= 50:
                times.append(time.perf_counter() - t0)
        await bus.sync_write("Goal_Position", start)
    return times


LEROBOT_FAILURES = [0]


def lerobot(port: str, profile: ArmProfile, cycles: int) -> list[float]:
    from lerobot.motors import Motor, MotorNormMode

    if profile.family is Family.FEETECH:
        from lerobot.motors.feetech import FeetechMotorsBus as Bus
    else:
        from lerobot.motors.dynamixel import DynamixelMotorsBus as Bus
    motors = {m.joint: Motor(m.id, m.model_name, MotorNormMode.DEGREES) for m in profile.motors}
    bus = Bus(port=port, motors=motors)
    bus.connect()
    try:
        start = bus.sync_read("Present_Position", normalize=False)
        times = []
        for k in range(cycles + 50):
            goals = {j: int(p + 40 * math.sin(k * 0.01 + n)) for n, (j, p) in enumerate(start.items())}
            t0 = time.perf_counter()
            try:
                bus.sync_read("Present_Position", normalize=False)
            except ConnectionError:  # LeRobot does not retry by default: count it, time the others
                LEROBOT_FAILURES[0] += 1
                continue
            bus.sync_write("Goal_Position", goals, normalize=False)
            if k >= 50:
                times.append(time.perf_counter() - t0)
        bus.sync_write("Goal_Position", start, normalize=False)
    finally:
        bus.disconnect(disable_torque=False)
    return times


async def handoff_round_trip(handoff: Handoff, n: int = 20_000) -> list[float]:
    worker = Worker("bench", handoff)
    worker.start()
    times = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            await worker.submit(int)
            times.append(time.perf_counter() - t0)
    finally:
        worker.stop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arm", default="so101")
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-lerobot", action="store_true")
    args = parser.parse_args()
    profile = arm(args.arm)
    results: dict[str, list[float]] = {"direct": [], "executor": [], "lerobot": []}
    with EmulatorProcess(profile.name) as emu:
        assert emu.port is not None
        for _ in range(args.rounds):
            for handoff in ("direct", "executor"):
                results[handoff] += asyncio.run(ours(emu.port, profile, args.cycles, handoff))  # type: ignore[arg-type]
            if not args.no_lerobot:
                results["lerobot"] += lerobot(emu.port, profile, args.cycles)
    wire = wire_s(profile)
    print(f"{profile.name}: {args.rounds} x {args.cycles} cycles, wire time {wire * 1e3:.3f} ms")
    for name, times in results.items():
        if times:
            ratio = statistics.median(times) / wire
            print(f"  {name:9s} {_summary(times)}  ({ratio:.2f} x wire)")
    if LEROBOT_FAILURES[0]:
        print(f"  lerobot   failed sync reads: {LEROBOT_FAILURES[0]}")
    for handoff in ("direct", "executor"):
        times = asyncio.run(handoff_round_trip(handoff))  # type: ignore[arg-type]
        print(f"  no-op job round trip, {handoff:8s}: median {statistics.median(times) * 1e6:.1f} us")


if __name__ == "__main__":
    main()
