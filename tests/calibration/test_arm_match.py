"""Another kind of arm's calibration (same joint names, same motor ids) is detected, not accepted silently:
by its folder in LeRobot's tree, its full-turn joints, homing offsets this arm's servos cannot hold, and
(with the servos connected) the servos' model numbers. Each error names the arm the file or the servos
look like and what to do; every arm's own file still loads."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests are not packages (--import-mode=importlib)
from test_verify import LATENCY_S, hold, sample_cal  # noqa: E402

from calibration import ArmCalibration, CalibrationNotFound, ProfileMismatch  # noqa: E402
from calibration.arm_match import ImpossibleHomingOffset, OtherArmCalibration, full_range_joints  # noqa: E402
from calibration.files import ValueOutOfRange, calibration_path, dumps, load_calibration, read_calibration_file, save_calibration  # noqa: E402
from calibration.verify import ERROR, verify_calibration  # noqa: E402
from hardware.arms import ARMS, KOCH, KOCH_LEADER, SO100, SO101, SO101_LEADER, ArmProfile, arms_with_models  # noqa: E402
from hardware.bus import open_bus  # noqa: E402
from hardware.emulator import Emulator  # noqa: E402
from hardware.errors import ModelMismatchError  # noqa: E402
from harmowam_ctl.cli import main  # noqa: E402


def _copy_as(src: ArmProfile, dst: ArmProfile, root: Path, name: str = "arm1", cal: ArmCalibration | None = None) -> Path:
    """``src``'s calibration saved where ``dst``'s calibration ``name`` is looked for (a file copied or renamed)."""
    text = dumps(cal or sample_cal(src))
    path = calibration_path(dst, name, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("profile", list(ARMS.values()), ids=lambda p: p.name)
def test_every_arms_own_files_load(profile: ArmProfile, tmp_path: Path) -> None:
    for i, cal in enumerate((sample_cal(profile), ArmCalibration.centered(profile))):
        save_calibration(cal, profile, f"own{i}", tmp_path)
        assert load_calibration(profile, f"own{i}", tmp_path) == cal


def test_a_koch_file_under_an_so101_name_is_named_a_kochs(tmp_path: Path) -> None:
    path = _copy_as(KOCH, SO101, tmp_path)
    with pytest.raises(OtherArmCalibration) as ei:
        load_calibration(SO101, "arm1", tmp_path)
    err, msg = ei.value, str(ei.value)
    assert err.path == path and str(path) in msg and err.likely == ("koch",)
    assert "full-turn joints (range 0..4095) are shoulder_pan, wrist_roll" in msg
    assert "looks like the calibration of a koch" in msg
    assert "harmowam calibrate --arm so101 --port <PORT> --calibration arm1" in msg and "--arm koch" in msg
    assert isinstance(err, ProfileMismatch)


def test_a_koch_leader_file_is_told_from_a_koch_followers_by_its_inverted_elbow(tmp_path: Path) -> None:
    _copy_as(KOCH_LEADER, SO101_LEADER, tmp_path)
    with pytest.raises(OtherArmCalibration) as ei:
        load_calibration(SO101_LEADER, "arm1", tmp_path)
    assert ei.value.likely == ("koch-leader",)
    _copy_as(KOCH_LEADER, SO101, tmp_path, "arm2")  # a Koch leader's file for an SO follower: the drive mode wins
    with pytest.raises(OtherArmCalibration) as ei:
        load_calibration(SO101, "arm2", tmp_path)
    assert ei.value.likely == ("koch-leader",)


@pytest.mark.parametrize("dst", [KOCH, KOCH_LEADER], ids=lambda p: p.name)
def test_an_so_file_under_a_koch_name_is_named_an_so_arms(dst: ArmProfile, tmp_path: Path) -> None:
    _copy_as(SO101, dst, tmp_path)
    with pytest.raises(OtherArmCalibration) as ei:
        load_calibration(dst, "arm1", tmp_path)
    msg = str(ei.value)
    assert "full-turn joints (range 0..4095) are wrist_roll" in msg and f"a {dst.name} calibrates only shoulder_pan, wrist_roll" in msg
    expected = ("so100", "so101") if dst is KOCH else ("so100-leader", "so101-leader")
    assert ei.value.likely == expected and f"harmowam calibrate --arm {dst.name}" in msg


def test_a_file_in_another_arms_folder_is_that_arms(tmp_path: Path) -> None:
    for folder, owner in (("robots/koch_follower", "koch"), ("teleoperators/so_leader", "so100-leader or so101-leader"),
                          ("teleoperators/koch_leader", "koch-leader")):
        path = tmp_path / folder / "x.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dumps(sample_cal(SO101)))  # contents that fit an so101: only the folder says otherwise
        with pytest.raises(OtherArmCalibration, match=f"it is in {folder}/, LeRobot's folder for a {owner} calibration"):
            read_calibration_file(path, SO101)
    legacy = tmp_path / "robots/so100_follower/x.json"  # an SO-100's old folder: same servos, same calibration
    legacy.parent.mkdir(parents=True)
    legacy.write_text(dumps(sample_cal(SO101)))
    assert read_calibration_file(legacy, SO101) == sample_cal(SO101)
    elsewhere = tmp_path / "backup" / "x.json"  # not LeRobot's tree: nothing to say
    elsewhere.parent.mkdir()
    elsewhere.write_text(dumps(sample_cal(SO101)))
    assert read_calibration_file(elsewhere, SO101) == sample_cal(SO101)


def test_not_found_names_a_file_of_that_name_in_another_arms_folder(tmp_path: Path) -> None:
    save_calibration(sample_cal(KOCH), KOCH, "black", tmp_path)
    with pytest.raises(CalibrationNotFound) as ei:
        load_calibration(SO101, "black", tmp_path)
    msg = str(ei.value)
    assert f"There is a calibration 'black' of another kind of arm: {calibration_path(KOCH, 'black', tmp_path)}" in msg
    assert "harmowam calibrate --arm so101 --port <PORT> --calibration black" in msg
    with pytest.raises(CalibrationNotFound) as ei:
        load_calibration(SO101, "nothing", tmp_path)
    assert "another kind of arm" not in str(ei.value)
    save_calibration(sample_cal(SO100), SO100, "grey", tmp_path)  # so100 and so101 share their folder: found
    assert load_calibration(SO101, "grey", tmp_path) == sample_cal(SO100)


def test_a_homing_offset_only_dynamixel_servos_hold_names_the_koch(tmp_path: Path) -> None:
    _copy_as(SO101, SO101, tmp_path, cal=sample_cal(SO101, elbow_flex={"homing_offset": 3000}))
    with pytest.raises(ImpossibleHomingOffset) as ei:
        load_calibration(SO101, "arm1", tmp_path)
    msg = str(ei.value)
    assert "joint 'elbow_flex': homing_offset 3000 is outside -2047..2047" in msg and "dynamixel servos hold it" in msg
    assert ei.value.likely == ("koch",) and isinstance(ei.value, ValueOutOfRange)


def test_full_range_joints_counts_lerobots_and_the_emulators_full_turn() -> None:
    assert full_range_joints(sample_cal(KOCH)) == {"shoulder_pan", "wrist_roll"}
    assert full_range_joints(ArmCalibration.centered(KOCH)) == {"shoulder_pan", "wrist_roll"}  # 1..4095
    assert full_range_joints(sample_cal(SO101)) == {"wrist_roll"}


# ---- the servos: their model numbers --------------------------------------------------------------------

def test_arms_with_models_names_the_profile_the_servos_fit() -> None:
    models = {m.id: m.model.model_number for m in KOCH_LEADER.motors}
    assert arms_with_models(KOCH.family, models) == (KOCH_LEADER,)
    assert arms_with_models(SO101.family, {m.id: m.model.model_number for m in SO101.motors})[1] is SO101
    assert arms_with_models(KOCH.family, {**models, 3: 9999}) == ()


async def test_verify_names_the_arm_whose_servos_these_are() -> None:
    cal = sample_cal(KOCH)
    with Emulator(KOCH_LEADER) as emu:
        hold(emu, cal)
        async with open_bus(KOCH, emu.port, latency_s=LATENCY_S) as bus:
            found = await verify_calibration(bus, KOCH, cal)
            with pytest.raises(ModelMismatchError) as ei:
                await bus.verify(KOCH)
    first = found[0]
    assert (first.joint, first.field, first.expected, first.found, first.severity) == (
        "all joints", "arm", "koch", "koch-leader", ERROR)
    assert "--arm koch-leader" in first.hint and "xl330-m077 x6" in first.hint
    assert sum(f.field == "model" for f in found) == 6
    assert ei.value.likely == ("koch-leader",) and "these servos are a koch-leader's" in str(ei.value)


async def test_the_right_arm_gives_no_arm_finding() -> None:
    cal = sample_cal(KOCH_LEADER)
    with Emulator(KOCH_LEADER) as emu:
        hold(emu, cal)
        async with open_bus(KOCH_LEADER, emu.port, latency_s=LATENCY_S) as bus:
            assert await verify_calibration(bus, KOCH_LEADER, cal) == []
            await bus.verify(KOCH_LEADER)


# ---- through harmowam check ----------------------------------------------------------------------------

@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path))
    return tmp_path


def test_check_refuses_a_kochs_file_for_an_so101(root: Path, capsys) -> None:
    _copy_as(KOCH, SO101, root)
    code = main(["check", "--arm", "so101", "--port", "/dev/harmowam-not-opened", "--calibration", "arm1"])
    err = capsys.readouterr().err
    assert code == 1 and "looks like the calibration of a koch" in err and "harmowam calibrate --arm so101" in err


def test_check_names_the_arm_plugged_in(root: Path, capsys) -> None:
    cal = sample_cal(KOCH)
    save_calibration(cal, KOCH, "k", root)
    with Emulator(KOCH_LEADER) as emu:
        hold(emu, cal)
        code = main(["check", "--arm", "koch", "--port", emu.port, "--calibration", "k", "--json"])
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert code == 1 and report["findings"][0]["field"] == "arm" and report["findings"][0]["found"] == "koch-leader"
    assert "first: all joints: arm should be koch, the servo has koch-leader" in err
