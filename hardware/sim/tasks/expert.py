"""Scripted experts: a waypoint state machine in Cartesian space, turned into joint targets by IK.

An expert drives one point fixed in the gripper (``point``, in the ``gripperframe`` site frame: for a
grasp, where the object's axis will sit between the jaws) through a list of phases:

* ``Move``: the commanded point travels toward ``target()`` (re-evaluated every step, so targets can
  follow the objects) on a trapezoidal speed profile; the gripper goes to ``gripper``. The phase ends
  when the command has arrived and the measured error (``error()``, default: target - measured point)
  is under ``tol``, or after ``settle_max`` steps of settling, or at ``timeout_s``. While settling, an
  integral term nulls the measured error (the servos' P loop sags under load); it is reset by a ``Grip``,
  and by every phase when ``phase_local_integral`` is set (noisy episodes: ``hardware.sim.noise``).
* ``Grip``: hold the pose, move the gripper, wait ``steps``. A ``Grip`` that changes the gripper
  between open and closed is an *event* (HarmoWAM's automatic labels).

Every step the point target goes through ``ArmIK`` (position + fingers down, tilted outward by up to
``MAX_TILT_DEG`` when high, where a vertical wrist is out of range + jaw direction), warm-started
from the previous solution. A gravity feed-forward is added (bias torque / kp per joint, at the target
pose): a position servo holds a joint where its P term balances gravity, so the target is set past the
wanted angle by that much. The 6 targets (radians) go to ``TaskEnv.step``.

Labels: a step is ``interaction`` (1) when within ``window`` steps of an event, or inside a phase
marked ``interaction`` (pushing, inserting: contact without a gripper event; their start and end count
as events too); else ``transit`` (0).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import mujoco
import numpy as np

from hardware.sim.ik import DOWN
from hardware.sim.tasks.base import TaskEnv

DEFAULT_WINDOW = 10  # frames either side of an event at 30 Hz (the paper uses 20 at its rate)
MAX_TILT_DEG = 25.0
TILT_FROM_Z = 0.045  # the point's height where the outward tilt starts...
TILT_FULL_Z = 0.10  # ...and where it is MAX_TILT_DEG
YAW_RATE = 3.0  # rad/s of jaw-direction change
ACCEL = 0.6  # m/s^2 of the commanded point
INTEGRAL_GAIN = 0.15  # per step, while settling
INTEGRAL_MAX = 0.012  # metres
SQUEEZE_RAD = 0.12  # gripper target past the contact angle when closing on an object


@dataclass
class Move:
    name: str
    target: Callable[[], np.ndarray]
    speed: float = 0.2
    gripper: float | None = None
    tol: float = 0.003
    error: Callable[[], np.ndarray] | None = None
    settle_max: int = 12
    timeout_s: float = 5.0
    interaction: bool = False
    yaw: Callable[[], float] | None = None  # jaw direction (radians about z) from this phase on
    on_enter: Callable[[], None] | None = None
    until: Callable[[], bool] | None = None  # ends the phase at once when true


@dataclass
class Grip:
    name: str
    gripper: float
    steps: int = 12
    interaction: bool = False


Phase = Move | Grip


@dataclass(frozen=True)
class GripperGeometry:
    """Fingertip pads in the ``gripperframe`` site frame (x along the fingers, z fixed -> moving jaw)."""

    fixed_face_z: float  # the fixed pad's inner face
    pad_center_x: float
    tip_x: float
    angles: np.ndarray  # gripper joint angles, increasing
    gaps: np.ndarray  # distance between the pads' inner faces at those angles

    @classmethod
    def from_model(cls, model: mujoco.MjModel) -> GripperGeometry:
        d = mujoco.MjData(model)
        site = model.site("gripperframe").id
        jadr = model.joint("gripper").qposadr[0]
        corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float)

        def pad(name: str) -> np.ndarray:
            g = model.geom(name).id
            r, p = d.site_xmat[site].reshape(3, 3), d.site_xpos[site]
            pts = d.geom_xpos[g] + (corners * model.geom_size[g]) @ d.geom_xmat[g].reshape(3, 3).T
            return (pts - p) @ r

        angles = np.linspace(-0.17, 1.6, 90)
        gaps = []
        fixed = None
        for a in angles:
            d.qpos[jadr] = a
            mujoco.mj_kinematics(model, d)
            fixed = pad("fixed_jaw_pad")
            gaps.append(pad("moving_jaw_pad")[:, 2].min() - fixed[:, 2].max())
        assert fixed is not None
        return cls(
            float(fixed[:, 2].max()),
            float(fixed[:, 0].mean()),
            float(fixed[:, 0].max()),
            angles,
            np.maximum.accumulate(np.array(gaps)),
        )

    def angle_for_gap(self, gap: float) -> float:
        return float(np.interp(gap, self.gaps, self.angles))


class Expert:
    """Runs ``self.phases`` (a subclass fills the list in its ``__init__``, and may append to it while
    running); see the module doc. ``act()`` once per control step gives the 6 joint targets."""

    def __init__(self, env: TaskEnv, *, point: np.ndarray, yaw: float | None = None, window: int = DEFAULT_WINDOW) -> None:
        self.env = env
        self.ik = env.ik
        self.window = int(window)
        self.geom = GripperGeometry.from_model(env.model)
        self.point = np.asarray(point, dtype=float)
        self.q = env.last_targets[:5].copy()
        self.gripper = float(env.last_targets[5])
        self.ik.data.qpos[:] = env.data.qpos
        self.p_cmd = self.ik.fk(self.q, self.point)
        _, r = self.ik.site_frame()
        self.yaw_cmd = math.atan2(r[1, 2], r[0, 2])
        self.yaw_goal = self.yaw_cmd if yaw is None else yaw
        self.v_cmd = 0.0
        self.corr = np.zeros(3)
        # True: the settling integral starts from 0 in every phase (set by ``run_episode`` for a noisy
        # episode, where what it integrated against the action noise would otherwise carry into the next
        # phase as an offset: measured up to ~17 mm at the start of a descent). False (clean episodes, as
        # before): it is reset only by a ``Grip``; in clean runs it is ~0 at every phase change anyway.
        self.phase_local_integral = False
        self.phases: list[Phase] = []
        self.i = 0
        self.k = 0
        self.settle = 0
        self.events: list[int] = []
        self.flags: list[bool] = []
        self.names: list[str] = []
        self._step = 0

    # --- helpers for plans ---------------------------------------------------------------------------

    def set_point(self, point: np.ndarray) -> None:
        """Drive another point of the gripper (site frame) from now on."""
        self.point = np.asarray(point, dtype=float)
        self.p_cmd = self.ik.fk(self.q, self.point)

    def measured_point(self) -> np.ndarray:
        site = self.ik.site_id
        d = self.env.data
        return d.site_xpos[site] + d.site_xmat[site].reshape(3, 3) @ self.point

    def preferred_yaw(self, xy: np.ndarray) -> float:
        """Jaw direction with the wrist roll near 0 at ``xy``: radial, fixed jaw nearer the base."""
        return math.atan2(float(xy[1]), float(xy[0]))

    def grasp_yaw(self, name: str) -> float:
        """A jaw direction that closes across ``name``: for a box the face normal nearest the preferred
        direction, for a lying capsule across its axis, else the preferred direction."""
        p = self.env.prop(name)
        pref = self.preferred_yaw(self.env.pos(name)[:2])
        r = self.env.xmat(name)
        if p.shape == "box":
            base = math.atan2(r[1, 0], r[0, 0])
            return min((base + k * math.pi / 2 for k in range(-4, 5)), key=lambda a: abs(_wrap(a - pref)))
        if p.shape == "capsule":
            base = math.atan2(r[1, 2], r[0, 2]) + math.pi / 2  # capsule axis is the body z
            return min((base + k * math.pi for k in range(-2, 3)), key=lambda a: abs(_wrap(a - pref)))
        return pref

    def grasp_point(self, half_width: float, gap: float = 0.004) -> np.ndarray:
        """Site-frame point where an object's axis sits, ``gap`` from the fixed pad, at pad mid-height."""
        g = self.geom
        return np.array([g.pad_center_x, 0.0, g.fixed_face_z + half_width + gap])

    def grasp_height(self, name: str) -> float:
        """World z of the pad centre for a grasp of ``name`` as it rests now."""
        p = self.env.prop(name)
        low = (self.geom.tip_x - self.geom.pad_center_x) + 0.0025  # fingertips 2.5 mm above the table
        if p.shape in ("sphere", "capsule"):
            return max(p.z, low)
        return max(p.top - 0.009, low)

    def open_angle(self, half_width: float, margin: float = 0.03) -> float:
        return min(self.geom.angle_for_gap(2 * half_width + margin), 1.2)

    def closed_angle(self, half_width: float) -> float:
        return self.geom.angle_for_gap(2 * half_width) - SQUEEZE_RAD

    # --- the state machine ---------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.i >= len(self.phases)

    @property
    def phase(self) -> str:
        return "done" if self.done else self.phases[self.i].name

    def _finished(self, ph: Phase) -> bool:
        if isinstance(ph, Grip):
            return self.k >= ph.steps
        if self.k >= ph.timeout_s * self.env.fps or (ph.until is not None and ph.until()):
            return True
        if np.linalg.norm(ph.target() - self.p_cmd) > 2e-4:  # not arrived (live targets jitter)
            return False
        err = ph.error() if ph.error is not None else ph.target() - self.measured_point()
        return bool(np.linalg.norm(err) < ph.tol or self.settle >= ph.settle_max)

    def _enter(self, ph: Phase) -> None:
        self.k = self.settle = 0
        self.v_cmd = 0.0
        if self.phase_local_integral:
            self.corr[:] = 0.0
        if isinstance(ph, Grip):
            self.corr[:] = 0.0
            if abs(ph.gripper - self.gripper) > 0.2:
                self.events.append(self._step)
            self.gripper = ph.gripper
        else:
            if ph.gripper is not None:
                self.gripper = ph.gripper
            if ph.yaw is not None:
                self.yaw_goal = ph.yaw()
            if ph.on_enter is not None:
                ph.on_enter()

    def act(self) -> np.ndarray:
        """The 6 joint targets (radians) for this control step."""
        if self._step == 0 and self.phases:
            self._enter(self.phases[0])
        while not self.done and self._finished(self.phases[self.i]):
            self.i += 1
            if not self.done:
                self._enter(self.phases[self.i])
        ph = None if self.done else self.phases[self.i]
        dt = 1.0 / self.env.fps
        if isinstance(ph, Move):
            tgt = ph.target()
            d = tgt - self.p_cmd
            n = float(np.linalg.norm(d))
            self.v_cmd = min(ph.speed, self.v_cmd + ACCEL * dt, math.sqrt(2 * ACCEL * n) + ACCEL * dt)
            if n <= self.v_cmd * dt:
                self.p_cmd = tgt.copy()
                self.settle += 1
                err = ph.error() if ph.error is not None else tgt - self.measured_point()
                if self.settle > 2:
                    self.corr = np.clip(self.corr + INTEGRAL_GAIN * err, -INTEGRAL_MAX, INTEGRAL_MAX)
            else:
                self.p_cmd = self.p_cmd + d * (self.v_cmd * dt / n)
        dy = _wrap(self.yaw_goal - self.yaw_cmd)
        self.yaw_cmd += float(np.clip(dy, -YAW_RATE * dt, YAW_RATE * dt))
        targets = self._joint_targets(self.p_cmd + self.corr)
        self.k += 1
        self.names.append(self.phase)
        self.flags.append(bool(ph is not None and ph.interaction))
        self._step += 1
        return targets

    def _joint_targets(self, p: np.ndarray) -> np.ndarray:
        ik = self.ik
        ik.data.qpos[self.env.scene.qpos_adr[5]] = self.gripper
        r = ik.solve(p, self.q, approach=self.approach(p), jaw=[math.cos(self.yaw_cmd), math.sin(self.yaw_cmd), 0.0], point=self.point)
        self.q = r.q
        ik.forward(self.q)
        bias = np.zeros(self.env.model.nv)
        mujoco.mj_rne(self.env.model, ik.data, 0, bias)
        ff = bias[ik.dadr] / self.env.kp[:5]
        return np.array([*(self.q + ff), self.gripper])

    def rotation(self, p: np.ndarray, yaw: float | None = None) -> np.ndarray:
        """The site orientation the IK aims for with the point at ``p`` (jaw direction ``yaw``, default
        the goal yaw): columns approach, y, jaw (as ``ArmIK`` builds it)."""
        a = self.approach(p)
        y = self.yaw_goal if yaw is None else yaw
        z = np.array([math.cos(y), math.sin(y), 0.0])
        z = z - (z @ a) * a
        z /= np.linalg.norm(z)
        return np.column_stack([a, np.cross(z, a), z])

    def measured_site(self) -> tuple[np.ndarray, np.ndarray]:
        d, site = self.env.data, self.ik.site_id
        return d.site_xpos[site].copy(), d.site_xmat[site].reshape(3, 3).copy()

    def approach(self, p: np.ndarray) -> np.ndarray:
        """Fingers down, tilted outward (away from the base) when the point is high."""
        s = np.clip((p[2] - TILT_FROM_Z) / (TILT_FULL_Z - TILT_FROM_Z), 0.0, 1.0)
        t = math.radians(MAX_TILT_DEG) * s
        if t == 0.0:
            return DOWN
        u = np.array([p[0], p[1], 0.0])
        u /= max(np.linalg.norm(u), 1e-9)
        return math.sin(t) * u + math.cos(t) * DOWN

    # --- labels --------------------------------------------------------------------------------------

    def all_events(self) -> list[int]:
        """Gripper events plus the first and last step of each ``interaction`` phase run."""
        ev = set(self.events)
        f = self.flags
        for t in range(len(f)):
            if f[t] and (t == 0 or not f[t - 1]):
                ev.add(t)
            if f[t] and (t == len(f) - 1 or not f[t + 1]):
                ev.add(t)
        return sorted(ev)

    def labels(self, n: int | None = None) -> np.ndarray:
        n = len(self.flags) if n is None else n
        return phase_labels(n, self.all_events(), self.window, self.flags[:n])


def phase_labels(n: int, events: list[int], window: int, flags: list[bool] | None = None) -> np.ndarray:
    """1 (interaction) within ``window`` steps of an event or where ``flags`` is set, else 0 (transit)."""
    out = np.zeros(n, dtype=np.int8)
    for e in events:
        out[max(0, e - window) : min(n, e + window + 1)] = 1
    if flags is not None:
        out[: len(flags)] |= np.asarray(flags[:n], dtype=np.int8)
    return out


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


@dataclass
class Episode:
    """One expert episode (``run_episode``). Arrays have one row per control step."""

    task: str
    seed: int
    spec: str
    instruction: str
    targets: np.ndarray  # (N, 6) the expert's joint targets, radians: the action (the label)
    goal_ticks: np.ndarray  # (N, 6) the executed targets as servo goals (ticks)
    joints: np.ndarray  # (N, 6) measured joint angles before each action: the state
    phases: list[str]
    labels: np.ndarray  # (N,) 1 interaction / 0 transit
    events: list[int]
    success: bool
    success_step: int | None
    expert_done_step: int | None
    info: dict = field(default_factory=dict)
    # (N, 6) what the servos were sent: ``targets`` plus the action noise of a recovery episode (then
    # ``noise`` is its ``ActionNoise.record``); ``None`` (or equal to ``targets``) in a clean episode
    executed: np.ndarray | None = None
    noise: dict | None = None

    @property
    def steps(self) -> int:
        return len(self.targets)
