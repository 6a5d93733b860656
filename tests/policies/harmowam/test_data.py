"""LeRobotDataset -> HarmoWAM batches (policies.harmowam.data) on tiny datasets written by LeRobot's writer."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from policies.harmowam.config import HarmoWAMConfig
from policies.harmowam.data import DataConfig, DatasetError, HarmoWAMDataset, build_datasets, load_frames, loader_throughput
from policies.harmowam.labels import LabelConfig

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests are not packages (--import-mode=importlib)
import tiny_dataset  # noqa: E402

FRAMES, EPISODES = 40, 3
CFG = HarmoWAMConfig(image_size=32, horizon=6, n_future=2, future_stride=4)


@pytest.fixture(scope="module")
def ds_root(tmp_path_factory):
    return tiny_dataset.make_tiny_dataset(tmp_path_factory.mktemp("h4data") / "ds", episodes=EPISODES, frames=FRAMES, size=32)


@pytest.fixture(scope="module")
def other_root(tmp_path_factory):
    """Other camera names, 64 px images, no phase column."""
    return tiny_dataset.make_tiny_dataset(tmp_path_factory.mktemp("h4other") / "ds", episodes=2, frames=20,
                                     cameras=("top", "wrist"), size=64, with_phase=False)


@pytest.fixture(scope="module")
def built(ds_root):
    return build_datasets(ds_root, CFG, DataConfig(val_fraction=0.34))


def test_sample_shapes_and_contents(built):
    train, val, stats, frames = built
    s = train[5]
    assert s["images"].shape == (2, 3, 32, 32) and s["images"].dtype == torch.float32
    assert s["future_images"].shape == (2, 2, 3, 32, 32)
    assert s["state"].shape == (6,) and s["actions"].shape == (6, 6)
    assert s["action_valid"].dtype == torch.bool and s["phase"].shape == ()
    # images are the rendered frames of that state (PNG is lossless, no resize at 32 px), cameras in order
    ep = train.episodes[0]
    state, action = tiny_dataset.episode_arrays(ep, FRAMES)
    for c, cam in enumerate(CFG.cameras):
        want = torch.from_numpy(tiny_dataset.render(cam, state[5], 32, ep)).permute(2, 0, 1).float() / 255
        assert torch.equal(s["images"][c], want)
    np.testing.assert_allclose(s["state"].numpy(), state[5])
    np.testing.assert_allclose(s["actions"].numpy(), action[5:11])
    assert s["action_valid"].all()


def test_future_frames_follow_the_stride_and_clamp_at_the_episode_end(built):
    train = built[0]
    t, future, act_rows, valid = train.indices(10)
    assert t == train.rows[10] and list(future - t) == [4, 8]
    last = FRAMES - 1
    i = last - 5  # frame 34 of the first training episode: futures 38, 42 -> 39
    t, future, act_rows, valid = train.indices(i)
    assert list(future) == [t + 4, t + 5]
    s = train[i]
    assert torch.equal(s["future_images"][0], train[i + 4]["images"])
    assert torch.equal(s["future_images"][1], train[last]["images"])


def test_actions_are_padded_with_the_last_action_and_flagged(built):
    train = built[0]
    last = FRAMES - 1
    s = train[last - 2]  # 3 real actions, 3 padded
    assert s["action_valid"].tolist() == [True, True, True, False, False, False]
    final = train[last]["actions"][0]
    for h in range(3, 6):
        assert torch.equal(s["actions"][h], final)
    assert train[last]["action_valid"].tolist() == [True] + [False] * 5


def test_episode_level_split_and_stats_from_the_training_episodes(built, ds_root):
    train, val, stats, frames = built
    assert len(val.episodes) == 1 and sorted(train.episodes + val.episodes) == list(range(EPISODES))
    assert len(train) == 2 * FRAMES and len(val) == FRAMES
    rows = np.concatenate([np.arange(*frames.bounds[e]) for e in train.episodes])
    np.testing.assert_allclose(stats["action"]["mean"], frames.action[rows].mean(0), atol=1e-6)
    np.testing.assert_allclose(stats["state"]["std"], np.maximum(frames.state[rows].std(0), 1e-3), atol=1e-6)
    # another split seed or explicit episodes change the split, deterministically
    _, v2, _, _ = build_datasets(ds_root, CFG, DataConfig(val_episodes=[2]))
    assert v2.episodes == [2]


def test_phase_from_the_column_or_computed_from_gripper_events(built, ds_root):
    frames = built[3]
    assert frames.phase_source == "dataset"
    expected = tiny_dataset.expected_phase(FRAMES, 3)
    np.testing.assert_array_equal(frames.phase[:FRAMES], expected)
    computed = load_frames(ds_root, CFG, DataConfig(labels=LabelConfig(source="gripper", window=3)))
    assert computed.phase_source.startswith("gripper events")
    np.testing.assert_array_equal(computed.phase, frames.phase)  # events found at the known frames


def test_camera_mapping_resize_and_labels_without_a_phase_column(other_root):
    cfg = HarmoWAMConfig(image_size=32, horizon=4, n_future=1)
    frames = load_frames(other_root, cfg, DataConfig(cameras={"front": "observation.images.top"}))
    assert frames.keys == {"front": "observation.images.top", "wrist": "observation.images.wrist"}
    assert frames.images["front"].shape == (40, 3, 32, 32)  # 64 px resized to 32
    assert frames.phase_source.startswith("gripper events (+-10 frames")  # no column: computed
    assert frames.phase.sum() > 0
    with pytest.raises(DatasetError, match="no 'phase' column"):
        load_frames(other_root, cfg, DataConfig(cameras={"front": "observation.images.top"}, labels=LabelConfig(source="dataset")))


def test_missing_camera_names_it_and_lists_the_cameras(other_root):
    with pytest.raises(DatasetError) as e:
        load_frames(other_root, CFG)
    msg = str(e.value)
    assert "'front'" in msg and "observation.images.front" in msg
    assert "observation.images.top" in msg and "--camera front=KEY" in msg
    with pytest.raises(DatasetError, match=r"'observation.state' \(camera 'front'\) is a float32 feature"):
        load_frames(other_root, CFG, DataConfig(cameras={"front": "observation.state"}))


def test_missing_or_mismatched_joint_features(ds_root, tmp_path):
    with pytest.raises(DatasetError, match=r"'observation.state' has shape \[6\].*expects \[7\].*state_dim"):
        load_frames(ds_root, HarmoWAMConfig(image_size=32, state_dim=7))
    with pytest.raises(DatasetError, match="no 'joints' feature; it has: .*'action'"):
        load_frames(ds_root, CFG, DataConfig(action_key="joints"))
    with pytest.raises(DatasetError, match="not a LeRobot dataset"):
        load_frames(tmp_path, CFG)
    with pytest.raises(DatasetError, match="no such directory"):
        load_frames(tmp_path / "nope", CFG)


def test_loader_runs_and_batches_collate(built):
    from torch.utils.data import DataLoader

    batch = next(iter(DataLoader(built[0], batch_size=8)))
    assert batch["future_images"].shape == (8, 2, 2, 3, 32, 32) and batch["phase"].shape == (8,)
    assert loader_throughput(built[0], batch_size=8, batches=3) > 0
    assert isinstance(built[0], HarmoWAMDataset)


def test_video_datasets_decode_each_frame_at_its_timestamp(tmp_path):
    root = tiny_dataset.make_tiny_dataset(tmp_path / "vid", episodes=2, frames=20, size=32, video=True)
    frames = load_frames(root, HarmoWAMConfig(image_size=32))
    assert frames.images["front"].shape == (40, 3, 32, 32) and frames.bounds == [(0, 20), (20, 40)]
    state, _ = tiny_dataset.episode_arrays(1, 20)
    renders = torch.stack([torch.from_numpy(tiny_dataset.render("front", s, 32, 1)).permute(2, 0, 1).float() for s in state])
    decoded = frames.images["front"][20:].float()

    def err(shift: int) -> float:  # mean error of decoded frame t against render t + shift
        a, b = max(0, -shift), min(20, 20 - shift)
        return float((decoded[a:b] - renders[a + shift : b + shift]).abs().mean())

    # AV1 is lossy: the decoded episode matches its own frames better than frames one step off either way
    assert err(0) < 4.0 and err(0) < 0.7 * err(1) and err(0) < 0.7 * err(-1)


def test_training_and_inference_resize_a_frame_identically(other_root):
    """A 64 px dataset for a 32 px model: the cached training image and the policy's input for the same
    camera frame are the same pixels (one resize function, rounded to uint8 in both paths)."""
    from policies.harmowam import HarmoWAM
    from policies.harmowam.encoder import resize_frames
    from policies.harmowam.policy import HarmoWAMPolicy
    from policies.interface import Observation

    cfg = HarmoWAMConfig(image_size=32, horizon=4, n_future=1, latent_channels=2, encoder_channels=(4, 4, 4, 4),
                         wm_width=16, wm_depth=1, wm_heads=2, expert_width=16, expert_depth=1, expert_heads=2)
    frames = load_frames(other_root, cfg, DataConfig(cameras={"front": "observation.images.top"}))
    ds = HarmoWAMDataset(frames, [1], cfg)
    torch.manual_seed(0)
    policy = HarmoWAMPolicy(HarmoWAM(cfg))
    state, _ = tiny_dataset.episode_arrays(1, 20)
    for t in (0, 7, 19):
        raw = {"front": tiny_dataset.render("top", state[t], 64, 1), "wrist": tiny_dataset.render("wrist", state[t], 64, 1)}
        obs = Observation(t=1.0, state=state[t], state_t=1.0, images=raw)
        assert torch.equal(policy.inputs(obs)[0][0], ds[t]["images"])
    # the frames exercise the rounding: a float resize without it would differ (the old inference path)
    x = torch.from_numpy(raw["wrist"]).permute(2, 0, 1)[None]
    unrounded = torch.nn.functional.interpolate(x.float(), size=(32, 32), mode="bilinear", antialias=True, align_corners=False) / 255
    assert not torch.equal(unrounded[0], ds[19]["images"][1])
    assert torch.equal(resize_frames(x, 32)[0].float() / 255, ds[19]["images"][1])
    with pytest.raises(ValueError, match="uint8"):
        resize_frames(x.float(), 32)
