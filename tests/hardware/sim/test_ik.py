"""ArmIK: damped least squares on MuJoCo's Jacobians reaches targets within 1 mm."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("mujoco")

from hardware.sim.ik import DOWN, ArmIK, IKError  # noqa: E402
from hardware.sim.scene import load_scene  # noqa: E402

SEED_Q = np.array([0.0, -0.5, 0.5, 1.0, 0.0])


@pytest.fixture(scope="module")
def ik() -> ArmIK:
    return ArmIK(load_scene(cameras=False).model)


def _reachable_targets(ik: ArmIK, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Targets made by forward kinematics of random joint angles: reachable by construction."""
    out = []
    while len(out) < n:
        q = rng.uniform(ik.lower, ik.upper) * 0.6
        p = ik.fk(q)
        if p[2] > 0.02:
            out.append(p)
    return out


def test_position_only_reaches_random_targets_within_1mm(ik: ArmIK) -> None:
    rng = np.random.default_rng(0)
    for target in _reachable_targets(ik, 20, rng):
        r = ik.solve(target, SEED_Q)
        assert r.converged and r.pos_error < 1e-3, (target, r)
        assert np.linalg.norm(ik.fk(r.q) - target) < 1e-3  # the reported angles really put the site there
        assert np.all(r.q >= ik.lower - 1e-9) and np.all(r.q <= ik.upper + 1e-9)


def test_top_down_with_jaw_direction_over_the_workspace(ik: ArmIK) -> None:
    q = SEED_Q.copy()
    point = np.array([-0.001, 0.0, 0.02])  # between the jaws, as the experts drive it
    for x in (0.14, 0.2, 0.25):
        for y in (-0.12, 0.0, 0.12):
            target = np.array([x, y, 0.02])
            yaw = math.atan2(y, x) + 0.3
            r = ik.solve(target, q, approach=DOWN, jaw=[math.cos(yaw), math.sin(yaw), 0.0], point=point)
            assert r.converged and r.pos_error < 1e-3 and r.rot_error < 0.01, (x, y, r)
            _, rot = ik.site_frame()
            assert rot[:, 0] @ DOWN > math.cos(math.radians(1.0))  # fingers down
            assert abs(math.atan2(rot[1, 2], rot[0, 2]) - yaw) < 0.01  # jaws along the asked direction
            q = r.q  # warm start, as the experts do


def test_warm_start_converges_in_a_few_iterations(ik: ArmIK) -> None:
    r0 = ik.solve([0.2, 0.05, 0.03], SEED_Q, approach=DOWN)
    r1 = ik.solve([0.202, 0.05, 0.03], r0.q, approach=DOWN)
    assert r1.converged and r1.iterations <= 8


def test_unreachable_target_is_reported_not_converged(ik: ArmIK) -> None:
    r = ik.solve([0.8, 0.0, 0.1], SEED_Q)
    assert not r.converged and r.pos_error > 0.1


def test_unknown_site_is_an_error() -> None:
    with pytest.raises(IKError, match="no site"):
        ArmIK(load_scene(cameras=False).model, site="nope")
