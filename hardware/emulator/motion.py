"""How the emulated joints move: the ``MotionModel`` plug-in protocol and a kinematic implementation.

The protocol (a MuJoCo arm can implement it later):

* Joints are indexed ``0 .. n_joints - 1`` in the arm profile's motor order.
* Positions are raw mechanical encoder ticks as floats (4096 per output turn), in the servo's own
  mechanical frame: no homing offset, no drive-mode reversal. Velocities are ticks per second.
* ``command(i, goal_ticks, torque_on, max_speed, max_accel)`` sets what joint ``i`` is asked to do
  from now on: move toward ``goal_ticks`` with at most ``max_speed`` ticks/s and ``max_accel``
  ticks/s^2 (``math.inf`` = as fast as the model allows), or with ``torque_on=False`` go limp.
* ``advance_to(t)`` integrates the model up to ``t`` (``time.monotonic()`` seconds). Calls come in
  non-decreasing ``t``; a smaller ``t`` is ignored. The emulator calls it lazily, on each request.
* ``state(i)`` returns ``(position_ticks, velocity_ticks_s, load_fraction)`` at the last
  ``advance_to``; ``load_fraction`` is the signed effort in -1..1 (1 = stall).

Models are used under the emulator's lock but must be safe to call from another thread for their own
external inputs (``KinematicMotion.move_by_hand`` locks internally).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@runtime_checkable
class MotionModel(Protocol):
    n_joints: int

    def command(
        self, i: int, goal_ticks: float, torque_on: bool, max_speed: float, max_accel: float
    ) -> None: ...

    def advance_to(self, t: float) -> None: ...

    def state(self, i: int) -> tuple[float, float, float]: ...


_EPS = 1e-3  # ticks / ticks per second below which a joint counts as at rest on its goal
_T_MIN = 1e-9  # a phase shorter than this is over: move on to the next one


@dataclass
class _Joint:
    pos: float
    vel: float = 0.0
    goal: float = 0.0
    torque: bool = False
    vmax: float = 3000.0
    amax: float = 30000.0
    accel: float = 0.0  # acceleration in effect during the last advance (for the load model)


def _phase(j: _Joint) -> tuple[float, float]:
    """(acceleration, duration) of the current trapezoid phase; duration inf = hold it."""
    e = j.goal - j.pos
    if abs(e) < _EPS and abs(j.vel) < _EPS:
        return 0.0, math.inf
    s = 1.0 if e > 0 or (e == 0 and j.vel < 0) else -1.0
    x = e * s  # distance to go, >= 0
    u = j.vel * s  # speed toward the goal (negative: moving away)
    a, vmax = j.amax, j.vmax
    if math.isinf(a):
        return 0.0, math.inf  # handled by the caller (velocity steps)
    brake = u * u / (2 * a) if u > 0 else 0.0
    stop = (-a * s, u / a) if u > 0 else (0.0, 0.0)  # decelerate to a stop
    if u > 0 and brake >= x - 1e-6:
        return stop  # lands on the goal, or overshoots and comes back
    if u > vmax + _EPS:
        return -a * s, (u - vmax) / a
    if u < vmax - _EPS:
        t_cap = (vmax - u) / a
        t_brake = (-u + math.sqrt(max(0.0, u * u / 2 + a * x))) / a  # when braking must start
        if t_brake <= _T_MIN:
            return stop
        return a * s, min(t_cap, t_brake)
    t_cruise = (x - brake) / u
    return (0.0, t_cruise) if t_cruise > _T_MIN else stop  # cruise at vmax until the braking point


class KinematicMotion:
    """Trapezoidal-velocity joints: each moves toward its goal with its speed and acceleration limits.

    Torque off: the joint stays where it is (friction), or where ``move_by_hand`` puts it. Torque on:
    it tracks the goal; a hand displacing it makes it pull back at the same limits. Load is a simple
    saturating function of the distance still to go (following error) and of the acceleration.
    """

    def __init__(self, initial_ticks: Sequence[float], *, t0: float | None = None) -> None:
        self._joints = [_Joint(pos=float(p), goal=float(p)) for p in initial_ticks]
        self.n_joints = len(self._joints)
        self._t = time.monotonic() if t0 is None else t0
        self._lock = threading.RLock()

    # --- MotionModel --------------------------------------------------------------------------------

    def command(
        self, i: int, goal_ticks: float, torque_on: bool, max_speed: float, max_accel: float
    ) -> None:
        with self._lock:
            j = self._joints[i]
            j.torque = bool(torque_on)
            j.vmax = max(float(max_speed), 1e-3)
            j.amax = max(float(max_accel), 1e-3)
            if j.torque:
                j.goal = float(goal_ticks)
            else:
                j.goal, j.vel, j.accel = j.pos, 0.0, 0.0

    def advance_to(self, t: float) -> None:
        with self._lock:
            dt = t - self._t
            if dt <= 0:
                return
            self._t = t
            for j in self._joints:
                self._advance(j, dt)

    def state(self, i: int) -> tuple[float, float, float]:
        with self._lock:
            j = self._joints[i]
            if not j.torque:
                return j.pos, j.vel, 0.0
            err = math.tanh((j.goal - j.pos) / 400.0)
            acc = j.accel / j.amax if math.isfinite(j.amax) and j.amax > 0 else 0.0
            return j.pos, j.vel, max(-1.0, min(1.0, 0.6 * err + 0.3 * acc))

    # --- external inputs ------------------------------------------------------------------------------

    def move_by_hand(self, i: int, ticks: float) -> None:
        """A hand moves joint ``i`` by ``ticks`` now. With torque on the servo then pulls it back."""
        with self._lock:
            self.advance_to(time.monotonic())
            j = self._joints[i]
            j.pos += float(ticks)
            j.vel = 0.0
            if not j.torque:
                j.goal = j.pos

    def goal(self, i: int) -> float:
        with self._lock:
            return self._joints[i].goal

    @property
    def time(self) -> float:
        return self._t

    # --- integration ----------------------------------------------------------------------------------

    @staticmethod
    def _advance(j: _Joint, dt: float) -> None:
        if not j.torque:
            j.vel, j.accel = 0.0, 0.0
            return
        if math.isinf(j.amax):
            step = j.vmax * dt
            e = j.goal - j.pos
            if abs(e) <= step:
                j.pos, j.vel = j.goal, 0.0
            else:
                j.pos += math.copysign(step, e)
                j.vel = math.copysign(j.vmax, e)
            j.accel = 0.0
            return
        for _ in range(16):
            a, dur = _phase(j)
            if math.isinf(dur):
                j.pos, j.vel, j.accel = j.goal, 0.0, 0.0
                return
            h = min(dur, dt)
            j.pos += j.vel * h + 0.5 * a * h * h
            j.vel += a * h
            j.accel = a
            dt -= h
            if h == dur:  # phase boundary: land exactly on its end state
                if a != 0 and abs(j.vel) < _EPS:
                    j.vel = 0.0
                if abs(j.goal - j.pos) < _EPS and j.vel == 0.0:
                    j.pos = j.goal
            if dt <= 0:
                return
        # numerically stuck on phase boundaries: finish the little time left at rest on the goal
        if abs(j.goal - j.pos) < 1.0:
            j.pos, j.vel, j.accel = j.goal, 0.0, 0.0
