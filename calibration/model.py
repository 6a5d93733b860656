"""Calibration model: servo ticks <-> joint radians, per arm, LeRobot-compatible.

What a calibration holds (per joint, exactly LeRobot's ``MotorCalibration`` fields)
    ``id``, ``drive_mode`` (0/1), ``homing_offset``, ``range_min``, ``range_max``. The homing offset and
    the drive mode live in the servos (EEPROM); the ticks this module converts are ``Present_Position``
    values as the bus returns them, i.e. after the servo applied both. ``range_min..range_max`` is the
    calibrated range in those ticks.

The convention
    ``radians = (ticks - mid) * 2*pi/4096`` with ``mid = (range_min + range_max) / 2``: zero is the middle
    of the calibrated range, 4096 ticks are one true turn. This is LeRobot's ``MotorNormMode.DEGREES``
    (``degrees = (ticks - mid) * 360/4095``) up to one scale factor, see below.

``drive_mode`` is *not* applied here (decision, deliberate)
    LeRobot 0.6.1's DEGREES normalisation ignores ``drive_mode``: on Dynamixel the servo applies it (the
    ``Drive_Mode`` register reverses ``Present_Position`` in firmware; LeRobot's Koch leader writes it
    for ``elbow_flex`` and its Dynamixel bus has ``apply_drive_mode = False``), and LeRobot's Feetech
    calibrations always hold ``drive_mode = 0``. Negating again in software would turn the joint the
    wrong way twice over and make our angles disagree in sign with LeRobot's degrees. So a reading is
    converted the same way whatever ``drive_mode`` says; the runtime must make sure a Dynamixel
    servo's ``Drive_Mode`` register holds the calibration's value (``for_profile`` warns about
    ``drive_mode = 1`` on a Feetech joint, which has no such register).

4096 versus LeRobot's 4095
    LeRobot divides by ``resolution - 1`` = 4095, so its "degrees" are 4096/4095 (0.024 %) larger than
    true degrees. We keep true radians (so they agree with the MuJoCo model and the URDF limits) and
    convert exactly with ``radians_to_lerobot_degrees`` / ``lerobot_degrees_to_radians``:
    ``lerobot_degrees = (radians / (2*pi/4096)) * 360/4095`` - the tick offset recovered, then
    LeRobot's own formula - so a dataset in our radians maps onto LeRobot's numbers exactly (to float
    rounding), not merely approximately via ``np.degrees``.

Goals
    ``radians_to_goals`` rounds to whole ticks and clamps into ``range_min..range_max``: a goal never
    leaves the calibrated range (which LeRobot also writes into the servos' position limits).
    Readings are not clamped (a reading outside the range is a fact the safety filter must see).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np
import structlog

from hardware.arms import JOINT_NAMES
from hardware.tables import Family

if TYPE_CHECKING:
    from hardware.arms import ArmProfile

log = structlog.get_logger(__name__)

TICKS_PER_TURN = 4096
MAX_TICK = TICKS_PER_TURN - 1  # 4095: positions and ranges live in 0..4095
RAD_PER_TICK = 2.0 * math.pi / TICKS_PER_TURN
CENTER_TICK = TICKS_PER_TURN // 2  # 2048: where emulated servos start and the MuJoCo joint angle 0
LEROBOT_MAX_RES = TICKS_PER_TURN - 1  # LeRobot's DEGREES divisor: model resolution - 1
# Homing_Offset limits: Feetech sign-magnitude with sign bit 11; Dynamixel X e-Manual: +-1,044,479.
HOMING_OFFSET_LIMIT = {Family.FEETECH: 2047, Family.DYNAMIXEL: 1_044_479}
FIELDS = ("id", "drive_mode", "homing_offset", "range_min", "range_max")


class CalibrationError(Exception):
    """Base of every calibration problem; the message says what is wrong and what to do."""


class InvalidCalibration(CalibrationError, ValueError):
    """A value is impossible (out of range, wrong type); ``joint`` and ``field`` name it."""

    def __init__(self, message: str, joint: str = "", field: str = "") -> None:
        super().__init__(message)
        self.joint = joint
        self.field = field


class ProfileMismatch(CalibrationError):
    """The calibration does not belong to this arm (joint set or motor ids differ); ``joint`` names it."""

    def __init__(self, message: str, joint: str = "") -> None:
        super().__init__(message)
        self.joint = joint


def _label(joint: str, id_: object) -> str:
    return f"joint {joint!r}" if joint else f"motor id {id_}"


@dataclass(frozen=True, slots=True)
class JointCalibration:
    """One joint's calibration (LeRobot's ``MotorCalibration`` fields plus the joint name for messages)."""

    id: int
    drive_mode: int
    homing_offset: int
    range_min: int
    range_max: int
    joint: str = ""  # filled in by ArmCalibration; only used to name the joint in errors

    def __post_init__(self) -> None:
        who = _label(self.joint, self.id)
        for f in FIELDS:
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise InvalidCalibration(
                    f"{who}: {f} must be an integer, not {type(v).__name__} {v!r}", self.joint, f
                )
            object.__setattr__(self, f, int(v))
        if not 1 <= self.id <= 253:
            raise InvalidCalibration(f"{who}: id {self.id} is outside 1..253", self.joint, "id")
        if self.drive_mode not in (0, 1):
            raise InvalidCalibration(
                f"{who}: drive_mode must be 0 (normal) or 1 (inverted), not {self.drive_mode}",
                self.joint, "drive_mode",
            )
        for f in ("range_min", "range_max"):
            v = getattr(self, f)
            if not 0 <= v <= MAX_TICK:
                raise InvalidCalibration(f"{who}: {f} {v} is outside 0..{MAX_TICK}", self.joint, f)
        if self.range_min >= self.range_max:
            raise InvalidCalibration(
                f"{who}: range_min {self.range_min} must be below range_max {self.range_max} "
                "(recalibrate and move the joint through its whole range)",
                self.joint, "range_min",
            )

    @property
    def mid(self) -> float:
        """The tick at 0 rad: the middle of the calibrated range (may be a half tick)."""
        return (self.range_min + self.range_max) / 2

    def to_radians(self, ticks: float) -> float:
        return (ticks - self.mid) * RAD_PER_TICK

    def to_ticks(self, rad: float) -> float:
        """Exact inverse of ``to_radians`` (not rounded, not clamped)."""
        return self.mid + rad / RAD_PER_TICK

    def goal(self, rad: float) -> int:
        """Whole ticks for ``rad``, clamped into the calibrated range."""
        if not math.isfinite(rad):
            raise ValueError(f"{_label(self.joint, self.id)}: goal {rad!r} rad is not a finite number")
        return int(min(self.range_max, max(self.range_min, round(self.to_ticks(rad)))))

    @property
    def limits_rad(self) -> tuple[float, float]:
        return self.to_radians(self.range_min), self.to_radians(self.range_max)

    def as_dict(self) -> dict[str, int]:
        """LeRobot's JSON entry, fields in LeRobot's order."""
        return {f: getattr(self, f) for f in FIELDS}


class ArmCalibration(Mapping[str, JointCalibration]):
    """An arm's calibration: joint name -> ``JointCalibration``, in ``hardware.arms.JOINT_NAMES`` order.

    Immutable. ``source`` is the file it was read from (``None`` if built in code); equality compares
    the joints only.
    """

    __slots__ = ("_joints", "_ids", "_mid", "_lo", "_hi", "_index", "source")

    def __init__(self, joints: Mapping[str, JointCalibration], source: Path | None = None) -> None:
        missing = [j for j in JOINT_NAMES if j not in joints]
        unknown = [j for j in joints if j not in JOINT_NAMES]
        if unknown:
            raise ProfileMismatch(
                f"unknown joint {unknown[0]!r}; joints are: {', '.join(JOINT_NAMES)}", unknown[0]
            )
        if missing:
            raise ProfileMismatch(
                f"joint {missing[0]!r} has no calibration (need all of: {', '.join(JOINT_NAMES)})", missing[0]
            )
        ordered: dict[str, JointCalibration] = {}
        for name in JOINT_NAMES:
            jc = joints[name]
            if not isinstance(jc, JointCalibration):
                raise InvalidCalibration(
                    f"joint {name!r}: expected a JointCalibration, not {type(jc).__name__}", name
                )
            if jc.joint and jc.joint != name:
                raise ProfileMismatch(f"calibration of joint {jc.joint!r} was given for joint {name!r}", name)
            ordered[name] = jc if jc.joint == name else replace(jc, joint=name)
        seen: dict[int, str] = {}
        for name, jc in ordered.items():
            if jc.id in seen:
                raise ProfileMismatch(
                    f"joints {seen[jc.id]!r} and {name!r} both have motor id {jc.id}; every id must be unique",
                    name,
                )
            seen[jc.id] = name
        self._joints = MappingProxyType(ordered)
        self._ids = tuple(jc.id for jc in ordered.values())
        self._index = {jc.id: i for i, jc in enumerate(ordered.values())}
        self._mid = np.array([jc.mid for jc in ordered.values()], dtype=float)
        self._lo = np.array([jc.range_min for jc in ordered.values()], dtype=float)
        self._hi = np.array([jc.range_max for jc in ordered.values()], dtype=float)
        self.source = source

    # --- Mapping ------------------------------------------------------------------------------------
    def __getitem__(self, joint: str) -> JointCalibration:
        return self._joints[joint]

    def __iter__(self) -> Iterator[str]:
        return iter(self._joints)

    def __len__(self) -> int:
        return len(self._joints)

    def __repr__(self) -> str:
        body = ", ".join(
            f"{n}=({c.id}, dm={c.drive_mode}, off={c.homing_offset}, {c.range_min}..{c.range_max})"
            for n, c in self._joints.items()
        )
        return f"ArmCalibration({body})"

    @property
    def ids(self) -> tuple[int, ...]:
        return self._ids

    def joint(self, key: str | int) -> JointCalibration:
        """By joint name or motor id."""
        if isinstance(key, str):
            if key not in self._joints:
                raise KeyError(f"no joint {key!r}; joints are: {', '.join(JOINT_NAMES)}")
            return self._joints[key]
        if key not in self._index:
            raise KeyError(f"no motor id {key}; ids are: {', '.join(map(str, self._ids))}")
        return self._joints[JOINT_NAMES[self._index[key]]]

    def as_dict(self) -> dict[str, dict[str, int]]:
        """The LeRobot JSON document (joint order ``JOINT_NAMES``)."""
        return {n: c.as_dict() for n, c in self._joints.items()}

    # --- checks against an arm ----------------------------------------------------------------------
    def for_profile(self, profile: ArmProfile) -> ArmCalibration:
        """Check this calibration fits ``profile`` (joints, ids, homing offsets); return ``self``."""
        for m in profile.motors:
            if m.joint not in self._joints:
                raise ProfileMismatch(
                    f"{profile.name} has joint {m.joint!r} but the calibration does not; recalibrate "
                    f"this arm (harmowam calibrate --arm {profile.name} ...)", m.joint,
                )
            jc = self._joints[m.joint]
            if jc.id != m.id:
                raise ProfileMismatch(
                    f"joint {m.joint!r} has motor id {jc.id} in the calibration but id {m.id} on a "
                    f"{profile.name}; is this the calibration of another arm? Recalibrate, or pick the "
                    "right --arm/--calibration", m.joint,
                )
            limit = HOMING_OFFSET_LIMIT[profile.family]
            if abs(jc.homing_offset) > limit:
                raise InvalidCalibration(
                    f"joint {m.joint!r}: homing_offset {jc.homing_offset} is outside -{limit}..{limit} "
                    f"for {profile.family.value} servos; recalibrate with the joint at mid-range",
                    m.joint, "homing_offset",
                )
            if m.model.resolution != TICKS_PER_TURN:
                raise InvalidCalibration(
                    f"joint {m.joint!r}: servo {m.model_name} has {m.model.resolution} ticks per turn; "
                    f"this calibration model supports {TICKS_PER_TURN}", m.joint,
                )
            if profile.family is Family.FEETECH and jc.drive_mode == 1:
                log.warning(
                    "calibration.drive_mode_ignored", arm=profile.name, joint=m.joint,
                    hint="Feetech servos have no Drive_Mode register; positions are not inverted "
                    "(LeRobot's degrees ignore it too)",
                )
        extra = [j for j in self._joints if j not in profile.joints]
        if extra:
            raise ProfileMismatch(f"joint {extra[0]!r} is not part of a {profile.name}", extra[0])
        return self

    # --- conversions --------------------------------------------------------------------------------
    def to_radians(self, joint: str | int, ticks: float) -> float:
        return self.joint(joint).to_radians(ticks)

    def to_ticks(self, joint: str | int, rad: float) -> float:
        """Exact inverse of ``to_radians`` (not rounded, not clamped); see ``radians_to_goals``."""
        return self.joint(joint).to_ticks(rad)

    def positions_to_radians(self, ticks_by_id: Mapping[int, float]) -> np.ndarray:
        """Present positions keyed by motor id -> radians, shape (6,), ``JOINT_NAMES`` order."""
        missing = [i for i in self._ids if i not in ticks_by_id]
        if missing:
            raise ValueError(
                f"positions lack motor id {missing[0]} ({JOINT_NAMES[self._index[missing[0]]]}); "
                "check the bus read covered every servo"
            )
        unknown = [i for i in ticks_by_id if i not in self._index]
        if unknown:
            raise ValueError(f"positions hold motor id {unknown[0]}, which this calibration does not know")
        ticks = np.array([ticks_by_id[i] for i in self._ids], dtype=float)
        return (ticks - self._mid) * RAD_PER_TICK

    def radians_to_goals(self, rad: np.ndarray | Sequence[float]) -> dict[int, int]:
        """Radians (6,), ``JOINT_NAMES`` order -> goal ticks by motor id, rounded, clamped to the range."""
        r = np.asarray(rad, dtype=float)
        if r.shape != (len(JOINT_NAMES),):
            raise ValueError(
                f"expected {len(JOINT_NAMES)} joint angles ({', '.join(JOINT_NAMES)}), got shape {r.shape}"
            )
        bad = np.flatnonzero(~np.isfinite(r))
        if bad.size:
            raise ValueError(f"goal for {JOINT_NAMES[bad[0]]} is {float(r[bad[0]])!r}, not a finite angle")
        ticks = np.clip(np.rint(self._mid + r / RAD_PER_TICK), self._lo, self._hi)
        return {i: int(t) for i, t in zip(self._ids, ticks)}

    def limits_rad(self) -> dict[str, tuple[float, float]]:
        """Per joint, the calibrated range in radians (lo, hi), ``JOINT_NAMES`` order."""
        return {n: c.limits_rad for n, c in self._joints.items()}

    def limits_rad_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``limits_rad`` as two arrays (lo, hi) of shape (6,), for vectorised clamping."""
        return (self._lo - self._mid) * RAD_PER_TICK, (self._hi - self._mid) * RAD_PER_TICK

    # --- emulator calibrations ----------------------------------------------------------------------
    @classmethod
    def centered(cls, profile: ArmProfile, *, drive_modes: bool = True) -> ArmCalibration:
        """The calibration of an emulated ``profile`` whose servos read 2048 at joint angle 0.

        Homing offset 0; every range symmetric around 2048 (so ``mid`` is 2048 exactly) and just wide
        enough to cover the profile's ``limits_rad``; full-turn joints get 1..4095, the widest range
        with mid 2048 (a real calibration gives them 0..4095, mid 2047.5). ``drive_modes``: copy the
        profile's drive modes (they do not change the conversion, see the module doc).
        """
        joints = {}
        for m in profile.motors:
            if m.full_turn:
                lo, hi = 1, MAX_TICK
            else:
                half = math.ceil(max(abs(a) for a in m.limits_rad) / RAD_PER_TICK - 1e-9)
                half = min(half, CENTER_TICK - 1)
                lo, hi = CENTER_TICK - half, CENTER_TICK + half
            joints[m.joint] = JointCalibration(
                id=m.id, drive_mode=m.drive_mode if drive_modes else 0, homing_offset=0,
                range_min=lo, range_max=hi, joint=m.joint,
            )
        return cls(joints).for_profile(profile)

    @classmethod
    def simulated(cls, profile: ArmProfile) -> ArmCalibration:
        """The MuJoCo SO-101 emulator's calibration (``hardware/sim/arm.py``: tick 2048 = angle 0,
        direction +1, no homing offset): ``centered`` with drive mode 0, so ``to_radians`` equals
        ``hardware.sim.arm.ticks_to_rad``."""
        return cls.centered(profile, drive_modes=False)


def radians_to_lerobot_degrees(rad: float | np.ndarray) -> float | np.ndarray:
    """Our radians -> LeRobot 0.6.1 DEGREES values (``(ticks - mid) * 360/4095``), exactly.

    Not ``np.degrees``: LeRobot's degrees are 4096/4095 times true degrees.
    """
    if isinstance(rad, np.ndarray):
        return (rad.astype(float) / RAD_PER_TICK) * 360.0 / LEROBOT_MAX_RES
    return (float(rad) / RAD_PER_TICK) * 360.0 / LEROBOT_MAX_RES


def lerobot_degrees_to_radians(deg: float | np.ndarray) -> float | np.ndarray:
    """LeRobot 0.6.1 DEGREES values -> our radians; inverse of ``radians_to_lerobot_degrees``."""
    if isinstance(deg, np.ndarray):
        return (deg.astype(float) * LEROBOT_MAX_RES / 360.0) * RAD_PER_TICK
    return (float(deg) * LEROBOT_MAX_RES / 360.0) * RAD_PER_TICK
