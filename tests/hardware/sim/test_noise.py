"""Recovery demonstrations (``hardware.sim.noise``, ``run_episode(..., noise=...)``): the OU process's
statistics, the settings' checks, and noisy episodes: reproducible from their seed, the arm off the clean
path, the gripper never perturbed, and the labels the expert's own targets for the perturbed states.

One clean and two noisy pick_place episodes without cameras (~2 s each) plus one replay."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hardware.sim.noise import ARM_JOINTS, ActionNoise, NoiseError, ou_path

SIGMA = 0.03
TAU = 0.4
DT = 1 / 30


def test_ou_statistics_match_sigma_and_tau() -> None:
    x = ou_path(120_000, SIGMA, TAU, DT, dims=2, seed=3)
    assert np.all(x[0] == 0.0)  # starts at the expert's path
    x = x[300:]  # past the start-up (~tau)
    assert np.allclose(x.std(axis=0), SIGMA, rtol=0.06), x.std(axis=0)
    assert np.all(np.abs(x.mean(axis=0)) < 0.2 * SIGMA)
    lag = int(round(TAU / DT))  # the autocorrelation at one tau is 1/e
    for d in range(2):
        r = np.corrcoef(x[:-lag, d], x[lag:, d])[0, 1]
        assert abs(r - math.exp(-1)) < 0.05, r
    assert abs(np.corrcoef(x[:, 0], x[:, 1])[0, 1]) < 0.05  # joints independent
    # the same seed, the same path; another seed, another path
    assert np.array_equal(ou_path(50, SIGMA, TAU, DT, seed=1), ou_path(50, SIGMA, TAU, DT, seed=1))
    assert not np.array_equal(ou_path(50, SIGMA, TAU, DT, seed=1), ou_path(50, SIGMA, TAU, DT, seed=2))


@pytest.mark.parametrize(
    ("kw", "said"),
    [
        ({"sigma_rad": -0.01}, "sigma_rad"),
        ({"sigma_rad": 0.5}, "sigma_rad"),
        ({"sigma_rad": float("nan")}, "sigma_rad"),
        ({"sigma_rad": 0.03, "tau_s": 0.0}, "tau_s"),
        ({"sigma_rad": 0.03, "tau_s": float("inf")}, "tau_s"),
        ({"sigma_rad": 0.03, "fade_s": -1.0}, "fade_s"),
        ({"sigma_rad": 0.03, "joints": ("gripper",)}, "gripper"),
        ({"sigma_rad": 0.03, "joints": ()}, "joints"),
    ],
)
def test_bad_settings_name_the_setting(kw, said) -> None:
    with pytest.raises(NoiseError, match=said):
        ActionNoise(**kw)


def test_the_gripper_is_never_perturbed() -> None:
    n = ActionNoise(sigma_rad=0.1, at_grip=True)
    assert n.mask().tolist() == [1, 1, 1, 1, 1, 0] and n.joints == ARM_JOINTS
    p = n.for_episode(7, 30.0)
    offsets = np.array([p.next(None) for _ in range(500)])  # at_grip: the expert is not consulted
    assert np.all(offsets[:, 5] == 0.0) and np.all(offsets[0] == 0.0)
    assert np.all(offsets[50:, :5].std(axis=0) > 0.03)
    only = ActionNoise(sigma_rad=0.05, joints=("elbow_flex",), at_grip=True).for_episode(7, 30.0)
    o = np.array([only.next(None) for _ in range(100)])
    assert np.all(o[:, [0, 1, 3, 4, 5]] == 0.0) and np.any(o[:, 2] != 0.0)
    rec = ActionNoise(sigma_rad=0.03).record(12)
    assert rec["seed"] == 12 and rec["sigma_rad"] == 0.03 and rec["tau_s"] == TAU and "gripper" not in rec["joints"]
    assert ActionNoise(sigma_rad=0.03, seed=5).record(12)["seed"] == 5
    assert ActionNoise.from_record(ActionNoise(sigma_rad=0.03, tau_s=0.3).record(12)) == ActionNoise(sigma_rad=0.03, tau_s=0.3, seed=12)


# --- noisy episodes -----------------------------------------------------------------------------------

pytest.importorskip("mujoco")


@pytest.fixture(scope="module")
def episodes():
    from hardware.sim.tasks import get_task, run_episode

    t = get_task("pick_place")
    noise = ActionNoise(sigma_rad=SIGMA)
    return {
        "clean": run_episode(t, 0, env_kw={"cameras": False}),
        "noisy": run_episode(t, 0, env_kw={"cameras": False}, noise=noise),
        "again": run_episode(t, 0, env_kw={"cameras": False}, noise=ActionNoise.from_record(noise.record(0))),
    }


def test_a_noisy_episode_replays_from_its_seed(episodes) -> None:
    a, b = episodes["noisy"], episodes["again"]  # the second from the provenance record
    assert a.noise == b.noise and a.noise["seed"] == 0 and a.noise["sigma_rad"] == SIGMA
    for k in ("targets", "executed", "joints", "labels"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k
    assert a.success and a.events == b.events
    assert episodes["clean"].noise is None and np.array_equal(episodes["clean"].executed, episodes["clean"].targets)


def test_the_arm_leaves_the_clean_path_and_the_gripper_is_not_perturbed(episodes) -> None:
    clean, noisy = episodes["clean"], episodes["noisy"]
    off = noisy.executed - noisy.targets
    assert np.all(off[:, 5] == 0.0)  # the gripper gets exactly the expert's target
    assert 0.3 * SIGMA < np.sqrt(np.mean(off[:, :5] ** 2)) < 1.5 * SIGMA
    # the servo goals are what was executed
    assert np.allclose(noisy.goal_ticks, 2048 + noisy.executed * 4096 / (2 * np.pi))
    n = min(clean.steps, noisy.steps)
    assert np.abs(noisy.joints[:n, :5] - clean.joints[:n, :5]).max() > SIGMA  # a different path...
    assert np.abs(noisy.targets[:n] - clean.targets[:n]).max() > 0.01  # ...and the expert reacted to it
    # quiet while the gripper closes and opens (the default: faded out near gripper events)
    grip = np.array([p in ("close", "release") for p in noisy.phases])
    assert grip.any() and np.all(off[grip] == 0.0)
    assert np.all(np.abs(off[~grip, :5]).max(axis=0)[:4] > 0.5 * SIGMA)


def test_the_labels_are_the_experts_targets_for_the_perturbed_states(episodes) -> None:
    """Drive a fresh scene with what was executed and ask a fresh expert, which is never told about the
    noise, for its target at every step: it sees the recorded (perturbed) states and returns the labels."""
    from hardware.sim.tasks import get_task

    ep = episodes["noisy"]
    t = get_task("pick_place")
    env = t.reset(0, "in_domain", cameras=False)
    expert = t.expert(env)
    expert.phase_local_integral = True  # as run_episode sets it for a noisy episode
    for i in range(ep.steps):
        assert np.array_equal(env.joint_positions(), ep.joints[i]), i
        assert np.array_equal(expert.act(), ep.targets[i]), i
        env.step(ep.executed[i])
    assert env.success()
