"""How much the simulated SO-101 costs per frame and per control step.

``run()`` measures, on the calling thread:

* ``render_<view>_ms``: one frame of each camera view at ``resolution`` (default 96x96): copy the arm's
  state, kinematics, scene update and off-screen render with read-back (what ``SimCameraRig`` does per
  view), after ``warmup`` frames. The arm moves between frames.
* ``step_ms``: one control step at ``control_hz`` (default 30 Hz): command six new goals (a smooth
  trajectory, so the servo profiles are active on every physics step: the expensive path), advance the
  simulation by 1/control_hz (~17 ``mj_step`` of 2 ms) and read the six joints' state.
* ``mj_step_us``: the bare physics step, for reference.

Each as median and p99 in ms (us for ``mj_step_us``), with the targets (render <= 10 ms, step <= 5 ms)
and whether they were met. Times are wall-clock (``time.perf_counter``): on a shared machine, run it
again when it is quiet; ``load_avg`` is reported alongside.

``python -m hardware.sim.bench`` prints the result as JSON.
"""

from __future__ import annotations

import json
import math
import os
import time

import mujoco
import numpy as np

from hardware.sim.arm import MujocoArm
from hardware.sim.render import SimRenderer
from hardware.sim.scene import load_scene

RENDER_TARGET_MS = 10.0
STEP_TARGET_MS = 5.0


def _stats(samples_s: list[float], scale: float = 1e3) -> dict[str, float]:
    a = np.asarray(samples_s) * scale
    return {
        "median": round(float(np.median(a)), 3),
        "p99": round(float(np.percentile(a, 99)), 3),
        "max": round(float(a.max()), 3),
        "n": int(a.size),
    }


def _trajectory(t: float) -> list[float]:
    """Goals (ticks) of a slow figure-of-eight-ish motion around mid-range."""
    return [
        2048 + 400 * math.sin(0.8 * t),
        2048 + 300 * math.sin(0.5 * t),
        2048 + 300 * math.cos(0.5 * t),
        2048 + 250 * math.sin(1.1 * t),
        2048 + 500 * math.sin(0.3 * t),
        2048 + 300 * (1 + math.sin(2.0 * t)) / 2,
    ]


def run(
    *,
    frames: int = 200,
    steps: int = 300,
    resolution: tuple[int, int] = (96, 96),
    views: tuple[str, ...] = ("front", "wrist"),
    control_hz: float = 30.0,
    visual: str = "hull",
    warmup: int = 10,
) -> dict:
    t_load = time.perf_counter()
    scene = load_scene(visual=visual)
    load_s = time.perf_counter() - t_load
    arm = MujocoArm(scene, t0=0.0, initial_ticks=[2048.0] * 6)
    n = arm.n_joints
    for i in range(n):
        arm.command(i, 2048.0, True, 3000.0, 30000.0)
    dt = 1.0 / control_hz
    t = 0.0

    # --- control steps ---------------------------------------------------------------------------------
    step_s: list[float] = []
    for k in range(steps + warmup):
        goals = _trajectory(t)
        t0 = time.perf_counter()
        for i in range(n):
            arm.command(i, goals[i], True, 3000.0, 30000.0)
        t += dt
        arm.advance_to(t)
        for i in range(n):
            arm.state(i)
        if k >= warmup:
            step_s.append(time.perf_counter() - t0)

    # --- bare physics --------------------------------------------------------------------------------------
    m, d = scene.model, scene.data
    phys_s = []
    with arm.lock:
        for _ in range(200):
            t0 = time.perf_counter()
            mujoco.mj_step(m, d)
            phys_s.append(time.perf_counter() - t0)

    # --- rendering ---------------------------------------------------------------------------------------
    render: dict[str, list[float]] = {v: [] for v in views}
    renderer = SimRenderer(scene.model, resolution)
    try:
        for k in range(frames + warmup):
            goals = _trajectory(t)
            for i in range(n):
                arm.command(i, goals[i], True, 3000.0, 30000.0)
            t += dt
            arm.advance_to(t)
            for v in views:
                t0 = time.perf_counter()
                renderer.sync(arm)
                img = renderer.render(v)
                if k >= warmup:
                    render[v].append(time.perf_counter() - t0)
            assert img.shape == (resolution[1], resolution[0], 3)
    finally:
        renderer.close()

    out: dict = {
        "resolution": list(resolution),
        "visual": visual,
        "control_hz": control_hz,
        "mj_steps_per_control_step": round(dt / float(scene.model.opt.timestep), 2),
        "scene_load_s": round(load_s, 3),
        "step_ms": _stats(step_s),
        "mj_step_us": _stats(phys_s, 1e6),
        "targets_ms": {"render": RENDER_TARGET_MS, "step": STEP_TARGET_MS},
        "cpu_count": os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "mujoco": mujoco.__version__,
        "mujoco_gl": os.environ.get("MUJOCO_GL"),
    }
    for v in views:
        out[f"render_{v}_ms"] = _stats(render[v])
    out["meets_targets"] = bool(
        out["step_ms"]["median"] <= STEP_TARGET_MS
        and all(out[f"render_{v}_ms"]["median"] <= RENDER_TARGET_MS for v in views)
    )
    return out


if __name__ == "__main__":  # pragma: no cover
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--size", type=int, nargs=2, default=(96, 96), metavar=("W", "H"))
    p.add_argument("--visual", choices=("hull", "full"), default="hull")
    a = p.parse_args()
    print(json.dumps(run(frames=a.frames, steps=a.steps, resolution=tuple(a.size), visual=a.visual), indent=2))
