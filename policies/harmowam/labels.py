"""The gate's phase labels: 1 = interaction, 0 = transit (HarmoWAM's automatic labels).

As in the paper, a frame is ``interaction`` when it lies within ``window`` frames of a gripper
open/close event; everything else is ``transit``. An optional extra cue is OR'ed in (the paper adds an
end-effector-height cue for insert/pour tasks; here the cue can be the dataset's own ``phase`` column,
which `harmowam sim demos` fills with contact phases such as pushing or inserting).

Events are found on one column of the gripper signal (by default the commanded gripper, ``action``'s
last joint) with a Schmitt trigger, so it works in any unit (radians, degrees, 0-100 %) and with a
gripper that moves gradually under teleoperation as well as with the scripted experts' steps:

* ``low``/``high`` thresholds lie at ``hysteresis`` (default 35 %/65 %) of the signal's range over the
  whole dataset (``thresholds``), so an episode that never opens or closes has no event, rather than
  events made of noise; a range under ``min_range`` means no events at all;
* the gripper starts ``open`` or ``closed`` on its first value's side of the middle; an event is the
  first frame at which the signal has crossed the opposite threshold.

Window: default 10 frames at 30 fps (1/3 s either side of the event), scaled with the dataset's fps
(``window_frames``). The paper uses +-20 frames on its own recordings; at our 30 Hz control rate 20
frames (2/3 s) marks most of a short pick-and-place as interaction (a 160-frame `sim demos` episode
would be half interaction), while 10 frames covers the final approach, the grasp/release and the lift
off, which is what `harmowam sim demos` labels too (``hardware.sim.tasks.expert.DEFAULT_WINDOW``), so
computed labels agree with those datasets' own column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_WINDOW_30FPS = 10


class LabelConfig(BaseModel):
    """How phase labels are made (module doc)."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["auto", "dataset", "gripper"] = Field(
        "auto",
        description="auto: the dataset's phase column when it has one, else gripper events; "
        "dataset: the column (error if missing); gripper: always computed from gripper events",
    )
    window: int | None = Field(None, ge=0, description="frames either side of an event (default 10 at 30 fps, scaled with fps)")
    signal: Literal["action", "observation.state"] = Field("action", description="which feature holds the gripper")
    gripper_index: int = Field(-1, description="the gripper's column in that feature (default: the last)")
    hysteresis: tuple[float, float] = Field((0.35, 0.65), description="low/high thresholds as fractions of the gripper's range")
    min_range: float = Field(1e-3, ge=0, description="a gripper range below this (dataset units) has no events")
    extra: Literal["none", "dataset_phase"] = Field(
        "none", description="extra cue OR'ed into computed labels: none, or the dataset's phase column"
    )

    @model_validator(mode="after")
    def _check(self) -> LabelConfig:
        lo, hi = self.hysteresis
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"hysteresis: need 0 <= low < high <= 1, got {self.hysteresis}")
        return self


def window_frames(cfg: LabelConfig, fps: float) -> int:
    """The event window in frames at ``fps`` (``cfg.window`` if given)."""
    if cfg.window is not None:
        return int(cfg.window)
    return max(1, int(round(DEFAULT_WINDOW_30FPS * float(fps) / 30.0)))


def thresholds(signal: np.ndarray, hysteresis: tuple[float, float] = (0.35, 0.65), min_range: float = 1e-3) -> tuple[float, float] | None:
    """``(low, high)`` Schmitt thresholds for a gripper ``signal`` (all frames of a dataset), or None when
    its range is below ``min_range`` (a gripper that never moves)."""
    s = np.asarray(signal, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return None
    lo, hi = float(s.min()), float(s.max())
    if hi - lo < min_range:
        return None
    return lo + hysteresis[0] * (hi - lo), lo + hysteresis[1] * (hi - lo)


def gripper_events(signal: np.ndarray, low: float, high: float) -> list[int]:
    """Frames at which the gripper changes between open (above ``high``) and closed (below ``low``).

    Which side is "open" does not matter: an event is a change of side, whatever its direction."""
    s = np.asarray(signal, dtype=np.float64)
    if s.size == 0:
        return []
    above = bool(s[0] >= (low + high) / 2)
    events = []
    for i, v in enumerate(s):
        if above and v < low:
            above = False
            events.append(i)
        elif not above and v > high:
            above = True
            events.append(i)
    return events


def window_labels(n: int, events: Sequence[int], window: int) -> np.ndarray:
    """``n`` labels (int64): 1 within ``window`` frames of an event, else 0."""
    out = np.zeros(n, dtype=np.int64)
    for e in events:
        out[max(0, e - window) : min(n, e + window + 1)] = 1
    return out


def episode_labels(
    gripper: np.ndarray,
    thresholds_: tuple[float, float] | None,
    window: int,
    extra: np.ndarray | None = None,
) -> np.ndarray:
    """Labels for one episode from its gripper signal (``thresholds`` from the whole dataset, None for
    no events) with ``extra`` (0/1 per frame, or None) OR'ed in."""
    n = len(gripper)
    events = [] if thresholds_ is None else gripper_events(gripper, *thresholds_)
    out = window_labels(n, events, window)
    if extra is not None:
        extra = np.asarray(extra).reshape(-1)
        if extra.shape[0] != n:
            raise ValueError(f"extra cue has {extra.shape[0]} frames, the episode {n}")
        out |= (extra > 0).astype(np.int64)
    return out
