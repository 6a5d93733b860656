"""A rerun recording (.rrd file) of a run, written by a background thread; never a viewer, never a network.

The event loop only hands things over, in O(1) and without copying:
* servo ticks are not handed over at all: the thread reads new rows from the ``TickStore`` every
  ``period_s`` (rows dropped by the store's cap before the thread got to them are counted as missed);
* camera frames and imagined frames go into a latest-value slot per stream (an image not yet logged when
  the next one of the same stream arrives is dropped and counted): the thread never falls behind;
* policy steps, events and faults go into a bounded deque (oldest dropped, counted).

Entity paths (timeline ``run_time``: monotonic seconds since the run started, a duration):
``joints/<name>/target`` (sent, at ``t_end``), ``joints/<name>/present`` (read, at ``state_t``),
``joints/<name>/requested`` (before the safety filter, where given), ``tick/{period,jitter,compute}_ms``,
``latency/e2e_ms``, ``control/source`` (text, on each change of source or reason), ``safety/filter``
(text, on change), ``cameras/<camera>``, ``imagined/<k>``, ``policy/{predict_ms,act_ms,gate}``,
``policy/expert`` (text), ``events`` and ``faults`` (text logs).
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog

from hardware.arms import JOINT_NAMES

if TYPE_CHECKING:
    from harmowam_ctl.telemetry import PolicyStep, TickColumns, TickStore

log = structlog.get_logger(__name__)
TIMELINE = "run_time"


class RerunRecorder:
    """Writes ``path`` from a daemon thread; ``close()`` logs what is pending, flushes and joins."""

    def __init__(self, path: str | Path, *, store: TickStore, t0: float, run_name: str = "harmowam",
                 jpeg_quality: int | None = 85, period_s: float = 0.2, max_notes: int = 4096) -> None:
        import rerun as rr

        self._rr = rr
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._store, self._t0, self._jpeg, self._period = store, t0, jpeg_quality, period_s
        self._rec = rr.RecordingStream("harmowam", recording_id=uuid.uuid4(), send_properties=False)
        self._rec.set_log_time_enabled(False)
        self._rec.set_log_tick_enabled(False)
        self._rec.save(self.path)
        self._rec.send_recording_name(run_name)
        self._lock = threading.Lock()
        self._frames: dict[str, tuple[float, np.ndarray]] = {}
        self._notes: deque[tuple[str, float, Any]] = deque(maxlen=max_notes)
        self._wake = threading.Event()
        self._stop = False
        self._cursor = store.first
        self._last_source: tuple[int, int] | None = None
        self._last_flags: int | None = None
        self._prev_start: float | None = None
        self.frames_logged = self.frames_dropped = self.notes_dropped = 0
        self.ticks_logged = self.ticks_missed = self.errors = 0
        self._thread = threading.Thread(target=self._run, name="telemetry-rerun", daemon=True)
        self._thread.start()

    # --- called from the event loop: O(1) -----------------------------------------------------------
    def frame(self, entity: str, t: float, image: np.ndarray) -> None:
        with self._lock:
            if entity in self._frames:
                self.frames_dropped += 1
            self._frames[entity] = (t, image)
        self._wake.set()

    def note(self, kind: str, t: float, payload: Any) -> None:
        if len(self._notes) == self._notes.maxlen:
            self.notes_dropped += 1
        self._notes.append((kind, t, payload))

    def counters(self) -> dict[str, int]:
        return {"frames_logged": self.frames_logged, "frames_dropped": self.frames_dropped,
                "ticks_logged": self.ticks_logged, "ticks_missed": self.ticks_missed,
                "notes_dropped": self.notes_dropped, "errors": self.errors}

    def close(self, timeout_s: float = 10.0) -> None:
        if self._thread.is_alive():
            self._stop = True
            self._wake.set()
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("rerun recorder did not finish in time; the .rrd may be incomplete",
                            path=str(self.path), timeout_s=timeout_s)
                return
        if self._rec is not None:
            self._rec.flush()
            self._rec.disconnect()
            self._rec = None

    # --- the thread ------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self._period)
            self._wake.clear()
            stop = self._stop
            self._step()
            if stop:
                self._step()  # whatever arrived while the last step ran
                return

    def _step(self) -> None:
        for what, fn in (("ticks", self._log_ticks), ("notes", self._log_notes), ("frames", self._log_frames)):
            try:
                fn()
            except Exception:  # a recording problem must never stop the run: log once, count the rest
                self.errors += 1
                if self.errors == 1:
                    log.exception("rerun logging failed; the recording goes on without it", what=what)

    def _at(self, t: float) -> None:
        self._rec.set_time(TIMELINE, duration=t - self._t0)

    def _log_frames(self) -> None:
        with self._lock:
            frames, self._frames = self._frames, {}
        rr = self._rr
        for entity, (t, image) in frames.items():
            self._at(t)
            images = [(f"{entity}/{k}", im) for k, im in enumerate(image)] if image.ndim == 4 else [(entity, image)]
            for path, im in images:
                img = rr.Image(np.ascontiguousarray(im))
                self._rec.log(path, img.compress(jpeg_quality=self._jpeg) if self._jpeg is not None else img)
            self.frames_logged += 1

    def _log_notes(self) -> None:
        rr = self._rr
        while self._notes:
            kind, t, payload = self._notes.popleft()
            self._at(t)
            if kind == "policy":
                step: PolicyStep = payload
                self._rec.log(f"policy/{step.stage}_ms", rr.Scalars((step.t_done - step.t_start) * 1e3))
                if step.gate is not None:
                    self._rec.log("policy/gate", rr.Scalars(float(step.gate)))
                if step.expert is not None:
                    self._rec.log("policy/expert", rr.TextLog(step.expert))
            else:
                name, fields = payload
                text = " ".join([name, *(f"{k}={v}" for k, v in fields.items())])
                is_fault = name == "fault"
                self._rec.log("faults" if is_fault else "events",
                              rr.TextLog(text, level="ERROR" if is_fault else "INFO"))

    def _log_ticks(self) -> None:
        self.ticks_missed += max(0, self._store.first - self._cursor)
        cols, nxt = self._store.read(self._cursor)
        self._cursor = nxt
        n = len(cols)
        if n == 0:
            return
        self._series(cols)
        self._changes(cols)
        self.ticks_logged += n

    def _send(self, entity: str, t: np.ndarray, values: np.ndarray) -> None:
        keep = np.isfinite(values) & np.isfinite(t)
        if keep.any():
            rr = self._rr
            self._rec.send_columns(entity, indexes=[rr.TimeColumn(TIMELINE, duration=t[keep] - self._t0)],
                                   columns=rr.Scalars.columns(scalars=values[keep]))

    def _series(self, c: TickColumns) -> None:
        for j, name in enumerate(JOINT_NAMES):
            self._send(f"joints/{name}/target", c.t_end, c.target[:, j])
            self._send(f"joints/{name}/present", c.state_t, c.present[:, j])
            self._send(f"joints/{name}/requested", c.t_start, c.requested[:, j])
        self._send("tick/jitter_ms", c.t_start, np.abs(c.t_start - c.t_sched) * 1e3)
        self._send("tick/compute_ms", c.t_start, (c.t_end - c.t_start) * 1e3)
        starts = c.t_start if self._prev_start is None else np.concatenate([[self._prev_start], c.t_start])
        self._send("tick/period_ms", starts[1:], np.diff(starts) * 1e3)
        self._prev_start = float(c.t_start[-1])
        self._send("latency/e2e_ms", c.t_end, c.e2e_s * 1e3)

    def _changes(self, c: TickColumns) -> None:
        from harmowam_ctl.telemetry import SOURCES

        rr = self._rr
        for i in range(len(c)):
            key = (int(c.source[i]), int(c.reason[i]))
            if key != self._last_source:
                self._last_source = key
                self._at(float(c.t_start[i]))
                self._rec.log("control/source", rr.TextLog(f"{SOURCES[key[0]].value}: {c.reasons[key[1]]}"))
            m = int(c.flags[i])
            if m != self._last_flags:
                self._last_flags = m
                names = [f for b, f in enumerate(c.flag_names) if m >> b & 1]
                self._at(float(c.t_start[i]))
                self._rec.log("safety/filter", rr.TextLog(", ".join(names) or "(none)"))
