"""``MujocoArm``: the emulated servos' ``MotionModel`` backed by a MuJoCo SO-101 (see
``hardware/emulator/motion.py`` for the protocol).

Ticks and radians (``JointMapping``)
    Servo positions are raw mechanical encoder ticks (4096 per turn, no homing offset, no drive mode).
    ``angle_rad = direction * (ticks - zero_ticks) * 2*pi/4096``, with ``zero_ticks = 2048`` and
    ``direction = +1`` unless configured per joint: mechanical tick 2048 is the MJCF joint angle 0,
    which in ``so101_new_calib.xml`` is the middle of the joint's range. Velocities scale the same way;
    ``ticks_to_rad``/``rad_to_ticks`` are exact inverses. Whether ``direction = +1`` matches a real
    SO-101's servo direction for every joint has not been checked against hardware.

What a servo does here (as an STS3215 does internally)
    * Torque on: a setpoint moves from where the joint is toward the goal along a trapezoidal profile
      limited to ``max_speed`` ticks/s and ``max_accel`` ticks/s^2 (``inf``: no limit), updated at
      every physics step; the MJCF position actuator (kp 17.8 N*m/rad, force limited to +-3.35 N*m,
      plus a derivative term ``kv``, see ``DEFAULT_KV``) pulls the joint toward it. Goals are not
      clamped to the joint's range (the actuator's ``ctrlrange`` is lifted; the servo's own position
      limits are the emulator's business): a goal past a joint limit or into an obstacle makes the
      actuator push against it at its force limit and the load reads ~1 (a stall), like a real servo.
    * Positions are not wrapped to 0..4095 (the emulator encodes present values).
    * Torque off: actuator gain 0: the joint is limp (damping and friction of the MJCF only) and
      falls under gravity. The profile restarts from the joint's present position at rest when torque
      comes back on.
    * ``state(i)``: position and velocity from ``qpos``/``qvel``; load = actuator force / force limit,
      signed in tick direction, in -1..1.

Time
    ``advance_to(t)`` (``time.monotonic()`` seconds) runs ``mj_step`` in fixed model timesteps (2 ms)
    up to ``t``; a remainder shorter than one step carries over. At most ``max_catchup_s`` (0.5 s) of
    simulation run per call: after a longer pause the clock jumps and the arm behaves as if the pause
    had been 0.5 s, so a stalled caller never triggers a long catch-up.

Threads
    Everything takes the arm's ``RLock`` (``arm.lock``): the emulator thread drives it, cameras read it
    from another. Renderers call ``copy_state_into(their_data)`` (a few microseconds under the lock)
    and do the kinematics and rendering on their own copy without holding the lock.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import mujoco
import numpy as np

from hardware.sim.scene import Scene, load_scene

TICKS_PER_TURN = 4096
RAD_PER_TICK = 2.0 * math.pi / TICKS_PER_TURN
CENTER_TICKS = 2048.0
STS3215_MAX_SPEED_TICKS_S = 3070.0  # ~45 rpm at 12 V, the datasheet's no-load speed
DEFAULT_MAX_CATCHUP_S = 0.5
# Folded on the table, as a powered-off SO-101 sits: where the limp arm of this model comes to rest
# (found by letting it settle). It still creeps < 1 tick/s (the MJCF's joint friction is small).
REST_TICKS = (2048.0, 944.0, 3083.0, 2808.0, 2048.0, 2048.0)
# Derivative gain added to the MJCF's position actuators (N*m*s/rad). The MJCF has kp only (kv 0): with
# the joints' own damping a 300-tick step then overshoots by 15-32 % (measured per joint), where the
# real servo runs a PD loop (LeRobot configures P=16, D=32; the MJCF says these do not map 1:1 to
# kp/kv). 0.6 brings the overshoot to 0-9 % and the 90 % rise time from ~150 to ~180 ms. Not
# identified against a real arm; kv=0.0 gives the MJCF as shipped.
DEFAULT_KV = 0.6


@dataclass(frozen=True, slots=True)
class JointMapping:
    """Mechanical ticks <-> MJCF joint radians for one joint."""

    zero_ticks: float = CENTER_TICKS  # the tick at joint angle 0
    direction: int = 1  # +1: ticks grow with the joint angle; -1: reversed

    def __post_init__(self) -> None:
        if self.direction not in (1, -1):
            raise ValueError(f"direction must be +1 or -1, not {self.direction!r}")

    def to_rad(self, ticks: float) -> float:
        return self.direction * (ticks - self.zero_ticks) * RAD_PER_TICK

    def to_ticks(self, rad: float) -> float:
        return self.zero_ticks + self.direction * rad / RAD_PER_TICK


def ticks_to_rad(ticks: float, mapping: JointMapping = JointMapping()) -> float:
    return mapping.to_rad(ticks)


def rad_to_ticks(rad: float, mapping: JointMapping = JointMapping()) -> float:
    return mapping.to_ticks(rad)


@dataclass(frozen=True, slots=True)
class ArmSnapshot:
    """A consistent copy of the arm's state (from ``MujocoArm.snapshot``)."""

    t: float  # the monotonic time the simulation has been advanced to
    sim_time: float  # MuJoCo's data.time (seconds of simulation since load)
    qpos: np.ndarray
    qvel: np.ndarray
    positions_ticks: tuple[float, ...]
    velocities_ticks_s: tuple[float, ...]
    loads: tuple[float, ...]
    torque_on: tuple[bool, ...]


class MujocoArm:
    """An SO-101 in MuJoCo behind the ``MotionModel`` protocol (module doc for the details).

    ``initial_ticks``: the joints' starting positions (default ``REST_TICKS``, folded on the table); the
    arm starts there at rest with torque off, as servos power up, and settles under gravity from there
    once time advances (from all-2048, the middle of each range, it falls onto the table).
    ``mappings``: one ``JointMapping`` per joint (default: 2048 = 0 rad, +1).
    ``kv``: derivative gain of the servos' position loop (``DEFAULT_KV``; ``None`` keeps the MJCF's).
    ``max_catchup_s``: the most simulated time one ``advance_to`` runs (module doc).
    """

    def __init__(
        self,
        scene: Scene | None = None,
        *,
        initial_ticks: Sequence[float] | None = None,
        mappings: Sequence[JointMapping] | None = None,
        t0: float | None = None,
        max_catchup_s: float = DEFAULT_MAX_CATCHUP_S,
        kv: float | None = DEFAULT_KV,
    ) -> None:
        self.scene = scene if scene is not None else load_scene()
        self.model: mujoco.MjModel = self.scene.model
        self.data: mujoco.MjData = self.scene.data
        self.joint_names = self.scene.joint_names
        self.n_joints = len(self.joint_names)
        n = self.n_joints
        self.mappings = tuple(mappings) if mappings is not None else (JointMapping(),) * n
        if len(self.mappings) != n:
            raise ValueError(f"need {n} joint mappings, got {len(self.mappings)}")
        self._lock = threading.RLock()
        m = self.model
        self._qadr = np.array(self.scene.qpos_adr)
        self._dadr = np.array(self.scene.dof_adr)
        self._act = np.array(self.scene.actuator_ids)
        self._zero = np.array([mp.zero_ticks for mp in self.mappings], dtype=float)
        self._dir = np.array([mp.direction for mp in self.mappings], dtype=float)
        self._kp = m.actuator_gainprm[self._act, 0].copy()
        self._bias = m.actuator_biasprm[self._act, :3].copy()  # position actuator: [0, -kp, -kv]
        if kv is not None:
            self._bias[:, 2] = -float(kv)
        self._fmax = np.maximum(np.abs(m.actuator_forcerange[self._act]).max(axis=1), 1e-9)
        m.actuator_ctrllimited[self._act] = 0  # goals past a joint limit push against the limit
        self._ts = float(m.opt.timestep)
        self._max_steps = max(1, int(round(max_catchup_s / self._ts)))
        # servo state (ticks)
        self._torque = np.zeros(n, dtype=bool)
        self._goal = np.zeros(n)
        self._vmax = np.full(n, STS3215_MAX_SPEED_TICKS_S)
        self._amax = np.full(n, math.inf)
        self._sp = np.zeros(n)  # profile setpoint
        self._spv = np.zeros(n)  # profile velocity
        with self._lock:
            start = REST_TICKS if initial_ticks is None and n == len(REST_TICKS) else initial_ticks
            if start is not None:
                if len(start) != n:
                    raise ValueError(f"need {n} initial positions, got {len(start)}")
                self.data.qpos[self._qadr] = self._to_rad(np.asarray(start, dtype=float))
            self.data.qvel[:] = 0.0
            mujoco.mj_forward(m, self.data)
            self._sp[:] = self._positions()
            self._goal[:] = self._sp
            for i in range(n):
                self._set_gain(i, False)
            self._write_ctrl()
        self._t = time.monotonic() if t0 is None else float(t0)

    # --- conversions ----------------------------------------------------------------------------------

    def _to_rad(self, ticks: np.ndarray) -> np.ndarray:
        return self._dir * (ticks - self._zero) * RAD_PER_TICK

    def _positions(self) -> np.ndarray:
        return self._zero + self._dir * self.data.qpos[self._qadr] / RAD_PER_TICK

    def _velocities(self) -> np.ndarray:
        return self._dir * self.data.qvel[self._dadr] / RAD_PER_TICK

    def _loads(self) -> np.ndarray:
        f = self.data.actuator_force[self._act]
        return np.clip(self._dir * f / self._fmax, -1.0, 1.0) * self._torque

    def _set_gain(self, i: int, on: bool) -> None:
        a = self._act[i]
        self.model.actuator_gainprm[a, 0] = self._kp[i] if on else 0.0
        self.model.actuator_biasprm[a, :3] = self._bias[i] if on else 0.0

    def _write_ctrl(self) -> None:
        self.data.ctrl[self._act] = self._to_rad(self._sp)

    # --- MotionModel ------------------------------------------------------------------------------------

    def command(
        self, i: int, goal_ticks: float, torque_on: bool, max_speed: float, max_accel: float
    ) -> None:
        with self._lock:
            on = bool(torque_on)
            if on and not self._torque[i]:
                # the profile starts from where the joint is, at rest (as the servo's own does)
                self._sp[i] = self._positions()[i]
                self._spv[i] = 0.0
            self._torque[i] = on
            self._set_gain(i, on)
            self._goal[i] = float(goal_ticks)
            self._vmax[i] = max(float(max_speed), 1e-3)
            self._amax[i] = max(float(max_accel), 1e-3)
            if not on:
                self._sp[i] = self._positions()[i]
                self._spv[i] = 0.0
            self._write_ctrl()

    def advance_to(self, t: float) -> None:
        with self._lock:
            dt = t - self._t
            if dt <= 0:
                return
            n = int(dt / self._ts + 1e-9)
            if n > self._max_steps:
                n, self._t = self._max_steps, t  # long pause: simulate the cap, then jump
            else:
                self._t += n * self._ts
            self._step(n)

    def state(self, i: int) -> tuple[float, float, float]:
        with self._lock:
            return (
                float(self._positions()[i]),
                float(self._velocities()[i]),
                float(self._loads()[i]),
            )

    # --- external inputs ----------------------------------------------------------------------------------

    def move_by_hand(self, i: int, ticks: float) -> None:
        """A hand moves joint ``i`` by ``ticks`` now (``qpos`` is set). Torque off: it stays there (or
        falls, gravity permitting). Torque on: the servo pulls it back toward its setpoint."""
        with self._lock:
            adr = self._qadr[i]
            self.data.qpos[adr] += self._dir[i] * float(ticks) * RAD_PER_TICK
            self.data.qvel[self._dadr[i]] = 0.0
            mujoco.mj_forward(self.model, self.data)
            if not self._torque[i]:
                self._sp[i] = self._positions()[i]
                self._goal[i] = self._sp[i]
                self._spv[i] = 0.0
                self._write_ctrl()

    def set_positions(self, ticks: Sequence[float]) -> None:
        """Teleport all joints to ``ticks`` at rest (tests, resets); setpoints follow."""
        with self._lock:
            self.data.qpos[self._qadr] = self._to_rad(np.asarray(ticks, dtype=float))
            self.data.qvel[:] = 0.0
            mujoco.mj_forward(self.model, self.data)
            self._sp[:] = self._positions()
            self._spv[:] = 0.0
            self._goal[~self._torque] = self._sp[~self._torque]
            self._write_ctrl()

    # --- for renderers and tools ---------------------------------------------------------------------

    @property
    def lock(self) -> threading.RLock:
        """Hold it to read ``model``/``data`` consistently (keep it short: the emulator waits)."""
        return self._lock

    @property
    def time(self) -> float:
        """The monotonic time the simulation has been advanced to."""
        return self._t

    def goal(self, i: int) -> float:
        with self._lock:
            return float(self._goal[i])

    def setpoint(self, i: int) -> float:
        """Where the servo's internal profile is now (ticks)."""
        with self._lock:
            return float(self._sp[i])

    def copy_state_into(self, dst: mujoco.MjData) -> float:
        """Copy what rendering needs (time, qpos, qvel, mocap) into ``dst`` (an MjData of the same
        model); returns the monotonic time of that state. Run ``mj_kinematics``/``mj_camlight``
        (or ``mj_forward``) on ``dst`` afterwards, outside the lock."""
        with self._lock:
            src = self.data
            dst.time = src.time
            dst.qpos[:] = src.qpos
            dst.qvel[:] = src.qvel
            if self.model.nmocap:
                dst.mocap_pos[:] = src.mocap_pos
                dst.mocap_quat[:] = src.mocap_quat
            return self._t

    def snapshot(self) -> ArmSnapshot:
        with self._lock:
            return ArmSnapshot(
                t=self._t,
                sim_time=float(self.data.time),
                qpos=self.data.qpos.copy(),
                qvel=self.data.qvel.copy(),
                positions_ticks=tuple(float(x) for x in self._positions()),
                velocities_ticks_s=tuple(float(x) for x in self._velocities()),
                loads=tuple(float(x) for x in self._loads()),
                torque_on=tuple(bool(x) for x in self._torque),
            )

    # --- integration ------------------------------------------------------------------------------------

    def _profile_idle(self) -> bool:
        on = self._torque
        return not np.any(on & ((self._sp != self._goal) | (self._spv != 0.0)))

    def _step(self, n: int) -> None:
        m, d = self.model, self.data
        while n > 0:
            if self._profile_idle():
                mujoco.mj_step(m, d, n)  # setpoints at rest: constant ctrl, step in one call
                return
            self._profile_step(self._ts)
            self._write_ctrl()
            mujoco.mj_step(m, d)
            n -= 1

    def _profile_step(self, dt: float) -> None:
        """One step of each torque-on joint's setpoint toward its goal: speed <= vmax, |accel| <= amax,
        braking so as to stop on the goal (time-optimal trapezoid, discretised)."""
        on = self._torque
        e = self._goal - self._sp
        a, vmax, v = self._amax, self._vmax, self._spv
        with np.errstate(invalid="ignore"):
            v_stop = np.sign(e) * np.sqrt(2.0 * a * np.abs(e))  # fastest speed that can still stop
            v_stop = np.where(np.isinf(a), np.sign(e) * np.inf, v_stop)
        v_des = np.clip(v_stop, -vmax, vmax)
        dv = np.where(np.isinf(a), v_des - v, np.clip(v_des - v, -a * dt, a * dt))
        v_new = v + dv
        v_new = np.where(np.isinf(v_new), 0.0, v_new)
        sp_new = np.where(np.isinf(v_des), self._goal, self._sp + v_new * dt)
        crossed = np.sign(self._goal - sp_new) != np.sign(e)
        arrive = crossed | (np.abs(self._goal - sp_new) < 1e-6) | np.isinf(v_des)
        sp_new = np.where(arrive, self._goal, sp_new)
        v_new = np.where(arrive, 0.0, v_new)
        self._sp = np.where(on, sp_new, self._sp)
        self._spv = np.where(on, v_new, self._spv)
