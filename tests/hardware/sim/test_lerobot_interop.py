"""Our datasets are LeRobot's: ``lerobot-replay`` drives an emulated SO-101 through one of our episodes, and
LeRobot's merge takes one of ours with one written by LeRobot's own recording functions.

The emulated SO-101 holds the simulated arm's calibration (tick 2048 = MJCF angle 0, homing offset 0, the
ranges of ``ArmCalibration.simulated``); that calibration is saved as LeRobot's file, so LeRobot's
``SO101Follower`` accepts the servos as calibrated and unnormalises our degrees / 0..100 with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("lerobot")

from calibration.files import save_calibration  # noqa: E402
from calibration.model import ArmCalibration  # noqa: E402
from hardware.arms import JOINT_NAMES, SO101  # noqa: E402
from hardware.emulator import Emulator  # noqa: E402
from hardware.sim.dataset import record_demos, sim_units  # noqa: E402

pytestmark = pytest.mark.peer
RES = 32


def _calibrated_emulator(cal: ArmCalibration) -> Emulator:
    emu = Emulator("so101")
    emu.start()
    for j in JOINT_NAMES:
        jc, servo = cal[j], emu.servo(cal[j].id)
        servo.set("Min_Position_Limit", jc.range_min)
        servo.set("Max_Position_Limit", jc.range_max)
    return emu


@pytest.fixture(scope="module")
def ours(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ours") / "push"
    s = record_demos("push", 1, root, resolution=RES, video=False, progress=False)
    assert s["episodes_saved"] == 1
    return root


def test_lerobot_replay_drives_the_emulated_arm_to_where_the_episode_ended(ours: Path, tmp_path: Path) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    cal = ArmCalibration.simulated(SO101)
    cal_root = tmp_path / "calibration"
    save_calibration(cal, SO101, "sim", root=cal_root)
    ds = LeRobotDataset("local/push", root=ours, video_backend="pyav")
    last = np.asarray(ds.hf_dataset.with_format(None)["action"][-1], dtype=float)
    want_ticks = cal.radians_to_goals(sim_units().to_radians(last))
    emu = _calibrated_emulator(cal)
    try:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_LEROBOT_CALIBRATION": str(cal_root)}
        argv = [sys.executable, "-m", "lerobot.scripts.lerobot_replay", "--robot.type=so101_follower",
                f"--robot.port={emu.port}", "--robot.id=sim", f"--robot.calibration_dir={cal_root / 'robots' / 'so_follower'}",
                "--dataset.repo_id=local/push", f"--dataset.root={ours}", "--dataset.episode=0", "--play_sounds=false"]
        proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stderr[-3000:]
        # LeRobot disabled torque on disconnect: the servos stay where the replay left them
        got = {i: emu.servo(i).get("Present_Position") for i in cal.ids}
        goals = {i: emu.servo(i).get("Goal_Position") for i in cal.ids}
    finally:
        emu.stop()
    # LeRobot truncates (int()) where we round: one tick apart at most; the servos reached the goals
    assert all(abs(goals[i] - want_ticks[i]) <= 1 for i in cal.ids), (goals, want_ticks)
    assert all(abs(got[i] - goals[i]) <= 3 for i in cal.ids), (got, goals)
    # and that is the MuJoCo pose the episode ended in (a sanity check of the units, not only of the ticks)
    end_rad = cal.positions_to_radians(got)
    np.testing.assert_allclose(end_rad, sim_units().to_radians(last), atol=4 * 2 * np.pi / 4096)


def _lerobot_recording(root: Path, port: str, frames: int = 20) -> None:
    """A dataset written the way lerobot-record writes one: its features from the robot's own
    observation/action features and the cameras (``hw_to_dataset_features``), its frames from
    ``SO101Follower.get_observation`` on the emulated arm (``build_dataset_frame``), LeRobot's writer."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.utils.feature_utils import build_dataset_frame, combine_feature_dicts, hw_to_dataset_features
    from lerobot.robots.so_follower import SO101Follower, SO101FollowerConfig

    robot = SO101Follower(SO101FollowerConfig(port=port, id="sim", calibration_dir=root.parent / "cal" / "robots" / "so_follower"))
    cams = {"front": (RES, RES, 3), "wrist": (RES, RES, 3)}
    features = combine_feature_dicts(
        hw_to_dataset_features(robot.action_features, "action", use_video=False),
        hw_to_dataset_features({**robot._motors_ft, **cams}, "observation", use_video=False),
    )
    ds = LeRobotDataset.create(repo_id="local/theirs", root=root, fps=30, features=features,
                               robot_type=robot.name, use_videos=False, video_backend="pyav")
    robot.connect(calibrate=False)
    try:
        for k in range(frames):
            obs = robot.get_observation()
            obs.update({c: np.full(shape, 40 + k, dtype=np.uint8) for c, shape in cams.items()})
            action = {f"{j}.pos": obs[f"{j}.pos"] for j in JOINT_NAMES}
            frame = {**build_dataset_frame(ds.features, obs, prefix="observation"),
                     **build_dataset_frame(ds.features, action, prefix="action"), "task": "Hold still."}
            ds.add_frame(frame)
            time.sleep(0.005)
        ds.save_episode()
    finally:
        robot.disconnect()
        ds.finalize()


def test_lerobot_merges_ours_with_its_own_recording(ours: Path, tmp_path: Path) -> None:
    from lerobot.datasets.dataset_tools import merge_datasets, remove_feature
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    cal = ArmCalibration.simulated(SO101)
    save_calibration(cal, SO101, "sim", root=tmp_path / "cal")
    emu = _calibrated_emulator(cal)
    try:
        _lerobot_recording(tmp_path / "theirs", emu.port)
        ticks = {i: emu.servo(i).get("Present_Position") for i in cal.ids}  # the arm stood still throughout
    finally:
        emu.stop()
    theirs = LeRobotDataset("local/theirs", root=tmp_path / "theirs", video_backend="pyav")
    mine = LeRobotDataset("local/push", root=ours, video_backend="pyav")
    assert mine.meta.robot_type == theirs.meta.robot_type == "so_follower"
    for key in ("observation.state", "action"):
        assert mine.features[key] == theirs.features[key], key  # names, shape, dtype: identical
    # our extra column (the phase label) goes first, with LeRobot's own tool, as its docs say for any extra feature
    plain = remove_feature(mine, "phase", output_dir=tmp_path / "plain", repo_id="local/plain")
    merged = merge_datasets([plain, theirs], output_repo_id="local/merged", output_dir=tmp_path / "merged")
    assert merged.num_episodes == 2 and merged.num_frames == mine.num_frames + theirs.num_frames
    # LeRobot's numbers for the standing arm are ours for the same ticks: one convention in the merged dataset
    rows = merged.hf_dataset.with_format(None)
    state = np.asarray(rows["observation.state"], dtype=float)
    theirs_state = state[mine.num_frames:]
    np.testing.assert_allclose(theirs_state, np.tile(sim_units().to_units(cal.positions_to_radians(ticks)), (len(theirs_state), 1)),
                               atol=1e-3)
    np.testing.assert_allclose(state[: mine.num_frames], np.asarray(mine.hf_dataset.with_format(None)["observation.state"]), atol=1e-5)
    info = json.loads((tmp_path / "merged" / "meta" / "info.json").read_text())
    assert info["robot_type"] == "so_follower"
