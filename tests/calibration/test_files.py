"""Calibration files: location, legacy fallback, strict reading of bad files, atomic saving with backups."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from calibration.files import (
    BadFieldType,
    CalibrationFileError,
    CalibrationNotFound,
    CorruptCalibrationFile,
    EmptyCalibrationFile,
    InvalidCalibrationName,
    MalformedJointEntry,
    MissingJoint,
    TruncatedCalibrationFile,
    UnknownJoint,
    ValueOutOfRange,
    WrongMotorId,
    calibration_path,
    calibration_root,
    candidate_paths,
    dumps,
    find_calibration,
    load_calibration,
    read_calibration_file,
    save_calibration,
)
from calibration.model import ArmCalibration, CalibrationError, InvalidCalibration, JointCalibration, ProfileMismatch
from hardware.arms import JOINT_NAMES, KOCH, KOCH_LEADER, SO100, SO101, SO101_LEADER

ENV_VARS = ("HF_LEROBOT_CALIBRATION", "HF_LEROBOT_HOME", "HF_HOME", "XDG_CACHE_HOME")


@pytest.fixture
def cal() -> ArmCalibration:
    return ArmCalibration({
        "shoulder_pan": JointCalibration(1, 0, -1234, 812, 3301),
        "shoulder_lift": JointCalibration(2, 0, 500, 900, 3200),
        "elbow_flex": JointCalibration(3, 0, 12, 880, 3105),
        "wrist_flex": JointCalibration(4, 0, -7, 860, 3210),
        "wrist_roll": JointCalibration(5, 0, 60, 0, 4095),
        "gripper": JointCalibration(6, 0, 1400, 2020, 3450),
    })


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for v in ENV_VARS:
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


# --- location ---------------------------------------------------------------------------------------
def test_root_follows_lerobot_precedence(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = clean_env / "home"
    assert calibration_root() == home / ".cache/huggingface/lerobot/calibration"
    monkeypatch.setenv("XDG_CACHE_HOME", str(clean_env / "xdg"))
    assert calibration_root() == clean_env / "xdg/huggingface/lerobot/calibration"
    monkeypatch.setenv("HF_HOME", "~/hf")
    assert calibration_root() == home / "hf/lerobot/calibration"
    monkeypatch.setenv("HF_LEROBOT_HOME", str(clean_env / "lr"))
    assert calibration_root() == clean_env / "lr/calibration"
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", "~/calib")
    assert calibration_root() == home / "calib"
    assert calibration_root(clean_env / "explicit") == clean_env / "explicit"


def test_paths_for_followers_and_leaders(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(clean_env / "c"))
    assert calibration_path(SO101, "arm1") == clean_env / "c/robots/so_follower/arm1.json"
    assert calibration_path(SO101_LEADER, "arm1") == clean_env / "c/teleoperators/so_leader/arm1.json"
    assert calibration_path(KOCH, "k", root=clean_env / "r") == clean_env / "r/robots/koch_follower/k.json"
    assert candidate_paths(SO101, "a", root=clean_env) == [
        clean_env / "robots/so_follower/a.json", clean_env / "robots/so101_follower/a.json",
    ]
    assert candidate_paths(SO100, "a", root=clean_env)[1] == clean_env / "robots/so100_follower/a.json"
    assert candidate_paths(KOCH, "a", root=clean_env) == [clean_env / "robots/koch_follower/a.json"]


@pytest.mark.parametrize("name", ["", " ", "..", ".", "a/b", "../../etc/passwd", "x\\y", " pad"])
def test_bad_names_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidCalibrationName, match="cannot be used as a file name"):
        calibration_path(SO101, name, root=tmp_path)


def test_save_then_load_round_trip(cal: ArmCalibration, clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(clean_env / "c"))
    path = save_calibration(cal, SO101, "blue")
    assert path == clean_env / "c/robots/so_follower/blue.json"
    loaded = load_calibration(SO101, "blue")
    assert loaded == cal and loaded.source == path
    assert loaded.as_dict() == cal.as_dict() and list(loaded) == list(JOINT_NAMES)
    text = path.read_text()
    assert text == json.dumps(cal.as_dict(), indent=4) and not text.endswith("\n")
    assert text.startswith('{\n    "shoulder_pan": {\n        "id": 1,\n        "drive_mode": 0,\n')
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    # leaders go under teleoperators/, Koch leader keeps its inverted elbow
    kcal = ArmCalibration.centered(KOCH_LEADER)
    kpath = save_calibration(kcal, KOCH_LEADER, "blue")
    assert kpath.parent == clean_env / "c/teleoperators/koch_leader"
    assert load_calibration(KOCH_LEADER, "blue")["elbow_flex"].drive_mode == 1


def test_legacy_folder_is_a_read_fallback(cal: ArmCalibration, tmp_path: Path) -> None:
    legacy = tmp_path / "robots/so101_follower/old.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_text(dumps(cal))
    assert find_calibration(SO101, "old", root=tmp_path) == legacy
    loaded = load_calibration(SO101, "old", root=tmp_path)
    assert loaded == cal and loaded.source == legacy
    # SO-100's legacy folder is not the SO-101's
    with pytest.raises(CalibrationNotFound):
        find_calibration(SO100, "old", root=tmp_path)
    # once written, the current folder wins; the legacy file is left alone
    newer = ArmCalibration({**cal, "gripper": JointCalibration(6, 0, 1400, 2000, 3400)})
    current = save_calibration(newer, SO101, "old", root=tmp_path)
    assert current == tmp_path / "robots/so_follower/old.json"
    assert load_calibration(SO101, "old", root=tmp_path).source == current
    assert load_calibration(SO101, "old", root=tmp_path)["gripper"].range_min == 2000
    assert legacy.read_text() == dumps(cal)


def test_not_found_lists_paths_and_the_command(tmp_path: Path) -> None:
    with pytest.raises(CalibrationNotFound) as ei:
        load_calibration(SO101_LEADER, "leader1", root=tmp_path)
    msg = str(ei.value)
    assert ei.value.tried == candidate_paths(SO101_LEADER, "leader1", root=tmp_path)
    assert len(ei.value.tried) == 2
    for p in ei.value.tried:
        assert str(p) in msg
    assert "harmowam calibrate --arm so101-leader --port" in msg and "--calibration leader1" in msg
    assert isinstance(ei.value, FileNotFoundError) and isinstance(ei.value, CalibrationError)
    with pytest.raises(CalibrationNotFound, match="does not exist"):
        read_calibration_file(tmp_path / "nope.json", SO101)


# --- bad files --------------------------------------------------------------------------------------
def _write(tmp_path: Path, content: str | bytes) -> Path:
    p = tmp_path / "robots/so_follower/bad.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content)
    return p


def _doc(cal: ArmCalibration) -> dict:
    return cal.as_dict()


def _expect(path: Path, exc: type[CalibrationFileError], match: str, profile=SO101) -> CalibrationFileError:
    with pytest.raises(exc, match=match) as ei:
        read_calibration_file(path, profile)
    err = ei.value
    assert err.path == path and str(path) in str(err)
    assert "harmowam calibrate --arm" in str(err)  # says what to do
    assert isinstance(err, CalibrationError)
    return err


@pytest.mark.parametrize("content", ["", "   \n\t", b""])
def test_empty_file(content: str | bytes, tmp_path: Path) -> None:
    _expect(_write(tmp_path, content), EmptyCalibrationFile, "empty")


def test_every_cut_of_a_file_is_reported_as_truncated(cal: ArmCalibration, tmp_path: Path) -> None:
    text = dumps(cal)
    for cut in range(1, len(text)):
        path = _write(tmp_path, text[:cut])
        if not text[:cut].strip():
            continue
        with pytest.raises(TruncatedCalibrationFile, match="cut off"):
            read_calibration_file(path, SO101)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\xff\xfe{garbage", "not UTF-8"),
        ("{'shoulder_pan': {'id': 1}}", "not valid JSON"),
        ('{"shoulder_pan": {"id": 1,, "drive_mode": 0}}', "not valid JSON"),
        ("hello", "not valid JSON"),
        ("[1, 2, 3]", "found a list"),
        ("42", "found a int"),
    ],
)
def test_corrupted_file(content: str | bytes, match: str, tmp_path: Path) -> None:
    _expect(_write(tmp_path, content), CorruptCalibrationFile, match)


def test_trailing_garbage_is_corruption(cal: ArmCalibration, tmp_path: Path) -> None:
    _expect(_write(tmp_path, dumps(cal) + "}\x00junk"), CorruptCalibrationFile, "not valid JSON")


def test_missing_joint(cal: ArmCalibration, tmp_path: Path) -> None:
    doc = _doc(cal)
    del doc["wrist_flex"], doc["gripper"]
    err = _expect(_write(tmp_path, json.dumps(doc)), MissingJoint, "'wrist_flex' is missing.*wrist_flex, gripper")
    assert isinstance(err, ProfileMismatch)


def test_unknown_joint(cal: ArmCalibration, tmp_path: Path) -> None:
    doc = _doc(cal)
    doc["wrist_yaw"] = doc["gripper"]
    err = _expect(_write(tmp_path, json.dumps(doc)), UnknownJoint, "unknown joint 'wrist_yaw'.*another arm")
    assert isinstance(err, ProfileMismatch)


def test_wrong_id(cal: ArmCalibration, tmp_path: Path) -> None:
    doc = _doc(cal)
    doc["elbow_flex"]["id"], doc["wrist_flex"]["id"] = 4, 3
    _expect(_write(tmp_path, json.dumps(doc)), WrongMotorId, "'elbow_flex' has id 4 .* motor id 3")


@pytest.mark.parametrize(
    ("field", "value"),
    [("range_min", "812"), ("range_max", 3301.0), ("homing_offset", None), ("drive_mode", True),
     ("id", [1]), ("range_min", {"v": 1})],
)
def test_bad_types(field: str, value: object, cal: ArmCalibration, tmp_path: Path) -> None:
    doc = _doc(cal)
    doc["shoulder_pan"][field] = value
    err = _expect(_write(tmp_path, json.dumps(doc)), BadFieldType, f"'shoulder_pan': {field} must be a whole number")
    assert isinstance(err, InvalidCalibration)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda e: e.pop("range_max"), "field 'range_max' is missing"),
        (lambda e: e.update(calibrated=True), "unknown field 'calibrated'"),
    ],
)
def test_malformed_entries(mutate, match: str, cal: ArmCalibration, tmp_path: Path) -> None:
    doc = _doc(cal)
    mutate(doc["gripper"])
    _expect(_write(tmp_path, json.dumps(doc)), MalformedJointEntry, f"'gripper': {match}")
    doc = _doc(cal)
    doc["gripper"] = [6, 0, 0, 1, 2]
    _expect(_write(tmp_path, json.dumps(doc)), MalformedJointEntry, "'gripper': expected an object")


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("range_max", 5000, "range_max 5000 is outside 0..4095"),
        ("range_min", -3, "range_min -3 is outside 0..4095"),
        ("range_min", 3400, "range_min 3400 must be below range_max 3105"),
        ("drive_mode", 2, "drive_mode must be 0"),
        ("homing_offset", 2048, "homing_offset 2048 is outside -2047..2047"),
    ],
)
def test_out_of_range_values(field: str, value: int, match: str, cal: ArmCalibration, tmp_path: Path) -> None:
    doc = _doc(cal)
    doc["elbow_flex"][field] = value
    err = _expect(_write(tmp_path, json.dumps(doc)), ValueOutOfRange, f"'elbow_flex'.*{match}")
    assert isinstance(err, InvalidCalibration)


def test_homing_offset_limit_depends_on_the_servo_family(cal: ArmCalibration, tmp_path: Path) -> None:
    doc = _doc(cal)
    doc["elbow_flex"]["homing_offset"] = -40000
    koch_doc = json.loads(json.dumps(doc))
    koch_doc["shoulder_pan"].update(range_min=0, range_max=4095)  # a Koch's full-turn joint, as LeRobot writes it
    p = tmp_path / "robots/koch_follower/k.json"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps(koch_doc))
    assert read_calibration_file(p, KOCH)["elbow_flex"].homing_offset == -40000
    _expect(_write(tmp_path, json.dumps(doc)), ValueOutOfRange, "outside -2047..2047")


# --- saving -----------------------------------------------------------------------------------------
def _extras(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != name)


def test_save_keeps_a_backup_of_a_different_file(cal: ArmCalibration, tmp_path: Path) -> None:
    path = save_calibration(cal, SO101, "a", root=tmp_path)
    assert _extras(path.parent, "a.json") == []
    save_calibration(cal, SO101, "a", root=tmp_path)  # same content: nothing to back up
    assert _extras(path.parent, "a.json") == []
    old = path.read_text()
    newer = ArmCalibration({**cal, "gripper": JointCalibration(6, 0, 1400, 2000, 3400)})
    save_calibration(newer, SO101, "a", root=tmp_path)
    backups = _extras(path.parent, "a.json")
    assert len(backups) == 1 and backups[0].startswith("a.json.") and backups[0].endswith(".bak")
    assert (path.parent / backups[0]).read_text() == old
    assert read_calibration_file(path, SO101) == newer
    save_calibration(cal, SO101, "a", root=tmp_path)  # a second backup in the same second gets its own name
    assert len(_extras(path.parent, "a.json")) == 2


def test_failed_write_leaves_the_old_file_and_no_temp(
    cal: ArmCalibration, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_calibration(cal, SO101, "a", root=tmp_path)
    old = path.read_bytes()

    def boom(*_a: object, **_k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    newer = ArmCalibration({**cal, "gripper": JointCalibration(6, 0, 1400, 2000, 3400)})
    with pytest.raises(OSError, match="disk full"):
        save_calibration(newer, SO101, "a", root=tmp_path)
    assert path.read_bytes() == old
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_save_refuses_a_calibration_that_does_not_fit(cal: ArmCalibration, tmp_path: Path) -> None:
    koch_like = ArmCalibration({**cal, "elbow_flex": JointCalibration(3, 0, 40000, 880, 3105)})
    with pytest.raises(InvalidCalibration, match="homing_offset 40000"):
        save_calibration(koch_like, SO101, "a", root=tmp_path)
    assert not (tmp_path / "robots").exists() or not any((tmp_path / "robots").rglob("*.json"))
    assert save_calibration(koch_like, KOCH, "a", root=tmp_path).is_file()


def test_an_existing_file_keeps_its_permissions(cal: ArmCalibration, tmp_path: Path) -> None:
    path = save_calibration(cal, SO101, "a", root=tmp_path)
    path.chmod(0o600)
    save_calibration(ArmCalibration.simulated(SO101), SO101, "a", root=tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
