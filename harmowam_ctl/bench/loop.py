"""``harmowam bench loop``: the runtime against a LeRobot-style synchronous loop, same arm, same policy.

Both run on the simulated SO-101 (``SimRig``: MuJoCo arm behind the emulated bus, two 96 x 96 cameras at
30 fps) with the ``synthetic`` policy (real torch work: ~15 ms predict + ~8 ms act on one thread, chunks
of 12 steps at 30 Hz), one after the other in the same command. The simulated world runs in its own
processes for both (``sim_mode="process"``, as a real arm and cameras are outside the program), or in
the measuring process (``"inprocess"``, how it was first measured).

Levers (for finding out what the jitter comes from; defaults = as shipped): ``world_nice`` (niceness of
the world's processes), ``camera_nice`` (more for its rendering process), ``runtime_cpus`` /
``world_cpus`` (CPU affinity: the runtime and the policy process it starts, the world's processes),
``probe`` (a bare 100 Hz sleep loop in a process of its own during the runtime run: the wake-up lateness
any process gets under this load), ``gc_freeze`` (``gc.freeze()`` once everything is built: the collector no longer walks the start-up
objects), ``spin_ms`` (the metronome wakes the loop this much early and the tick busy-waits the rest).
The levers have no CLI flags: ``python -m harmowam_ctl.bench.loop '{"world_nice": 5, "duration_s": 15}'``.

* ``runtime``: ``harmowam run --sim --policy synthetic`` as shipped (policy in a process, 100 Hz tick).
* ``sync_baseline``: what a LeRobot record/eval loop does, in one thread: each iteration reads the
  joints, and when its action queue is empty takes the newest camera frames and runs the policy right
  there (observe -> infer -> act), then sends one action and sleeps out the rest of the 10 ms period.

Keys (both): ``tick_hz``: iterations per second; ``tick_jitter_ms_p99``: p99 of |interval between
consecutive tick starts - 10 ms| (the same definition for both loops); ``e2e_latency_ms_p50/p99``:
capture of a camera frame -> the first servo command computed from it; ``policy_hz``: action chunks
per second. The runtime's own telemetry (lateness against its fixed schedule) is under ``runtime_telemetry``;
``world_timing``: the emulator's handling time and late replies in the simulated world's arm process
(``Emulator.timing``), to tell a slow simulator from a slow runtime.
"""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
import time
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harmowam_ctl.bench import machine

RATE_HZ = 100.0


class BenchLoopConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration_s: float = Field(15.0, ge=2.0, le=600.0, description="seconds of each loop")
    policy: str = Field("synthetic", description="synthetic (predict_ms/act_ms of torch work) or a checkpoint directory")
    trust_checkpoint_code: bool = Field(False, description=(
        "load an ACT checkpoint whose processor files name code outside LeRobot's and this program's packages"))
    predict_ms: float = Field(15.0, gt=0, le=200)
    act_ms: float = Field(8.0, gt=0, le=200)
    policy_mode: str = Field("process", pattern="^(thread|process)$")
    baseline: bool = True
    sim_mode: str = Field("process", pattern="^(process|inprocess)$", description="where the simulated world runs")
    world_nice: int = Field(0, ge=0, le=19)
    camera_nice: int = Field(0, ge=0, le=19)
    runtime_cpus: list[int] | None = None
    world_cpus: list[int] | None = None
    gc_freeze: bool = False
    spin_ms: float = Field(0.0, ge=0.0, le=2.0)
    policy_nice: int | None = Field(None, ge=0, le=19, description="the policy workers' niceness (None: as shipped)")
    policy_overlap: bool = Field(True, description="the runtime's predict and act stages overlap (as shipped)")
    realtime: bool = Field(True, description="the runtime's tick threads at SCHED_FIFO when allowed (as shipped)")
    probe: bool = Field(False, description=(
        "also run a bare 100 Hz sleep loop in a process of its own during the runtime: the wake-up "
        "lateness any process gets on this machine under this load (no GIL, no bus, no work)"))

    def sim_options(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.sim_mode}
        if self.sim_mode == "process":
            out.update(world_nice=self.world_nice, camera_nice=self.camera_nice,
                       world_cpus=tuple(self.world_cpus) if self.world_cpus else None)
        return out


def _p(values: list[float] | np.ndarray, q: float) -> float | None:
    a = np.asarray(values, dtype=float)
    return None if a.size == 0 else round(float(np.percentile(a, q)), 3)


def _period_jitter(starts: np.ndarray) -> float | None:
    if starts.size < 3:
        return None
    return _p(np.abs(np.diff(starts) - 1.0 / RATE_HZ) * 1e3, 99)


async def _runtime(cfg: BenchLoopConfig, out: str) -> dict[str, Any]:
    from harmowam_ctl import runconfig
    from harmowam_ctl.setup import session

    spec = policy_spec(cfg)
    rc = runconfig.load(None, {
        "sim": True, "policy": spec.name, "policy_mode": cfg.policy_mode, "duration_s": cfg.duration_s,
        "keyboard": False, "status": False, "rate_hz": RATE_HZ, "policy_nice": cfg.policy_nice, "realtime": cfg.realtime,
        "policy_overlap": cfg.policy_overlap,
        "policy_options": spec.options,
        "telemetry": {"out_dir": out, "plot": False},
    })
    async with session(rc, sim_options=cfg.sim_options()) as rt:
        if cfg.gc_freeze:
            gc.collect()
            gc.freeze()
        await rt.run()
        cols = rt.p.telemetry.columns()
        s = rt.p.telemetry.summary()
        world = _world_timing(rt.p.sim)
    t_active = rt.t_active
    starts = np.asarray(cols.t_start, dtype=float)
    starts = starts[(starts > t_active + 1.0) & (starts < t_active + cfg.duration_s)]  # steady state, before the stop
    e2e = s.get("e2e_latency_ms") or {}
    return {
        "tick_hz": round((starts.size - 1) / (starts[-1] - starts[0]), 2) if starts.size > 2 else None,
        "tick_jitter_ms_p99": _period_jitter(starts),
        "e2e_latency_ms_p50": e2e.get("p50"),
        "e2e_latency_ms_p99": e2e.get("p99"),
        "policy_hz": s["policy"]["policy_hz"],
        "runtime_telemetry": {k: s.get(k) for k in ("tick_jitter_ms", "tick_compute_ms", "deadline_misses", "faults")},
        "world_timing": world,
    }


def policy_spec(cfg: BenchLoopConfig) -> Any:
    """``synthetic`` with the configured compute times, or the checkpoint ``cfg.policy`` names (an ACT
    checkpoint's code checked: ``ActCheckpointError``, a ValueError, unless ``trust_checkpoint_code``)."""
    from policies.registry import PolicySpec, resolve_policy

    if cfg.policy == "synthetic":
        return PolicySpec(name="synthetic", options={"predict_ms": cfg.predict_ms, "act_ms": cfg.act_ms})
    spec = resolve_policy(cfg.policy)
    if spec.name == "act":  # its processor files may name code: refused unless trusted (policies.act)
        from policies.act import checked_act_options

        spec = spec.model_copy(update={"options": checked_act_options(spec.options, cfg.trust_checkpoint_code)})
    return spec


def _world_timing(rig: Any) -> dict[str, Any] | None:
    """The emulator's own timing in the world's arm process (``Emulator.timing``): how much of a bus
    cycle is the simulator's handling and its late replies, not the program being measured."""
    world = getattr(rig, "world", None)
    if world is None:
        return None
    try:
        return dict(world.stats().get("timing") or {})
    except Exception as e:  # a diagnostic: never fail the benchmark over it
        return {"error": f"{type(e).__name__}: {e}"}


async def _sync_baseline(cfg: BenchLoopConfig) -> dict[str, Any]:
    from calibration import ArmCalibration
    from hardware.arms import arm as arm_by_name
    from hardware.camera import CameraError
    from hardware.errors import HardwareError
    from hardware.bus import open_bus
    from harmowam_ctl.armio import ArmIO
    from harmowam_ctl.simrig import SimRig
    from policies.interface import Observation
    from policies.registry import PolicySpec, build

    import torch

    torch.set_num_threads(1)
    policy = build(policy_spec(cfg))
    profile = arm_by_name("so101")
    rig = SimRig(**cfg.sim_options())
    port = rig.start()
    cams = rig.cameras
    bus = open_bus(profile, port)
    arm = ArmIO(bus, profile, ArmCalibration.simulated(profile))
    starts: list[float] = []
    reads: list[float] = []
    bus_errors = 0
    e2e: list[float] = []
    chunks: list[float] = []
    try:
        await bus.open()
        for c in cams.values():
            c.start()
        await arm.activate()
        if cfg.gc_freeze:
            gc.collect()
            gc.freeze()
        queue: list[np.ndarray] = []
        last_index = -1
        pending_capture: float | None = None
        t_end = time.monotonic() + cfg.duration_s
        period = 1.0 / RATE_HZ
        while time.monotonic() < t_end:
            t0 = time.monotonic()
            starts.append(t0)
            try:
                state = await arm.read()
            except HardwareError:  # a missed read (an overloaded machine): counted, the loop goes on
                bus_errors += 1
                if bus_errors > 100:
                    raise
                continue
            reads.append(time.monotonic() - t0)
            if not queue:
                front = cams["front"].wait(last_index, 1.0) or cams["front"].latest()  # blocks, as a sync loop does
                if front is None:
                    raise CameraError("the simulated front camera delivered no frame within 1 s")
                last_index = front.index
                wrist = cams["wrist"].latest()
                frames = {"front": front, "wrist": wrist}
                obs = Observation(
                    t=max(f.t_capture for f in frames.values()), state=state.positions, state_t=state.t,
                    images={k: f.image for k, f in frames.items()}, image_t={k: f.t_capture for k, f in frames.items()},
                )
                chunk = policy.act(policy.predict(obs), obs)
                chunks.append(time.monotonic())
                queue = list(chunk.actions)
                pending_capture = obs.t
            await arm.write(queue.pop(0))
            if pending_capture is not None:
                e2e.append((time.monotonic() - pending_capture) * 1e3)
                pending_capture = None
            rest = period - (time.monotonic() - t0)
            if rest > 0:
                time.sleep(rest)  # LeRobot's loops sleep/busy-wait out the period in the same thread
        world = _world_timing(rig)
    finally:
        for c in cams.values():
            c.stop()
        try:
            await arm.torque(False)
        finally:
            await bus.close()
            rig.stop()
    s = np.asarray(starts[int(RATE_HZ):])  # skip the first second, as for the runtime
    ch = np.asarray(chunks)
    return {
        "tick_hz": round((s.size - 1) / (s[-1] - s[0]), 2) if s.size > 2 else None,
        "tick_jitter_ms_p99": _period_jitter(s),
        "e2e_latency_ms_p50": _p(e2e, 50),
        "e2e_latency_ms_p99": _p(e2e, 99),
        "policy_hz": round((ch.size - 1) / (ch[-1] - ch[0]), 2) if ch.size > 2 else None,
        "bus_read_ms_p50": _p(np.asarray(reads[int(RATE_HZ):]) * 1e3, 50),
        "bus_read_ms_p99": _p(np.asarray(reads[int(RATE_HZ):]) * 1e3, 99),
        "bus_errors": bus_errors,
        "world_timing": world,
    }


def _probe_main(duration_s: float, conn: Any) -> None:
    """The ``probe`` lever's process: sleep to a 10 ms grid, record how late each wake-up is."""
    late: list[float] = []
    period = 1.0 / RATE_HZ
    nxt = time.monotonic() + period
    end = nxt + duration_s
    while nxt < end:
        rest = nxt - time.monotonic()
        if rest > 0:
            time.sleep(rest)
        late.append(time.monotonic() - nxt)
        nxt += period
    a = np.asarray(late[int(RATE_HZ):]) * 1e3  # the first second out, as for the loops
    conn.send({"wakeups": int(a.size), "late_ms_p50": _p(a, 50), "late_ms_p99": _p(a, 99),
               "late_ms_max": round(float(a.max()), 3) if a.size else None})
    conn.close()


def _start_probe(duration_s: float) -> tuple[Any, Any]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_probe_main, args=(duration_s, child), daemon=True, name="bench-probe")
    proc.start()
    return proc, parent


def run(cfg: BenchLoopConfig) -> dict[str, Any]:
    from harmowam_ctl import metronome

    load_before = os.getloadavg()
    if cfg.runtime_cpus:
        os.sched_setaffinity(0, set(cfg.runtime_cpus))  # this thread; the threads and processes it starts inherit it
    spin = metronome.DEFAULT_SPIN_S
    metronome.DEFAULT_SPIN_S = cfg.spin_ms / 1e3
    try:
        probe = _start_probe(cfg.duration_s + 4.0) if cfg.probe else None  # + the runtime's start-up
        with tempfile.TemporaryDirectory() as out:
            result: dict[str, Any] = asyncio.run(_runtime(cfg, out))
        if probe is not None:
            proc, conn = probe
            result["probe"] = conn.recv() if conn.poll(10.0) else {"error": "the probe process did not report"}
            proc.join(timeout=2.0)
        if cfg.baseline:
            result["sync_baseline"] = asyncio.run(_sync_baseline(cfg))
    finally:
        metronome.DEFAULT_SPIN_S = spin
        if cfg.gc_freeze:
            gc.unfreeze()
    result["config"] = cfg.model_dump()
    result["machine"] = machine()
    # other programs running meanwhile pollute every number here: the 1-minute load before and after
    result["load_avg_1m"] = {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)}
    return result


def format_text(r: dict[str, Any]) -> str:
    keys = ("tick_hz", "tick_jitter_ms_p99", "e2e_latency_ms_p50", "e2e_latency_ms_p99", "policy_hz")
    lines = [f"{'':24s}{'runtime':>12s}{'sync loop':>12s}"]
    base = r.get("sync_baseline", {})
    for k in keys:
        lines.append(f"{k:24s}{str(r.get(k)):>12s}{str(base.get(k, '-')):>12s}")
    return "\n".join(lines)


if __name__ == "__main__":  # the levers without CLI flags: python -m harmowam_ctl.bench.loop '{"world_nice": 5}'
    import json
    import sys

    from harmowam_ctl import logs
    from harmowam_ctl.config import build

    logs.configure()  # logs go to stderr: stdout is the JSON alone
    print(json.dumps(run(build(BenchLoopConfig, json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})), indent=2))
