"""Calibration files where LeRobot keeps them, in LeRobot's format, read strictly and written atomically.

Location (LeRobot 0.6.1, ``lerobot/utils/constants.py``, resolved at call time so tests can patch it)
    root = ``$HF_LEROBOT_CALIBRATION``, else ``$HF_LEROBOT_HOME/calibration``, else
    ``$HF_HOME/lerobot/calibration``, else ``$XDG_CACHE_HOME/huggingface/lerobot/calibration``, else
    ``~/.cache/huggingface/lerobot/calibration``. Followers: ``root/robots/<type>/<name>.json``; leaders:
    ``root/teleoperators/<type>/<name>.json``; ``type`` is ``profile.lerobot_type`` (``so_follower``...).
    Reading falls back to ``profile.legacy_lerobot_types`` (pre-0.4.3 folders such as
    ``so101_follower``); the file used is logged and kept in ``ArmCalibration.source``. Writing always
    goes to the current folder.

Format
    What LeRobot's ``Robot._save_calibration`` writes (draccus JSON, indent 4, no trailing newline):
    ``{"shoulder_pan": {"id": 1, "drive_mode": 0, "homing_offset": -1234, "range_min": 812,
    "range_max": 3301}, ...}``. Byte-identical output is tested against LeRobot's own writer.

Reading is strict: every joint of the profile exactly once, the five integer fields, ids matching the
profile, values in range. Each problem has its own ``CalibrationFileError`` subclass whose message names
the file, says what is wrong and what to do.

Writing: temp file in the same folder + fsync + ``os.replace`` (never a half-written file); an existing
file with different content is first copied to ``<name>.json.<YYYYmmdd-HHMMSS>.bak`` next to it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import structlog

from calibration.model import (
    FIELDS,
    ArmCalibration,
    CalibrationError,
    InvalidCalibration,
    JointCalibration,
    ProfileMismatch,
)
from hardware.arms import ArmProfile, Role

log = structlog.get_logger(__name__)

ROLE_DIRS = {Role.FOLLOWER: "robots", Role.LEADER: "teleoperators"}  # LeRobot's ROBOTS / TELEOPERATORS


# --- errors -----------------------------------------------------------------------------------------
class CalibrationNotFound(CalibrationError, FileNotFoundError):
    """No calibration file for this arm and name; ``tried`` lists every path looked at."""

    def __init__(self, message: str, tried: list[Path]) -> None:
        super().__init__(message)
        self.tried = tried


class InvalidCalibrationName(CalibrationError, ValueError):
    """The calibration name cannot be a file name."""


class CalibrationFileError(CalibrationError):
    """A calibration file that cannot be used; ``path`` is the file."""

    def __init__(self, path: Path, problem: str, todo: str) -> None:
        super().__init__(f"calibration file {path}: {problem}. {todo}")
        self.path = path


class EmptyCalibrationFile(CalibrationFileError):
    pass


class TruncatedCalibrationFile(CalibrationFileError):
    pass


class CorruptCalibrationFile(CalibrationFileError):
    """Not JSON, not UTF-8, or not a JSON object of joint entries."""


class MalformedJointEntry(CalibrationFileError, InvalidCalibration):
    """A joint's entry is not an object with exactly the five LeRobot fields."""


class BadFieldType(CalibrationFileError, InvalidCalibration):
    pass


class ValueOutOfRange(CalibrationFileError, InvalidCalibration):
    pass


class MissingJoint(CalibrationFileError, ProfileMismatch):
    pass


class UnknownJoint(CalibrationFileError, ProfileMismatch):
    pass


class WrongMotorId(CalibrationFileError, ProfileMismatch):
    pass


def _recalibrate(profile: ArmProfile, name: str) -> str:
    return f"harmowam calibrate --arm {profile.name} --port <PORT> --calibration {name}"


# --- location ---------------------------------------------------------------------------------------
def calibration_root(root: Path | str | None = None) -> Path:
    """The calibration folder LeRobot 0.6.1 would use now (``root`` overrides it)."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ  # set-but-empty counts as set, as in LeRobot (os.getenv with a default)
    if "HF_LEROBOT_CALIBRATION" in env:
        return Path(env["HF_LEROBOT_CALIBRATION"]).expanduser()
    if "HF_LEROBOT_HOME" in env:
        return Path(env["HF_LEROBOT_HOME"]).expanduser() / "calibration"
    xdg = env.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
    hf_home = os.path.expandvars(os.path.expanduser(env.get("HF_HOME", os.path.join(xdg, "huggingface"))))
    return Path(hf_home) / "lerobot" / "calibration"


def _check_name(name: str) -> None:
    if (
        not isinstance(name, str) or not name.strip() or name in (".", "..")
        or any(c in name for c in "/\\\0") or name != name.strip()
    ):
        raise InvalidCalibrationName(
            f"calibration name {name!r} cannot be used as a file name; use letters, digits, '-', '_' or '.' "
            "(e.g. --calibration my_follower)"
        )


def calibration_path(profile: ArmProfile, name: str, root: Path | str | None = None) -> Path:
    """Where LeRobot (0.4.3+) keeps the calibration ``name`` of this kind of arm; the file may not exist."""
    return _path(profile, profile.lerobot_type, name, root)


def _path(profile: ArmProfile, lerobot_type: str, name: str, root: Path | str | None) -> Path:
    _check_name(name)
    return calibration_root(root) / ROLE_DIRS[profile.role] / lerobot_type / f"{name}.json"


def candidate_paths(profile: ArmProfile, name: str, root: Path | str | None = None) -> list[Path]:
    """Every path ``find_calibration`` looks at, in order: the current folder, then the legacy ones."""
    paths: list[Path] = []
    for t in (profile.lerobot_type, *profile.legacy_lerobot_types):
        p = _path(profile, t, name, root)
        if p not in paths:
            paths.append(p)
    return paths


def find_calibration(profile: ArmProfile, name: str, root: Path | str | None = None) -> Path:
    """The file to read for ``name``: the current location, else a legacy one (logged)."""
    tried = candidate_paths(profile, name, root)
    for i, p in enumerate(tried):
        if p.is_file():
            log.info("calibration.found", arm=profile.name, name=name, path=str(p), legacy=i > 0)
            return p
    listing = "\n".join(f"  {p}" for p in tried)
    raise CalibrationNotFound(
        f"no calibration {name!r} for a {profile.name}; looked at:\n{listing}\n{_elsewhere(profile, name, root)}"
        f"Create one with: {_recalibrate(profile, name)}\n"
        "(or pass the --calibration name you calibrated with; files copied elsewhere: set HF_LEROBOT_CALIBRATION "
        "to their calibration folder)",
        tried,
    )


def _elsewhere(profile: ArmProfile, name: str, root: Path | str | None) -> str:
    """A line naming files called ``name`` in the folders of another servo family's or role's arms."""
    from hardware.arms import ARMS

    others = [a for a in ARMS.values() if a.family is not profile.family or a.role is not profile.role]
    found = sorted({p for a in others for p in candidate_paths(a, name, root) if p.is_file()})
    if not found:
        return ""
    return (f"There is a calibration {name!r} of another kind of arm: {', '.join(map(str, found))}; it is not "
            f"this {profile.name}'s (another arm, or the wrong --arm).\n")


# --- reading ----------------------------------------------------------------------------------------
def load_calibration(profile: ArmProfile, name: str, root: Path | str | None = None) -> ArmCalibration:
    """Find and read the calibration ``name`` of this arm (``ArmCalibration.source`` says which file)."""
    return read_calibration_file(find_calibration(profile, name, root), profile)


def read_calibration_file(path: Path | str, profile: ArmProfile) -> ArmCalibration:
    """Read and check one LeRobot calibration file against ``profile``."""
    path = Path(path)
    cmd = _recalibrate(profile, path.stem)
    fix = f"Recalibrate ({cmd}) or restore a backup (*.bak) next to it."
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CalibrationNotFound(
            f"calibration file {path} does not exist. Create one with: {_recalibrate(profile, path.stem)}",
            [path],
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorruptCalibrationFile(path, f"not UTF-8 text ({e.reason} at byte {e.start})", fix) from None
    if not text.strip():
        raise EmptyCalibrationFile(path, "the file is empty (an interrupted write?)", fix)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        # cut off: nothing (or only a lone minus sign) after the error, or a string never closed
        if text[e.pos:].strip() in ("", "-") or e.msg.startswith("Unterminated string"):
            raise TruncatedCalibrationFile(
                path, f"the JSON ends early at line {e.lineno} column {e.colno} (the file was cut off)", fix
            ) from None
        raise CorruptCalibrationFile(
            path, f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}", fix
        ) from None
    if not isinstance(doc, dict):
        raise CorruptCalibrationFile(
            path, f"expected a JSON object of joint entries, found a {type(doc).__name__}", fix
        )
    return _parse(doc, path, profile, fix, other_arm=f"Is this the calibration of another arm? Use the "
                  f"right --arm/--calibration, or recalibrate ({cmd}).")


def _parse(doc: dict, path: Path, profile: ArmProfile, fix: str, other_arm: str) -> ArmCalibration:
    expected = profile.joints
    unknown = [k for k in doc if k not in expected]
    missing = [j for j in expected if j not in doc]
    if unknown:
        raise UnknownJoint(
            path, f"unknown joint {unknown[0]!r} (a {profile.name} has: {', '.join(expected)})", other_arm
        )
    if missing:
        raise MissingJoint(path, f"joint {missing[0]!r} is missing (all missing: {', '.join(missing)})", fix)
    joints: dict[str, JointCalibration] = {}
    for joint in expected:
        entry = doc[joint]
        if not isinstance(entry, dict):
            raise MalformedJointEntry(
                path, f"joint {joint!r}: expected an object with {', '.join(FIELDS)}, found {entry!r}", fix
            )
        absent = [f for f in FIELDS if f not in entry]
        extra = [f for f in entry if f not in FIELDS]
        if absent or extra:
            what = f"field {absent[0]!r} is missing" if absent else f"unknown field {extra[0]!r}"
            raise MalformedJointEntry(path, f"joint {joint!r}: {what} (fields: {', '.join(FIELDS)})", fix)
        for f in FIELDS:
            v = entry[f]
            if isinstance(v, bool) or not isinstance(v, int):
                raise BadFieldType(
                    path, f"joint {joint!r}: {f} must be a whole number, found {json.dumps(v)}", fix
                )
        motor = profile.motor(joint)
        if entry["id"] != motor.id:
            raise WrongMotorId(
                path, f"joint {joint!r} has id {entry['id']} but on a {profile.name} it is motor id {motor.id}",
                other_arm,
            )
        try:
            joints[joint] = JointCalibration(**{f: entry[f] for f in FIELDS}, joint=joint)
        except InvalidCalibration as e:
            raise ValueOutOfRange(path, str(e), fix) from None
    from calibration.arm_match import check_file  # imported here: it builds on this module's errors

    check_file(path, joints, profile)  # another kind of arm's file (same joint names): OtherArmCalibration
    try:
        return ArmCalibration(joints, source=path).for_profile(profile)
    except InvalidCalibration as e:  # e.g. a homing offset the servos cannot hold
        raise ValueOutOfRange(path, str(e), fix) from None
    except ProfileMismatch as e:
        raise WrongMotorId(path, str(e), other_arm) from None


# --- writing ----------------------------------------------------------------------------------------
def dumps(cal: ArmCalibration) -> str:
    """The file's text, as LeRobot writes it (draccus JSON, indent 4, no trailing newline)."""
    return json.dumps(cal.as_dict(), indent=4)


def save_calibration(
    cal: ArmCalibration, profile: ArmProfile, name: str, root: Path | str | None = None
) -> Path:
    """Write ``cal`` to ``calibration_path(profile, name, root)`` atomically; back up a different old file."""
    cal.for_profile(profile)
    path = calibration_path(profile, name, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = dumps(cal).encode("utf-8")
    mode = 0o644
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if path.read_bytes() != data:
            backup = _backup_path(path)
            shutil.copy2(path, backup)
            log.info("calibration.backup", path=str(path), backup=str(backup))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    log.info("calibration.saved", arm=profile.name, name=name, path=str(path))
    return path


def _backup_path(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.{stamp}.bak")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.{stamp}-{n}.bak")
        n += 1
    return candidate


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
