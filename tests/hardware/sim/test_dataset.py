"""Scripted demonstrations -> LeRobot dataset (``hardware.sim.dataset``), read back with LeRobot itself.

Tiny settings (2 episodes, 32x32 images) keep this file at ~15 s on 2 cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("lerobot")

from hardware.sim.dataset import (  # noqa: E402
    IMAGE_KEYS,
    PROVENANCE,
    sim_units,
    STATE_NAMES,
    DemoInputError,
    OutputExistsError,
    check_output,
    demo_features,
    record_demos,
)
from hardware.sim.tasks import get_task, run_episode  # noqa: E402
from hardware.sim.tasks.pick_place import PickPlaceTask  # noqa: E402
from hardware.sim.variations import VariationError  # noqa: E402

RES = 32
TASK = "pick_place"


def _load(root: Path, **kw):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(f"local/{root.name}", root=root, video_backend="pyav", **kw)


def _episode_rows(ds, index: int) -> dict[str, np.ndarray]:
    hf = ds.hf_dataset.with_format(None)
    rows = hf.filter(lambda r: r["episode_index"] == index)
    return {k: np.asarray(rows[k]) for k in ("observation.state", "action", "phase", "frame_index", "timestamp")}


def _images(ds, index: int) -> dict[str, np.ndarray]:
    """All frames of one episode, per view, as N x 3 x H x W floats (LeRobot's tensors)."""
    ep = ds.meta.episodes[index]
    out = {k: [] for k in IMAGE_KEYS.values()}
    for i in range(ep["dataset_from_index"], ep["dataset_to_index"]):
        item = ds[i]
        for k in out:
            out[k].append(item[k].numpy())
    return {k: np.stack(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    root = tmp_path_factory.mktemp("demos") / "pick"
    summary = record_demos(TASK, 2, root, resolution=RES, seed=0, video=False, progress=False)
    return root, summary


@pytest.fixture(scope="module")
def reference():
    """The same episodes run without cameras or a dataset: what the dataset must contain."""
    return {s: run_episode(get_task(TASK), s, env_kw={"cameras": False}) for s in (0, 1)}


def test_lerobot_reads_back_what_was_recorded(recorded, reference) -> None:
    root, summary = recorded
    assert summary["complete"] and summary["episodes_saved"] == 2 and summary["attempts"] == 2
    assert summary["failed_seeds"] == [] and summary["success_rate"] == 1.0
    ds = _load(root)
    lengths = [reference[s].steps for s in (0, 1)]
    assert ds.num_episodes == 2 and ds.num_frames == sum(lengths) == summary["frames"]
    assert ds.meta.robot_type == "so_follower" and ds.fps == 30  # LeRobot 0.6.1's name for SO-100/SO-101
    feats = ds.features
    assert {*IMAGE_KEYS.values(), "observation.state", "action", "phase"} <= set(feats)
    for key in IMAGE_KEYS.values():
        assert feats[key]["dtype"] == "image" and tuple(feats[key]["shape"]) == (RES, RES, 3)
    for key in ("observation.state", "action"):
        assert tuple(feats[key]["shape"]) == (6,) and feats[key]["names"] == list(STATE_NAMES)
        assert "units" not in feats[key]  # LeRobot's recorder writes none: the robot type says it
    assert tuple(feats["phase"]["shape"]) == (1,) and feats["phase"]["dtype"] == "int64"

    item = ds[0]
    assert tuple(item["observation.images.front"].shape) == (3, RES, RES)
    assert tuple(item["observation.state"].shape) == (6,) and tuple(item["action"].shape) == (6,)
    assert item["task"] == reference[0].instruction == "Pick up the cube and place it on the plate."

    conv = sim_units()
    for index, seed in enumerate((0, 1)):
        ref = reference[seed]
        rows = _episode_rows(ds, index)
        assert len(rows["action"]) == ref.steps
        # LeRobot's units: degrees (4095-based) for the arm, 0..100 of the calibrated range for the gripper
        assert np.allclose(rows["action"], conv.to_units(ref.targets), atol=1e-4)  # float32 of the expert's targets
        assert np.allclose(rows["observation.state"], conv.to_units(ref.joints), atol=1e-4)
        assert np.allclose(rows["action"][:, :5], np.degrees(ref.targets[:, :5]) * 4096 / 4095, atol=1e-3)
        assert 0 <= rows["action"][:, 5].min() and rows["action"][:, 5].max() <= 100
        assert np.allclose(conv.to_radians(rows["action"]), ref.targets, atol=1e-5)
        phase = rows["phase"].reshape(-1)
        assert set(np.unique(phase)) == {0, 1}
        assert np.array_equal(phase, ref.labels.astype(np.int64))
        assert np.array_equal(rows["frame_index"], np.arange(ref.steps))
        assert np.allclose(rows["timestamp"], np.arange(ref.steps) / 30.0, atol=1e-5)

    prov = json.loads((root / PROVENANCE).read_text())
    assert [(e["episode_index"], e["seed"], e["spec"]) for e in prov["episodes"]] == [(0, 0, "in_domain"), (1, 1, "in_domain")]
    assert prov["units"]["action"] == "lerobot" and prov["units"]["calibration"]["gripper"]["range_min"] > 0


def test_images_show_the_scene_from_two_cameras(recorded) -> None:
    root, _ = recorded
    imgs = _images(_load(root), 0)
    front, wrist = imgs["observation.images.front"], imgs["observation.images.wrist"]
    assert front.shape[1:] == (3, RES, RES) and front.shape == wrist.shape
    assert front.reshape(len(front), -1).std(axis=1).min() > 0.02  # no blank frames
    assert wrist.reshape(len(wrist), -1).std(axis=1).min() > 0.02
    assert np.abs(front - wrist).mean() > 0.05
    assert np.abs(front[0] - front[-1]).mean() > 0.005  # the arm moved in the picture
    assert np.abs(wrist[0] - wrist[-1]).mean() > 0.02


def test_delta_timestamps_reload(recorded) -> None:
    root, _ = recorded
    ds = _load(root, delta_timestamps={"action": [0.0, 1 / 30, 2 / 30]})
    assert tuple(ds[5]["action"].shape) == (3, 6)


def test_a_failed_episode_is_not_saved_and_seeds_replay(recorded, tmp_path, monkeypatch) -> None:
    """Seed 0 is forced to fail: it is skipped, seed 1 is saved, identical (images included) to the
    seed-1 episode of the first recording."""
    real = PickPlaceTask.success
    monkeypatch.setattr(PickPlaceTask, "success", lambda self, env: env.variation.seed != 0 and real(self, env))
    seen = []
    root = tmp_path / "again"
    summary = record_demos(TASK, 1, root, resolution=RES, seed=0, video=False, progress=False,
                           on_episode=lambda r, ok: seen.append((r.episode.seed, ok)))
    assert seen == [(0, False), (1, True)]
    assert summary["episodes_saved"] == 1 and summary["attempts"] == 2 and summary["failed_seeds"] == [0]
    assert summary["success_rate"] == 0.5 and summary["complete"]
    first_root, _ = recorded
    ds, first = _load(root), _load(first_root)
    assert ds.num_episodes == 1
    a, b = _episode_rows(ds, 0), _episode_rows(first, 1)
    for k in ("observation.state", "action", "phase"):
        assert np.array_equal(a[k], b[k]), k
    ia, ib = _images(ds, 0), _images(first, 1)
    for k in ia:
        assert np.array_equal(ia[k], ib[k]), k
    prov = json.loads((root / PROVENANCE).read_text())
    assert [e["seed"] for e in prov["episodes"]] == [1]
    assert [f["seed"] for f in prov["failed"]] == [0] and "failed" in prov["failed"][0]["reason"]


def test_when_every_attempt_fails_nothing_is_left(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(PickPlaceTask, "success", lambda self, env: False)
    root = tmp_path / "none"
    summary = record_demos(TASK, 1, root, resolution=16, video=False, max_attempts=1, progress=False)
    assert summary["episodes_saved"] == 0 and summary["attempts"] == 1 and not summary["complete"]
    assert not root.exists()


def test_video_dataset_reads_back(tmp_path) -> None:
    import os

    root = tmp_path / "vid"
    before = (os.sched_getscheduler(0), os.sched_getparam(0))
    summary = record_demos("push", 1, root, resolution=RES, progress=False)  # videos: the default, as lerobot-record
    # AV1 encoding switches its calling thread to SCHED_FIFO 99 where allowed: it must be put back
    assert (os.sched_getscheduler(0), os.sched_getparam(0)) == before
    ds = _load(root)
    assert ds.features["observation.images.wrist"]["dtype"] == "video" and ds.num_frames == summary["frames"]
    img = ds[summary["frames"] // 2]["observation.images.wrist"].numpy()
    assert img.shape == (3, RES, RES) and img.std() > 0.02
    assert ds[0]["task"] == "Push the block into the target zone."


def test_output_directory_rules(recorded, tmp_path) -> None:
    root, _ = recorded
    with pytest.raises(OutputExistsError, match=rf"{root}.*--resume.*--overwrite"):
        check_output(root)
    assert check_output(root, resume=True) == "resume" and check_output(root, overwrite=True) == "overwrite"
    assert check_output(tmp_path / "new") == "create"
    (tmp_path / "empty").mkdir()
    assert check_output(tmp_path / "empty") == "create"
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="never deleted"):
        check_output(other, overwrite=True)
    with pytest.raises(DemoInputError, match="exclude"):
        check_output(root, resume=True, overwrite=True)
    # a resume must match the recorded features
    with pytest.raises(DemoInputError, match=r"--resolution 64"):
        record_demos(TASK, 1, root, resolution=64, resume=True, progress=False)
    with pytest.raises(DemoInputError, match=r"--video"):
        record_demos(TASK, 1, root, resolution=RES, resume=True, progress=False)


def test_bad_requests_fail_before_anything_is_written(tmp_path) -> None:
    out = tmp_path / "x"
    with pytest.raises(DemoInputError, match="no such task.*pick_place"):
        record_demos("fly", 1, out, progress=False)
    with pytest.raises(DemoInputError, match="--episodes"):
        record_demos(TASK, 0, out, progress=False)
    with pytest.raises(DemoInputError, match="--resolution"):
        record_demos(TASK, 1, out, resolution=4, progress=False)
    for noise in (-0.01, 1.0, float("nan"), "lots"):
        with pytest.raises(DemoInputError, match="--noise"):
            record_demos(TASK, 1, out, progress=False, noise=noise)
    bad = tmp_path / "bad.yaml"
    bad.write_text("table: {rgb1: ['#ffffff']}\nfloor: {rgb1: ['#000000']}\nobjects: {cube: {size: [0.01, 0.5], colors: ['#ff0000'], region: {x: [0.2, 0.25], y: [0, 0.05]}}}\n")
    with pytest.raises(VariationError, match=r"bad.yaml: objects.cube.size\[1\]"):
        record_demos(TASK, 1, out, spec=bad, progress=False)
    assert not out.exists()


def test_features_spec() -> None:
    f = demo_features(64, video=True)
    assert f["observation.images.front"] == {"dtype": "video", "shape": (64, 64, 3), "names": ["height", "width", "channels"],
                                             "info": {"is_depth_map": False}}
    assert STATE_NAMES[0] == "shoulder_pan.pos" and STATE_NAMES[-1] == "gripper.pos"


def test_an_interrupted_recording_leaves_a_valid_dataset(tmp_path) -> None:
    def stop(rec, saved) -> None:
        if saved:
            raise KeyboardInterrupt

    root = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        record_demos("push", 3, root, resolution=16, video=False, progress=False, on_episode=stop)
    ds = _load(root)
    assert ds.num_episodes == 1 and len(ds) == ds.meta.episodes[0]["length"]
    prov = json.loads((root / PROVENANCE).read_text())
    assert prov["runs"][-1]["interrupted"] and [e["seed"] for e in prov["episodes"]] == [0]


def test_feature_mismatches_names_one_kind_per_key() -> None:
    from hardware.sim.dataset import feature_mismatches

    want = {"a": {"shape": [2], "dtype": "float32"}, "b": {"shape": [3], "dtype": "image"},
            "action": {"shape": [6], "dtype": "float32", "units": "rad"}, "c": {"shape": [1], "dtype": "int64"},
            "d": {"shape": [1], "dtype": "int64"}}
    have = {"a": {"shape": [4], "dtype": "int8"}, "b": {"shape": [3], "dtype": "video"},
            "action": {"shape": [6], "dtype": "float32", "units": "deg"}, "d": {"shape": [1], "dtype": "int64"}}
    got = [(k, kind) for k, kind, _, _ in feature_mismatches(have, want)]
    assert got == [("a", "shape"), ("b", "dtype"), ("action", "units"), ("c", "missing")]
    # an older harmowam dataset (radians, "units": "rad") is not resumed by a LeRobot-units recording
    old = {"action": {"shape": [6], "dtype": "float32", "units": "rad"}}
    assert [k for k, *_ in feature_mismatches(old, {"action": demo_features(16)["action"]})] == ["action"]


def test_an_older_radians_dataset_is_not_resumed(recorded, tmp_path) -> None:
    import shutil

    root = tmp_path / "old"
    shutil.copytree(recorded[0], root)
    info = json.loads((root / "meta" / "info.json").read_text())
    for key in ("observation.state", "action"):
        info["features"][key]["units"] = "rad"
    (root / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(DemoInputError, match="older harmowam"):
        record_demos(TASK, 1, root, resolution=RES, video=False, resume=True, progress=False)
