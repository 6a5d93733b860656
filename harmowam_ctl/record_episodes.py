"""Episodes of ``harmowam record``, decided inside the servo tick (``Parts.on_tick``), without I/O.

``EpisodeRecorder.on_tick(state, targets, source)`` runs at the end of every servo tick, after the
command was written. It samples frames on a fixed grid of ``1/fps`` from the episode's start (the first
tick at or after each grid point gives the frame: its measured joints, the command it sent, who drove,
and the newest frame of every camera) and hands them to the sink (``record_writer.DatasetSink``),
which never blocks. A grid point whose tick came more than one frame period late is skipped and
counted (``missed_frames``): the loop was stalled, and a frame from the wrong time would lie.

Phases: ``WAIT`` (until every camera has a frame) -> ``RECORD`` (``episode_s``, or until ``n``/right
arrow: saved; ``r``/left arrow: discarded) -> ``RESET`` (``reset_s``, not recorded; ``n`` skips it) ->
``RECORD`` ... -> ``DONE`` after ``budget`` saved episodes; then it asks the runtime for a safe stop.
With ``rerecord_in_session=False`` (the simulator: a fresh scene per session) a discard ends the
session too. A stop the recorder did not ask for (Ctrl-C, a stop key, a watchdog) ends the episode
being recorded without saving it (``aborted``); episodes saved before stay.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import structlog

from harmowam_ctl.keyboard import Intent
from harmowam_ctl.record_writer import SOURCE_CODE, frame_bytes, image_key
from harmowam_ctl.types import Source

log = structlog.get_logger(__name__)

RECORD_INTENTS = (Intent.NEXT_EPISODE, Intent.RERECORD)


class Phase(enum.Enum):
    WAIT = "wait"
    RECORD = "record"
    RESET = "reset"
    DONE = "done"


class RecordKeys:
    """Wraps the runtime's keyboard (``Parts.keyboard``, or None): the runtime's ``_keys`` drains
    ``intents()`` every tick and gets the runtime's intents; the record intents (next, re-record) are kept
    for the recorder. ``push`` adds intents from elsewhere (tests, a UI), as if typed."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner
        self._pushed: deque[Intent] = deque()
        self.record: deque[Intent] = deque(maxlen=32)

    def push(self, intent: Intent) -> None:
        self._pushed.append(intent)

    def intents(self) -> list[Any]:
        got = list(self._pushed)
        self._pushed.clear()
        if self.inner is not None:
            got += self.inner.intents()
        out = []
        for i in got:
            (self.record if i in RECORD_INTENTS else out).append(i)
        return out


class EpisodeRecorder:
    """The per-tick episode logic of one runtime session (module doc).

    ``cameras``: name -> object with ``latest()`` returning a frame with ``.image``; ``now``: the
    runtime's clock; ``stopping``: whether the runtime is already stopping; ``request_stop(cause)``:
    the runtime's. ``first_episode``: the run-wide number of the first episode (for the metadata)."""

    def __init__(self, sink: Any, *, fps: float, episode_s: float, reset_s: float, budget: int,
                 cameras: Mapping[str, Any], task: str, keys: RecordKeys, now: Callable[[], float],
                 stopping: Callable[[], bool], request_stop: Callable[[str], None],
                 rerecord_in_session: bool = True, first_episode: int = 0, extra: dict[str, Any] | None = None) -> None:
        self.sink, self.period, self.episode_s, self.reset_s = sink, 1.0 / fps, episode_s, reset_s
        self.budget, self.cameras, self.task, self.keys = budget, dict(cameras), task, keys
        self.now, self.stopping, self._request_stop = now, stopping, request_stop
        self.rerecord_in_session = rerecord_in_session
        self.extra = extra or {}
        self.phase = Phase.WAIT
        self.number = first_episode  # the run-wide episode number being recorded next
        self.saved = self.discarded = 0
        self.outcome: str | None = None  # how the session's recording ended: done, discarded, aborted, error
        self.stop_cause: str | None = None
        self.t_phase = 0.0
        self._reset_ep()

    def _reset_ep(self) -> None:
        self.frames = self.missed = self.dropped = 0
        self.next_due = 0.0
        self.by_source = dict.fromkeys((s.value for s in Source), 0)
        self.interventions = 0
        self._last_human = False

    # --- the tick -----------------------------------------------------------------------------------------

    def on_tick(self, state: Any, targets: np.ndarray, source: Source) -> None:
        if self.phase is Phase.DONE:
            return
        now = self.now()
        if self.stopping():  # a stop nobody here asked for: the episode in progress is not saved
            self._finish("aborted", "the runtime is stopping")
            return
        if self.sink.error is not None:
            self._finish("error", f"the dataset writer failed: {self.sink.error}")
            return
        keys = list(self.keys.record)
        self.keys.record.clear()
        if self.phase is Phase.WAIT:
            if all(c.latest() is not None for c in self.cameras.values()):
                self._start(now)
        elif self.phase is Phase.RESET:
            if Intent.NEXT_EPISODE in keys or now - self.t_phase >= self.reset_s:
                self._start(now)
            return
        if self.phase is not Phase.RECORD:
            return
        if Intent.RERECORD in keys:
            self._end(now, save=False, why="key r")
            return
        self._sample(now, state, targets, source)
        if Intent.NEXT_EPISODE in keys:
            self._end(now, save=True, why="key n")
        elif now - self.t_phase >= self.episode_s - 1e-9 and self.next_due >= self.t_phase + self.episode_s - 1e-9:
            self._end(now, save=True, why="duration")

    def _start(self, now: float) -> None:
        self._reset_ep()
        self.phase, self.t_phase, self.next_due = Phase.RECORD, now, now
        log.info("episode started", episode=self.number, task=self.task)

    def _sample(self, now: float, state: Any, targets: np.ndarray, source: Source) -> None:
        end = self.t_phase + self.episode_s
        if now < self.next_due or self.next_due >= end - 1e-9:
            return
        # grid points a late tick passed by (a stalled loop) are missing, not invented: this tick gives
        # the newest grid point before it, and the episode keeps its length in grid points
        while now - self.next_due >= self.period and self.next_due + self.period < end - 1e-9:
            self.missed += 1
            self.next_due += self.period
        self.next_due += self.period
        human = source is Source.HUMAN
        frame: dict[str, Any] = {
            image_key(name): cam.latest().image for name, cam in self.cameras.items()
        }
        frame["observation.state"] = np.asarray(state.positions, dtype=np.float32)
        frame["action"] = np.asarray(targets, dtype=np.float32)
        frame["intervention"] = np.array([int(human)], dtype=np.int64)
        frame["control_source"] = np.array([SOURCE_CODE[source]], dtype=np.int64)
        frame["t_monotonic"] = np.array([state.t], dtype=np.float64)
        frame["task"] = self.task
        if not self.sink.frame(frame, frame_bytes(frame)):
            if not self.dropped:
                log.warning("the dataset writer is behind: frames dropped (lower --fps or the camera resolution)",
                            episode=self.number)
            self.dropped += 1
            return
        self.frames += 1
        self.by_source[source.value] += 1
        if human and not self._last_human:
            self.interventions += 1
        self._last_human = human

    def _end(self, now: float, *, save: bool, why: str) -> None:
        if save:
            self.sink.save({
                "number": self.number, "task": self.task, "ended_by": why, "duration_s": round(now - self.t_phase, 4),
                "interventions": self.interventions, "intervention_frames": self.by_source[Source.HUMAN.value],
                "intervention_s": round(self.by_source[Source.HUMAN.value] * self.period, 4),
                "frames_by_source": dict(self.by_source), "missed_frames": self.missed, **self.extra,
            })
            self.saved += 1
            self.number += 1
            log.info("episode recorded", ended_by=why, frames=self.frames, interventions=self.interventions)
            if self.saved >= self.budget:
                self._finish("done", f"{self.saved} episode(s) recorded")
                return
        else:
            self.sink.discard(why)
            self.discarded += 1
            log.info("episode discarded: recording it again", why=why)
            if not self.rerecord_in_session:
                self._finish("discarded", f"episode discarded ({why})")
                return
        self.phase, self.t_phase = Phase.RESET, now

    def _finish(self, outcome: str, cause: str) -> None:
        if self.phase is Phase.RECORD and outcome in ("aborted", "error"):
            self.sink.discard(cause)
        self.phase, self.outcome = Phase.DONE, outcome
        if outcome in ("done", "discarded", "error"):
            self.stop_cause = f"recording: {cause}"
            self._request_stop(self.stop_cause)
