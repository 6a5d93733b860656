"""The metrics of ``policies.diagnose`` on small fake policies and synthetic episodes (no dataset, no model)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from policies.diagnose import (
    HELD_OUT,
    TRAIN,
    Episode,
    Scale,
    aligned,
    diagnose,
    format_text,
    gate_accuracy,
    object_positions,
    ridge_loo_r2,
    rollout,
    scale_for,
)
from policies.interface import ActionChunk, Observation, WorldPrediction

H, S, T = 4, 8, 20


class Stub:
    """A fake policy: ``f(obs) -> first action``, a chunk of H copies; ``gate(obs)`` or None."""

    name = "stub"

    def __init__(self, first, gate=None) -> None:
        self.first, self.gate = first, gate
        self.calls: list[list[tuple[int, float]]] = []

    def reset(self) -> None:
        self.calls.append([])

    def predict(self, obs: Observation) -> WorldPrediction:
        self.calls[-1].append((obs.index, obs.t))
        return WorldPrediction(t_obs=obs.t)

    def act(self, prediction: WorldPrediction, obs: Observation) -> ActionChunk:
        a = np.tile(np.asarray(self.first(obs), dtype=float), (H, 1))
        g = None if self.gate is None else float(self.gate(obs))
        expert = None if g is None else ("predictive" if g > 0.5 else "reactive")
        return ActionChunk(t0=obs.t, dt=0.1, actions=a, t_obs=obs.t, gate=g, expert=expert)


def blind(obs: Observation) -> np.ndarray:
    return np.asarray(obs.state, dtype=float)


def pixel(obs: Observation) -> np.ndarray:
    """The state plus the front image's first pixel (0..1) on every joint: it looks."""
    return np.asarray(obs.state, dtype=float) + obs.images["front"][0, 0, 0] / 255.0


def episodes(n: int = 3, steps: int = T, phase: bool = True) -> list[Episode]:
    """Episodes whose front image's brightness and actions differ by episode (and move with time)."""
    out = []
    for e in range(n):
        k = np.arange(T, dtype=float)
        state = np.stack([0.1 * e + 0.01 * k + 0.05 * j for j in range(6)], axis=1)
        action = state + 0.2 * e + 0.01
        img = np.zeros((T, S, S, 3), dtype=np.uint8)
        img[...] = (40 * e + 2 * k).astype(np.uint8)[:, None, None, None]
        ph = (np.arange(T) >= T // 2).astype(np.int64) if phase else None
        out.append(Episode(episode=e, split=TRAIN if e == 0 else HELD_OUT, images={"front": img, "wrist": img.copy()},
                           state=state, action=action, fps=10.0, phase=ph, steps=steps))
    return out


def scale() -> Scale:
    return Scale([f"j{i}" for i in range(6)], [1.0] * 6, np.ones(6), "radians")


def test_a_policy_that_ignores_the_images_gets_look_ratio_zero():
    eps = episodes()
    r = diagnose(Stub(blind), eps, scale())
    look = r["look"]
    assert look["ratio"] == 0.0 and look["grey_ratio"] == 0.0 and look["swap_change"]["mean"] == 0.0
    assert look["episode_spread"]["mean"] > 0.1
    assert look["verdict"].startswith("blind")
    # it outputs the current state: exactly the "holding still" baseline
    for split in (TRAIN, HELD_OUT):
        ol = r["open_loop"][split]
        assert ol["first"]["per_joint"] == pytest.approx(ol["hold_first"]["per_joint"])
        assert ol["chunk"]["per_joint"] == pytest.approx(ol["hold_chunk"]["per_joint"])
    assert r["open_loop"]["verdict"].startswith("not learned")
    assert r["gate"] == {"available": False, "reason": "the policy has no gate (its chunks carry gate None)"}
    assert r["sampled"]["policy_calls"] == 3 * 3 * T
    json.dumps(r)  # the report is JSON as it is
    assert "blind" in format_text(r)


def test_a_policy_that_copies_a_pixel_into_the_action_gets_a_large_ratio():
    r = diagnose(Stub(pixel), episodes(), scale())
    look = r["look"]
    # swapped with the next episode: its image is 40 brighter -> 40/255 rad on every joint; episodes differ by 0.2
    assert look["swap_change"]["mean"] == pytest.approx((2 * 40 + 80) / 3 / 255, rel=0.05)
    assert look["ratio"] > 0.5 and look["verdict"].startswith("looks")
    assert look["grey_ratio"] > 0.5


def test_mixed_units_are_compared_joint_by_joint_over_their_std():
    """LeRobot degrees + a 0..100 gripper that does not convert: no means in radians, ratios per joint std."""
    deg = math.radians(1.0) * 4095 / 4096
    mixed = Scale([f"j{i}" for i in range(6)], [deg] * 5 + [None], np.array([10.0] * 5 + [40.0]), "LeRobot units")
    r = diagnose(Stub(pixel), episodes(), mixed)
    look = r["look"]
    assert look["ratio_basis"] == "per-joint action std" and look["swap_change"]["mean_rad"] is None
    assert look["swap_change"]["per_joint_rad"][5] is None and look["swap_change"]["per_joint_rad"][0] > 0
    sc, sp = np.array(look["swap_change"]["per_joint"]), np.array(look["episode_spread"]["per_joint"])
    assert look["ratio"] == pytest.approx(np.mean(sc / mixed.std) / np.mean(sp / mixed.std))
    assert "each joint over its action std" in look["verdict"] and "dataset units" in look["verdict"]
    assert "dataset units" in format_text(r)


def test_the_swap_uses_the_same_relative_progress():
    assert aligned(0, 10, 30) == 0 and aligned(9, 10, 30) == 29 and aligned(5, 11, 21) == 10
    assert aligned(3, 1, 5) == 0
    eps = episodes(2)
    eps[1] = Episode(episode=1, split=HELD_OUT, images={c: v[::2] for c, v in eps[1].images.items()},
                     state=eps[1].state[::2], action=eps[1].action[::2], fps=10.0)
    r = diagnose(Stub(blind), eps, scale())
    assert r["look"]["episode_spread"]["mean"] > 0  # two lengths: aligned, no index error


def test_observations_come_in_order_after_a_reset_and_only_the_first_frames_run():
    stub = Stub(blind)
    eps = episodes(2, steps=7)
    diagnose(stub, eps, scale())
    assert len(stub.calls) == 2 * 3  # each episode: own, swap, grey passes, each after reset()
    for calls in stub.calls:
        assert [i for i, _ in calls] == list(range(7))
        assert [t for _, t in calls] == [i / 10.0 for i in range(7)]


def test_gate_accuracy_per_phase_on_a_known_gate():
    # gate high on the first 5 frames; the phase is 1 on frames 10..19
    stub = Stub(blind, gate=lambda o: 0.9 if o.index < 5 else 0.2)
    eps = episodes(2)
    rolls = [rollout(stub, ep) for ep in eps]
    g = gate_accuracy(eps, rolls, threshold=0.5)
    a = g["all"]
    assert a["frames"] == 2 * T
    assert a["interaction"]["accuracy"] == 0.0 and a["interaction"]["frames"] == 20
    assert a["transit"]["accuracy"] == pytest.approx(5 / 10) and a["transit"]["frames"] == 20
    assert a["accuracy"] == pytest.approx(10 / 40) and a["balanced_accuracy"] == pytest.approx(0.25)
    assert a["interaction"]["experts"] == {"reactive": 1.0}
    assert a["transit"]["experts"] == {"predictive": 0.5, "reactive": 0.5}
    assert g[TRAIN]["frames"] == T and g[HELD_OUT]["frames"] == T
    assert "does not tell the phases apart" in g["verdict"]
    # a perfect gate, and the threshold is the one given
    perfect = Stub(blind, gate=lambda o: 0.7 if o.index >= T // 2 else 0.3)
    rolls = [rollout(perfect, ep) for ep in eps]
    assert gate_accuracy(eps, rolls, 0.5)["all"]["balanced_accuracy"] == 1.0
    assert gate_accuracy(eps, rolls, 0.8)["all"]["interaction"]["accuracy"] == 0.0
    # no phase column: not available
    nophase = episodes(2, phase=False)
    assert gate_accuracy(nophase, [rollout(perfect, ep) for ep in nophase], 0.5)["available"] is False


def test_ridge_probe_recovers_a_linear_target_and_not_noise():
    rng = np.random.default_rng(0)
    y = rng.uniform(-1, 1, size=(12, 2))
    x = np.concatenate([y @ rng.normal(size=(2, 5)), 0.01 * rng.normal(size=(12, 3))], axis=1)
    assert ridge_loo_r2(x, y, alpha=0.01) > 0.95
    assert ridge_loo_r2(x, y) > 0.9  # the penalty chosen inside each fold
    assert ridge_loo_r2(rng.normal(size=(12, 8)), y) < 0.2
    assert math.isnan(ridge_loo_r2(x, np.ones((12, 2))))
    # the closed-form leave-one-out error that picks the penalty = refitting without each row
    from policies.diagnose import _loo_mse

    z = rng.normal(size=(9, 4))
    z -= z.mean(0)
    direct = []
    for i in range(9):
        m = np.arange(9) != i
        zc, yc = z[m] - z[m].mean(0), y[:9][m] - y[:9][m].mean(0)
        w = np.linalg.solve(zc.T @ zc + 3.0 * np.eye(4), zc.T @ yc)
        direct.append((y[i] - ((z[i] - z[m].mean(0)) @ w + y[:9][m].mean(0))) ** 2)
    assert _loo_mse(z, y[:9], 3.0) == pytest.approx(float(np.mean(direct)), rel=1e-9)


def test_object_probe_on_a_policy_that_sees_where_the_object_is():
    rng = np.random.default_rng(1)
    eps = []
    for e in range(12):
        xy = rng.uniform(0.0, 1.0, size=2)
        img = np.zeros((T, S, S, 3), dtype=np.uint8)
        img[:, 0, 0, 0] = int(200 * xy[0])
        img[:, 0, 1, 0] = int(200 * xy[1])
        state = np.zeros((T, 6))
        action = np.tile(np.r_[xy, np.zeros(4)], (T, 1))  # the expert heads for the object
        eps.append(Episode(episode=e, split=HELD_OUT, images={"front": img}, state=state, action=action, fps=10.0,
                           object_xy=xy))

    def sees(o: Observation) -> np.ndarray:
        return np.r_[o.images["front"][0, :2, 0] / 200.0, np.zeros(4)]

    p = diagnose(Stub(sees), eps, scale())["object_probe"]
    assert p["available"] and p["episodes"] == 12 and p["splits"] == {TRAIN: 0, HELD_OUT: 12}
    assert p["r2_policy"] > 0.8 and p["r2_true_actions"] > 0.8 and not p["r2_state"] > 0.1
    assert p["verdict"].startswith("its first actions depend on where the object is")
    b = diagnose(Stub(blind), eps, scale())["object_probe"]
    assert b["verdict"].startswith("its first actions carry no more")
    # the probe runs on its own episodes (one call each, at the first frame)
    stub = Stub(blind)
    assert diagnose(stub, eps[:2], scale(), probe_episodes=eps)["object_probe"]["episodes"] == 12
    assert [len(c) for c in stub.calls[-12:]] == [1] * 12
    few = diagnose(Stub(blind), eps[:3], scale())["object_probe"]
    assert few["available"] is False and "at least 10" in few["reason"]


def test_radians_per_unit_for_lerobot_degrees_and_the_gripper_range():
    from calibration.units import lerobot_units, radians

    names = [f"{j}.pos" for j in ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")]
    units = lerobot_units("so_follower", names).as_json()
    real = scale_for(units, names, np.ones(6), sim_demos=False)
    # LeRobot's "degrees" are (ticks - mid) * 360 / 4095, radians (ticks - mid) * 2 pi / 4096
    assert real.to_rad[:5] == pytest.approx([math.radians(1.0) * 4095 / 4096] * 5, rel=1e-9)
    assert real.to_rad[5] is None and "gripper" in real.note  # a 0..100 range needs the recording arm's calibration
    v = real.vec(np.array([10.0, 10, 10, 10, 10, 5]))
    assert v["mean_rad"] is None and v["per_joint_rad"][0] == pytest.approx(math.radians(10), rel=1e-3)
    assert v["per_joint_rad"][5] is None and v["mean"] == pytest.approx(55 / 6)
    sim = scale_for(units, names, np.ones(6), sim_demos=True)
    assert all(x is not None for x in sim.to_rad) and sim.vec(np.ones(6))["mean_rad"] > 0
    assert scale_for(radians(names).as_json(), names, np.ones(6), False).to_rad == [1.0] * 6
    assert scale_for(None, names, np.ones(6), False).to_rad == [None] * 6


def test_object_positions_come_from_the_recorded_scenes(tmp_path):
    from hardware.sim.tasks import get_task

    (tmp_path / "meta").mkdir()
    assert object_positions(tmp_path, [0])[1].startswith("the dataset has no meta/harmowam_demos.json")
    doc = {"episodes": [{"episode_index": i, "task": "pick_place", "spec": "in_domain", "seed": 10 + i} for i in range(3)]}
    (tmp_path / "meta" / "harmowam_demos.json").write_text(json.dumps(doc))
    xy, why = object_positions(tmp_path, [0, 2])
    assert why is None and sorted(xy) == [0, 2]
    assert xy[2] == pytest.approx(get_task("pick_place").sample("in_domain", 12).objects["cube"].xy)
    doc["episodes"][0]["spec"] = str(tmp_path / "moved.yaml")
    (tmp_path / "meta" / "harmowam_demos.json").write_text(json.dumps(doc))
    xy, why = object_positions(tmp_path, [0])
    assert xy == {} and "cannot be rebuilt" in why
