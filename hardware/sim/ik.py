"""Damped-least-squares inverse kinematics for the simulated SO-101, on MuJoCo's Jacobians.

``ArmIK`` drives a point fixed in a site's frame (by default ``gripperframe``, which lies on the fixed
jaw's inner face, plus an optional offset in that frame) to a world position, optionally with
orientation rows:

* ``approach``: a world direction the site's approach axis (``gripperframe`` x: out of the gripper,
  along the fingers) should point along (``DOWN`` for a top-down grasp). Rotation about it stays free.
* ``jaw``: with ``approach``, the world direction of the site's jaw axis (``gripperframe`` z: from the
  fixed jaw toward the moving jaw). Position + approach + jaw is a full pose: the 5-DoF arm can reach
  it when the approach is vertical (wrist roll then turns about the vertical), not in general; the
  least-squares solution then trades the rows by their weights.

Only the arm joints move (``shoulder_pan`` .. ``wrist_roll``); the gripper joint keeps its angle. Each
iteration: forward kinematics on the solver's own ``MjData`` (never the simulation's), the position
Jacobian of the point (``mj_jac``) and the rotational Jacobian of the site's body, one damped step
``dq = J^T (J J^T + lambda^2 I)^-1 e`` with the step size capped, joint angles clamped to the ranges.
Warm-started from the last solution it converges in a few iterations (well under 1 ms).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mujoco
import numpy as np

from hardware.arms import JOINT_NAMES

ARM_JOINTS = JOINT_NAMES[:5]  # the gripper joint is not part of the pose
DOWN = np.array([0.0, 0.0, -1.0])
SITE = "gripperframe"
APPROACH_AXIS = 0  # gripperframe x: along the fingers, out of the gripper
JAW_AXIS = 2  # gripperframe z: from the fixed jaw toward the moving jaw


class IKError(RuntimeError):
    """The model lacks what the solver needs (site, joints)."""


@dataclass(frozen=True, slots=True)
class IKResult:
    q: np.ndarray  # the arm joints' angles (radians, ``ArmIK.joint_names`` order)
    pos_error: float  # metres between the point and the target after the last iteration
    rot_error: float  # radians of orientation error (0 without orientation rows)
    iterations: int
    converged: bool


class ArmIK:
    """Position (+ approach axis, + jaw axis) IK for one model (module doc).

    ``point``: offset of the driven point in the site frame (metres). ``damping``: lambda of the DLS
    step. ``rot_weight``: metres of position error traded against one radian of orientation error.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        *,
        site: str = SITE,
        joints: Sequence[str] = ARM_JOINTS,
        point: Sequence[float] = (0.0, 0.0, 0.0),
        damping: float = 1e-3,
        rot_weight: float = 0.05,
        max_step_rad: float = 0.3,
    ) -> None:
        self.model = model
        self.data = mujoco.MjData(model)
        self.site_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site)
        if self.site_id < 0:
            raise IKError(f"the model has no site {site!r}")
        self.body_id = int(model.site_bodyid[self.site_id])
        self.joint_names = tuple(joints)
        jids = []
        for name in self.joint_names:
            j = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
            if j < 0:
                raise IKError(f"the model has no joint {name!r}")
            jids.append(j)
        self.joint_ids = np.array(jids)
        self.qadr = model.jnt_qposadr[self.joint_ids].copy()
        self.dadr = model.jnt_dofadr[self.joint_ids].copy()
        lim = model.jnt_limited[self.joint_ids].astype(bool)
        rng = model.jnt_range[self.joint_ids]
        self.lower = np.where(lim, rng[:, 0], -np.inf)
        self.upper = np.where(lim, rng[:, 1], np.inf)
        self.point = np.asarray(point, dtype=float)
        self.damping = float(damping)
        self.rot_weight = float(rot_weight)
        self.max_step = float(max_step_rad)
        self._jp = np.zeros((3, model.nv))
        self._jr = np.zeros((3, model.nv))

    # --- kinematics on the solver's own data --------------------------------------------------------

    def set_state(self, qpos: np.ndarray) -> None:
        """Take every joint's angle from a full ``qpos`` (objects, gripper) before solving."""
        self.data.qpos[:] = qpos

    def forward(self, q: np.ndarray) -> None:
        self.data.qpos[self.qadr] = q
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)

    def site_frame(self) -> tuple[np.ndarray, np.ndarray]:
        """(position, 3x3 rotation) of the site at the last ``forward``."""
        return self.data.site_xpos[self.site_id].copy(), self.data.site_xmat[self.site_id].reshape(3, 3).copy()

    def point_pos(self, point: np.ndarray | None = None) -> np.ndarray:
        p, r = self.site_frame()
        return p + r @ (self.point if point is None else np.asarray(point, dtype=float))

    def fk(self, q: Sequence[float], point: Sequence[float] | None = None) -> np.ndarray:
        """World position of the driven point at arm angles ``q``."""
        self.forward(np.asarray(q, dtype=float))
        return self.point_pos(None if point is None else np.asarray(point, dtype=float))

    # --- solving -------------------------------------------------------------------------------------

    def _rows(
        self, target: np.ndarray, point: np.ndarray, approach: np.ndarray | None, jaw: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, float, float]:
        p, r = self.site_frame()
        world_point = p + r @ point
        mujoco.mj_jac(self.model, self.data, self._jp, self._jr, world_point, self.body_id)
        e_pos = target - world_point
        rows_e, rows_j = [e_pos], [self._jp[:, self.dadr]]
        rot_err = 0.0
        if approach is not None:
            jr = self._jr[:, self.dadr]
            axis = r[:, APPROACH_AXIS]
            if jaw is None:
                w = np.cross(axis, approach)
                s = np.linalg.norm(w)
                ang = float(np.arctan2(s, axis @ approach))
                if s > 1e-12:
                    w *= ang / s
                proj = np.eye(3) - np.outer(approach, approach)  # rotation about the approach is free
                rows_e.append(self.rot_weight * w)
                rows_j.append(self.rot_weight * proj @ jr)
                rot_err = abs(ang)
            else:
                # full orientation: approach along x, jaw along z
                zd = jaw - (jaw @ approach) * approach
                zd /= np.linalg.norm(zd)
                yd = np.cross(zd, approach)
                rd = np.column_stack([approach, yd, zd])
                w = 0.5 * sum(np.cross(r[:, i], rd[:, i]) for i in range(3))
                rows_e.append(self.rot_weight * w)
                rows_j.append(self.rot_weight * jr)
                rot_err = float(np.linalg.norm(w))
        return np.concatenate(rows_e), np.vstack(rows_j), float(np.linalg.norm(e_pos)), rot_err

    def solve(
        self,
        target: Sequence[float],
        q0: Sequence[float],
        *,
        approach: Sequence[float] | None = None,
        jaw: Sequence[float] | None = None,
        point: Sequence[float] | None = None,
        tol: float = 1e-4,
        rot_tol: float = 2e-3,
        max_iters: int = 60,
    ) -> IKResult:
        """Arm angles putting the point (``self.point`` or ``point``, site frame) at ``target``, starting
        from ``q0``. ``jaw`` is used only with ``approach``; it is projected onto the plane normal to it."""
        tgt = np.asarray(target, dtype=float)
        pt = self.point if point is None else np.asarray(point, dtype=float)
        a = None if approach is None else _unit(approach)
        jw = None if (jaw is None or a is None) else _unit(jaw)
        q = np.clip(np.asarray(q0, dtype=float).copy(), self.lower, self.upper)
        n = len(q)
        lam2 = self.damping**2
        pos_err = rot_err = np.inf
        it = 0
        for it in range(1, max_iters + 1):
            self.forward(q)
            e, jac, pos_err, rot_err = self._rows(tgt, pt, a, jw)
            if pos_err < tol and (a is None or rot_err < rot_tol):
                return IKResult(q, pos_err, rot_err if a is not None else 0.0, it - 1, True)
            jjt = jac @ jac.T + lam2 * np.eye(jac.shape[0])
            dq = jac.T @ np.linalg.solve(jjt, e)
            big = np.max(np.abs(dq)) if n else 0.0
            if big > self.max_step:
                dq *= self.max_step / big
            q = np.clip(q + dq, self.lower, self.upper)
        self.forward(q)
        _, _, pos_err, rot_err = self._rows(tgt, pt, a, jw)
        ok = pos_err < tol and (a is None or rot_err < rot_tol)
        return IKResult(q, pos_err, rot_err if a is not None else 0.0, it, ok)


def _unit(v: Sequence[float]) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    n = np.linalg.norm(v)
    if n < 1e-12:
        raise ValueError("a direction must not be the zero vector")
    return v / n
