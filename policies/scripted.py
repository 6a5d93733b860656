"""``ScriptedPolicy``: the simulated task's scripted expert behind the ``Policy`` interface.

The expert (``hardware.sim.tasks``: ``env.task.expert(env)``) reads privileged state (object poses,
contacts, the gripper site) from ``env.data`` and gives 6 joint targets (radians) per call. In the
runtime the servo emulator's thread steps ``env.arm`` (and so ``env.data``) concurrently, so the expert
never sees the live data:

* the policy keeps a private ``MjData`` of the same model and a shallow view of the env (a copy of the
  ``TaskEnv`` object whose ``data`` is the private copy and whose ``ik`` is a private solver); the
  expert is built from that view, so everything it reads (``env.pos``, ``env.in_gripper``, the site
  pose, its task closures) comes from the copy;
* ``act()`` copies the live state under the arm's lock (``env.arm.copy_state_into``: time, qpos, qvel,
  mocap; microseconds) and releases it, then runs ``mj_forward`` on the copy (positions, site poses,
  contacts) and the expert, without the lock.

Timing: the expert advances its plan by one 1/30 s control step per ``act()`` call, whatever the clock
says; call ``act`` at 30 Hz (the runtime's act task does) or its motion runs faster or slower.
The chunk: step 0 is the previous target (due at ``t0 = obs.t``), step 1 the expert's new target (due
at ``t0 + 1/30``); ``gate=None``, ``expert="scripted"``. ``predict`` is trivial.
``reset()`` builds a fresh expert from the present state (measured joint positions as its start).
Not thread-safe on its own: the runner calls ``act`` and ``reset`` from one worker.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import mujoco
import numpy as np

from policies.interface import ActionChunk, Observation, WorldPrediction

if TYPE_CHECKING:
    from hardware.sim.tasks import Expert, TaskEnv

CONTROL_DT = 1.0 / 30.0  # hardware.sim.tasks.CONTROL_HZ: one expert step


class ScriptedPolicy:
    """The scripted expert of ``env``'s task, reading a private copy of the simulation (module doc)."""

    name = "scripted"

    def __init__(self, env: TaskEnv) -> None:
        from hardware.sim.ik import ArmIK

        if getattr(env, "arm", None) is None or not hasattr(env, "task"):
            raise ValueError("ScriptedPolicy needs a simulated TaskEnv (hardware.sim.tasks: task.reset(seed))")
        self.env = env
        self._data = mujoco.MjData(env.model)
        self._view = copy.copy(env)  # shallow: same model, task, variation, arm; own data and IK
        self._view.data = self._data
        self._view.ik = ArmIK(env.model)
        self.snapshot_t = float("nan")  # the arm's time of the state the last act/reset read
        self.expert: Expert
        self.previous = np.zeros(6)
        self.reset()

    def _refresh(self) -> None:
        self.snapshot_t = self.env.arm.copy_state_into(self._data)  # the only read of the live data
        mujoco.mj_forward(self.env.model, self._data)  # lock released: kinematics + contacts on the copy

    def reset(self) -> None:
        self._refresh()
        present = self._view.joint_positions()
        self._view.last_targets = present.copy()
        self.previous = present
        self.expert = self.env.task.expert(self._view)

    def predict(self, obs: Observation) -> WorldPrediction:
        return WorldPrediction(t_obs=obs.t)

    def act(self, prediction: WorldPrediction, obs: Observation) -> ActionChunk:
        self._refresh()
        target = np.asarray(self.expert.act(), dtype=float)
        actions = np.stack([self.previous, target])
        self.previous = target.copy()
        self._view.last_targets = target.copy()
        return ActionChunk(t0=obs.t, dt=CONTROL_DT, actions=actions, t_obs=obs.t, gate=None, expert="scripted")
