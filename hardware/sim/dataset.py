"""Scripted demonstrations in simulation -> a LeRobot dataset (``record_demos``).

``record_demos(task, episodes, out)`` runs the task's scripted expert on seeds ``seed, seed+1, ...``
(scene variations drawn from ``spec``), renders the ``front`` and ``wrist`` cameras at every control
step (``hardware.sim.record``) and writes every *successful* episode with LeRobot's own writer
(``LeRobotDataset.create`` / ``add_frame`` / ``save_episode`` / ``finalize``, LeRobot 0.6.1, format
v3.0). A failed episode never reaches the writer: frames are kept in memory until the episode's outcome
is known. It keeps trying seeds until ``episodes`` have been saved or ``max_attempts`` seeds have been
tried (default ``default_max_attempts``); the summary says which.

Features (all per frame, at ``fps``, which is also the simulation's control rate):

* ``observation.images.front``, ``observation.images.wrist``: ``H x W x 3`` uint8 RGB, rendered from
  the state the action is computed from (``video`` dtype by default: AV1 MP4 encoded by LeRobot, as
  ``lerobot-record`` stores cameras; ``image`` dtype, PNG inside the parquet files, with ``video=False``);
* ``observation.state``: the 6 measured joint positions before the action, float32;
* ``action``: the 6 joint targets the expert sent (what ``TaskEnv.step`` takes), float32;
* ``phase``: int64, shape (1,): 1 = interaction, 0 = transit (HarmoWAM's gate labels: +-``window``
  frames around each gripper open/close event, and contact phases such as pushing or inserting);
* LeRobot's ``task``: the episode's English instruction (``Task.describe``: the noun follows the
  object's shape, e.g. "Pick up the ball and place it on the plate.").

Units and names: **what ``lerobot-record`` writes for an SO-101** (LeRobot 0.6.1, ``SO101Follower`` with
``use_degrees=True``): ``robot_type`` ``so_follower``, features ``shoulder_pan.pos`` ... ``gripper.pos``, the
five arm joints in LeRobot's degrees (``(ticks - mid) * 360/4095``) and the gripper as 0..100 % of its
calibrated range. The simulated arm's calibration (``ArmCalibration.simulated``: tick 2048 = MJCF angle 0)
converts (``calibration.units``), so ``lerobot-replay`` with that calibration file drives an emulated
SO-101 through the same motion, and ``lerobot-edit-dataset`` merges these datasets with real recordings.
The expert computes in radians; ``action`` is its target converted (float32). No ``units`` key: a feature
that carries ``"units": "rad"`` is a dataset written by an older harmowam (still read for training, never
resumed). ``meta/harmowam_demos.json`` names the convention and the calibration used.

Besides LeRobot's files, ``meta/harmowam_demos.json`` records provenance: the units, and for every
saved episode its task, variation spec, seed and action noise (and every failed seed), so each episode
can be replayed with ``run_episode(get_task(task), seed, spec, noise=ActionNoise.from_record(noise))`` (no
``noise``: a clean episode) and ``resume`` never repeats a seed (whatever the noise: a resumed run may
use another noise setting; each episode and each run records its own).

Recovery demonstrations (``noise``, ``harmowam sim demos --noise SIGMA_RAD``; DART-style, see
``hardware.sim.noise``): the servos get the expert's targets plus an Ornstein-Uhlenbeck offset on
the 5 arm joints (stationary standard deviation ``sigma_rad``, correlation time ``tau_s``, default 0.4 s;
never the gripper; faded out while the expert closes in on a grasp or release unless ``at_grip``).
``observation.state`` and the images show the perturbed arm; ``action`` is the expert's noise-free
target, computed from that perturbed state. Only successful episodes are saved, as always. Measured
success of the scripted expert on pick_place (in-domain seeds 0-19, ``run_episode`` without cameras,
tau 0.4 s, 2026-12; ``hardware.sim.noise`` has the failure analysis):

=======================  =====  =====  =====  =====  =====  =====
sigma_rad                0      0.015  0.03   0.045  0.06   0.09
faded at grip (default)  20/20  20/20  20/20  20/20  20/20  19/20
``at_grip``              20/20  18/20  15/20  15/20  10/20  7/20
=======================  =====  =====  =====  =====  =====  =====

With the fade the executed offset's RMS over a whole episode is ~0.75 ``sigma_rad`` (it is off during
the descent, the grasp, the lowering and the release: a third of the steps, plus the ramps). At 0.03 (faded), in-domain
seeds 0-9: stack 10/10, insert 8/10, push 9/10 (no gripper events: perturbed throughout).

The output directory must not hold anything yet (an empty directory is fine). If it holds a LeRobot
dataset: ``overwrite=True`` deletes and replaces it; ``resume=True`` appends episodes (same fps,
resolution and image/video choice, else ``DemoInputError``); neither: ``OutputExistsError``. A
directory holding anything else is never deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hardware.realtime import kept_scheduling
from hardware.arms import JOINT_NAMES
from hardware.sim.noise import ActionNoise, NoiseError
from hardware.sim.record import VIEWS, RecordedEpisode, label_window, record_episode
from hardware.sim.tasks import CONTROL_HZ, Task, get_task, task_names
from hardware.sim.variations import VariationError, VariationSpec

ROBOT_TYPE = "so_follower"  # LeRobot 0.6.1's SO100Follower/SO101Follower ``name``
LEGACY_UNITS = "rad"  # the ``units`` key of datasets written before LeRobot units
STATE_NAMES = tuple(f"{j}.pos" for j in JOINT_NAMES)  # LeRobot's SO-101 feature names
PHASE_KEY = "phase"
IMAGE_KEYS = {v: f"observation.images.{v}" for v in VIEWS}
PROVENANCE = "meta/harmowam_demos.json"
MIN_RESOLUTION, MAX_RESOLUTION = 16, 480
# LeRobot's AV1 encoder (SVT-AV1 through PyAV) kills the process with SIGFPE on tiny frames: measured here
# 16 and 24 px crash, 25-30 px work. Videos need at least this; smaller images go as PNG (--images).
MIN_VIDEO_RESOLUTION = 32
MIN_FPS, MAX_FPS = 5, 120


class DemoError(RuntimeError):
    """Recording demonstrations failed."""


class DemoInputError(DemoError, ValueError):
    """The request cannot be carried out as given (bad task, spec, settings or output directory)."""


class OutputExistsError(DemoInputError):
    """The output directory already holds something; the message names it and the flag to pass."""


def default_max_attempts(episodes: int) -> int:
    """Seeds tried before giving up: twice the request, and at least 10 more than it."""
    return max(2 * episodes, episodes + 10)


def demo_features(resolution: int, video: bool = False) -> dict[str, dict]:
    """The LeRobot feature spec of a demonstration dataset (module doc)."""
    # exactly what lerobot-record's hw_to_dataset_features gives a colour camera (merge compares features)
    img = {"dtype": "video" if video else "image", "shape": (resolution, resolution, 3),
           "names": ["height", "width", "channels"], "info": {"is_depth_map": False}}
    joints = {"dtype": "float32", "shape": (6,), "names": list(STATE_NAMES)}
    return {
        **{key: {**img, "info": dict(img["info"])} for key in IMAGE_KEYS.values()},
        "observation.state": dict(joints),
        "action": dict(joints),
        PHASE_KEY: {"dtype": "int64", "shape": (1,), "names": ["interaction"], "values": {"0": "transit", "1": "interaction"}},
    }


# --- the output directory -------------------------------------------------------------------------------


def is_dataset(path: Path) -> bool:
    return (path / "meta" / "info.json").is_file()


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise DemoInputError(f"{path}: cannot be read: {e}") from None


def check_output(out: Path, *, resume: bool = False, overwrite: bool = False) -> str:
    """What to do with ``out``: ``"create"``, ``"resume"`` or ``"overwrite"``; raises
    ``OutputExistsError``/``DemoInputError`` (naming the directory and the flag) when it cannot be used."""
    if resume and overwrite:
        raise DemoInputError("--resume and --overwrite exclude each other: choose one")
    if not out.exists():
        return "create"
    if not out.is_dir():
        raise DemoInputError(f"--out {out}: exists and is not a directory")
    if is_dataset(out):
        if resume:
            return "resume"
        if overwrite:
            return "overwrite"
        n = _read_json(out / "meta" / "info.json").get("total_episodes", "?")
        raise OutputExistsError(
            f"--out {out}: already holds a LeRobot dataset ({n} episodes); pass --resume to add episodes to it "
            "or --overwrite to delete and replace it"
        )
    if any(out.iterdir()):
        raise OutputExistsError(
            f"--out {out}: exists, is not empty and is not a LeRobot dataset; it is never deleted "
            "(--overwrite only replaces a dataset): choose another directory"
        )
    return "create"


def feature_mismatches(have: dict, want: dict) -> list[tuple[str, str, dict, dict]]:
    """Where a dataset's ``info.json`` features (``have``) differ from the features a recording would
    write (``want``): ``(key, kind, have[key], want[key])``, at most one per key, ``kind`` the first of
    ``missing``, ``shape``, ``dtype``, ``units`` (joints in other units: an older harmowam dataset in
    radians) that applies.
    The resume checks of ``harmowam sim demos`` and ``harmowam record`` phrase them for their flags."""
    out = []
    for key, ft in want.items():
        h = have.get(key)
        if h is None:
            out.append((key, "missing", {}, ft))
        elif list(h.get("shape", ())) != list(ft["shape"]):
            out.append((key, "shape", h, ft))
        elif h.get("dtype") != ft["dtype"]:
            out.append((key, "dtype", h, ft))
        elif key in ("observation.state", "action") and h.get("units") != ft.get("units"):
            out.append((key, "units", h, ft))
    return out


def units_problem(key: str, have: dict) -> str:
    """The resume checks' line for a dataset whose joints are in other units than LeRobot's."""
    return (f"{key}: the dataset holds joints in {have.get('units')!r} (written by an older harmowam), "
            "this recording writes LeRobot's units (degrees, gripper 0..100)")


def sim_units() -> Any:
    """The converter radians -> LeRobot SO-101 units with the simulated arm's calibration (module doc)."""
    from calibration.model import ArmCalibration  # the sim's calibration lives there (ticks <-> radians)
    from calibration.units import lerobot_converter
    from hardware.arms import SO101

    return lerobot_converter(SO101, ArmCalibration.simulated(SO101), STATE_NAMES)


def _check_resumable(out: Path, fps: int, resolution: int, video: bool) -> None:
    info = _read_json(out / "meta" / "info.json")
    feats = info.get("features", {})
    want = demo_features(resolution, video)
    problems = []
    if info.get("fps") != fps:
        problems.append(f"--fps {fps}: the dataset was recorded at {info.get('fps')} fps")
    for key, kind, have, ft in feature_mismatches(feats, want):
        if kind == "missing":
            problems.append(f"{key}: not in the dataset (not a harmowam demonstration dataset?)")
        elif kind == "shape":
            flag = f"--resolution {resolution}" if key in IMAGE_KEYS.values() else key
            problems.append(f"{flag}: the dataset's {key} has shape {list(have.get('shape', ()))}, not {list(ft['shape'])}")
        elif kind == "dtype":
            flag = ("--video" if video else "--images") if key in IMAGE_KEYS.values() else key
            problems.append(f"{flag}: the dataset's {key} is stored as {have.get('dtype')}, not {ft['dtype']}")
        else:
            problems.append(units_problem(key, have))
    if problems:
        raise DemoInputError(f"--resume {out}: the dataset does not match this recording:\n" + "\n".join(problems))


# --- recording --------------------------------------------------------------------------------------------


@dataclass
class _Progress:
    bar: Any = None

    def start(self, total: int, desc: str, enabled: bool) -> None:
        if not enabled:
            return
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="ep", file=sys.stderr, dynamic_ncols=True)

    def update(self, saved: int, attempts: int, frames: int, note: str = "") -> None:
        if self.bar is None:
            return
        rate = 100.0 * saved / attempts if attempts else 0.0
        self.bar.set_postfix_str(f"success {saved}/{attempts} ({rate:.0f}%), {frames} frames{note}", refresh=False)
        if saved > self.bar.n:
            self.bar.update(saved - self.bar.n)
        else:
            self.bar.refresh()

    def write(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.write(msg, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _spec_label(spec: VariationSpec | str | Path) -> str:
    if isinstance(spec, VariationSpec):
        return spec.description or "spec"
    return str(spec)


def _write_provenance(path: Path, prov: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(prov, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _add_episode(ds: Any, rec: RecordedEpisode, task: str, units: Any) -> None:
    ep = rec.episode
    state = units.to_units(ep.joints).astype(np.float32)  # measured: perturbed in a noisy episode
    action = units.to_units(ep.targets).astype(np.float32)  # the expert's targets, never the noise
    phase = np.asarray(ep.labels, dtype=np.int64)
    for i in range(rec.steps):
        frame = {IMAGE_KEYS[v]: rec.images[v][i] for v in VIEWS}
        frame["observation.state"] = state[i]
        frame["action"] = action[i]
        frame[PHASE_KEY] = phase[i : i + 1]
        frame["task"] = task
        ds.add_frame(frame)
    # no process pool for the two videos: forking a process that holds an EGL context and threads is
    # what Python warns about (possible deadlocks), and the AV1 encoder is multi-threaded anyway
    with kept_scheduling():  # AV1 encoding may switch this thread to real-time (hardware.realtime)
        ds.save_episode(parallel_encoding=False)


def action_noise(noise: ActionNoise | float | None) -> ActionNoise | None:
    """``record_demos``'s ``noise`` as an ``ActionNoise`` (a number is ``sigma_rad``), ``None`` when clean;
    ``DemoInputError`` naming the flag when out of range."""
    if noise is None or isinstance(noise, ActionNoise):
        n = noise
    else:
        try:
            sigma = float(noise)
        except (TypeError, ValueError):
            raise DemoInputError(f"--noise must be a number of radians, got {noise!r}") from None
        try:
            n = ActionNoise(sigma_rad=sigma)
        except NoiseError as e:
            raise DemoInputError(f"--noise: {e}") from None
    return n if n is not None and n.active else None


def record_demos(
    task: str | Task,
    episodes: int,
    out: str | Path,
    spec: VariationSpec | str | Path = "in_domain",
    fps: int = int(CONTROL_HZ),
    seed: int = 0,
    resolution: int = 96,
    video: bool = True,
    progress: bool = True,
    *,
    resume: bool = False,
    overwrite: bool = False,
    repo_id: str | None = None,
    max_attempts: int | None = None,
    window: int | None = None,
    on_episode: Callable[[RecordedEpisode, bool], None] | None = None,
    noise: ActionNoise | float | None = None,
) -> dict[str, Any]:
    """Record ``episodes`` successful scripted demonstrations of ``task`` into a LeRobot dataset at
    ``out`` (module doc). ``spec``: a shipped variation name, a YAML path or a ``VariationSpec``.
    ``repo_id``: the dataset's id (default ``local/<out's name>``; reload it with
    ``LeRobotDataset(repo_id, root=out)``). ``window``: phase-label window in frames (default 10 at
    30 fps, scaled with ``fps``). ``on_episode(recorded, saved)`` is called after every attempt.
    ``noise``: an ``ActionNoise`` or its ``sigma_rad`` (radians; 0 or ``None``: clean): recovery
    demonstrations (module doc).

    Returns a summary: ``path``, ``repo_id``, ``task``, ``spec``, ``episodes_requested``,
    ``episodes_saved``, ``attempts``, ``failed_seeds``, ``success_rate`` (saved / attempts),
    ``frames`` (saved by this call), ``total_episodes``/``total_frames`` (whole dataset), ``complete``
    (all requested were saved), ``noise`` (``ActionNoise.settings()``, ``None`` when clean), ``seconds``
    and per-part timings.

    Raises ``DemoInputError`` (``VariationError`` for a bad spec) before anything is written when the
    request cannot be carried out; ``RenderError`` when off-screen rendering does not work.
    """
    t_start = time.perf_counter()
    # --- validate everything before touching the disk
    if isinstance(task, str):
        if task not in task_names():
            raise DemoInputError(f"--task {task}: no such task (tasks: {', '.join(task_names())})")
        task_obj = get_task(task)
    else:
        task_obj = task
    if not isinstance(episodes, int) or episodes < 1:
        raise DemoInputError(f"--episodes must be a positive integer, got {episodes!r}")
    if not MIN_FPS <= int(fps) <= MAX_FPS:
        raise DemoInputError(f"--fps must be between {MIN_FPS} and {MAX_FPS}, got {fps!r}")
    if not MIN_RESOLUTION <= int(resolution) <= MAX_RESOLUTION:
        raise DemoInputError(f"--resolution must be between {MIN_RESOLUTION} and {MAX_RESOLUTION}, got {resolution!r}")
    if video and int(resolution) < MIN_VIDEO_RESOLUTION:
        raise DemoInputError(f"--resolution {resolution}: videos need at least {MIN_VIDEO_RESOLUTION} px (the AV1 encoder "
                             "crashes on smaller frames); use a larger --resolution or --images")
    fps, resolution, seed = int(fps), int(resolution), int(seed)
    max_attempts = default_max_attempts(episodes) if max_attempts is None else int(max_attempts)
    if max_attempts < episodes:
        raise DemoInputError(f"--max-attempts {max_attempts} is less than --episodes {episodes}")
    noise = action_noise(noise)
    if isinstance(spec, Path):
        spec = str(spec)
    if isinstance(spec, str):
        task_obj.spec(spec)  # raises VariationError naming the file and field
    else:
        task_obj.check_spec(spec, _spec_label(spec))
    spec_name = _spec_label(spec)
    out = Path(out)
    action = check_output(out, resume=resume, overwrite=overwrite)
    if action == "resume":
        _check_resumable(out, fps, resolution, video)
    repo_id = repo_id or f"local/{out.resolve().name or 'demos'}"
    window = label_window(fps) if window is None else int(window)

    if video:
        os.environ.setdefault("SVT_LOG", "1")  # the AV1 encoder prints ~20 info lines per video otherwise
    import datasets.utils.logging as hf_logging
    from lerobot.datasets.lerobot_dataset import LeRobotDataset  # ~3 s of imports (torch): only now

    units = sim_units()
    # --- open the dataset
    prov_path = out / PROVENANCE
    if action == "resume":
        prov = _read_json(prov_path)
        ds = LeRobotDataset.resume(repo_id, root=out, video_backend="pyav")
    else:
        if action == "overwrite":
            shutil.rmtree(out)
        elif out.exists():
            out.rmdir()  # empty: LeRobot creates the directory itself
        ds = LeRobotDataset.create(
            repo_id=repo_id,
            root=out,
            fps=fps,
            features=demo_features(resolution, video),
            robot_type=ROBOT_TYPE,
            use_videos=video,
            video_backend="pyav",  # read-back backend; asking LeRobot to probe torchcodec prints a traceback here
        )
        prov = {}
    prov.setdefault("format", 1)
    prov.setdefault("generator", "harmowam_ctl hardware.sim.dataset.record_demos")
    prov.setdefault(
        "units",
        {
            "observation.state": "lerobot",
            "action": "lerobot",
            "convention": "LeRobot 0.6.1 so_follower (use_degrees): arm joints (ticks - mid) * 360/4095, gripper "
            "0..100 % of the calibrated range",
            "calibration": units.calibration.as_dict(),
        },
    )
    prov.setdefault("phase", {"0": "transit", "1": "interaction"})
    prov.setdefault("episodes", [])
    prov.setdefault("failed", [])
    prov.setdefault("runs", [])
    tried = {
        (e["task"], e["spec"], e["seed"]) for e in [*prov["episodes"], *prov["failed"]] if {"task", "spec", "seed"} <= e.keys()
    }
    first_index = int(ds.meta.total_episodes)

    saved = attempts = frames = 0
    failed: list[dict] = []
    sim_s = render_s = write_s = 0.0
    bar = _Progress()
    bar.start(episodes, f"{task_obj.name} demos", progress)
    hf_bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # one "Map" bar per saved episode would bury ours
    candidate = seed
    interrupted = False

    def noise_of(s: int) -> dict | None:  # provenance: what replays seed ``s``'s episode
        return None if noise is None else noise.record(s)

    try:
        while saved < episodes and attempts < max_attempts:
            while (task_obj.name, spec_name, candidate) in tried:
                candidate += 1
            s = candidate
            candidate += 1
            attempts += 1
            try:
                rec = record_episode(task_obj, s, spec, resolution=resolution, fps=fps, window=window, noise=noise)
            except VariationError as e:  # this seed's scene cannot be sampled (e.g. no room for an object)
                failed.append({"task": task_obj.name, "spec": spec_name, "seed": s, "reason": str(e), "noise": noise_of(s)})
                bar.write(f"seed {s}: not recorded: {e}")
                bar.update(saved, attempts, frames)
                continue
            sim_s += rec.sim_s
            render_s += rec.render_s
            ep = rec.episode
            if not ep.success:
                reached = ep.phases[-1] if ep.phases else "start"
                failed.append({"task": task_obj.name, "spec": spec_name, "seed": s, "reason": f"failed (last phase: {reached})",
                               "noise": noise_of(s)})
                if on_episode is not None:
                    on_episode(rec, False)
                bar.update(saved, attempts, frames, f", seed {s} failed")
                continue
            t0 = time.perf_counter()
            _add_episode(ds, rec, ep.instruction, units)
            write_s += time.perf_counter() - t0
            prov["episodes"].append(
                {
                    "episode_index": first_index + saved,
                    "task": task_obj.name,
                    "spec": spec_name,
                    "seed": s,
                    "frames": rec.steps,
                    "instruction": ep.instruction,
                    "events": [int(e) for e in ep.events],
                    "success_step": ep.success_step,
                    "noise": noise_of(s),
                }
            )
            saved += 1
            frames += rec.steps
            _write_provenance(prov_path, {**prov, "failed": [*prov["failed"], *failed]})
            if on_episode is not None:
                on_episode(rec, True)
            bar.update(saved, attempts, frames)
    except BaseException:
        interrupted = True
        raise
    finally:
        bar.close()
        t0 = time.perf_counter()
        if ds.writer is not None and ds.writer.episode_buffer is not None and ds.writer.episode_buffer.get("size"):
            ds.writer.clear_episode_buffer()  # an episode interrupted while being written
        ds.finalize()
        finalize_s = time.perf_counter() - t0
        if action != "resume" and saved == 0 and first_index == 0:
            shutil.rmtree(out, ignore_errors=True)  # nothing recorded: leave no empty dataset behind
        else:
            prov["failed"].extend(failed)
            prov["runs"].append(
                {
                    "task": task_obj.name,
                    "spec": spec_name,
                    "first_seed": seed,
                    "requested": episodes,
                    "saved": saved,
                    "attempts": attempts,
                    "fps": fps,
                    "resolution": resolution,
                    "video": video,
                    "window": window,
                    "noise": None if noise is None else noise.settings(),
                    "interrupted": interrupted,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                }
            )
            _write_provenance(prov_path, prov)
        if hf_bars:
            hf_logging.enable_progress_bar()
    seconds = time.perf_counter() - t_start
    return {
        "path": str(out),
        "repo_id": repo_id,
        "task": task_obj.name,
        "spec": spec_name,
        "episodes_requested": episodes,
        "episodes_saved": saved,
        "attempts": attempts,
        "max_attempts": max_attempts,
        "failed_seeds": [f["seed"] for f in failed],
        "success_rate": saved / attempts if attempts else 0.0,
        "frames": frames,
        "total_episodes": first_index + saved,
        "total_frames": int(ds.meta.total_frames) if saved or first_index else 0,
        "complete": saved == episodes,
        "resumed": action == "resume",
        "fps": fps,
        "resolution": resolution,
        "video": video,
        "units": "lerobot (degrees, gripper 0..100)",
        "noise": None if noise is None else noise.settings(),
        "seconds": seconds,
        "timing": {
            "sim_s": sim_s,
            "render_s": render_s,
            "write_s": write_s,
            "finalize_s": finalize_s,
            "per_saved_episode_s": seconds / saved if saved else None,
        },
    }
