"""``harmowam record``: demonstrations recorded through the runtime into a LeRobotDataset.

The arm is driven exactly as by ``harmowam run`` / ``teleop`` (``harmowam_ctl.setup.session`` builds the
same ``Runtime``: arbiter, safety filter, watchdogs, safe stop). Two uses:

* pure teleop: no ``--policy``; the leader arm drives (``intervention`` is 1 while it does);
* DAgger-style: ``--policy`` drives and the human takes over with the leader arm or the ``t`` key;
  ``intervention`` marks the frames the human drove, ``control_source`` says who drove each frame.

Frames are taken inside the servo tick (``Parts.on_tick``, ``record_episodes.EpisodeRecorder``) and
written by a thread of their own (``record_writer.DatasetSink``): the event loop and the tick never
wait for the disk. A real arm records all episodes in one session (``--reset-s`` between them, for the
human to reset the scene). ``--sim`` runs one session per episode so every episode gets a fresh scene
(seed ``--seed`` + episode number; a discarded episode is recorded again with the same seed) and
``--reset-s`` is not used.

Every way out finalizes the dataset: episodes saved so far stay, the one being recorded when a stop
came (Ctrl-C, a stop key, a watchdog, a fault) is dropped. ``--out`` holding a dataset needs
``--resume`` (append; same cameras, shapes and fps) or ``--overwrite`` (delete and replace); a
directory holding anything else is never touched.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field

from harmowam_ctl.config import ConfigError
from harmowam_ctl.record_episodes import EpisodeRecorder, Phase, RecordKeys
from hardware.sim.dataset import MIN_VIDEO_RESOLUTION, STATE_NAMES
from harmowam_ctl.record_writer import DatasetSink, RecordError, check_resumable, plan_output, record_features
from harmowam_ctl.runconfig import RunConfig

log = structlog.get_logger(__name__)

SWITCH_INTERVAL_S = 0.0005  # as the runtime's own (Parts.switch_interval_s), for the whole recording
KEY_HELP = ("n/right arrow: save the episode now | r/left arrow: discard and record it again | "
            "t/space: take over or hand back | s/Esc: safe stop | q: stop and quit | Ctrl-C: stop (saved episodes stay)")


class RecordConfig(BaseModel):
    """What to record and where (the runtime's own settings stay in ``RunConfig``)."""

    model_config = ConfigDict(extra="forbid")

    out: Path = Field(description="LeRobot dataset root (created; see resume/overwrite)")
    repo_id: str | None = Field(None, description="dataset id (default local/<out's name>)")
    episodes: int = Field(1, ge=1, le=100_000, description="episodes to save")
    episode_s: float = Field(30.0, gt=0, le=3600, description="seconds per episode")
    reset_s: float = Field(10.0, ge=0, le=3600, description="seconds between episodes, not recorded (real arm)")
    fps: int = Field(30, ge=5, le=120, description="frames per second written")
    video: bool = Field(True, description="cameras as AV1 videos, as lerobot-record stores them (False: PNG images)")
    task_text: str | None = Field(None, min_length=1, description="LeRobot task string (default: the sim task's instruction)")
    resume: bool = Field(False, description="append episodes to the dataset at out")
    overwrite: bool = Field(False, description="delete the dataset at out and record a new one")
    max_queue_mb: float = Field(512.0, gt=0, description="frames waiting for the writer, at most (MiB); more are dropped")


def check(cfg: RunConfig, rec: RecordConfig) -> str:
    """Cross-checks before anything starts; returns what to do with ``--out`` (create/resume/overwrite)."""
    if cfg.duration_s is not None:
        raise ConfigError("--duration: not for record; the length is --episodes x --episode-s (plus --reset-s)")
    if not cfg.policy and not cfg.leader_arm:
        raise ConfigError("--leader-arm: required without --policy (someone has to drive the arm), "
                          "e.g. --leader-arm so101-leader --leader-port P (or --leader-sim with --sim)")
    if rec.fps > cfg.rate_hz:
        raise ConfigError(f"--fps {rec.fps}: at most the servo tick rate (--rate {cfg.rate_hz:g}): one frame per tick")
    if not cfg.sim and not rec.task_text:
        raise ConfigError('--task-text: required on a real arm: what the demonstrations do, e.g. "Put the cube in the bowl."')
    action = plan_output(rec.out, resume=rec.resume, overwrite=rec.overwrite)
    if action == "resume":
        check_resumable(rec.out, rec.fps, record_features({}, rec.video), cameras=False)  # the cameras: once they exist
    return action


class Recording:
    """One ``harmowam record`` invocation. ``await run()`` returns a summary dict. While it runs,
    ``rt`` is the current runtime, ``recorder`` its ``EpisodeRecorder`` and ``keys.push(intent)``
    acts as a key press. ``say(text)`` gets one line per episode start/end (default: nothing)."""

    def __init__(self, cfg: RunConfig, rec: RecordConfig, *, say: Callable[[str], None] | None = None,
                 session_factory: Any = None) -> None:
        self.cfg, self.rec = cfg, rec
        self.say = say or (lambda _text: None)
        self.keys = RecordKeys()
        self.rt: Any = None
        self.recorder: EpisodeRecorder | None = None
        self.sink: DatasetSink | None = None
        self.sessions: list[dict[str, Any]] = []
        if session_factory is None:
            from harmowam_ctl.setup import session as session_factory
        self._session = session_factory

    async def run(self) -> dict[str, Any]:
        cfg, rec = self.cfg, self.rec
        action = check(cfg, rec)
        await asyncio.to_thread(_import_lerobot)  # seconds of imports (torch): before any device is opened
        number, total, outcome, error = 0, 0, None, None
        switch = sys.getswitchinterval()
        # The runtime hands the GIL over every 0.5 ms while it runs; session set-up (verifying the leader's
        # and the follower's servos) needs it too: at Python's default 5 ms, a busy thread (an in-process
        # simulator, the writer) makes the emulated or USB servos' replies miss their wire-time deadline.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        try:
            while True:
                scfg = cfg.model_copy(update={"seed": cfg.seed + number}) if cfg.sim else cfg
                async with self._session(scfg, on_tick=self._on_tick) as rt:
                    if self.sink is None:
                        self.sink = await asyncio.to_thread(self._open_sink, rt, action)
                    outcome, number, saved = await self._one_session(rt, scfg, number, rec.episodes - total)
                total += saved
                if outcome == "error":
                    error = self.sink.error
                    break
                if outcome not in ("done", "discarded") or total >= rec.episodes:
                    break
        finally:
            sys.setswitchinterval(switch)
            interrupted = total < rec.episodes
            result = self.sink.close(interrupted) if self.sink is not None else {
                "path": str(rec.out), "repo_id": rec.repo_id, "saved": 0, "discarded": 0, "episodes": []}
        if error is not None:
            raise RecordError(f"writing the dataset at {rec.out} failed: {type(error).__name__}: {error}; "
                              f"{result['saved']} episode(s) saved before it stay") from error
        return {**result, "requested": rec.episodes, "complete": result["saved"] >= rec.episodes,
                "outcome": outcome, "sessions": self.sessions}

    def _open_sink(self, rt: Any, action: str) -> DatasetSink:
        shapes = {}
        for name, cam in rt.p.cameras.items():
            w, h = cam.resolution
            if not (w and h):
                raise ConfigError(f"--camera {name}: the camera reports no resolution; give its width and height "
                                  "in the cameras section of --config")
            shapes[name] = (int(h), int(w), 3)
            if self.rec.video and min(w, h) < MIN_VIDEO_RESOLUTION:
                raise ConfigError(f"--camera {name}: {w}x{h} is too small for a video (the AV1 encoder needs at least "
                                  f"{MIN_VIDEO_RESOLUTION} px a side); record it with --images")
        rec, cfg = self.rec, self.cfg
        run_info = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "record": rec.model_dump(mode="json"),
            "runtime": cfg.model_dump(mode="json"),
            "mode": "dagger" if cfg.policy else "teleop",
        }
        from calibration.units import lerobot_converter

        arm = rt.p.arm  # ArmIO: the profile and the calibration the run drives with
        units = lerobot_converter(arm.profile, arm.cal, STATE_NAMES)
        sink = DatasetSink(rec.out, rec.repo_id or f"local/{rec.out.resolve().name or 'recording'}", rec.fps,
                           record_features(shapes, rec.video), arm.profile.lerobot_type, action, run_info=run_info,
                           max_queue_mb=rec.max_queue_mb, units=units)
        sink.open()
        return sink

    async def _one_session(self, rt: Any, scfg: RunConfig, number: int, left: int) -> tuple[str | None, int, int]:
        cfg, rec = self.cfg, self.rec
        assert self.sink is not None
        self.keys.inner, rt.p.keyboard = rt.p.keyboard, self.keys
        task = rec.task_text or rt.p.task
        self.recorder = recorder = EpisodeRecorder(
            self.sink, fps=rec.fps, episode_s=rec.episode_s, reset_s=rec.reset_s, budget=1 if cfg.sim else left,
            cameras=rt.p.cameras, task=task, keys=self.keys, now=rt.clock.now,
            stopping=lambda: rt.stopping is not None, request_stop=rt.request_stop,
            rerecord_in_session=not cfg.sim, first_episode=number,
            extra={"seed": scfg.seed} if cfg.sim else {},
        )
        self.rt = rt
        announce = asyncio.create_task(self._announce(recorder, left))
        try:
            summary = await rt.run()
        finally:
            announce.cancel()
            self.recorder = None
        outcome = recorder.outcome
        cause = rt.stopping.cause if rt.stopping is not None else rt.early_stop
        if outcome is None or (outcome != "aborted" and (rt.fault or cause != recorder.stop_cause)):
            outcome = "aborted"  # the runtime ended for another reason (a stop before the first episode, a fault)
        elif rt.stop_requests > 1 and outcome != "aborted":
            outcome = "stopped"  # Ctrl-C (or a stop key) during the recorder's own stop: the episode is kept, no more
            cause = f"{cause}; then a stop request"
        info = {"seed": scfg.seed if cfg.sim else None, "outcome": outcome, "state": rt.lifecycle.state.value,
                "stop_cause": cause, "fault": rt.fault, "saved": recorder.saved, "discarded": recorder.discarded,
                "tick_hz": summary.get("tick_hz"), "tick_jitter_ms": summary.get("tick_jitter_ms"),
                "time_by_source_s": summary.get("time_by_source_s"),
                "faults": [{k: f.get(k) for k in ("name", "detail", "reaction")} for f in summary.get("faults", [])]}
        self.sessions.append(info)
        self.sink.note_session(info)
        if outcome in ("aborted", "stopped"):
            self.say(f"recording stopped: {cause or rt.fault}; the episodes saved so far stay")
        return outcome, recorder.number, recorder.saved

    async def _announce(self, recorder: EpisodeRecorder, left: int) -> None:
        """One line per phase change (off the tick: the tick never prints)."""
        seen = None
        while True:
            key = (recorder.phase, recorder.number)
            if key != seen:
                seen = key
                if recorder.phase is Phase.RECORD:
                    self.say(f"episode {recorder.number + 1}/{self.rec.episodes}: recording "
                             f"{self.rec.episode_s:g} s (n: save now, r: discard)")
                elif recorder.phase is Phase.RESET:
                    self.say(f"saved {recorder.number}/{self.rec.episodes}; reset the scene: "
                             f"{self.rec.reset_s:g} s (n: start now)")
            await asyncio.sleep(0.05)

    def _on_tick(self, state: Any, targets: Any, source: Any) -> None:
        rec = self.recorder
        if rec is not None:
            rec.on_tick(state, targets, source)


def _import_lerobot() -> None:
    import lerobot.datasets.lerobot_dataset  # noqa: F401
