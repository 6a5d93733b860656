"""Plausibility of a policy's action chunk: an implausible command is a policy fault, not a target.

The safety filter (``harmowam_ctl.safety``) makes any target safe to *drive*: it clips it into the joint
limits and moves toward it slowly. That is exactly wrong for a policy whose numbers mean something else:
a policy trained on a LeRobot dataset in degrees and driven as radians asks for 37 / -28 / 45 / 73 / 72 /
68 "rad"; clipped, every joint heads for its end stop (measured on the simulated arm: shoulder_pan swung
~2 rad in 1.7 s before a following-error stop). So every chunk a policy makes (HarmoWAM, ACT, scripted,
synthetic alike) is checked *before* it enters the action buffer, and a chunk that fails is refused
whole (never clamped, never partly driven): the runtime reports it like a policy exception
(``Runtime._on_policy_error`` -> ``Watchdogs.policy_error``: the arm holds, and a hold that lasts
``watchdogs.policy.escalate_after_s`` becomes a safe stop), and records an ``implausible_chunk`` fault
naming the joint, the value and "wrong units?".

A chunk is implausible when (``check_chunk``):

(a) range: a target lies beyond a joint's *calibrated* range (the calibration's ``range_min..range_max``
    in radians, not the safety filter's margin-shrunk limits) by more than ``margin_frac`` (10 %) of that
    joint's range. A genuine policy learned its targets from demonstrations inside that range; it may
    overshoot a limit a little (a gripper squeezing past the contact angle, a joint pressed against the
    table), never by a tenth of the range. Degrees as radians are tens of "radians": far outside.
(b) step: two consecutive steps are further apart than ``max_speed * dt`` (default 10 rad/s for the arm
    joints). Why 10 rad/s: the safety filter lets a joint move at 1.5 rad/s, a policy's chunk follows
    demonstrations recorded at human speed (well under ~5 rad/s even for a quick wrist turn), and no
    servo on these arms turns much faster than ~10 rad/s even unloaded (XL330-M288 about 10.8 rad/s at
    5 V; STS3215 and XL430 slower): a chunk asking for more is asking for something no arm did. A unit
    error multiplies speeds by 57.3 (degrees for radians), so any real motion faster than ~0.2 rad/s
    exceeds it, and a garbage chunk (noise, wrong joint order, a wrong checkpoint) jumps far more.
    The gripper is not speed-checked by default (``gripper_max_speed_rad_s=None``): open/close is a step
    by design (the scripted expert switches the gripper target within one 1/30 s control step, and
    policies trained on such demonstrations reproduce it); its range is still checked.
(c) from present: the first due step (the one the action buffer keeps, ``t0 + k*dt`` just before or at
    the chunk's arrival) is further from the measured position than ``max_speed`` covers in
    ``(t_due - t_present) + first_step_grace_s``. The allowance is deliberately generous (0.5 s: >= 5 rad
    for the arm joints, more than any joint's whole range except a full-turn wrist_roll's): after a hold
    or a human take-over, or with a joint pressed against an obstacle, a genuine policy's first target
    can legitimately be tenths of a radian, even a radian, from where the arm is, and the safety filter
    moves there slowly anyway (1.5 rad/s, 0.35 rad from the measured position at most). A policy that
    observed the arm at ``present`` cannot mean a target more than a whole range away within half a
    second: that is the only case (c) refuses. Checking the first due step is enough: with (b) every
    later step is then within ``max_speed`` of present too (its allowance grows by ``dt`` per step).

Times are ``time.monotonic()`` seconds; joint values radians in ``hardware.arms.JOINT_NAMES`` order.
Disabling the check is explicit: ``--set plausibility.enabled=false`` (the runtime then logs a warning).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import structlog
from pydantic import BaseModel, ConfigDict, Field

from hardware.arms import JOINT_NAMES
from harmowam_ctl.types import N_JOINTS, ActionChunk

log = structlog.get_logger(__name__)

__all__ = [
    "ChunkCheck", "Implausible", "ImplausibleChunk", "PlausibilityConfig", "UNITS_HINT", "calibrated_limits",
    "check_chunk",
]

GRIPPER = JOINT_NAMES.index("gripper")
UNITS_HINT = (
    "wrong units? (a policy trained on LeRobot degrees driven as radians looks like this; "
    "check the checkpoint's units / --policy-units)"
)


class PlausibilityConfig(BaseModel):
    """The plausibility check of every action chunk (module doc), ``--set plausibility.*``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description=(
        "refuse implausible action chunks as a policy error (hold, then safe stop) instead of clamping "
        "them; false turns this guard off (explicitly: the run logs a warning)"))
    range_margin_frac: float = Field(0.10, ge=0.0, le=1.0, description=(
        "a target beyond a calibrated joint limit by more than this fraction of the joint's calibrated "
        "range is refused"))
    max_speed_rad_s: float = Field(10.0, gt=0.0, le=100.0, description=(
        "fastest plausible motion of an arm joint, rad/s: between consecutive chunk steps, and from the "
        "measured position to the first due step (with first_step_grace_s); ~7x the safety filter's speed"))
    gripper_max_speed_rad_s: float | None = Field(None, gt=0.0, le=1000.0, description=(
        "the same for the gripper (None: not speed-checked, open/close is a step by design; its range is "
        "still checked)"))
    first_step_grace_s: float = Field(0.5, ge=0.0, le=10.0, description=(
        "extra time allowed to reach the first due step from the measured position (after a hold or a "
        "take-over a genuine first target can be far from the arm)"))

    def speeds(self) -> np.ndarray:
        """Per-joint plausible speed (inf: not checked)."""
        v = np.full(N_JOINTS, float(self.max_speed_rad_s))
        v[GRIPPER] = math.inf if self.gripper_max_speed_rad_s is None else float(self.gripper_max_speed_rad_s)
        return v


@dataclass(frozen=True, slots=True)
class Implausible:
    """Why a chunk was refused. ``kind``: ``range`` (a target beyond a calibrated limit by more than the
    margin), ``step`` (consecutive steps too far apart) or ``from_present`` (the first due step out of
    reach of the measured position). ``joint``/``index``: the first offending joint (joint order) at
    ``step`` (the first offending step); ``value_rad``: its target; ``limit_rad``: the calibrated limit it
    passed (``range``), or the speed limit in rad/s (``step``, ``from_present``); ``speed_rad_s``: the
    implied speed (``step``, ``from_present``); ``others``: further joints that fail the same way.
    ``summary``: one short sentence (joint, value, limit, "wrong units?"); ``message``: the full text."""

    kind: Literal["range", "step", "from_present"]
    joint: str
    index: int
    step: int
    value_rad: float
    limit_rad: float
    speed_rad_s: float | None
    others: tuple[str, ...]
    summary: str
    message: str

    def __str__(self) -> str:
        return self.message


class ImplausibleChunk(ValueError):
    """An implausible chunk as a policy error (what ``Runtime._on_policy_error`` is given)."""

    def __init__(self, finding: Implausible) -> None:
        super().__init__(finding.message)
        self.finding = finding


def _deg(rad: float) -> str:
    return f"{math.degrees(rad):.1f} deg"


def _rad(x: float) -> str:
    return f"{x:.3f} rad"


def _finish(kind: Any, j: int, k: int, value: float, limit: float, speed: float | None, others: Sequence[int],
            short: str, detail: str) -> Implausible:
    names = tuple(JOINT_NAMES[i] for i in others)
    also = f"; also implausible: {', '.join(names)}" if names else ""
    message = (f"{short}: {UNITS_HINT}. {detail}{also}. The chunk is refused, never clamped: the arm holds "
               "(a policy error)")
    return Implausible(kind, JOINT_NAMES[j], j, k, float(value), float(limit), speed, names,
                       f"{short}: wrong units?", message)


def _six(x: Any, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim == 0:
        a = np.full(N_JOINTS, float(a))
    if a.shape != (N_JOINTS,):
        raise ValueError(f"{what}: give a number or {N_JOINTS} values ({', '.join(JOINT_NAMES)}), got shape {a.shape}")
    return a


def check_chunk(
    chunk: ActionChunk,
    present: Any,
    t_present: float | None,
    limits_lo: Any,
    limits_hi: Any,
    max_speed_rad_s: Any,
    margin_frac: float = 0.10,
    *,
    now: float | None = None,
    first_step_grace_s: float = 0.5,
) -> Implausible | None:
    """``None`` when ``chunk`` is plausible, else the first reason it is not (module doc: (a) range, (b)
    step, (c) from present, checked in that order).

    ``present``: the measured joint positions (radians, 6) read at ``t_present``; ``None`` (or a NaN entry)
    skips check (c) (for those joints). ``limits_lo``/``limits_hi``: the calibrated range (radians, 6).
    ``max_speed_rad_s``: a number or 6 values (``inf``/``None``: that joint is not speed-checked).
    ``now``: when the chunk arrived (default ``t_present``): the first due step is the last one due at or
    before ``now`` (step 0 when ``t0`` is later), as the action buffer keeps it. Pure: no state, no clock.
    """
    a = np.asarray(chunk.actions, dtype=float)
    lo, hi = _six(limits_lo, "limits_lo"), _six(limits_hi, "limits_hi")
    speeds = np.array([math.inf if v is None else float(v) for v in np.broadcast_to(
        np.asarray(max_speed_rad_s, dtype=object), (N_JOINTS,))])
    span = hi - lo
    margin = margin_frac * span
    # (a) range
    below, above = a < lo - margin, a > hi + margin
    bad = below | above
    if bad.any():
        k = int(np.flatnonzero(bad.any(axis=1))[0])
        j = int(np.flatnonzero(bad[k])[0])
        v = float(a[k, j])
        limit = float(hi[j] if above[k, j] else lo[j])
        others = [i for i in np.flatnonzero(bad.any(axis=0)) if i != j]
        short = (f"{JOINT_NAMES[j]} target {_rad(v)} ({_deg(v)}) is beyond its calibrated limit {_rad(limit)} "
                 f"({_deg(limit)}) by more than {margin_frac * 100:g} % of its range")
        detail = (f"Step {k} of {a.shape[0]}: {abs(v - limit):.3f} rad past the limit, {margin[j]:.3f} rad allowed "
                  f"(calibrated range {_rad(float(lo[j]))} .. {_rad(float(hi[j]))})")
        return _finish("range", j, k, v, limit, None, others, short, detail)
    # (b) consecutive steps
    if a.shape[0] >= 2:
        speed = np.abs(np.diff(a, axis=0)) / chunk.dt  # (H-1) x 6: into step k+1
        fast = speed > speeds
        if fast.any():
            k = int(np.flatnonzero(fast.any(axis=1))[0])
            j = int(np.flatnonzero(fast[k])[0])
            v, s = float(a[k + 1, j]), float(speed[k, j])
            others = [i for i in np.flatnonzero(fast.any(axis=0)) if i != j]
            short = (f"{JOINT_NAMES[j]} target {_rad(v)} ({_deg(v)}) at step {k + 1} jumps "
                     f"{abs(v - a[k, j]):.3f} rad in {chunk.dt:.3f} s: {s:.1f} rad/s, more than the plausible "
                     f"{speeds[j]:g} rad/s")
            detail = f"From {_rad(float(a[k, j]))} ({_deg(float(a[k, j]))}) at step {k}"
            return _finish("step", j, k + 1, v, float(speeds[j]), s, others, short, detail)
    # (c) the first due step from the measured position
    p = None if present is None else np.asarray(present, dtype=float)
    if p is not None and p.shape == (N_JOINTS,) and t_present is not None and math.isfinite(t_present):
        t_arr = t_present if now is None else now
        k0 = 0
        if t_arr > chunk.t0:
            k0 = min(int(math.floor((t_arr - chunk.t0) / chunk.dt)), a.shape[0] - 1)
        t_due = chunk.t0 + k0 * chunk.dt
        allow_s = max(t_due - t_present, 0.0) + first_step_grace_s
        dist = np.abs(a[k0] - p)
        reach = speeds * allow_s if allow_s > 0 else np.where(np.isinf(speeds), math.inf, 0.0)  # not inf * 0
        far = np.isfinite(p) & (dist > reach)
        if far.any():
            j = int(np.flatnonzero(far)[0])
            v, d = float(a[k0, j]), float(dist[j])
            others = [i for i in np.flatnonzero(far) if i != j]
            short = (f"{JOINT_NAMES[j]} first target {_rad(v)} ({_deg(v)}) is {d:.3f} rad from the measured "
                     f"{_rad(float(p[j]))}: more than {speeds[j]:g} rad/s covers in {allow_s:.2f} s")
            detail = f"Step {k0} of {a.shape[0]}, due {t_due - t_present:+.3f} s after the measurement"
            return _finish("from_present", j, k0, v, float(speeds[j]), d / allow_s if allow_s > 0 else math.inf,
                           others, short, detail)
    return None


def calibrated_limits(arm: Any, safety: Any = None) -> tuple[np.ndarray, np.ndarray, str]:
    """The arm's calibrated range in radians (lo, hi) and where it came from: the calibration of the
    ``ArmIO`` (``cal.limits_rad_arrays()``: ``range_min..range_max``, no margin), or, for a converter
    without one (test fakes), the safety filter's limits (``safety.config.lower_rad/upper_rad``)."""
    cal = getattr(arm, "cal", None)
    if hasattr(cal, "limits_rad_arrays"):
        lo, hi = cal.limits_rad_arrays()
        return np.asarray(lo, dtype=float).copy(), np.asarray(hi, dtype=float).copy(), "calibration"
    cfg = getattr(safety, "config", None)
    if cfg is not None and hasattr(cfg, "lower_rad"):
        return np.array(cfg.lower_rad, dtype=float), np.array(cfg.upper_rad, dtype=float), "safety filter"
    raise ValueError("no joint limits for the chunk plausibility check: the arm has no calibration and no "
                     "safety filter limits were given")


class ChunkCheck:
    """``check_chunk`` with a config and an arm's calibrated limits, for the runtime."""

    def __init__(self, config: PlausibilityConfig | None, limits_lo: Any, limits_hi: Any) -> None:
        self.config = config if config is not None else PlausibilityConfig()
        self.lo, self.hi = _six(limits_lo, "limits_lo"), _six(limits_hi, "limits_hi")
        self._speeds = self.config.speeds()

    @classmethod
    def for_arm(cls, config: PlausibilityConfig | None, arm: Any, safety: Any = None) -> ChunkCheck:
        lo, hi, source = calibrated_limits(arm, safety)
        check = cls(config, lo, hi)
        if not check.config.enabled:
            log.warning("the action chunk plausibility check is OFF (plausibility.enabled=false): a policy in "
                        "the wrong units is clamped and driven to the joint limits")
        elif source != "calibration":
            log.info("chunk plausibility uses the safety filter's limits (no calibration)")
        return check

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def check(self, chunk: ActionChunk, present: Any, t_present: float | None,
              now: float | None = None) -> Implausible | None:
        if not self.config.enabled:
            return None
        c = self.config
        return check_chunk(chunk, present, t_present, self.lo, self.hi, self._speeds, c.range_margin_frac,
                           now=now, first_step_grace_s=c.first_step_grace_s)
