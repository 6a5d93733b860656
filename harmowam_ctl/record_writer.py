"""The dataset side of ``harmowam record``: LeRobot features, the output directory, and a writer thread.

``DatasetSink`` owns a ``LeRobotDataset`` (LeRobot 0.6.1's writer: ``create``/``resume``, ``add_frame``,
``save_episode``, ``clear_episode_buffer``, ``finalize``) on one thread of its own, so encoding images
and writing parquet files never runs on the event loop. The servo tick hands it frames through
``frame()``, which never blocks: frames wait in a queue bounded by bytes (``max_queue_mb``); past the
bound a frame is dropped and counted against its episode (never a stalled tick).

Features (per frame, at ``fps``): what ``lerobot-record`` writes for the arm (LeRobot 0.6.1): its
``robot_type`` (``so_follower``, ``koch_follower``), names ``shoulder_pan.pos`` ..., joints in LeRobot's
units for that arm (SO: degrees, Koch: -100..100, grippers 0..100 % of the calibrated range), converted
from the runtime's radians with the run's calibration file on the writer thread (``calibration.units``):

* ``observation.images.<camera>``: the newest frame of each of the run's cameras (``--camera`` names,
  or the simulated views ``front``/``wrist``), ``H x W x 3`` uint8 RGB: AV1 videos by default, as
  ``lerobot-record`` stores them (encoded on this thread when an episode is saved); ``--images``: PNG;
* ``observation.state``: the joints measured by that servo tick, float32;
* ``action``: the command that tick sent to the servos (after the safety filter), float32;
* ``intervention``: int64 (1,), 1 while the human drives (leader arm or the take-over key), else 0;
* ``control_source``: int64 (1,), who drove that tick: 0 human, 1 policy, 2 hold (``telemetry.SOURCES``);
* ``t_monotonic``: float64 (1,), the tick's joint-reading time (``time.monotonic()`` seconds);
* LeRobot's ``task``: ``--task-text`` or the simulated task's instruction.

``meta/harmowam_record.json`` says how the data was made: every run's runtime settings (the whole
``RunConfig``), the recording settings, and per saved episode its frames, interventions (stretches of
human control), frames by control source, dropped and missed frames, and how it ended.
"""

from __future__ import annotations

import json
import queue
import shutil
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from hardware.realtime import kept_scheduling
from hardware.sim.dataset import STATE_NAMES, check_output, feature_mismatches, is_dataset, units_problem
from harmowam_ctl.config import ConfigError
from harmowam_ctl.telemetry import SOURCES

log = structlog.get_logger(__name__)

META_FILE = "meta/harmowam_record.json"
SOURCE_VALUES = {str(i): s.value for i, s in enumerate(SOURCES)}
SOURCE_CODE = {s: i for i, s in enumerate(SOURCES)}


class RecordError(RuntimeError):
    """Writing the dataset failed (the message says what and what to do)."""


def image_key(camera: str) -> str:
    return f"observation.images.{camera}"


def record_features(image_shapes: Mapping[str, tuple[int, int, int]], video: bool = True) -> dict[str, dict]:
    """The LeRobot feature spec (module doc) for cameras ``{name: (height, width, 3)}``."""
    joints = {"dtype": "float32", "shape": (6,), "names": list(STATE_NAMES)}
    kind = "video" if video else "image"
    feats: dict[str, dict] = {
        image_key(name): {"dtype": kind, "shape": tuple(shape), "names": ["height", "width", "channels"],
                          "info": {"is_depth_map": False}}  # as lerobot-record's hw_to_dataset_features
        for name, shape in image_shapes.items()
    }
    feats["observation.state"] = dict(joints)
    feats["action"] = dict(joints)
    feats["intervention"] = {"dtype": "int64", "shape": (1,), "names": ["intervention"],
                             "values": {"0": "autonomous or hold", "1": "human drives"}}
    feats["control_source"] = {"dtype": "int64", "shape": (1,), "names": ["source"], "values": dict(SOURCE_VALUES)}
    feats["t_monotonic"] = {"dtype": "float64", "shape": (1,), "names": ["seconds"]}
    return feats


def plan_output(out: Path, *, resume: bool, overwrite: bool) -> str:
    """``create``, ``resume`` or ``overwrite`` for ``--out``; a ConfigError naming the flag otherwise.
    Nothing is touched here (an existing dataset is only deleted by ``DatasetSink.open`` with
    ``overwrite``)."""
    try:
        return check_output(out, resume=resume, overwrite=overwrite)
    except ValueError as e:  # DemoInputError / OutputExistsError: they name --out and the flags
        raise ConfigError(str(e)) from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ConfigError(f"--resume: {path} cannot be read ({e}); repair or remove it") from None


def check_resumable(out: Path, fps: int, features: Mapping[str, dict], cameras: bool = True) -> None:
    """A ConfigError listing every difference between the dataset at ``out`` and this recording
    (``cameras=False``: all but the images, checked before the cameras are known)."""
    info = _read_json(out / "meta" / "info.json")
    have = info.get("features", {})
    problems = []
    if info.get("fps") != fps:
        problems.append(f"--fps {fps}: the dataset was recorded at {info.get('fps')} fps")
    for key, kind, h, ft in feature_mismatches(have, dict(features)):
        if kind == "missing":
            problems.append(f"{key}: not in the dataset (other cameras, or not a harmowam recording?)")
        elif kind in ("shape", "dtype"):
            problems.append(f"{key}: the dataset has {h.get('dtype')} {list(h.get('shape', ()))}, "
                            f"this run gives {ft['dtype']} {list(ft['shape'])}")
        else:
            problems.append(units_problem(key, h))
    extra = sorted(k for k in have if cameras and k.startswith("observation.images.") and k not in features)
    problems += [f"{k}: in the dataset but this run has no such camera" for k in extra]
    if problems:
        raise ConfigError(f"--resume {out}: the dataset does not match this recording "
                          "(record into a new --out instead):\n" + "\n".join(problems))


class DatasetSink:
    """The dataset on its own thread. ``open()`` (blocking: call it off the loop) creates or resumes it
    and starts the thread; ``frame``/``save``/``discard`` are for the servo tick (never block);
    ``close()`` (blocking) finalizes and writes the metadata."""

    def __init__(self, out: Path, repo_id: str, fps: int, features: dict[str, dict], robot_type: str,
                 action: str, *, run_info: dict[str, Any], max_queue_mb: float = 512.0, units: Any = None) -> None:
        self.out, self.repo_id, self.fps, self.features = Path(out), repo_id, int(fps), features
        self.robot_type, self.action = robot_type, action
        self.units = units  # calibration.units.UnitsConverter: radians -> the file's units (None: as given)
        self.video = any(f["dtype"] == "video" for f in features.values())
        self.run_info = run_info
        self.max_bytes = int(max_queue_mb * 2**20)
        self._q: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._bytes = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.ds: Any = None
        self.meta: dict[str, Any] = {}
        self.error: BaseException | None = None
        self.first_index = 0
        self.saved: list[dict[str, Any]] = []
        self.discarded = 0
        self.dropped = 0  # frames dropped in the current episode (queue full)
        self.image_backlog = 8

    # --- set-up and tear-down (blocking) ----------------------------------------------------------------

    def open(self) -> None:
        import datasets.utils.logging as hf_logging
        from lerobot.datasets.lerobot_dataset import LeRobotDataset  # torch: only when recording

        hf_logging.disable_progress_bar()  # a "Map" bar per saved episode would bury the status line

        cams = sum(1 for f in self.features.values() if f["dtype"] in ("image", "video"))
        # PNG encoding on LeRobot's image-writer threads (Pillow releases the GIL while it encodes); at most
        # about a second of images waits there (``_do`` holds back), the rest in this sink's bounded queue
        threads = min(8, 2 * cams)
        self.image_backlog = max(8, self.fps * cams)
        if self.action == "resume":
            check_resumable(self.out, self.fps, self.features)
            self.meta = _read_json(self.out / META_FILE)
            self.ds = LeRobotDataset.resume(self.repo_id, root=self.out, video_backend="pyav",
                                            image_writer_threads=threads)
        else:
            if self.action == "overwrite":
                if not is_dataset(self.out):  # checked again right before deleting anything
                    raise ConfigError(f"--overwrite: {self.out} is not a LeRobot dataset; it is never deleted")
                shutil.rmtree(self.out)
            elif self.out.exists():
                self.out.rmdir()  # empty (plan_output checked): LeRobot creates it itself
            self.ds = LeRobotDataset.create(repo_id=self.repo_id, root=self.out, fps=self.fps, features=self.features,
                                            robot_type=self.robot_type, use_videos=self.video, video_backend="pyav",
                                            image_writer_threads=threads)
        self.first_index = int(self.ds.meta.total_episodes)
        self.meta.setdefault("format", 1)
        self.meta.setdefault("generator", "harmowam record")
        if self.units is not None:
            self.meta.setdefault("units", {"observation.state": "lerobot", "action": "lerobot",
                                           "convention": self.units.units.describe(),
                                           "calibration": self.units.calibration.as_dict()})
        self.meta.setdefault("control_source", dict(SOURCE_VALUES))
        self.meta.setdefault("episodes", [])
        self.meta.setdefault("runs", [])
        self.meta["runs"].append(self.run_info)
        self._write_meta()
        self._thread = threading.Thread(target=self._work, name="record-writer", daemon=True)
        self._thread.start()

    def close(self, interrupted: bool = False) -> dict[str, Any]:
        """Drop an unsaved episode, wait for the queue, finalize, write the metadata. Idempotent."""
        if self._thread is not None:
            self._q.put(("close", None))
            self._thread.join()
            self._thread = None
        if self.ds is not None:
            self.ds.finalize()
            self.run_info.update(saved=len(self.saved), discarded=self.discarded, interrupted=interrupted,
                                 error=None if self.error is None else str(self.error),
                                 ended=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            total = int(self.ds.meta.total_episodes)
            self.ds = None
            if total == 0 and self.action != "resume":
                shutil.rmtree(self.out, ignore_errors=True)  # made by this run and empty: leave nothing behind
            else:
                self._write_meta()
                for d in sorted((self.out / "images").glob("*"), reverse=True):  # LeRobot's emptied temp folders
                    if d.is_dir() and not any(d.iterdir()):
                        d.rmdir()
                if (self.out / "images").is_dir() and not any((self.out / "images").iterdir()):
                    (self.out / "images").rmdir()
        return {"path": str(self.out), "repo_id": self.repo_id, "saved": len(self.saved),
                "discarded": self.discarded, "episodes": self.saved}

    # --- called by the servo tick (never blocks) ----------------------------------------------------------

    def frame(self, frame: dict[str, Any], nbytes: int) -> bool:
        """Queue one frame; False (and counted) when the queue is over its byte bound."""
        with self._lock:
            if self._bytes + nbytes > self.max_bytes:
                self.dropped += 1
                return False
            self._bytes += nbytes
        self._q.put(("frame", (frame, nbytes)))
        return True

    def save(self, info: dict[str, Any]) -> None:
        info["dropped_frames"], self.dropped = self.dropped, 0
        self._q.put(("save", info))

    def discard(self, why: str) -> None:
        self.dropped = 0
        self._q.put(("discard", why))

    def note_session(self, info: dict[str, Any]) -> None:
        """A runtime session's outcome, for the metadata (written by the writer thread)."""
        self._q.put(("session", info))

    # --- the writer thread ----------------------------------------------------------------------------------

    def _work(self) -> None:
        failed = False
        while True:
            kind, item = self._q.get()
            if kind == "frame":
                with self._lock:
                    self._bytes -= item[1]
            if kind == "close":
                break
            if failed and kind != "session":
                continue  # after an error only the byte count is kept: close() reports the error
            try:
                self._do(kind, item)
            except Exception as e:  # reported by the recorder at the next tick: the run stops safely
                failed = True
                self.error = e
                log.error("record writer failed", error=repr(e))
        try:
            if self.ds is not None and self.ds.has_pending_frames():
                self.ds.clear_episode_buffer()  # an episode that was never ended (a stop mid-episode)
        except Exception as e:
            log.error("record writer: clearing the unsaved episode failed", error=repr(e))

    def _do(self, kind: str, item: Any) -> None:
        ds = self.ds
        if kind == "frame":
            images = getattr(ds.writer.image_writer, "queue", None)
            while images is not None and images.qsize() > self.image_backlog:
                time.sleep(0.002)  # the encoders are behind: frames wait in the bounded queue instead
            frame = item[0]
            if self.units is not None:
                for key in ("observation.state", "action"):
                    frame[key] = self.units.to_units(frame[key]).astype(np.float32)
            ds.add_frame(frame)
        elif kind == "session":
            self.run_info.setdefault("sessions", []).append(item)
            self._write_meta()
        elif kind == "discard":
            if ds.has_pending_frames():
                ds.clear_episode_buffer()
            self.discarded += 1
            log.info("episode discarded", why=item)
        elif kind == "save":
            if not ds.has_pending_frames():
                log.warning("episode has no frames: not saved", episode=item.get("index"))
                return
            frames = int(ds.writer.episode_buffer["size"])
            with kept_scheduling():  # AV1 encoding may switch this thread to real-time (hardware.realtime)
                ds.save_episode(parallel_encoding=False)
            item = {"episode_index": int(ds.meta.total_episodes) - 1, **item, "frames": frames}
            self.saved.append(item)
            self.meta["episodes"].append(item)
            self._write_meta()
            log.info("episode saved", episode=item["episode_index"], frames=frames)

    def _write_meta(self) -> None:
        path = self.out / META_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.meta, indent=2, default=_jsonable) + "\n", encoding="utf-8")
        tmp.replace(path)


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    return str(v)


def frame_bytes(frame: Mapping[str, Any]) -> int:
    return sum(v.nbytes for v in frame.values() if isinstance(v, np.ndarray))
