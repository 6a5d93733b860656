"""Is a calibration file this kind of arm's? All six arm profiles share the joint names and motor ids 1-6,
so a Koch's file saved under an SO-101's name reads without an error of its own. What tells them apart:

* the folder: LeRobot keeps a file under ``robots|teleoperators/<type>/``; a file in another kind of arm's
  folder (``robots/koch_follower/x.json`` read for an so101: another servo family or role) is that arm's;
* the full-turn joints: LeRobot (and ``harmowam calibrate``) give the full-turn joints the fixed range
  0..4095: ``shoulder_pan`` and ``wrist_roll`` on a Koch, only ``wrist_roll`` on an SO arm (``MotorSpec.full_turn``).
  A file whose full-range joints are exactly another arm's full-turn joints is that arm's;
* the homing offsets: beyond what this arm's servo family holds (Feetech +-2047,
  ``calibration.model.HOMING_OFFSET_LIMIT``) but within another family's: written for that family's arm;
* the servos themselves (``calibration.verify``, ``hardware.bus``): model numbers of another arm profile
  (``hardware.arms.arms_with_models``).

``check_file(path, joints, profile)`` runs the first three on a file being read (``calibration.files``
calls it before the calibration is checked against the profile) and raises ``OtherArmCalibration`` naming
the arm the file looks like and what to do. A file that fits this arm passes untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from calibration.files import ROLE_DIRS, CalibrationFileError, ValueOutOfRange
from calibration.model import HOMING_OFFSET_LIMIT, MAX_TICK, JointCalibration, ProfileMismatch
from hardware.arms import ARMS, ArmProfile

FULL_RANGE_MIN_SPAN = MAX_TICK - 1  # 0..4095 as LeRobot writes it; 1..4095 as the emulator's centred calibration


class OtherArmCalibration(CalibrationFileError, ProfileMismatch):
    """The file is another kind of arm's calibration; ``likely``: the names of the arm profiles it fits."""

    def __init__(self, path: Path, problem: str, todo: str, likely: tuple[str, ...] = ()) -> None:
        super().__init__(path, problem, todo)
        self.likely = likely


class ImpossibleHomingOffset(OtherArmCalibration, ValueOutOfRange):
    """A homing offset this arm's servos cannot hold (another servo family's arm wrote the file)."""


def full_range_joints(joints: Mapping[str, JointCalibration]) -> frozenset[str]:
    """Joints calibrated to the whole turn (0..4095): the full-turn joints of the arm that wrote the file."""
    return frozenset(j for j, c in joints.items() if c.range_max - c.range_min >= FULL_RANGE_MIN_SPAN)


def full_turn_joints(profile: ArmProfile) -> frozenset[str]:
    return frozenset(m.joint for m in profile.motors if m.full_turn)


def _names(arms: list[ArmProfile]) -> str:
    return " or ".join(a.name for a in arms)


def _rank(arms: list[ArmProfile], joints: Mapping[str, JointCalibration], profile: ArmProfile) -> list[ArmProfile]:
    """The most likely of ``arms``: the same drive modes as the file (Koch leader: elbow inverted), then
    the same role (follower/leader) as ``profile``; all that tie for first place ([] for none)."""
    def key(a: ArmProfile) -> tuple[bool, bool]:
        same_modes = all(joints[m.joint].drive_mode == m.drive_mode for m in a.motors if m.joint in joints)
        return (not same_modes, a.role is not profile.role)

    ranked = sorted(arms, key=key)
    return [a for a in ranked if key(a) == key(ranked[0])]


def _others(profile: ArmProfile) -> list[ArmProfile]:
    return [a for a in ARMS.values() if a.joints == profile.joints and a is not profile]


def _todo(profile: ArmProfile, path: Path, likely: list[ArmProfile]) -> str:
    other = (f"if it belongs to a {_names(likely)}, use it with that arm (--arm {'|'.join(a.name for a in likely)}); "
             if likely else "")
    return (f"To drive this {profile.name}: {other}pick this arm's own file (--calibration NAME, under "
            f"{ROLE_DIRS[profile.role]}/{profile.lerobot_type}/), or calibrate it: "
            f"harmowam calibrate --arm {profile.name} --port <PORT> --calibration {path.stem}")


def folder_arms(path: Path, profile: ArmProfile) -> list[ArmProfile]:
    """The arms whose LeRobot folder ``path`` is in, when that folder is another servo family's or role's
    (so100's and so101's folders are interchangeable: same servos, same calibration); [] otherwise."""
    kind, role_dir = path.parent.name, path.parent.parent.name
    if kind in (profile.lerobot_type, *profile.legacy_lerobot_types):
        return []
    owners = [a for a in ARMS.values() if kind in (a.lerobot_type, *a.legacy_lerobot_types)
              and ROLE_DIRS[a.role] == role_dir]
    if any(a.family is profile.family and a.role is profile.role for a in owners):
        return []
    return owners


def check_file(path: Path, joints: Mapping[str, JointCalibration], profile: ArmProfile) -> None:
    """Raise ``OtherArmCalibration`` when the file read from ``path`` is another kind of arm's (module doc)."""
    owners = folder_arms(path, profile)
    if owners:
        raise OtherArmCalibration(
            path, f"it is in {path.parent.parent.name}/{path.parent.name}/, LeRobot's folder for a {_names(owners)} "
            f"calibration: it is that arm's file, not a {profile.name}'s ({ROLE_DIRS[profile.role]}/{profile.lerobot_type}/)",
            _todo(profile, path, owners), tuple(a.name for a in owners))
    _check_full_turn(path, joints, profile)
    _check_offsets(path, joints, profile)


def _check_full_turn(path: Path, joints: Mapping[str, JointCalibration], profile: ArmProfile) -> None:
    found, own = full_range_joints(joints), full_turn_joints(profile)
    if found == own:
        return
    likely = _rank([a for a in _others(profile) if full_turn_joints(a) == found], joints, profile)
    if not likely:
        return  # no arm's pattern: the range checks of the file and the servos speak for themselves
    raise OtherArmCalibration(
        path, f"its full-turn joints (range 0..4095) are {', '.join(sorted(found))}, as on a {_names(likely)}; a "
        f"{profile.name} calibrates only {', '.join(sorted(own)) or 'no joint'} to the full turn: this looks like the "
        f"calibration of a {_names(likely)}, not of this arm", _todo(profile, path, likely), tuple(a.name for a in likely))


def _check_offsets(path: Path, joints: Mapping[str, JointCalibration], profile: ArmProfile) -> None:
    limit = HOMING_OFFSET_LIMIT[profile.family]
    bad = [(j, c.homing_offset) for j, c in joints.items() if abs(c.homing_offset) > limit]
    if not bad:
        return
    worst = max(abs(v) for _, v in bad)
    holders = [a for a in _others(profile) if a.family is not profile.family and worst <= HOMING_OFFSET_LIMIT[a.family]]
    if not holders:
        return  # no servo holds it: calibration.model's own range check names the value
    likely = _rank(holders, joints, profile)
    family = likely[0].family.value
    joint, value = bad[0]
    raise ImpossibleHomingOffset(
        path, f"joint {joint!r}: homing_offset {value} is outside -{limit}..{limit}, all that the "
        f"{profile.family.value} servos of a {profile.name} hold; {family} servos hold it: this looks like the "
        f"calibration of a {_names(likely)}", _todo(profile, path, likely), tuple(a.name for a in likely))
