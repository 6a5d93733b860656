"""Joint units at the file boundaries: LeRobot's normalisations <-> the project's radians.

Inside the code every joint value is radians (``calibration.model``: zero at the middle of the calibrated
range, 4096 ticks a turn). Files speak the ecosystem's units: what ``lerobot-record`` writes for the arm.
``JointUnits`` says, for one file (a dataset's ``observation.state``/``action``, a checkpoint's inputs and
outputs), which value each joint holds and in which order:

``rad``
    our radians (datasets written by harmowam before LeRobot units, marked ``"units": "rad"``).
``deg``
    LeRobot's ``MotorNormMode.DEGREES``: ``(ticks - mid) * 360 / 4095`` (4095 = resolution - 1, so these
    "degrees" are 4096/4095 times true degrees); SO-100/SO-101 arm joints since LeRobot 0.4.4.
``range_0_100``
    ``MotorNormMode.RANGE_0_100``: ``(ticks - range_min) / (range_max - range_min) * 100``; every gripper.
``range_m100_100``
    ``MotorNormMode.RANGE_M100_100``: ``(ticks - range_min) / (range_max - range_min) * 200 - 100``; Koch
    arm joints (LeRobot's ``KochFollowerConfig.use_degrees`` is False by default) and the Koch leader.

Every one of them is affine in our radians (``value = a * rad + b``): ``deg`` needs nothing but the
constant; the two ranges need the arm's calibrated range (``range_max - range_min``), so converting a
gripper takes the calibration file of the arm that is driven (LeRobot normalises with the same file).
LeRobot applies ``drive_mode`` to the range modes on Feetech buses only (``apply_drive_mode``): value
becomes ``100 - value`` / ``-value``; its Dynamixel bus leaves it to the servo, and ``deg`` ignores it.
LeRobot clamps *readings* into the calibrated range before a range normalisation; ``to_units`` does not
(a reading outside the range is a fact; it is at most a few ticks).

``lerobot_units(robot_type)`` gives LeRobot 0.6.1's default for an arm type (``so_follower`` and its
older names, ``so_leader``, ``koch_follower``, ``koch_leader``); ``dataset_units(info)`` reads a
dataset's ``meta/info.json``; ``parse_units`` reads the ``--policy-units``/``--dataset-units`` shorthand
(``rad``, ``lerobot``, ``lerobot-degrees``, ``lerobot-range``) or the JSON a checkpoint stores
(``JointUnits.as_json``). ``UnitsConverter(units, calibration, family)`` converts whole (..., 6) arrays in
both directions and maps the file's joint order onto ``hardware.arms.JOINT_NAMES``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from calibration.model import LEROBOT_MAX_RES, RAD_PER_TICK, ArmCalibration
from hardware.arms import JOINT_NAMES
from hardware.tables import Family

RAD, DEG, RANGE_0_100, RANGE_M100_100 = "rad", "deg", "range_0_100", "range_m100_100"
KINDS = (RAD, DEG, RANGE_0_100, RANGE_M100_100)
FEATURE_NAMES = tuple(f"{j}.pos" for j in JOINT_NAMES)  # LeRobot's feature names, JOINT_NAMES order

# LeRobot 0.6.1 robot types (``Robot.name`` / ``Teleoperator.name``, and the config names that map onto them)
SO_TYPES = ("so_follower", "so100_follower", "so101_follower", "so_leader", "so100_leader", "so101_leader")
KOCH_TYPES = ("koch_follower", "koch_leader")
CANONICAL_TYPE = {"so100_follower": "so_follower", "so101_follower": "so_follower",
                  "so100_leader": "so_leader", "so101_leader": "so_leader"}
SHORTHANDS = ("rad", "lerobot", "lerobot-degrees", "lerobot-range")

FIX = ("declare them: --policy-units lerobot (LeRobot's default for the arm: SO degrees, Koch -100..100, "
       "grippers 0..100), lerobot-degrees, lerobot-range or rad")


class UnitsError(ValueError):
    """Units that are unknown, malformed, or do not fit the arm; the message says what to do."""


@dataclass(frozen=True, slots=True)
class JointUnits:
    """Per joint (in the file's order): its LeRobot feature name and its unit kind; ``robot_type`` is the
    LeRobot arm type the values were recorded on (``None``: not known)."""

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    robot_type: str | None = None

    def __post_init__(self) -> None:
        if len(self.names) != len(self.kinds):
            raise UnitsError(f"{len(self.names)} joint names but {len(self.kinds)} unit kinds")
        bad = [k for k in self.kinds if k not in KINDS]
        if bad:
            raise UnitsError(f"unknown unit {bad[0]!r} (units: {', '.join(KINDS)})")

    @property
    def is_radians(self) -> bool:
        return all(k == RAD for k in self.kinds)

    def describe(self) -> str:
        """Short text for messages: 'LeRobot so_follower (deg x5, range_0_100 gripper)'."""
        if self.is_radians:
            return "radians"
        parts = [f"{n.removesuffix('.pos')} {k}" for n, k in zip(self.names, self.kinds)]
        return f"LeRobot {self.robot_type or 'arm'} units ({', '.join(parts)})"

    def as_json(self) -> dict[str, Any]:
        return {"robot_type": self.robot_type, "names": list(self.names), "kinds": list(self.kinds)}

    def order(self) -> tuple[int, ...]:
        """For each of the file's joints its index in ``JOINT_NAMES``; ``UnitsError`` when the names are not
        the six joints (count, a name, a duplicate)."""
        if len(self.names) != len(JOINT_NAMES):
            raise UnitsError(
                f"the file has {len(self.names)} joints ({', '.join(self.names)}); the arm has {len(JOINT_NAMES)} "
                f"({', '.join(FEATURE_NAMES)}): it was made for another robot"
            )
        idx = []
        for n in self.names:
            joint = n.removesuffix(".pos")
            if joint not in JOINT_NAMES:
                raise UnitsError(f"joint {n!r} is not one of this arm's ({', '.join(FEATURE_NAMES)}): made for another robot?")
            idx.append(JOINT_NAMES.index(joint))
        if len(set(idx)) != len(idx):
            raise UnitsError(f"a joint is named twice in {list(self.names)}")
        return tuple(idx)


def radians(names: Sequence[str] = FEATURE_NAMES, robot_type: str | None = None) -> JointUnits:
    return JointUnits(tuple(names), (RAD,) * len(names), robot_type)


def canonical_type(robot_type: str | None) -> str | None:
    return CANONICAL_TYPE.get(robot_type, robot_type) if robot_type else None


def lerobot_units(robot_type: str, names: Sequence[str] = FEATURE_NAMES, *, body: str | None = None) -> JointUnits:
    """LeRobot 0.6.1's units for ``robot_type`` (its defaults; ``body`` overrides the arm joints' kind, e.g.
    ``deg`` for a Koch recorded with ``use_degrees=True``). ``UnitsError`` for a type it does not know."""
    if body is None:
        if robot_type in SO_TYPES:
            body = DEG
        elif robot_type in KOCH_TYPES:
            body = RANGE_M100_100
        else:
            raise UnitsError(
                f"robot type {robot_type!r} is not an SO-100/SO-101 or Koch arm ({', '.join(SO_TYPES + KOCH_TYPES)}): "
                f"its units are not known; {FIX}"
            )
    kinds = tuple(RANGE_0_100 if n.removesuffix(".pos") == "gripper" else body for n in names)
    return JointUnits(tuple(names), kinds, canonical_type(robot_type))


def dataset_units(info: Mapping[str, Any], key: str = "action") -> JointUnits:
    """The units of ``key`` (``action`` or ``observation.state``) in a dataset's ``meta/info.json``:
    ``"units": "rad"`` on the feature (harmowam's older datasets) -> radians; otherwise LeRobot's units
    for the dataset's ``robot_type``. ``UnitsError`` naming the fix when they cannot be told."""
    feat = (info.get("features") or {}).get(key)
    if not isinstance(feat, Mapping):
        raise UnitsError(f"the dataset has no {key!r} feature")
    names = feature_names(info, key)
    robot_type = info.get("robot_type")
    if feat.get("units") == RAD:
        return radians(names, canonical_type(robot_type))
    if feat.get("units") not in (None, ""):
        raise UnitsError(f"{key} declares units {feat.get('units')!r}, which this program does not know; {FIX}")
    return lerobot_units(str(robot_type), names) if robot_type else lerobot_units("", names)


def feature_names(info: Mapping[str, Any], key: str) -> tuple[str, ...]:
    """The joint names of ``key`` in a dataset's ``meta/info.json`` (LeRobot's ``<joint>.pos``); a feature
    without names gets ``FEATURE_NAMES`` when it has six values. ``UnitsError`` otherwise."""
    feat = (info.get("features") or {}).get(key)
    if not isinstance(feat, Mapping):
        raise UnitsError(f"the dataset has no {key!r} feature")
    names = feat.get("names")
    if isinstance(names, Mapping):  # LeRobot v2 style {"motors": [...]}
        names = next(iter(names.values()), None)
    if not isinstance(names, Sequence) or isinstance(names, str) or not names:
        shape = list(feat.get("shape") or ())
        n = shape[0] if shape else 0
        if n != len(FEATURE_NAMES):
            raise UnitsError(f"{key} has {n} values and no joint names; the arm has {len(FEATURE_NAMES)} joints")
        return FEATURE_NAMES
    return tuple(str(n) for n in names)


def lerobot_converter(profile: Any, calibration: ArmCalibration, names: Sequence[str] = FEATURE_NAMES) -> UnitsConverter:
    """Radians <-> what ``lerobot-record`` writes for ``profile`` (an ``ArmProfile``), with ``calibration``."""
    return UnitsConverter(lerobot_units(profile.lerobot_type, names), calibration, profile.family)


def parse_units(value: Any, *, robot_type: str | None, names: Sequence[str] = FEATURE_NAMES) -> JointUnits:
    """``JointUnits`` from a shorthand (``SHORTHANDS``) or the JSON of ``JointUnits.as_json``."""
    if isinstance(value, JointUnits):
        return value
    if isinstance(value, Mapping):
        try:
            return JointUnits(tuple(value["names"]), tuple(value["kinds"]), value.get("robot_type"))
        except (KeyError, TypeError) as e:
            raise UnitsError(f"units {dict(value)!r}: expected names and kinds ({e})") from None
    if value == "rad":
        return radians(names, robot_type)
    if value in ("lerobot", "lerobot-degrees", "lerobot-range"):
        if robot_type is None:
            raise UnitsError(f"--policy-units {value}: the arm type is not known, so LeRobot's units for it are not")
        body = {"lerobot": None, "lerobot-degrees": DEG, "lerobot-range": RANGE_M100_100}[value]
        return lerobot_units(robot_type, names, body=body)
    raise UnitsError(f"units {value!r}: use one of {', '.join(SHORTHANDS)}")


class UnitsConverter:
    """Radians (``JOINT_NAMES`` order) <-> a file's units (its own joint order), for one calibrated arm.

    ``to_units(rad)`` and ``to_radians(values)`` take arrays whose last axis is the 6 joints.
    """

    def __init__(self, units: JointUnits, calibration: ArmCalibration, family: Family) -> None:
        self.units, self.calibration, self.family = units, calibration, family
        self._order = np.array(units.order(), dtype=int)  # file position -> JOINT_NAMES index
        a = np.empty(len(JOINT_NAMES))
        b = np.empty(len(JOINT_NAMES))
        for pos, (joint_idx, kind) in enumerate(zip(self._order, units.kinds)):
            jc = calibration[JOINT_NAMES[joint_idx]]
            width = float(jc.range_max - jc.range_min)
            inverted = family is Family.FEETECH and jc.drive_mode == 1
            if kind == RAD:
                a[pos], b[pos] = 1.0, 0.0
            elif kind == DEG:
                a[pos], b[pos] = 360.0 / (RAD_PER_TICK * LEROBOT_MAX_RES), 0.0
            elif kind == RANGE_0_100:
                a[pos], b[pos] = 100.0 / (RAD_PER_TICK * width), 100.0 * (jc.mid - jc.range_min) / width
                if inverted:
                    a[pos], b[pos] = -a[pos], 100.0 - b[pos]
            else:  # RANGE_M100_100
                a[pos], b[pos] = 200.0 / (RAD_PER_TICK * width), 200.0 * (jc.mid - jc.range_min) / width - 100.0
                if inverted:
                    a[pos], b[pos] = -a[pos], -b[pos]
        self._a, self._b = a, b

    @property
    def slope(self) -> np.ndarray:
        """File units per radian for each of the file's joints (its order): ``value = slope * rad + offset``."""
        return self._a.copy()

    @property
    def identity(self) -> bool:
        return bool(np.all(self._a == 1.0) and np.all(self._b == 0.0) and np.all(self._order == np.arange(len(JOINT_NAMES))))

    def to_units(self, rad: np.ndarray) -> np.ndarray:
        r = np.asarray(rad, dtype=float)
        return r[..., self._order] * self._a + self._b

    def to_radians(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values, dtype=float)
        out = np.empty(v.shape, dtype=float)
        out[..., self._order] = (v - self._b) / self._a
        return out


def check_fits(units: JointUnits, arm_lerobot_type: str, legacy_types: Sequence[str] = ()) -> None:
    """``UnitsError`` when ``units`` were recorded on another kind of arm than the one to be driven (the joint
    names and count are checked by ``JointUnits.order``)."""
    units.order()
    have = canonical_type(units.robot_type)
    if have is None:
        return
    mine = {canonical_type(arm_lerobot_type), *(canonical_type(t) for t in legacy_types)}
    family = lambda t: "so" if t in SO_TYPES else "koch" if t in KOCH_TYPES else t  # noqa: E731
    if family(have) not in {family(t) for t in mine}:
        raise UnitsError(
            f"the policy was trained on a {have} and this arm is a {arm_lerobot_type}: joint geometry and "
            "units differ; train on data from this kind of arm"
        )
