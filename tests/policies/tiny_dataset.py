"""Tiny synthetic LeRobot datasets for policy tests: ``make_tiny_dataset``.

Written with LeRobot's own writer (``LeRobotDataset.create`` / ``add_frame`` / ``save_episode`` /
``finalize``, format v3.0, images as PNG inside the parquet files), like ``harmowam sim demos``, but
with no simulator: a few hundred frames in about a second.

Each episode is a smooth joint trajectory (radians) whose images depend on the state, so a model can
learn something from them:

* ``front``: a grey background (a little darker for odd episodes) with a square whose position follows
  joints 0 and 1 and whose brightness follows the gripper;
* ``wrist``: a vertical bar whose width follows the gripper opening and whose colour follows joint 2;
* any other camera name: a horizontal gradient shifted by joint 3.

The gripper (joint 5) is commanded open (``GRIPPER_OPEN``) at the start, closes (one step to
``GRIPPER_CLOSED``) at ``close_frame(frames)`` and opens again at ``open_frame(frames)``: those two
frames are the episode's gripper events (``event_frames``). ``action[t]`` is the state at ``t + 1``
except the gripper column, which is the command (it changes at the event frame itself, as the
scripted experts' do); the last action repeats the last state. With ``with_phase`` the per-frame
``phase`` column is 1 within ``phase_window`` frames of an event, else 0 (computed from the known
event frames, not from the gripper signal, so label code can be tested against it).

Tests are not packages (``--import-mode=importlib``): put this folder on ``sys.path`` and
``import tiny_dataset`` (as ``runtime_harness`` is imported).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

GRIPPER_OPEN, GRIPPER_CLOSED = 0.8, 0.2
JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
STATE_NAMES = [f"{j}.pos" for j in JOINTS]


def close_frame(frames: int) -> int:
    return frames // 3


def open_frame(frames: int) -> int:
    return (2 * frames) // 3


def event_frames(frames: int) -> list[int]:
    return [close_frame(frames), open_frame(frames)]


def gripper_command(frames: int) -> np.ndarray:
    """The gripper column of ``action`` for one episode."""
    g = np.full(frames, GRIPPER_OPEN, dtype=np.float32)
    g[close_frame(frames) : open_frame(frames)] = GRIPPER_CLOSED
    return g


def expected_phase(frames: int, window: int) -> np.ndarray:
    out = np.zeros(frames, dtype=np.int64)
    for e in event_frames(frames):
        out[max(0, e - window) : min(frames, e + window + 1)] = 1
    return out


def episode_arrays(episode: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """``(state, action)``, each ``frames x 6`` float32 radians, for episode number ``episode``."""
    t = np.arange(frames + 1, dtype=np.float64) / max(frames, 1)
    ph = 0.7 * episode
    q = np.stack(
        [
            0.6 * np.sin(2 * math.pi * t + ph),
            0.4 * np.cos(2 * math.pi * t + ph) - 0.2,
            0.5 * np.sin(4 * math.pi * t + ph),
            0.3 * t - 0.15,
            0.2 * np.sin(2 * math.pi * t),
        ],
        axis=1,
    )
    cmd = gripper_command(frames)
    # the measured gripper lags its command by two frames
    grip = np.concatenate([[GRIPPER_OPEN, GRIPPER_OPEN], cmd])[: frames + 1]
    state = np.concatenate([q[:frames], grip[:frames, None]], axis=1).astype(np.float32)
    action = np.concatenate([q[1 : frames + 1], cmd[:, None]], axis=1).astype(np.float32)
    action[-1, :5] = state[-1, :5]
    return state, action


def render(camera: str, state: np.ndarray, size: int, episode: int = 0) -> np.ndarray:
    """A ``size x size x 3`` uint8 image of ``state`` as seen by ``camera`` (module doc)."""
    img = np.full((size, size, 3), 90 if episode % 2 else 110, dtype=np.uint8)
    opening = (float(state[5]) - GRIPPER_CLOSED) / (GRIPPER_OPEN - GRIPPER_CLOSED)
    if camera == "front":
        half = max(2, size // 10)
        cx = int(round((0.5 + 0.6 * float(state[0])) * (size - 1)))
        cy = int(round((0.5 + 0.8 * float(state[1])) * (size - 1)))
        cx, cy = min(max(cx, half), size - half - 1), min(max(cy, half), size - half - 1)
        img[cy - half : cy + half, cx - half : cx + half] = (220, int(80 + 150 * opening), 40)
    elif camera == "wrist":
        w = max(1, int(round((0.1 + 0.35 * opening) * size)))
        c = int(np.clip(128 + 200 * float(state[2]), 0, 255))
        img[:, size // 2 - w // 2 : size // 2 - w // 2 + w] = (40, c, 255 - c)
    else:
        x = (np.arange(size) / size + float(state[3])) % 1.0
        img[:] = (x[None, :, None] * 255).astype(np.uint8)
    return img


def tiny_features(cameras: tuple[str, ...], size: int, with_phase: bool, video: bool = False,
                  units: str = "rad") -> dict[str, dict]:
    joints = {"dtype": "float32", "shape": (6,), "names": list(STATE_NAMES)}
    if units == "rad":
        joints["units"] = "rad"  # as harmowam's datasets before LeRobot units; "lerobot": no key, as lerobot-record
    kind = "video" if video else "image"
    feats: dict[str, dict] = {
        f"observation.images.{c}": {"dtype": kind, "shape": (size, size, 3), "names": ["height", "width", "channels"]}
        for c in cameras
    }
    feats["observation.state"] = dict(joints)
    feats["action"] = dict(joints)
    if with_phase:
        feats["phase"] = {"dtype": "int64", "shape": (1,), "names": ["interaction"]}
    return feats


def make_tiny_dataset(
    root: str | Path,
    episodes: int = 2,
    frames: int = 40,
    cameras: tuple[str, ...] = ("front", "wrist"),
    size: int = 96,
    with_phase: bool = True,
    fps: int = 30,
    phase_window: int = 3,
    video: bool = False,
    units: str = "rad",
) -> Path:
    """Write a small LeRobotDataset at ``root`` (which must not exist yet, or be empty) and return it.

    Reload it with ``LeRobotDataset("local/tiny", root=root)``. See the module doc for its content.
    ``video``: store the cameras as AV1 videos (LeRobot's encoder; lossy, ~1 s more) instead of PNG.
    ``units``: ``rad`` (the joints as they are, marked ``"units": "rad"``) or ``lerobot`` (the same motion in
    LeRobot's SO-101 units, degrees and gripper 0..100, converted with the simulated arm's calibration;
    ``robot_type`` ``so_follower``; the images are rendered from the radians either way)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = Path(root)
    if root.exists():
        root.rmdir()  # LeRobot creates the directory itself; fails (as it should) if not empty
    ds = LeRobotDataset.create(
        repo_id="local/tiny",
        root=root,
        fps=fps,
        features=tiny_features(tuple(cameras), size, with_phase, video, units),
        robot_type="so101_follower" if units == "rad" else "so_follower",
        use_videos=video,
        video_backend="pyav",
    )
    phase = expected_phase(frames, phase_window)
    conv = None
    if units == "lerobot":
        from hardware.sim.dataset import sim_units

        conv = sim_units()
    for e in range(episodes):
        state, action = episode_arrays(e, frames)
        for i in range(frames):
            frame = {f"observation.images.{c}": render(c, state[i], size, e) for c in cameras}
            frame["observation.state"] = state[i] if conv is None else conv.to_units(state[i]).astype(np.float32)
            frame["action"] = action[i] if conv is None else conv.to_units(action[i]).astype(np.float32)
            if with_phase:
                frame["phase"] = phase[i : i + 1]
            frame["task"] = "Move the square."
            ds.add_frame(frame)
        ds.save_episode(parallel_encoding=False)
    ds.finalize()
    return root
