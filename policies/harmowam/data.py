"""A local LeRobotDataset -> HarmoWAM training batches (``load_frames``, ``HarmoWAMDataset``, ``build_datasets``).

The dataset is read once with LeRobot's own reader (``LeRobotDataset(repo_id, root=DIR)``, format v3.0,
nothing fetched from the hub) and kept in memory as uint8 images already resized to the model's
``image_size`` by ``encoder.resize_frames``, the resize inference uses too (``C x 3 x S x S`` per
frame: ~55 kB per frame for two 96x96 cameras, so ~0.5 GB for 10 000 frames) plus the
float32 state/action columns. Decoding PNG frames or video once and reading a sample as a few
tensor slices is what makes the loader fast on a CPU (``loader_throughput``).

A sample at frame ``t`` of an episode ``[a, b)`` is the contract's batch item:

* ``images`` ``(C, 3, S, S)`` float in [0, 1], cameras in ``cfg.cameras`` order;
* ``future_images`` ``(K, C, 3, S, S)``: frames ``t + k * future_stride`` for k = 1..K, clamped to
  ``b - 1`` (the episode's last frame repeats);
* ``state`` ``(D,)`` raw dataset units; ``actions`` ``(H, D)``: ``a_t .. a_{t+H-1}``, padded with the
  episode's last action; ``action_valid`` ``(H,)`` bool, False on the padding;
* ``phase`` ``()`` float 0/1: the dataset's ``phase`` column or labels computed from gripper events
  (``policies.harmowam.labels``, ``DataConfig.labels``).

Camera mapping: ``DataConfig.cameras`` maps each model camera name to a dataset feature (default
``observation.images.<name>``); e.g. ``{"front": "observation.images.top"}`` for a dataset whose front
view is called ``top``. Units are the dataset's: a policy trained on degrees outputs degrees (the
runtime works in radians, so such a checkpoint is flagged in its metadata and is not converted).

Split: whole episodes go to validation (``val_fraction``, at least one when there are 2+ episodes, or
``val_episodes``), drawn with ``split_seed``. Statistics (state/action mean and std) come from the
training episodes; a std below ``min_std`` is raised to it (a joint that never moves).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch.utils.data import Dataset

from policies.harmowam.encoder import resize_frames
from policies.harmowam.labels import LabelConfig, episode_labels, thresholds, window_frames

log = structlog.get_logger(__name__)


class DatasetError(ValueError):
    """The dataset cannot be used as configured; the message names the feature/file and what exists."""


class DataConfig(BaseModel):
    """Which dataset features feed the model and how the data is split (module doc)."""

    model_config = ConfigDict(extra="forbid")

    cameras: dict[str, str] = Field(default_factory=dict, description="model camera name -> dataset feature key")
    state_key: str = "observation.state"
    action_key: str = "action"
    phase_key: str = "phase"
    units: str | None = Field(None, description=(
        "the joints' units when the dataset cannot say (calibration.units shorthands: rad, lerobot, "
        "lerobot-degrees, lerobot-range); default: from the dataset (robot_type and feature names)"))
    labels: LabelConfig = Field(default_factory=LabelConfig)
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    val_episodes: list[int] | None = Field(None, description="explicit validation episodes (overrides val_fraction)")
    split_seed: int = 0
    min_std: float = Field(1e-3, gt=0.0)


@dataclass
class Frames:
    """A whole dataset in memory (module doc). ``bounds[e] = (from, to)`` row range of episode ``e``."""

    images: dict[str, torch.Tensor]  # name -> (N, 3, S, S) uint8
    state: np.ndarray  # (N, D) float32
    action: np.ndarray  # (N, D) float32
    phase: np.ndarray  # (N,) int64
    bounds: list[tuple[int, int]]
    episode_ids: list[int]
    fps: float
    units: dict[str, Any] | None  # calibration.units.JointUnits.as_json() of state and action; None: unknown
    phase_source: str
    keys: dict[str, str]
    load_s: float = 0.0

    def __len__(self) -> int:
        return int(self.state.shape[0])


# --- the dataset's description --------------------------------------------------------------------------


def read_info(root: str | Path) -> dict[str, Any]:
    root = Path(root)
    path = root / "meta" / "info.json"
    if not root.is_dir():
        raise DatasetError(f"--dataset {root}: no such directory")
    if not path.is_file():
        raise DatasetError(f"--dataset {root}: not a LeRobot dataset ({path} is missing); point it at the directory that holds meta/ and data/")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: cannot be read: {e}") from None


def camera_keys(model_cameras: tuple[str, ...] | list[str], data_cfg: DataConfig) -> dict[str, str]:
    unknown = sorted(set(data_cfg.cameras) - set(model_cameras))
    if unknown:
        raise DatasetError(f"camera {unknown[0]}: not one of the model's cameras {list(model_cameras)} (set model.cameras to change them)")
    return {c: data_cfg.cameras.get(c, f"observation.images.{c}") for c in model_cameras}


def check_features(info: dict[str, Any], model_cfg: Any, data_cfg: DataConfig, root: Path | str = "") -> dict[str, str]:
    """Checks the dataset has every configured camera and joint feature; returns camera name -> key."""
    feats: dict[str, dict] = info.get("features", {})
    keys = camera_keys(tuple(model_cfg.cameras), data_cfg)
    image_feats = sorted(k for k, f in feats.items() if f.get("dtype") in ("image", "video"))
    for name, key in keys.items():
        if key not in feats:
            raise DatasetError(
                f"--dataset {root}: camera {name!r} is mapped to {key!r}, which the dataset does not have; "
                f"its cameras: {image_feats or 'none'}. Map it with --camera {name}=KEY"
            )
        if feats[key].get("dtype") not in ("image", "video"):
            raise DatasetError(f"--dataset {root}: {key!r} (camera {name!r}) is a {feats[key].get('dtype')} feature, not an image or video; its cameras: {image_feats}")
    for key, want, what in (
        (data_cfg.state_key, int(model_cfg.state_dim), "state_dim"),
        (data_cfg.action_key, int(model_cfg.action_dim), "action_dim"),
    ):
        if key not in feats:
            raise DatasetError(f"--dataset {root}: no {key!r} feature; it has: {sorted(feats)}")
        shape = list(feats[key].get("shape", []))
        if shape != [want]:
            names = feats[key].get("names")
            raise DatasetError(
                f"--dataset {root}: {key!r} has shape {shape} ({names}), the model expects [{want}] joints; "
                f"set model.{what} to {shape[0] if len(shape) == 1 else '?'} in the config"
            )
    return keys


# --- reading ----------------------------------------------------------------------------------------------


def _decode_images(column: list[Any], size: int) -> torch.Tensor:
    arrs = [np.asarray(im.convert("RGB") if hasattr(im, "convert") else im, dtype=np.uint8) for im in column]
    t = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2)
    return resize_frames(t, size)


def _decode_video(ds: Any, key: str, ep: int, ts: np.ndarray, size: int) -> torch.Tensor:
    from lerobot.datasets.video_utils import decode_video_frames

    meta = ds.meta
    path = Path(ds.root) / meta.get_video_file_path(ep, key)
    start = float(meta.episodes[ep][f"videos/{key}/from_timestamp"])
    frames = decode_video_frames(path, [start + float(t) for t in ts], ds.tolerance_s, backend="pyav", return_uint8=True)
    return resize_frames(frames.to(torch.uint8), size)


def load_frames(root: str | Path, model_cfg: Any, data_cfg: DataConfig | None = None) -> Frames:
    """Read the dataset at ``root`` into memory (module doc); raises ``DatasetError`` naming the problem."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    data_cfg = data_cfg or DataConfig()
    root = Path(root)
    info = read_info(root)
    keys = check_features(info, model_cfg, data_cfg, root)
    feats = info["features"]
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    try:
        ds = LeRobotDataset(f"local/{root.resolve().name}", root=root, video_backend="pyav")
    except Exception as e:  # a LeRobot reader error: say which dataset
        raise DatasetError(f"--dataset {root}: LeRobot cannot read it: {type(e).__name__}: {e}") from e
    cols = [data_cfg.state_key, data_cfg.action_key, "episode_index", "timestamp"]
    has_phase = data_cfg.phase_key in feats
    if has_phase:
        cols.append(data_cfg.phase_key)
    table = ds.hf_dataset.with_format(None).select_columns(cols)[:]
    state = np.asarray(table[data_cfg.state_key], dtype=np.float32).reshape(-1, int(model_cfg.state_dim))
    action = np.asarray(table[data_cfg.action_key], dtype=np.float32).reshape(-1, int(model_cfg.action_dim))
    ep_col = np.asarray(table["episode_index"], dtype=np.int64)
    ts = np.asarray(table["timestamp"], dtype=np.float64).reshape(-1)
    n = len(ep_col)
    if n == 0:
        raise DatasetError(f"--dataset {root}: has no frames")
    for name, arr in (("observation.state", state), ("action", action)):
        if not np.isfinite(arr).all():
            bad = int(np.argwhere(~np.isfinite(arr))[0][0])
            raise DatasetError(f"--dataset {root}: {name} has a NaN/inf value at frame {bad}")
    change = np.flatnonzero(np.diff(ep_col) != 0) + 1
    starts = np.concatenate([[0], change]).astype(int)
    ends = np.concatenate([change, [n]]).astype(int)
    episode_ids = [int(ep_col[s]) for s in starts]
    if len(set(episode_ids)) != len(episode_ids):
        raise DatasetError(f"--dataset {root}: the frames of an episode are not contiguous; rewrite it with LeRobot's writer")
    bounds = list(zip(starts.tolist(), ends.tolist(), strict=True))

    size = int(model_cfg.image_size)
    images: dict[str, torch.Tensor] = {}
    for name, key in keys.items():
        if feats[key]["dtype"] == "video":
            parts = [_decode_video(ds, key, e, ts[a:b], size) for e, (a, b) in zip(episode_ids, bounds, strict=True)]
            images[name] = torch.cat(parts)
        else:
            col = ds.hf_dataset.with_format(None).select_columns([key])[:][key]
            images[name] = _decode_images(col, size)

    phase, source = _phases(table, has_phase, data_cfg, action, state, bounds, float(info.get("fps", 30)), root)
    units = frame_units(info, data_cfg, root)
    return Frames(images, state, action, phase, bounds, episode_ids, float(info.get("fps", 30)), units, source, keys, time.perf_counter() - t0)


def frame_units(info: dict[str, Any], data_cfg: DataConfig, root: Path) -> dict[str, Any] | None:
    """The units of the dataset's state and action (``calibration.units``) as JSON, ``None`` when they cannot
    be told (a warning says how to declare them). State and action in different units: ``DatasetError``."""
    from calibration.units import UnitsError, dataset_units, feature_names, parse_units

    try:
        got = {}
        for key in (data_cfg.state_key, data_cfg.action_key):
            if data_cfg.units is not None:
                names = feature_names(info, key)
                got[key] = parse_units(data_cfg.units, robot_type=info.get("robot_type"), names=names)
            else:
                got[key] = dataset_units(info, key)
    except UnitsError as e:
        log.warning("dataset units unknown", dataset=str(root), why=str(e),
                    fix="set data.units (rad, lerobot, ...) or declare them when running with --policy-units")
        return None
    state, action = got[data_cfg.state_key], got[data_cfg.action_key]
    if state != action:
        raise DatasetError(f"--dataset {root}: {data_cfg.state_key} is in {state.describe()} but {data_cfg.action_key} in "
                           f"{action.describe()}; the policy needs both in one convention")
    return action.as_json()


def _phases(table: dict, has_phase: bool, data_cfg: DataConfig, action: np.ndarray, state: np.ndarray,
            bounds: list[tuple[int, int]], fps: float, root: Path) -> tuple[np.ndarray, str]:
    lc = data_cfg.labels
    column = np.asarray(table[data_cfg.phase_key], dtype=np.int64).reshape(-1) if has_phase else None
    if lc.source == "dataset" or (lc.source == "auto" and column is not None):
        if column is None:
            raise DatasetError(f"--dataset {root}: no {data_cfg.phase_key!r} column (labels.source=dataset); use labels.source=gripper to compute labels")
        return (column > 0).astype(np.int64), "dataset"
    if lc.extra == "dataset_phase" and column is None:
        raise DatasetError(f"--dataset {root}: labels.extra=dataset_phase but the dataset has no {data_cfg.phase_key!r} column")
    grip_all = (action if lc.signal == "action" else state)
    try:
        grip_all = grip_all[:, lc.gripper_index]
    except IndexError:
        raise DatasetError(f"labels.gripper_index {lc.gripper_index}: {lc.signal} has {grip_all.shape[1]} columns") from None
    th = thresholds(grip_all, lc.hysteresis, lc.min_range)
    w = window_frames(lc, fps)
    out = np.zeros(len(grip_all), dtype=np.int64)
    for a, b in bounds:
        extra = column[a:b] if (lc.extra == "dataset_phase" and column is not None) else None
        out[a:b] = episode_labels(grip_all[a:b], th, w, extra)
    return out, f"gripper events (+-{w} frames{', OR dataset phase' if lc.extra == 'dataset_phase' else ''})"


# --- split and statistics ---------------------------------------------------------------------------------


def split_episodes(episode_ids: list[int], data_cfg: DataConfig) -> tuple[list[int], list[int]]:
    """(train, validation) episode ids (module doc)."""
    if data_cfg.val_episodes is not None:
        missing = sorted(set(data_cfg.val_episodes) - set(episode_ids))
        if missing:
            raise DatasetError(f"val_episodes {missing}: not in the dataset (episodes {episode_ids[0]}..{episode_ids[-1]})")
        val = sorted(set(data_cfg.val_episodes))
    else:
        n = len(episode_ids)
        k = 0 if n < 2 or data_cfg.val_fraction <= 0 else max(1, int(round(data_cfg.val_fraction * n)))
        k = min(k, n - 1)
        perm = np.random.default_rng(data_cfg.split_seed).permutation(n)
        val = sorted(episode_ids[i] for i in perm[:k])
    train = [e for e in episode_ids if e not in set(val)]
    if not train:
        raise DatasetError("no training episodes left after the validation split; lower val_fraction")
    return train, val


def prev_rows(frames: Frames, episodes: list[int], history: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, rows ``history`` frames earlier, clamped to the episode's first frame) of ``episodes``."""
    rows, prev = [], []
    for e in episodes:
        a, b = frames.bounds[frames.episode_ids.index(e)]
        r = np.arange(a, b)
        rows.append(r)
        prev.append(np.maximum(r - history, a))
    return np.concatenate(rows), np.concatenate(prev)


def compute_stats(frames: Frames, episodes: list[int], min_std: float = 1e-3, history: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Mean and std of state and action over ``episodes`` (and, with ``history``, of s_t - s_(t-history))."""
    rows, prev = prev_rows(frames, episodes, history)
    out = {}
    arrays = [("state", frames.state[rows]), ("action", frames.action[rows])]
    if history:
        arrays.append(("delta", frames.state[rows] - frames.state[prev]))
    for name, arr in arrays:
        x = arr.astype(np.float64)
        out[name] = {"mean": x.mean(0).astype(np.float32), "std": np.maximum(x.std(0), min_std).astype(np.float32)}
    return out


# --- the torch Dataset ------------------------------------------------------------------------------------


class HarmoWAMDataset(Dataset):
    """Samples of ``frames`` at every frame of ``episodes`` (module doc)."""

    def __init__(self, frames: Frames, episodes: list[int], model_cfg: Any) -> None:
        self.frames = frames
        self.episodes = list(episodes)
        self.cameras = tuple(model_cfg.cameras)
        self.horizon = int(model_cfg.horizon)
        self.k = int(model_cfg.n_future)
        self.stride = int(model_cfg.future_stride)
        self.history = int(getattr(model_cfg, "state_history", 0))
        rows, ends, starts = [], [], []
        for e in self.episodes:
            a, b = frames.bounds[frames.episode_ids.index(e)]
            rows.append(np.arange(a, b))
            ends.append(np.full(b - a, b))
            starts.append(np.full(b - a, a))
        self.rows = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        self.ends = np.concatenate(ends) if ends else np.zeros(0, dtype=np.int64)
        self.starts = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
        self._imgs = torch.stack([frames.images[c] for c in self.cameras], dim=1)  # (N, C, 3, S, S) uint8
        self._state = torch.from_numpy(frames.state)
        self.world_cache: dict[str, torch.Tensor] | None = None
        self._action = torch.from_numpy(frames.action)
        self._phase = torch.from_numpy(frames.phase)

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def all_images(self) -> torch.Tensor:
        """Every frame of the underlying dataset, (N, C, 3, S, S) uint8 (rows as in ``frames``)."""
        return self._imgs

    def set_world_cache(self, cache: dict[str, torch.Tensor] | None) -> None:
        """Per-frame world-model output (``train.cache_world``): samples then carry it as ``world_*`` keys."""
        self.world_cache = cache

    def indices(self, i: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """(row, future rows, action rows, action_valid) of sample ``i``."""
        t, end = int(self.rows[i]), int(self.ends[i])
        future = np.minimum(t + self.stride * np.arange(1, self.k + 1), end - 1)
        steps = t + np.arange(self.horizon)
        return t, future, np.minimum(steps, end - 1), steps < end

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        t, future, act_rows, valid = self.indices(i)
        prev = max(t - self.history, int(self.starts[i]))
        return {
            "images": self._imgs[t].float().div_(255.0),
            "future_images": self._imgs[torch.from_numpy(future)].float().div_(255.0),
            "state": self._state[t].clone(),
            "prev_state": self._state[prev].clone(),
            **({f"world_{k}": v[t].float() for k, v in self.world_cache.items()} if self.world_cache else {}),
            "actions": self._action[torch.from_numpy(act_rows)],
            "action_valid": torch.from_numpy(valid),
            "phase": self._phase[t].float(),
        }


def build_datasets(root: str | Path, model_cfg: Any, data_cfg: DataConfig | None = None) -> tuple[HarmoWAMDataset, HarmoWAMDataset | None, dict, Frames]:
    """(train, validation or None, stats, frames) for the dataset at ``root``."""
    data_cfg = data_cfg or DataConfig()
    frames = load_frames(root, model_cfg, data_cfg)
    train_eps, val_eps = split_episodes(frames.episode_ids, data_cfg)
    stats = compute_stats(frames, train_eps, data_cfg.min_std, int(getattr(model_cfg, "state_history", 0)))
    val = HarmoWAMDataset(frames, val_eps, model_cfg) if val_eps else None
    return HarmoWAMDataset(frames, train_eps, model_cfg), val, stats, frames


def loader_throughput(dataset: Dataset, batch_size: int = 32, batches: int = 20, num_workers: int = 0) -> float:
    """Samples per second of a shuffled DataLoader over ``dataset`` alone (no model)."""
    from torch.utils.data import DataLoader

    dl = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers, drop_last=False)
    n, t0 = 0, time.perf_counter()
    while n < batches * batch_size:
        for batch in dl:
            n += int(batch["state"].shape[0])
            if n >= batches * batch_size:
                break
    return n / (time.perf_counter() - t0)
