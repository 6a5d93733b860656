"""The safety filter: the last thing every servo tick does to the arbiter's target before it is sent.

Per tick (``dt`` = time since the previous tick, clipped to ``0..max_dt_s`` so a late tick cannot
license a big step; the first ``apply`` at the ``reset`` time has ``dt = 0`` and returns the present
position):

1. sanitise: a NaN/inf entry of the target (or a target of the wrong shape) is replaced by the previous
   command (flag ``nan``); a NaN in the present position is replaced by the previous command too.
2. gripper stall: ``|load| >= stall_load`` for ``stall_time_s`` while the command presses the gripper
   closed (command below the present angle) moves the gripper target to ``present + stall_open_rad``
   (open = increasing angle) and holds it there until the requested target opens past that point or
   ``stall_release_s`` passes (flag ``stall``); the timer then starts over.
3. the target is clipped to the joint limits (``limit``) and to ``present +- max_step_from_present_rad``
   (``distance``); where both cannot hold (present more than that outside the limits) the limits win.
4. motion: the velocity toward the target is at most ``max_velocity_rad_s``, at most the speed from
   which the joint can still stop at the target decelerating at ``max_accel_rad_s2`` (discrete-time
   braking curve, so a fixed target is reached without overshoot), and within ``max_accel * dt`` of the
   previous velocity (flags ``velocity`` / ``accel``).
5. hard clamps on the output, in priority order: (a) ``|cmd_k - cmd_{k-1}| <= vmax * dt`` always;
   (b) the joint limits; (c) ``present +- max_step_from_present_rad`` where (a) and (b) allow it,
   otherwise the point nearest to it. A clamp here may decelerate harder than ``max_accel`` (this is the
   only way acceleration is exceeded: braking to stay within the limits, or following a present position
   that moved away, e.g. an arm pushed by hand); ``FilterResult.braked`` reports it.

Start-up: ``reset(present, now)`` makes the present position the command and zeroes the velocity, so
nothing jumps. A joint whose present position is *outside* its limits is not snapped inside: its allowed
range is widened to the current command on that side, so the command only ever moves inward, toward the
limits at no more than the velocity limit (accelerating from rest), and never further out. Once inside,
it stays inside.

Note: the filter plans to stop at the current target, so it trails a target moving at speed ``v`` by
about ``v^2 / (2 * max_accel)`` (0.06 rad at 1 rad/s with the default 8 rad/s^2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hardware.arms import JOINT_NAMES, SO101, ArmProfile
from harmowam_ctl.types import N_JOINTS, joint_vector

log = structlog.get_logger(__name__)

__all__ = ["FLAGS", "FilterResult", "SafetyConfig", "SafetyFilter"]

FLAGS = frozenset({"limit", "velocity", "accel", "distance", "stall", "nan"})

_DEFAULT_MARGIN = 0.02


def _six(value: Any, what: str) -> tuple[float, ...]:
    """A number (same for every joint) or one value per joint, as a tuple of 6 finite floats."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        vals = (float(value),) * N_JOINTS
    else:
        try:
            vals = tuple(float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"{what}: give a number or {N_JOINTS} numbers ({', '.join(JOINT_NAMES)})") from None
        if len(vals) != N_JOINTS:
            raise ValueError(
                f"{what}: give {N_JOINTS} values, one per joint ({', '.join(JOINT_NAMES)}), got {len(vals)}"
            )
    if not all(np.isfinite(vals)):
        raise ValueError(f"{what}: values must be finite numbers")
    return vals


def _limits(profile: ArmProfile, margin: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return (
        tuple(m.limits_rad[0] + margin for m in profile.motors),
        tuple(m.limits_rad[1] - margin for m in profile.motors),
    )


class SafetyConfig(BaseModel):
    """Limits of the safety filter (radians, seconds; joint order ``hardware.arms.JOINT_NAMES``).
    Build it for an arm and its calibration with ``SafetyConfig.for_arm``."""

    model_config = ConfigDict(extra="forbid")

    lower_rad: tuple[float, ...] = Field(
        default_factory=lambda: _limits(SO101, _DEFAULT_MARGIN)[0],
        description="lowest command per joint (default: SO-101 limits narrowed by 0.02 rad)",
    )
    upper_rad: tuple[float, ...] = Field(
        default_factory=lambda: _limits(SO101, _DEFAULT_MARGIN)[1],
        description="highest command per joint (default: SO-101 limits narrowed by 0.02 rad)",
    )
    max_velocity_rad_s: tuple[float, ...] = Field(
        (1.5, 1.5, 1.5, 1.5, 1.5, 3.0), description="speed limit per joint (a number applies to all)"
    )
    max_accel_rad_s2: tuple[float, ...] = Field(
        (8.0, 8.0, 8.0, 8.0, 8.0, 20.0), description="acceleration limit per joint (a number applies to all)"
    )
    max_step_from_present_rad: float = Field(
        0.35, gt=0.0, le=3.2, description="a target is never further than this from the measured position"
    )
    max_dt_s: float = Field(
        0.02, gt=0.0, le=1.0,
        description="a tick later than this after the previous one moves as if it came after max_dt_s "
        "(about 2 servo periods)",
    )
    gripper_index: int | None = Field(
        5, ge=0, le=N_JOINTS - 1, description="joint index of the gripper for stall protection (None: off)"
    )
    stall_load: float = Field(0.6, gt=0.0, le=1.0, description="|load| (0..1) counted as stalling")
    stall_time_s: float = Field(0.3, ge=0.0, le=10.0, description="stalling this long triggers the protection")
    stall_open_rad: float = Field(
        0.1, ge=0.0, le=1.0, description="on a stall the gripper target becomes present + this (open)"
    )
    stall_release_s: float = Field(
        1.0, gt=0.0, le=60.0, description="the opened gripper target is held at most this long"
    )

    @field_validator("lower_rad", "upper_rad", "max_velocity_rad_s", "max_accel_rad_s2", mode="before")
    @classmethod
    def _per_joint(cls, v: Any, info: Any) -> tuple[float, ...]:
        return _six(v, info.field_name)

    @model_validator(mode="after")
    def _consistent(self) -> SafetyConfig:
        for name, lo, hi in zip(JOINT_NAMES, self.lower_rad, self.upper_rad):
            if not lo < hi:
                raise ValueError(
                    f"joint {name}: lower limit {lo:.4f} rad must be below upper limit {hi:.4f} rad "
                    "(check the calibration file or reduce the margin)"
                )
        for field in ("max_velocity_rad_s", "max_accel_rad_s2"):
            for name, v in zip(JOINT_NAMES, getattr(self, field)):
                if not v > 0:
                    raise ValueError(f"{field} for {name} must be > 0, got {v}")
        return self

    @classmethod
    def for_arm(
        cls,
        profile: ArmProfile,
        margin_rad: float = _DEFAULT_MARGIN,
        calibration_limits: Sequence[tuple[float, float]] | Mapping[str, tuple[float, float]] | None = None,
        **overrides: Any,
    ) -> SafetyConfig:
        """Limits = the arm profile's limits intersected with the calibrated ones (6 ``(lo, hi)`` pairs
        in joint order, or a mapping joint name -> pair), narrowed by ``margin_rad`` on each side."""
        if not (np.isfinite(margin_rad) and margin_rad >= 0):
            raise ValueError(f"margin_rad must be a finite number >= 0, got {margin_rad!r}")
        lo = [m.limits_rad[0] for m in profile.motors]
        hi = [m.limits_rad[1] for m in profile.motors]
        if calibration_limits is not None:
            if isinstance(calibration_limits, Mapping):
                unknown = set(calibration_limits) - set(profile.joints)
                if unknown:
                    raise ValueError(
                        f"calibration limits for unknown joints {sorted(unknown)}; joints: {', '.join(profile.joints)}"
                    )
                pairs = [calibration_limits.get(j) for j in profile.joints]
            else:
                pairs = list(calibration_limits)
                if len(pairs) != len(profile.motors):
                    raise ValueError(f"calibration_limits: give {len(profile.motors)} (lo, hi) pairs, got {len(pairs)}")
            for i, pair in enumerate(pairs):
                if pair is None:
                    continue
                c_lo, c_hi = (float(x) for x in pair)
                lo[i] = max(lo[i], min(c_lo, c_hi))
                hi[i] = min(hi[i], max(c_lo, c_hi))
        values: dict[str, Any] = {
            "lower_rad": tuple(x + margin_rad for x in lo),
            "upper_rad": tuple(x - margin_rad for x in hi),
        }
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class FilterResult:
    """The command to send (radians, 6) and what the filter changed (a subset of ``FLAGS``).
    ``braked``: a hard clamp (limits, distance) overrode the acceleration limit this tick."""

    targets: np.ndarray
    flags: frozenset[str]
    braked: bool = False


def _stop_speed(u: np.ndarray) -> np.ndarray:
    """The fastest speed (in units of ``a*dt``) from which a joint moving one step per tick and slowing
    by ``a*dt`` each tick covers at most ``u`` (in units of ``a*dt^2``), this tick's step included.

    From speed ``x`` the steps are ``x, x-1, ..., x-n`` (the positive ones, ``n < x <= n+1``), summing to
    ``S(x) = (n+1)x - n(n+1)/2``; at integers ``S(n) = n(n+1)/2``. This inverts ``S``. Since
    ``S(x) = x + S(x-1)``, moving at ``x = S^-1(u)`` leaves exactly ``S(x-1)``: the next tick may slow
    by one unit and stay on the curve, and the last step lands on the target.
    """
    n = np.floor((np.sqrt(8.0 * u + 1.0) - 1.0) / 2.0)
    return u / (n + 1.0) + n / 2.0


class SafetyFilter:
    """Stateful per-tick filter. Call ``reset`` when the arm becomes active, then ``apply`` every tick."""

    def __init__(self, config: SafetyConfig | None = None) -> None:
        self.config = c = config or SafetyConfig()
        self._lo = np.array(c.lower_rad)
        self._hi = np.array(c.upper_rad)
        self._vmax = np.array(c.max_velocity_rad_s)
        self._amax = np.array(c.max_accel_rad_s2)
        self._cmd: np.ndarray | None = None
        self._vel = np.zeros(N_JOINTS)
        self._t = 0.0
        self._high_since: float | None = None
        self._stall_hold: float | None = None
        self._stall_t = 0.0

    @property
    def command(self) -> np.ndarray | None:
        """The last command (None before ``reset``)."""
        return None if self._cmd is None else self._cmd.copy()

    @property
    def velocity(self) -> np.ndarray:
        return self._vel.copy()

    @property
    def stall_active(self) -> bool:
        return self._stall_hold is not None

    def reset(self, present: Any, now: float) -> None:
        """Start from the measured position at rest: the next ``apply`` at ``now`` returns ``present``."""
        p = joint_vector(present)
        if p is None or not np.all(np.isfinite(p)):
            raise ValueError(
                f"cannot start the safety filter: the present position must be {N_JOINTS} finite radians, "
                f"got {present!r}; read the arm again (check the bus and the calibration)"
            )
        for i in np.flatnonzero((p < self._lo) | (p > self._hi)):
            log.warning(
                "joint starts outside its limits; it is moved inside at the velocity limit",
                joint=JOINT_NAMES[i], present=float(p[i]), lower=float(self._lo[i]), upper=float(self._hi[i]),
            )
        self._cmd = p
        self._vel = np.zeros(N_JOINTS)
        self._t = float(now)
        self._high_since = None
        self._stall_hold = None

    def apply(self, target: Any, present: Any, loads: Any, now: float) -> FilterResult:
        """Filter one tick's target given the measured positions (radians) and loads (-1..1 or None)."""
        if self._cmd is None:
            raise RuntimeError(
                "SafetyFilter.apply before reset(): call reset(present, now) when the arm becomes active"
            )
        c = self.config
        cmd = self._cmd
        flags: set[str] = set()

        now = float(now)
        if np.isfinite(now):
            dt = min(max(now - self._t, 0.0), c.max_dt_s)
            self._t = max(self._t, now)
        else:
            dt, now = 0.0, self._t
            flags.add("nan")

        p = _patched(present, cmd, flags)
        tg = _patched(target, cmd, flags)

        self._stall(tg, p, loads, now, flags)

        lim = np.clip(tg, self._lo, self._hi)
        if np.any(lim != tg):
            flags.add("limit")
        d = c.max_step_from_present_rad
        near = np.clip(lim, p - d, p + d)
        if np.any(near != lim):
            flags.add("distance")
        tg = np.clip(near, self._lo, self._hi)

        if dt <= 0.0:
            return FilterResult(cmd.copy(), frozenset(flags))

        vmax, amax = self._vmax, self._amax
        err = tg - cmd
        v_des = err / dt
        v = np.clip(v_des, -vmax, vmax)
        if np.any(v != v_des):
            flags.add("velocity")
        adt = amax * dt
        v_stop = adt * _stop_speed(np.abs(err) / (adt * dt))
        v_b = np.sign(v) * np.minimum(np.abs(v), v_stop)
        v_a = np.clip(v_b, self._vel - adt, self._vel + adt)
        if np.any(v_a != v):
            flags.add("accel")
        v = np.clip(v_a, -vmax, vmax)
        out = cmd + v * dt

        # hard clamps: velocity box and limits (widened to the command when it starts outside) ...
        a_lo = np.maximum(cmd - vmax * dt, np.minimum(self._lo, cmd))
        a_hi = np.minimum(cmd + vmax * dt, np.maximum(self._hi, cmd))
        out1 = np.clip(out, a_lo, a_hi)
        if np.any(out1 != out):
            flags.add("limit")
        # ... then the distance to present where they allow it, else the nearest point to it
        b_lo = np.maximum(a_lo, p - d)
        b_hi = np.minimum(a_hi, p + d)
        out2 = np.where(b_lo <= b_hi, np.clip(out1, b_lo, np.maximum(b_lo, b_hi)), np.clip(p, a_lo, a_hi))
        if np.any(out2 != out1):
            flags.add("distance")
        braked = bool(np.any(np.abs(out2 - out) > 1e-12))

        self._vel = (out2 - cmd) / dt
        self._cmd = out2
        return FilterResult(out2.copy(), frozenset(flags), braked)

    def _stall(self, tg: np.ndarray, p: np.ndarray, loads: Any, now: float, flags: set[str]) -> None:
        c = self.config
        g = c.gripper_index
        if g is None:
            return
        if self._stall_hold is not None:
            if tg[g] > self._stall_hold or now - self._stall_t >= c.stall_release_s:
                log.info("gripper stall protection released", target=float(tg[g]), hold=self._stall_hold)
                self._stall_hold = None
                self._high_since = None
            else:
                tg[g] = self._stall_hold
                flags.add("stall")
                return
        load = 0.0
        lv = joint_vector(loads)
        if lv is not None and np.isfinite(lv[g]):
            load = abs(float(lv[g]))
        assert self._cmd is not None
        if load >= c.stall_load and self._cmd[g] < p[g]:
            if self._high_since is None:
                self._high_since = now
            if now - self._high_since >= c.stall_time_s:
                hold = float(min(p[g] + c.stall_open_rad, self._hi[g]))
                log.warning("gripper stalled: opening it slightly", load=load, present=float(p[g]), hold=hold)
                self._stall_hold = hold
                self._stall_t = now
                if tg[g] <= hold:
                    tg[g] = hold
                flags.add("stall")
        else:
            self._high_since = None


def _patched(x: Any, fallback: np.ndarray, flags: set[str]) -> np.ndarray:
    """``x`` as 6 floats with every unusable entry (NaN, inf; all of them for a wrong shape) taken from
    ``fallback``; flags ``nan`` when anything was replaced."""
    a = joint_vector(x)
    if a is None:
        flags.add("nan")
        return fallback.copy()
    bad = ~np.isfinite(a)
    if bad.any():
        a[bad] = fallback[bad]
        flags.add("nan")
    return a
