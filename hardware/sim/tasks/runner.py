"""Run a task's scripted expert for one episode and record what it commanded (``run_episode``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hardware.sim.tasks.base import Task, TaskEnv
from hardware.sim.tasks.expert import DEFAULT_WINDOW, Episode, Expert
from hardware.sim.variations import SceneVariation, VariationSpec

SETTLE_S = 0.5  # the episode goes on this long after the expert is done (the object settles)


def run_episode(
    task: Task,
    seed: int,
    spec: VariationSpec | str | SceneVariation = "in_domain",
    *,
    window: int = DEFAULT_WINDOW,
    settle_s: float = SETTLE_S,
    on_step: Callable[[TaskEnv, Expert, np.ndarray], None] | None = None,
    env_kw: dict | None = None,
) -> Episode:
    """Reset ``task`` with ``seed`` and ``spec``, run its expert until done (+ ``settle_s``) or the time
    limit. ``on_step(env, expert, targets)`` is called before each step is executed (the state is the
    observation for that action: render cameras there when recording a dataset)."""
    env = task.reset(seed, spec, **(env_kw or {}))
    expert = task.expert(env, window=window)
    targets, joints = [], []
    success_step = done_step = None
    settle = int(round(settle_s * env.fps))
    while not env.timed_out:
        joints.append(env.joint_positions())
        a = expert.act()
        if on_step is not None:
            on_step(env, expert, a)
        targets.append(a)
        env.step(a)
        if success_step is None and env.success():
            success_step = env.steps
        if expert.done:
            done_step = env.steps if done_step is None else done_step
            if env.steps - done_step >= settle:
                break
    t = np.array(targets)
    name = spec if isinstance(spec, str) else getattr(spec, "spec_name", "") or getattr(spec, "description", "")
    return Episode(
        task=task.name,
        seed=int(seed),
        spec=str(name),
        instruction=task.describe(env.variation),
        targets=t,
        goal_ticks=np.array([env.goal_ticks(a) for a in t]),
        joints=np.array(joints),
        phases=list(expert.names),
        labels=expert.labels(len(t)),
        events=expert.all_events(),
        success=env.success(),
        success_step=success_step,
        expert_done_step=done_step,
        info={"variation": env.variation},
    )
