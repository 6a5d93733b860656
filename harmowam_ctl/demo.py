"""`harmowam demo` (what `make demo` runs): everything that exists today, on an emulated arm.

1. start the servo-bus emulator (a pseudo-terminal speaking the real protocol, paced at wire time);
2. scan it like a real arm: ids, models, firmware, positions, voltage, temperature;
3. enable torque and drive every joint through a small sine with 100 Hz sync writes, showing goal
   vs present, then release torque;
4. time the servo control cycle, ours against LeRobot's, on the same emulator;
5. the main job: `harmowam run --sim` on the simulated SO-101 (pick and place) with the task's scripted
   expert as the policy, through the action buffer, safety filter and watchdogs, ending with a safe stop.
No trained HarmoWAM checkpoint is shipped yet: `harmowam train` makes one (README), `--policy DIR` runs it.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time

from hardware.arms import arm
from hardware.bus import open_bus
from hardware.emulator import EmulatorProcess
from harmowam_ctl.bench import bus as bench_bus
from harmowam_ctl.scan import ScanConfig, format_table, scan


async def _move(port: str, arm_name: str, seconds: float = 2.0, rate_hz: float = 100.0) -> list[str]:
    profile = arm(arm_name)
    ids = list(profile.ids)
    lines = []
    async with open_bus(profile, port) as bus:
        start = (await bus.sync_read("Present_Position", ids)).values
        for i in ids:
            await bus.write(i, "Torque_Enable", 1)
        t0 = time.monotonic()
        period = 1.0 / rate_hz
        k = 0
        goals = start
        while (now := time.monotonic()) - t0 < seconds:
            phase = 2 * math.pi * 0.5 * (now - t0)
            goals = {i: int(p + 150 * math.sin(phase + i)) for i, p in start.items()}
            await bus.sync_write("Goal_Position", goals)
            k += 1
            await asyncio.sleep(max(0.0, t0 + k * period - time.monotonic()))
        present = (await bus.sync_read("Present_Position", ids)).values
        await bus.sync_write("Goal_Position", start)
        await asyncio.sleep(0.5)
        for i in ids:
            await bus.write(i, "Torque_Enable", 0)
        lines.append(f"drove {len(ids)} joints for {seconds:.0f} s with {k} sync writes ({k / seconds:.0f} Hz)")
        lines.append(f"{'joint':<14}{'goal':>7}{'present':>9}")
        for i in ids:
            lines.append(f"{profile.motor(i).joint:<14}{goals[i]:>7}{present[i]:>9}")
        lines.append(f"bus: {bus.stats.transactions} transactions, {bus.stats.retries} retries, {bus.stats.timeouts} timeouts")
    return lines


def run_demo(arm_name: str = "so101", cycles: int = 1000) -> int:
    print(f"== 1. emulated {arm_name} (servo-bus emulator on a pseudo-terminal, paced at 1 Mbaud)")
    with EmulatorProcess(arm_name) as emu:
        print(f"   port {emu.port}")
        print("== 2. scan")
        rows = asyncio.run(scan(ScanConfig(port=emu.port, arm=arm_name)))
        print(format_table(rows))
        print("== 3. move every joint (torque on, 100 Hz goals, torque off)")
        for line in asyncio.run(_move(emu.port, arm_name)):
            print("   " + line)
    print("== 4. servo control cycle: ours vs LeRobot (separate emulator process)")
    result = bench_bus.run(bench_bus.BenchBusConfig(arm=arm_name, cycles=cycles))
    print(bench_bus.format_text(result))
    print("== 5. the runtime on the simulated SO-101: the scripted expert picks and places a cube")
    argv = ["run", "--sim", "--task", "pick_place", "--policy", "scripted", "--duration", "12", "--no-keyboard"]
    print("   harmowam " + " ".join(argv))
    rc = subprocess.call([sys.executable, "-m", "harmowam_ctl.cli", *argv])
    print("\nNext: train HarmoWAM on simulated demonstrations (`harmowam sim demos ...`, then `harmowam train")
    print("--dataset DIR --out runs/pp`) and run it with `harmowam run --sim --policy runs/pp`. See the README.")
    return rc
