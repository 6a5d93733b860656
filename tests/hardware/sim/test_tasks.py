"""Tasks: registry, success checks from the physics state, scripted experts, labels, determinism.

The experts' success *rates* are measured outside the suite (``python -m hardware.sim.tasks.evaluate``);
here each expert runs on a couple of in-domain seeds.
"""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

pytest.importorskip("mujoco")

from hardware.sim.tasks import CONTROL_HZ, Episode, TaskEnv, get_task, phase_labels, run_episode, task_names  # noqa: E402
from hardware.sim.tasks.base import HOME_RAD  # noqa: E402

SEEDS = (0, 1)


@pytest.fixture(scope="module")
def episodes() -> dict[tuple[str, int], Episode]:
    return {(t, s): run_episode(get_task(t), s, env_kw={"cameras": False}) for t in task_names() for s in SEEDS}


def test_registry() -> None:
    assert set(task_names()) >= {"pick_place", "stack", "push", "insert"}
    for name in task_names():
        t = get_task(name)
        assert t.name == name and t.instruction.endswith(".") and len(t.instruction.split()) >= 4
        assert 5.0 <= t.time_limit_s <= 30.0
        assert t.describe(t.sample("in_domain", 0)) == t.instruction
    assert get_task("pick_place").describe(get_task("pick_place").sample("object", 1)) in {
        f"Pick up the {n} and place it on the plate." for n in ("cylinder", "ball", "capsule")
    }
    with pytest.raises(KeyError, match="no task 'fly'.*pick_place"):
        get_task("fly")


@pytest.mark.parametrize("task", task_names())
@pytest.mark.parametrize("seed", SEEDS)
def test_the_scripted_expert_succeeds_in_domain(episodes, task: str, seed: int) -> None:
    ep = episodes[(task, seed)]
    assert ep.success, f"{task} seed {seed}: phases reached {sorted(set(ep.phases))}"
    assert ep.success_step is not None and ep.expert_done_step is not None
    assert ep.steps <= get_task(task).time_limit_s * CONTROL_HZ
    assert ep.targets.shape == (ep.steps, 6) and ep.joints.shape == (ep.steps, 6) and len(ep.phases) == ep.steps
    assert np.all(np.isfinite(ep.targets))
    # the servo goals are the targets through the ticks mapping (2048 = 0 rad, 4096 per turn)
    assert np.allclose(ep.goal_ticks, 2048 + ep.targets * 4096 / (2 * np.pi))
    # the arm's targets move smoothly (the gripper's open and close are steps)
    assert np.abs(np.diff(ep.targets[:, :5], axis=0)).max() < 0.2


@pytest.mark.parametrize("task", task_names())
def test_labels_mark_the_interaction_around_events(episodes, task: str) -> None:
    ep = episodes[(task, 0)]
    assert ep.labels.shape == (ep.steps,) and set(np.unique(ep.labels)) == {0, 1}
    assert ep.events, "no gripper or contact events"
    for e in ep.events:
        assert ep.labels[max(0, e - 10) : e + 11].all()  # +-10 frames (the default window)
    assert ep.labels[0] == 0 and ep.phases[0] == "approach"  # reaching out is transit
    if task in ("pick_place", "stack", "insert"):
        grip = [i for i in range(1, ep.steps) if abs(ep.targets[i, 5] - ep.targets[i - 1, 5]) > 0.2]
        assert len(grip) == 2 and set(grip) <= set(ep.events)  # close and open
    if task in ("push", "insert"):  # contact without a gripper event is interaction throughout
        flagged = [i for i, p in enumerate(ep.phases) if p == {"push": "push", "insert": "lower"}[task]]
        assert ep.labels[flagged].all()


def test_phase_labels_window() -> None:
    out = phase_labels(30, [10], 3)
    assert out.tolist() == [0] * 7 + [1] * 7 + [0] * 16
    assert phase_labels(5, [], 3, [False, True, False, False, False]).tolist() == [0, 1, 0, 0, 0]


def test_same_seed_same_episode(episodes) -> None:
    again = run_episode(get_task("pick_place"), 0, env_kw={"cameras": False})
    ref = episodes[("pick_place", 0)]
    assert np.array_equal(again.targets, ref.targets) and again.phases == ref.phases
    other = episodes[("pick_place", 1)]
    assert other.targets.shape != ref.targets.shape or not np.array_equal(other.targets, ref.targets)


def _settle(env: TaskEnv, seconds: float = 0.5) -> None:
    for _ in range(int(seconds * env.fps)):
        env.step(env.last_targets)


def _teleport(env: TaskEnv, name: str, xyz) -> None:
    j = env.model.joint(name)
    a = j.qposadr[0]
    env.data.qpos[a : a + 3] = xyz
    env.data.qpos[a + 3 : a + 7] = [1, 0, 0, 0]
    env.data.qvel[j.dofadr[0] : j.dofadr[0] + 6] = 0
    mujoco.mj_forward(env.model, env.data)


@pytest.mark.parametrize("task", task_names())
def test_success_is_false_at_reset_and_when_the_object_is_elsewhere(task: str) -> None:
    t = get_task(task)
    env = t.reset(5, cameras=False)
    assert np.allclose(env.last_targets, np.asarray(HOME_RAD) + env.variation.home_offset_rad)
    assert not env.success()
    _settle(env)
    assert not env.success()
    obj = next(iter(t.objects))
    p = env.prop(obj)
    target = env.prop(next(iter(t.targets))) if t.targets else env.prop("base_block")
    # dropped beside the goal: 7 cm from it, on the far side from the base
    away = np.array(target.xy) + 0.07 * np.array([0.6, 0.8 if target.xy[1] < 0 else -0.8])
    _teleport(env, obj, [away[0], away[1], p.z + 0.01])
    _settle(env)
    assert not env.success()


def test_success_checks_on_the_goal() -> None:
    """Teleported where the task wants it, resting and released: success; lifted above it: not."""
    cases = {"pick_place": ("cube", "plate"), "push": ("block", "zone"), "stack": ("block", "base_block")}
    for name, (obj, goal) in cases.items():
        env = get_task(name).reset(4, cameras=False)
        g, p = env.prop(goal), env.prop(obj)
        z = {"pick_place": g.top + p.z, "push": p.z, "stack": g.top + p.z}[name]
        gxy = env.pos(goal)[:2]
        _teleport(env, obj, [gxy[0], gxy[1], z + 0.002])
        _settle(env)
        assert env.success(), name
        _teleport(env, obj, [gxy[0], gxy[1], z + 0.05])  # in the air: not resting
        assert not env.success(), name


def test_a_drop_during_the_carry_fails(episodes) -> None:
    task = get_task("pick_place")
    env = task.reset(0, cameras=False)
    ex = task.expert(env)
    while not env.timed_out and not ex.done:
        a = ex.act()
        if ex.phase == "carry" and ex.k > 8:
            a[5] = 1.0  # open the jaws half-way to the plate
        env.step(a)
    _settle(env)
    assert not env.success()
    assert np.linalg.norm(env.pos("cube")[:2] - np.array(env.prop("plate").xy)) > env.prop("plate").half_width


def test_a_policy_can_drive_the_env_directly() -> None:
    """TaskEnv.step takes 6 joint targets and the joints follow them (the servo-level interface)."""
    env = get_task("push").reset(0, cameras=False)
    goal = np.array(env.last_targets)
    goal[0] += 0.3
    for _ in range(30):
        env.step(goal)
    assert abs(env.joint_positions()[0] - goal[0]) < 0.03
    assert env.time == pytest.approx(1.0)
    with pytest.raises(ValueError, match="6 finite joint targets"):
        env.step([0.0] * 5)
