"""Closed-loop evaluation of a trained policy on a simulated task: ``evaluate(spec, EvalConfig(...))``.

Each episode resets the task with one seed and one scene-variation spec (``in_domain`` or a held-out axis:
``position`` (unseen cells between the training ones), ``position_far``, ``background``, ``object``, or a YAML file), then runs in *simulated* time, synchronously:
render the cameras, ``predict`` + ``act`` on that observation, execute the chunk's first ``replan_every``
steps (interpolated from the chunk's ``dt`` onto the task's control rate), repeat. The policy's compute time
does not move the simulated clock, so a result measures what the policy does, not how fast this machine is
(``harmowam run --sim`` measures the two together, in real time).

An episode succeeds when the task's success check holds for ``settle_s`` in a row (the object rests where
it belongs) before the time limit. Seeds run from ``start_seed``; the training demonstrations of
``harmowam sim demos`` use seeds from 0, so the default 1000 keeps evaluation scenes held out.

Result (JSON-able): per spec the episodes, successes, rate with a 95 % Wilson interval, the failed seeds,
the mean steps to success, the share of chunks made by each expert (HarmoWAM's gate), the policy's
predict + act wall time per call (p50/p99), and the wall time.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from policies.interface import ActionChunk, Observation, Policy

SETTLE_S = 0.5


class EvalConfig(BaseModel):
    """What ``harmowam eval`` can be told."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field("pick_place", description="simulated task (pick_place, stack, push, insert)")
    specs: tuple[str, ...] = Field(("in_domain",), min_length=1, description="scene variations: names or YAML files")
    episodes: int = Field(20, ge=1, le=10_000, description="episodes per spec")
    start_seed: int = Field(1000, ge=0, description="first scene seed (demonstrations use seeds from 0)")
    replan_every: int = Field(6, ge=1, le=1000, description="chunk steps executed before the policy is asked again")
    resolution: int = Field(96, ge=16, le=640, description="camera image size (px, square), as in the dataset")
    fps: float = Field(30.0, gt=0, le=1000, description="control rate of the simulated task")
    settle_s: float = Field(SETTLE_S, ge=0, le=10, description="success must hold this long")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate k / n."""
    if n <= 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (round(max(0.0, c - h), 3), round(min(1.0, c + h), 3))


def chunk_targets(chunk: ActionChunk, t: float, dt: float, n: int) -> np.ndarray:
    """The chunk's joint targets at ``t, t + dt, ..., t + (n-1) dt`` (linear between its steps, held at
    its ends), so a policy trained at another rate still drives the task at its own."""
    times = chunk.t0 + np.arange(chunk.horizon) * chunk.dt
    want = t + np.arange(n) * dt
    return np.stack([np.interp(want, times, chunk.actions[:, j]) for j in range(chunk.actions.shape[1])], axis=1)


def run_episode(policy: Policy | Callable[[Any], Policy], task: Any, seed: int, spec: str, cfg: EvalConfig,
                cameras: tuple[str, ...]) -> dict[str, Any]:
    """One closed-loop episode (module doc). Returns its record. ``policy`` may be a factory called with
    the episode's ``TaskEnv`` (the scripted expert reads the simulation itself)."""
    import hardware.sim  # noqa: F401  (MUJOCO_GL before mujoco)
    from hardware.sim.render import SimRenderer

    res = int(cfg.resolution)
    env = task.reset(seed, spec, fps=cfg.fps, offscreen_size=(max(640, res), max(480, res)))
    renderer = SimRenderer(env.model, (res, res))
    instruction = task.describe(env.variation)
    if isinstance(policy, type) or not hasattr(policy, "predict"):
        policy = policy(env)
    dt = 1.0 / cfg.fps
    hold = max(1, int(round(cfg.settle_s * cfg.fps)))
    policy.reset()
    experts: Counter[str] = Counter()
    call_ms: list[float] = []
    queue: list[np.ndarray] = []
    held, success_step, calls = 0, None, 0
    try:
        while not env.timed_out:
            if not queue:
                renderer.sync(env.arm)
                images = {c: renderer.render(c) for c in cameras}
                t = env.time
                obs = Observation(t=t, state=env.joint_positions(), state_t=t, images=images,
                                  image_t={c: t for c in cameras}, task=instruction, index=calls)
                t0 = time.perf_counter()
                chunk = policy.act(policy.predict(obs), obs)
                call_ms.append((time.perf_counter() - t0) * 1e3)
                calls += 1
                experts[chunk.expert or "-"] += 1
                queue = list(chunk_targets(chunk, t, dt, cfg.replan_every))
            env.step(queue.pop(0))
            if env.success():
                held += 1
                if held >= hold:
                    success_step = env.steps - held + 1
                    break
            else:
                held = 0
    finally:
        renderer.close()
    return {"seed": int(seed), "spec": spec, "success": success_step is not None, "steps": env.steps,
            "success_step": success_step, "calls": calls, "experts": dict(experts), "call_ms": call_ms}


def summarize(episodes: list[dict[str, Any]], wall_s: float) -> dict[str, Any]:
    ok = [e for e in episodes if e["success"]]
    experts: Counter[str] = Counter()
    for e in episodes:
        experts.update(e["experts"])
    total = sum(experts.values()) or 1
    ms = np.concatenate([np.asarray(e["call_ms"], float) for e in episodes]) if episodes else np.zeros(0)
    return {
        "episodes": len(episodes),
        "successes": len(ok),
        "rate": round(len(ok) / max(1, len(episodes)), 3),
        "rate_ci95": wilson(len(ok), len(episodes)),
        "failed_seeds": [e["seed"] for e in episodes if not e["success"]],
        "mean_steps_to_success": round(float(np.mean([e["success_step"] for e in ok])), 1) if ok else None,
        "expert_share": {k: round(v / total, 3) for k, v in sorted(experts.items())},
        "policy_call_ms_p50": round(float(np.percentile(ms, 50)), 2) if ms.size else None,
        "policy_call_ms_p99": round(float(np.percentile(ms, 99)), 2) if ms.size else None,
        "wall_s": round(wall_s, 1),
    }


def policy_cameras(policy: Policy) -> tuple[str, ...]:
    """The camera names the policy reads (HarmoWAM: its config; ACT: its camera map; else the sim's two)."""
    return tuple(getattr(policy, "cameras", None) or ("front", "wrist"))


def checked_task(cfg: EvalConfig) -> Any:
    """The task ``cfg`` names, with every spec checked: a bad task (KeyError) or spec (ValueError) fails
    here, before any episode runs."""
    from hardware.sim.tasks import get_task

    task = get_task(cfg.task)
    for s in cfg.specs:
        task.spec(s)
    return task


def evaluate(policy: Policy | Callable[[Any], Policy], cfg: EvalConfig, *, label: str = "",
             on_episode: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run ``cfg.episodes`` episodes per spec (module doc); ``on_episode`` sees each record as it ends.
    ``policy``: a policy, or a factory of one per episode from its ``TaskEnv`` (``ScriptedPolicy``)."""
    task = checked_task(cfg)
    cams = policy_cameras(policy)
    out: dict[str, Any] = {"policy": label or getattr(policy, "name", "?"), "task": cfg.task,
                           "config": cfg.model_dump(), "results": {}}
    for s in cfg.specs:
        t0 = time.perf_counter()
        eps = []
        for seed in range(cfg.start_seed, cfg.start_seed + cfg.episodes):
            e = run_episode(policy, task, seed, s, cfg, cams)
            eps.append(e)
            if on_episode is not None:
                on_episode(e)
        out["results"][Path(s).stem if s.endswith((".yaml", ".yml")) else s] = summarize(eps, time.perf_counter() - t0)
    return out
