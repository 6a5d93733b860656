"""The scripted expert as a policy, against a real simulated task whose arm another thread advances."""

from __future__ import annotations

import threading
import time

import mujoco
import numpy as np
import pytest

from hardware.sim.tasks import TaskEnv, get_task
from policies.interface import Observation, Policy, WorldPrediction
from policies.registry import PolicySpec, build
from policies.scripted import CONTROL_DT, ScriptedPolicy


def _env() -> TaskEnv:
    return get_task("pick_place").reset(0, cameras=False)


def _obs(t: float) -> Observation:
    return Observation(t=t, state=np.zeros(6), state_t=t)


class _Recorder:
    """Wraps ``arm.copy_state_into``: keeps a copy of every state the policy took."""

    def __init__(self, arm) -> None:
        self.arm, self.inner = arm, arm.copy_state_into
        self.states: list[tuple[float, float, np.ndarray, np.ndarray]] = []

    def __call__(self, dst: mujoco.MjData) -> float:
        t = self.inner(dst)
        self.states.append((t, float(dst.time), dst.qpos.copy(), dst.qvel.copy()))
        return t


class _Replay:
    """Stands in for ``arm.copy_state_into``: hands out recorded states in order."""

    def __init__(self, states) -> None:
        self.states = list(states)

    def __call__(self, dst: mujoco.MjData) -> float:
        t, sim_t, qpos, qvel = self.states.pop(0)
        dst.time, dst.qpos[:], dst.qvel[:] = sim_t, qpos, qvel
        return t


class _Servo(threading.Thread):
    """The servo emulator's role: sends the newest targets and advances the arm, continuously."""

    def __init__(self, env: TaskEnv) -> None:
        super().__init__(daemon=True)
        self.env = env
        self.targets = env.last_targets.copy()
        self.stop = threading.Event()
        self.steps = 0

    def run(self) -> None:
        t = self.env.arm.time
        while not self.stop.is_set():
            self.env._send(self.targets)
            t += 0.004
            self.env.arm.advance_to(t)
            self.steps += 1
            time.sleep(0.0005)


def test_builds_from_the_registry_with_the_sim_context():
    env = _env()
    p = build(PolicySpec(name="scripted"), context=env)
    assert isinstance(p, ScriptedPolicy) and isinstance(p, Policy) and p.name == "scripted"
    with pytest.raises(ValueError, match="takes no options"):
        build(PolicySpec(name="scripted", options={"x": 1}), context=env)
    with pytest.raises(ValueError, match="TaskEnv"):
        ScriptedPolicy(object())  # type: ignore[arg-type]


def test_chunk_is_previous_target_then_the_experts():
    env = _env()
    p = ScriptedPolicy(env)
    pred = p.predict(_obs(5.0))
    assert pred == WorldPrediction(t_obs=5.0)
    prev = env.joint_positions()
    for k in range(5):
        c = p.act(pred, _obs(5.0 + k * CONTROL_DT))
        assert c.horizon == 2 and c.t0 == 5.0 + k * CONTROL_DT and c.dt == pytest.approx(1 / 30)
        assert c.gate is None and c.expert == "scripted" and c.t_obs == c.t0
        assert np.array_equal(c.actions[0], prev)
        prev = c.actions[1]
        env.step(c.actions[1])
    assert len(p.expert.names) == 5  # one expert step per act


def test_targets_come_from_a_consistent_snapshot_while_another_thread_advances_the_arm():
    env = _env()
    rec = _Recorder(env.arm)
    env.arm.copy_state_into = rec  # type: ignore[method-assign]
    p = ScriptedPolicy(env)
    lock_free = []

    def check_lock(inner):
        def act():
            # the arm's lock must be free while the expert computes: another thread can take it
            got = []

            def probe() -> None:
                ok = env.arm.lock.acquire(timeout=2.0)
                got.append(ok)
                if ok:
                    env.arm.lock.release()

            th = threading.Thread(target=probe)
            th.start()
            th.join()
            lock_free.append(got[0])
            return inner()

        return act

    p.expert.act = check_lock(p.expert.act)  # type: ignore[method-assign]
    servo = _Servo(env)
    servo.start()
    try:
        chunks = []
        for k in range(40):
            c = p.act(WorldPrediction(t_obs=0.0), _obs(k * CONTROL_DT))
            servo.targets = c.actions[1]
            chunks.append(c)
            time.sleep(0.003)
    finally:
        servo.stop.set()
        servo.join()
    assert servo.steps > 40 and lock_free == [True] * 40
    times = [s[0] for s in rec.states]
    assert len(times) == 41 and all(b > a for a, b in zip(times, times[1:]))  # the arm moved between calls
    assert not np.array_equal(rec.states[1][2], rec.states[-1][2])
    assert p.snapshot_t == times[-1]

    # the same expert on the same snapshots, in a world that stands still, gives the same targets
    twin = _env()
    twin.arm.copy_state_into = _Replay(rec.states)  # type: ignore[method-assign]
    q = ScriptedPolicy(twin)
    for c in chunks:
        again = q.act(WorldPrediction(t_obs=0.0), _obs(c.t0))
        assert np.array_equal(again.actions, c.actions)
    assert q.expert.phase == p.expert.phase


def test_the_expert_reads_the_private_copy_not_the_live_data():
    env = _env()
    p = ScriptedPolicy(env)
    assert p.expert.env is not env and p.expert.env.data is not env.data
    assert p.expert.ik is not env.ik and p.expert.env.model is env.model
    before = env.data.qpos.copy()
    p.act(WorldPrediction(t_obs=0.0), _obs(0.0))
    assert np.array_equal(env.data.qpos, before)  # nothing written into the live simulation


def test_drives_the_task_to_success_at_30_hz():
    env = _env()
    p = ScriptedPolicy(env)
    for k in range(int(12 * 30)):
        c = p.act(WorldPrediction(t_obs=0.0), _obs(k * CONTROL_DT))
        env.step(c.actions[1])
        if p.expert.done and env.success():
            break
    assert env.success()


def test_reset_restarts_from_the_present_state():
    env = _env()
    p = ScriptedPolicy(env)
    for k in range(30):
        env.step(p.act(WorldPrediction(t_obs=0.0), _obs(k * CONTROL_DT)).actions[1])
    first = p.expert
    moved = env.joint_positions()
    p.reset()
    assert p.expert is not first and p.expert.names == []
    c = p.act(WorldPrediction(t_obs=0.0), _obs(2.0))
    assert np.array_equal(c.actions[0], moved)
    assert np.abs(c.actions[1] - moved).max() < 0.2  # no jump to where the old plan was
