"""Run a task's scripted expert for one episode and record what it commanded (``run_episode``).

Every control step: the state is measured (``Episode.joints``), the expert computes its 6 joint targets
from the simulated state (``Episode.targets``: the label), and the arm is sent those targets, plus, in a
noisy episode (``noise=ActionNoise(...)``, see ``hardware.sim.noise``), an Ornstein-Uhlenbeck offset
on the arm joints (``Episode.executed``: what the servos really received; equal to ``targets`` when
clean). The expert never sees the offset: it only sees where the arm and the objects really are.

What the expert does with a perturbed state (``hardware.sim.tasks.expert``): its commanded gripper point
follows its own trapezoidal path toward a target that is re-evaluated every step from the *measured*
objects; it is not re-planned from the measured arm pose, so from a perturbed state its target is the
point on its path, i.e. the position servos pull the arm back toward the path (a position target is its
own correction). Its loop closes on the measured state where precision matters: a phase waits until the
*measured* error (gripper point to target, or the held object to its goal while carrying and lowering)
is under tolerance (at most ``settle_max`` steps), and while it waits an integral term pushes the target
against that measured error (phase-local in a noisy episode, ``Expert.phase_local_integral``). So ``targets[t]`` is
what the expert commands given everything it observed up to step ``t`` along the perturbed path (DART:
label = the supervisor's action in the state the perturbed run visits; checked by replaying the executed
targets with a fresh expert, ``tests/hardware/sim/test_noise.py``). ``joints[t]`` is that perturbed state.
What it does not do: notice a missed grasp and try again (such an episode fails and is not saved).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hardware.sim.tasks.base import Task, TaskEnv
from hardware.sim.tasks.expert import DEFAULT_WINDOW, Episode, Expert
from hardware.sim.noise import ActionNoise
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
    noise: ActionNoise | None = None,
) -> Episode:
    """Reset ``task`` with ``seed`` and ``spec``, run its expert until done (+ ``settle_s``) or the time
    limit. ``on_step(env, expert, targets)`` is called before each step is executed (the state is the
    observation for that action: render cameras there when recording a dataset; ``targets`` are the
    expert's, without noise). ``noise``: perturb the executed arm targets (module doc); the offsets are
    seeded from ``seed`` (or ``noise.seed``), so a noisy episode replays exactly."""
    env = task.reset(seed, spec, **(env_kw or {}))
    expert = task.expert(env, window=window)
    ou = noise.for_episode(seed, env.fps) if noise is not None and noise.active else None
    expert.phase_local_integral = ou is not None  # (hardware.sim.noise: "settling integral")
    targets, joints, executed = [], [], []
    success_step = done_step = None
    settle = int(round(settle_s * env.fps))
    while not env.timed_out:
        joints.append(env.joint_positions())
        a = expert.act()
        if on_step is not None:
            on_step(env, expert, a)
        targets.append(a)
        x = a if ou is None else a + ou.next(expert)
        executed.append(x)
        env.step(x)
        if success_step is None and env.success():
            success_step = env.steps
        if expert.done:
            done_step = env.steps if done_step is None else done_step
            if env.steps - done_step >= settle:
                break
    t = np.array(targets).reshape(-1, 6)
    x = np.array(executed).reshape(-1, 6)
    name = spec if isinstance(spec, str) else getattr(spec, "spec_name", "") or getattr(spec, "description", "")
    return Episode(
        task=task.name,
        seed=int(seed),
        spec=str(name),
        instruction=task.describe(env.variation),
        targets=t,
        goal_ticks=np.array([env.goal_ticks(a) for a in x]).reshape(-1, 6),
        joints=np.array(joints),
        phases=list(expert.names),
        labels=expert.labels(len(t)),
        events=expert.all_events(),
        success=env.success(),
        success_step=success_step,
        expert_done_step=done_step,
        executed=x,
        noise=noise.record(seed) if ou is not None else None,
        info={"variation": env.variation},
    )
