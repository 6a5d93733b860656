"""Run telemetry: what the servo tick records, and the end-of-run summary (JSON + PNG) and rerun file.

Design (the servo tick calls ``Telemetry.tick`` 100 times a second on the event loop, so it stays cheap:
a few numpy row writes and dict look-ups, a few microseconds):

* Ticks go into numpy columns held in blocks whose capacity doubles (256, 512, ... 16384 rows); a full
  block is never copied, the next one is added, so no tick pays for moving the history. Joint values are
  stored as float32 (plenty for radians), times as float64. Reasons and filter flags are interned (a code /
  a bit mask per tick).
* At most ``config.max_ticks`` ticks are kept (default one hour at 100 Hz, ~47 MB). When the store is full
  the oldest half is dropped (an O(1) pointer move) and counting goes on: ``ticks`` in the summary is the
  whole run; percentiles, overruns and velocities cover the retained window (``ticks_retained``,
  ``window_s``); ``time_by_source_s`` and ``filter_counts`` are accumulated per tick over the whole run.
* Everything heavy happens off the tick path: the summary and plot at the end of the run, rerun logging in
  a background thread (``telemetry_rerun``) that reads new rows from the same store and receives camera
  frames through a latest-value slot per stream (frames it cannot keep up with are dropped and counted).

Summary time definitions: period = spacing of ``t_start``; jitter = ``|t_start - t_sched|`` (how late, or
early, a tick began against its schedule); compute = ``t_end - t_start`` (read, update and the sync write);
an overrun is a tick that started after the next one was due (``t_start - t_sched`` > the nominal period,
the median spacing of ``t_sched``); a deadline miss is a tick that ended after the next one was due.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hardware.arms import ARMS, JOINT_NAMES
from harmowam_ctl.clock import Clock, MonotonicClock
from harmowam_ctl.tickstore import _SOURCE_CODE, OTHER_FLAG, OTHER_REASON, SOURCES, TickColumns, TickRecord, TickStore
from harmowam_ctl.types import N_JOINTS, Source

__all__ = ["OTHER_FLAG", "OTHER_REASON", "SOURCES", "PolicyStep", "Telemetry", "TelemetryConfig", "TickColumns",
           "TickRecord", "TickStore", "summarise"]

log = structlog.get_logger(__name__)

_MAX_RECORDS = 100_000  # policy steps / events kept (oldest half dropped beyond)


def _default_out_dir() -> Path:
    return Path("runs") / time.strftime("%Y%m%d-%H%M%S")


class TelemetryConfig(BaseModel):
    """Where and what a run records."""

    model_config = ConfigDict(extra="forbid")

    out_dir: Path = Field(default_factory=_default_out_dir, description="folder for summary.json, plot.png "
                          "and run.rrd (default runs/<YYYYmmdd-HHMMSS>)")
    run_name: str | None = Field(None, description="name shown in the summary and plot (default: out_dir's name)")
    arm: str | None = Field(None, description="arm profile name recorded in the summary (hardware.arms.ARMS)")
    rerun: bool = Field(False, description="also write a rerun recording (.rrd): frames, joints, gate, source")
    rerun_path: Path | None = Field(None, description="where the .rrd goes (default out_dir/run.rrd)")
    jpeg_quality: int | None = Field(85, ge=1, le=100, description="JPEG quality for camera frames in the "
                                     ".rrd (1-100), or None to store raw RGB (large files)")
    plot: bool = Field(True, description="write plot.png at the end of the run")
    max_ticks: int = Field(360_000, ge=100, description="servo ticks kept in memory (default 1 h at 100 Hz); "
                           "when reached, the oldest half is dropped")

    @field_validator("arm")
    @classmethod
    def _known_arm(cls, v: str | None) -> str | None:
        if v is not None and v not in ARMS:
            raise ValueError(f"unknown arm {v!r}; choose one of: {', '.join(ARMS)}")
        return v

    @property
    def rrd_path(self) -> Path:
        return self.rerun_path if self.rerun_path is not None else self.out_dir / "run.rrd"

    @property
    def name(self) -> str:
        return self.run_name or self.out_dir.name


@dataclass(frozen=True, slots=True)
class PolicyStep:
    stage: Literal["predict", "act"]
    t_obs: float
    t_start: float
    t_done: float
    gate: float | None = None
    expert: str | None = None


class Telemetry:
    """Collects one run's telemetry. All methods are called from the event loop; ``tick`` is the hot one.

    ``frame``/``imagined`` only matter with ``config.rerun``; they hand the image to the recorder's thread
    (no copy: do not modify the array afterwards). Call ``close()`` (or ``write``, which closes) at the end.
    """

    def __init__(self, config: TelemetryConfig | None = None, clock: Clock | None = None) -> None:
        self.config = config if config is not None else TelemetryConfig()
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self.t0 = self._clock.now()
        self._t_closed: float | None = None
        self.store = TickStore(self.config.max_ticks)
        self._src_time = [0.0] * len(SOURCES)
        self._last_start: float | None = None
        self._last_src = 0
        self.policy_steps: list[PolicyStep] = []
        self.events: list[dict[str, Any]] = []
        self.events_count = 0
        self.faults: list[dict[str, Any]] = []
        self._recorder: Any = None
        if self.config.rerun:
            from harmowam_ctl.telemetry_rerun import RerunRecorder

            self._recorder = RerunRecorder(self.config.rrd_path, store=self.store, t0=self.t0,
                                           run_name=self.config.name, jpeg_quality=self.config.jpeg_quality)

    # --- hot path -------------------------------------------------------------------------------------
    def tick(self, rec: TickRecord) -> None:
        """Record one servo tick (a few microseconds; no I/O, no logging)."""
        self.store.append(rec)
        last = self._last_start
        if last is not None and rec.t_start > last:
            self._src_time[self._last_src] += rec.t_start - last
        self._last_start = rec.t_start
        self._last_src = _SOURCE_CODE[rec.source]

    # --- policy, events, faults, frames --------------------------------------------------------------------
    def policy(self, stage: Literal["predict", "act"], t_obs: float, t_start: float, t_done: float,
               gate: float | None = None, expert: str | None = None) -> None:
        """One policy stage finished: ``t_done - t_start`` is its step time."""
        if stage not in ("predict", "act"):
            raise ValueError(f"policy stage must be 'predict' or 'act', got {stage!r}")
        step = PolicyStep(stage, t_obs, t_start, t_done, gate, expert)
        self._keep(self.policy_steps, step)
        if self._recorder is not None:
            self._recorder.note("policy", t_done, step)

    def event(self, kind: str, *, t: float | None = None, **fields: Any) -> None:
        """A transition, hand-over, fault...: kept for events.jsonl and logged via structlog.
        ``t``: when it happened (default now); ``fields`` should be JSON-friendly (others are str()-ed)."""
        t = self._clock.now() if t is None else t
        self.events_count += 1
        self._keep(self.events, {**fields, "t": t, "kind": kind})
        level = log.warning if kind == "fault" else log.info
        level(kind, **{("event_" if k == "event" else k): v for k, v in fields.items()})
        if self._recorder is not None:
            self._recorder.note("event", t, (kind, fields))

    def fault(self, name: str, detail: str, reaction: str, *, t: float | None = None) -> None:
        """A fault and what the runtime did about it (also an event of kind "fault"); ``t`` default now."""
        t = self._clock.now() if t is None else t
        self.faults.append({"t": t, "name": name, "detail": str(detail), "reaction": reaction})
        self.event("fault", t=t, name=name, detail=str(detail), reaction=reaction)

    def frame(self, camera: str, frame: Any, t: float | None = None) -> None:
        """A camera frame: a ``hardware.camera.Frame`` (its ``image`` and ``t_capture``) or an H x W x 3
        uint8 array captured at ``t`` (default now). Goes to rerun only (nothing happens without it)."""
        if self._recorder is None:
            return
        image = getattr(frame, "image", frame)
        if t is None:
            t = getattr(frame, "t_capture", None)
        self._recorder.frame(f"cameras/{camera}", self._clock.now() if t is None else t, image)

    def imagined(self, t_obs: float, frames: np.ndarray | None) -> None:
        """The world model's imagined frames (K x H x W x 3) for the observation at ``t_obs``: rerun only."""
        if self._recorder is not None and frames is not None:
            self._recorder.frame("imagined", t_obs, frames)

    @staticmethod
    def _keep(seq: list[Any], item: Any) -> None:
        seq.append(item)
        if len(seq) > _MAX_RECORDS:
            del seq[: _MAX_RECORDS // 2]

    # --- while running ----------------------------------------------------------------------------------
    def summary_light(self, window: int = 100) -> dict[str, Any]:
        """What a status line needs, cheaply (tens of microseconds): ticks so far, the tick rate over the
        newest ``window`` ticks (None before two), the faults list and the events count."""
        ts = self.store.last_starts(window)
        return {"ticks": self.store.n, "tick_hz": _rate(ts), "faults": self.faults,
                "events_count": self.events_count}

    # --- end of run -------------------------------------------------------------------------------------
    def columns(self) -> TickColumns:
        return self.store.read()[0]

    def close(self) -> None:
        """Stamp the end of the run; flush and join the rerun thread. Idempotent."""
        if self._t_closed is None:
            self._t_closed = self._clock.now()
        if self._recorder is not None:
            self._recorder.close()

    def summary(self) -> dict[str, Any]:
        end = self._t_closed if self._t_closed is not None else self._clock.now()
        src_time = list(self._src_time)
        cols = self.columns()
        s = summarise(cols, self.policy_steps, t0=self.t0, t_end=end, src_time=src_time,
                      last_src=self._last_src if self._last_start is not None else None,
                      mask_counts=self.store.mask_counts, ticks_total=self.store.n)
        s = {"run": self.config.name, "arm": self.config.arm, "t0": self.t0, **s,
             "faults": [dict(f) for f in self.faults], "events_count": self.events_count}
        if self._recorder is not None:
            s["rerun"] = {"path": str(self.config.rrd_path), **self._recorder.counters()}
        return _jsonable(s)

    def write(self, out_dir: str | Path | None = None) -> dict[str, Path]:
        """Close, then write summary.json, events.jsonl and (config.plot) plot.png; returns their paths
        (and the .rrd's, which stays at config.rrd_path)."""
        self.close()
        out = Path(out_dir) if out_dir is not None else self.config.out_dir
        out.mkdir(parents=True, exist_ok=True)
        s = self.summary()
        paths: dict[str, Path] = {"summary": out / "summary.json", "events": out / "events.jsonl"}
        paths["summary"].write_text(json.dumps(s, indent=2, allow_nan=False) + "\n")
        with paths["events"].open("w") as f:
            for e in self.events:
                f.write(json.dumps(_jsonable(e), allow_nan=False, default=str) + "\n")
        if self.config.plot:
            from harmowam_ctl.telemetry_plot import write_plot

            try:
                paths["plot"] = write_plot(out / "plot.png", self.columns(), self.policy_steps, s, t0=self.t0,
                                           joint_names=JOINT_NAMES)
            except Exception:  # the summary is written; a plotting problem must not end the run with an error
                log.exception("could not draw plot.png; summary.json is complete", out_dir=str(out))
        if self._recorder is not None:
            paths["rerun"] = self.config.rrd_path
        log.info("telemetry written", **{k: str(v) for k, v in paths.items()})
        return paths


def _stats(x: np.ndarray, keys: tuple[str, ...] = ("p50", "p99", "max")) -> dict[str, float | None]:
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {k: None for k in keys}
    return {k: round(float(np.max(x) if k == "max" else np.percentile(x, float(k[1:]))), 4) for k in keys}


def _rate(t: np.ndarray) -> float | None:
    """Events per second over their span (None for fewer than two)."""
    return round(float((t.size - 1) / (t[-1] - t[0])), 4) if t.size >= 2 and t[-1] > t[0] else None


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), digits)


def summarise(cols: TickColumns, steps: Sequence[PolicyStep], *, t0: float, t_end: float,
              src_time: Sequence[float], last_src: int | None, mask_counts: Mapping[int, int],
              ticks_total: int) -> dict[str, Any]:
    """The summary's numbers (see the module docstring for the definitions). Missing values are None."""
    n = len(cols)
    sched_step = np.diff(cols.t_sched)
    sched_step = sched_step[sched_step > 0]
    nominal = float(np.median(sched_step)) if sched_step.size else None
    lateness = cols.t_start - cols.t_sched
    src = list(src_time)
    if last_src is not None and nominal is not None:
        src[last_src] += nominal  # the last tick drove for one period
    flags: dict[str, int] = {}
    for mask, count in mask_counts.items():
        for bit, name in enumerate(cols.flag_names):
            if mask >> bit & 1:
                flags[name] = flags.get(name, 0) + count
    dt = np.diff(cols.t_start)
    ok = dt > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        vel = np.abs(np.diff(cols.target, axis=0))[ok] / dt[ok, None]
    vmax = [_r(float(np.nanmax(vel[:, j]))) if vel.shape[0] and np.isfinite(vel[:, j]).any() else None
            for j in range(N_JOINTS)]

    def stage(name: str) -> list[PolicyStep]:
        return [p for p in steps if p.stage == name]

    acts = stage("act")
    gates = np.array([p.gate for p in acts if p.gate is not None], dtype=float)
    experts = [p.expert for p in acts if p.expert is not None]
    gate = None
    if gates.size or experts:
        gate = {"mean": _r(float(np.mean(gates))) if gates.size else None,
                "fraction_predictive": (sum(e == "predictive" for e in experts) / len(experts)) if experts else None}
    return {
        "duration_s": _r(max(0.0, t_end - t0)),
        "ticks": ticks_total,
        "ticks_retained": n,
        "window_s": _r(float(cols.t_start[-1] - cols.t_start[0])) if n >= 2 else None,
        "tick_hz": _rate(cols.t_start),
        "tick_period_nominal_ms": None if nominal is None else round(nominal * 1e3, 4),
        "tick_period_ms": _stats(dt * 1e3),
        "tick_jitter_ms": _stats(np.abs(lateness) * 1e3),
        "tick_compute_ms": _stats((cols.t_end - cols.t_start) * 1e3),
        "overruns": int(np.sum(lateness > nominal)) if nominal is not None else 0,
        "deadline_misses": int(np.sum(cols.t_end - cols.t_sched > nominal)) if nominal is not None else 0,
        "e2e_latency_ms": _stats(cols.e2e_s * 1e3, ("p50", "p99")),
        "e2e_samples": int(np.isfinite(cols.e2e_s).sum()),
        "chunk_age_ms": _stats(cols.chunk_age_s * 1e3, ("p50", "p99")),
        "policy": {
            "predict_ms": _stats(np.array([(p.t_done - p.t_start) * 1e3 for p in stage("predict")]), ("p50", "p99")),
            "act_ms": _stats(np.array([(p.t_done - p.t_start) * 1e3 for p in acts]), ("p50", "p99")),
            "policy_hz": _rate(np.array([p.t_done for p in acts])),
            "chunks": len(acts),
        },
        "gate": gate,
        "time_by_source_s": {s.value: _r(src[i]) for i, s in enumerate(SOURCES)},
        "filter_counts": dict(sorted(flags.items())),
        "max_velocity_rad_s": dict(zip(JOINT_NAMES, vmax, strict=True)),
    }


def _jsonable(x: Any) -> Any:
    """Plain JSON types; NaN/inf -> None, numpy scalars -> Python, enums -> value, paths -> str."""
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set, frozenset)) and not isinstance(x, str):
        items = sorted(x) if isinstance(x, (set, frozenset)) else x
        return [_jsonable(v) for v in items]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (Source,)):
        return x.value
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if x is None or isinstance(x, str):
        return x
    if isinstance(x, Sequence):
        return [_jsonable(v) for v in x]
    return str(x)
