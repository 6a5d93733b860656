"""The action buffer: timestamped action chunks in, one joint target at any time ``t`` out.

A chunk's step ``k`` is due at ``t0 + k * dt`` (``policies.interface.ActionChunk``). The buffer keeps a
short stack of *layers*, one per accepted chunk still contributing to the output:

    y_0(t) = layer_0(t)
    y_i(t) = (1 - w_i(t)) * y_{i-1}(t) + w_i(t) * layer_i(t),   w_i(t) = smoothstep((t - start_i) / crossfade_s)

``start_i`` is the time the chunk was *added* (``now``), not its ``t0``: the output at the arrival instant
is exactly what it was before (w = 0), and it moves onto the new plan over ``crossfade_s`` (real-time
chunking style). A chunk arriving during a crossfade blends from the current blended trajectory, so any
sequence of arrivals stays continuous. Once a layer is fully blended in, the layers below it are pruned.

Rules: a chunk whose ``t_obs`` is older than the newest accepted chunk's is refused (``refused_old``);
a chunk whose last step is due before ``now`` is dropped (``dropped_stale``). The steps of an accepted
chunk due before ``now`` are cut, except the one anchoring the interpolation segment that contains ``now``.
Inside a layer the value is interpolated linearly between steps (or held, ``interpolation="hold"``);
before the first step it is the first step, after the last step it is the last step. ``sample(t)``
returns ``None`` when there is no chunk or ``t`` is more than ``max_extrapolate_s`` past the newest
chunk's last step. Sampling at a time earlier than the latest ``add`` is evaluated on the layers kept
then (no history is kept): the servo tick samples at its own, increasing, times.

The buffer is not thread-safe; the runtime uses it from the event loop only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import structlog
from pydantic import BaseModel, ConfigDict, Field

from policies.interface import ActionChunk

log = structlog.get_logger(__name__)

__all__ = ["ActionBuffer", "BufferConfig", "smoothstep"]


class BufferConfig(BaseModel):
    """How chunks are blended and how long the last step of a chunk may still be used."""

    model_config = ConfigDict(extra="forbid")

    crossfade_s: float = Field(
        0.1, ge=0.0, le=2.0,
        description="seconds over which the output moves from the old plan to a newly arrived chunk "
        "(0 = switch at once, which jumps)",
    )
    max_extrapolate_s: float = Field(
        0.1, ge=0.0, le=5.0,
        description="seconds after the newest chunk's last step during which its last value is still used; "
        "after that sample() returns None (the arbiter then holds)",
    )
    interpolation: Literal["linear", "hold"] = Field(
        "linear", description="between two steps: 'linear' interpolation or 'hold' the earlier step"
    )


def smoothstep(x: float) -> float:
    """0 for x <= 0, 1 for x >= 1, 3x^2 - 2x^3 between (slope at most 1.5, zero at both ends)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True, slots=True)
class _Layer:
    t0: float
    dt: float
    actions: np.ndarray  # H x 6, steps before the anchor already cut
    start: float  # when the chunk was added: its crossfade starts here

    @property
    def t_end(self) -> float:
        return self.t0 + (self.actions.shape[0] - 1) * self.dt

    def value(self, t: float, linear: bool) -> np.ndarray:
        a = self.actions
        n = a.shape[0] - 1
        u = (t - self.t0) / self.dt
        if u <= 0.0 or n == 0:
            return a[0]
        if u >= n:
            return a[n]
        k = int(math.floor(u))
        if not linear:
            return a[k]
        f = u - k
        return a[k] + f * (a[k + 1] - a[k])


class ActionBuffer:
    """Timestamped action chunks blended into one continuous joint-target trajectory."""

    def __init__(self, config: BufferConfig | None = None) -> None:
        self.config = config or BufferConfig()
        self._linear = self.config.interpolation == "linear"
        self._layers: list[_Layer] = []
        self.added = 0
        self.dropped_stale = 0
        self.refused_old = 0
        self.newest_t_obs: float | None = None
        self._floor: float | None = None

    # ------------------------------------------------------------------ input
    def add(self, chunk: ActionChunk, now: float) -> None:
        """Take a chunk that arrived at ``now`` (monotonic s). Refused if its ``t_obs`` is older than the
        newest accepted chunk's (or than ``clear(not_before=...)``); dropped if its last step is due
        before ``now``; otherwise its past steps are cut and it crossfades in starting at ``now``."""
        floors = [f for f in (self.newest_t_obs, self._floor) if f is not None]
        floor = max(floors) if floors else None
        if floor is not None and chunk.t_obs < floor:
            self.refused_old += 1
            log.debug("chunk refused: older observation", t_obs=chunk.t_obs, newest_t_obs=floor)
            return
        if chunk.t_end < now:
            self.dropped_stale += 1
            log.debug("chunk dropped: all steps in the past", t_end=chunk.t_end, now=now)
            return
        k0 = 0
        if now > chunk.t0:
            k0 = min(int(math.floor((now - chunk.t0) / chunk.dt)), chunk.horizon - 1)
        layer = _Layer(chunk.t0 + k0 * chunk.dt, chunk.dt, chunk.actions[k0:].copy(), now)
        before = self.sample(now)
        if before is None or self.config.crossfade_s <= 0.0:
            self._layers = [layer]
        else:
            self._layers.append(layer)
            self._prune(now)
        self.added += 1
        self.newest_t_obs = chunk.t_obs

    def clear(self, not_before: float | None = None) -> None:
        """Forget every chunk (re-plan, e.g. when control comes back from a human). Counters and
        ``newest_t_obs`` are kept, so a chunk computed before the clear is still refused as old;
        ``not_before`` (a monotonic time) additionally refuses chunks observed before it."""
        self._layers = []
        if not_before is not None:
            self._floor = not_before if self._floor is None else max(self._floor, not_before)

    def _prune(self, now: float) -> None:
        cf = self.config.crossfade_s
        for i in range(len(self._layers) - 1, 0, -1):
            if self._layers[i].start + cf <= now:  # fully blended in: nothing below it shows any more
                del self._layers[:i]
                return

    # ----------------------------------------------------------------- output
    @property
    def valid_until(self) -> float | None:
        """The last time at which ``sample`` returns a value (``None``: no chunk)."""
        if not self._layers:
            return None
        return self._layers[-1].t_end + self.config.max_extrapolate_s

    @property
    def layers(self) -> int:
        """How many chunks currently contribute (1 outside crossfades)."""
        return len(self._layers)

    def sample(self, t: float) -> np.ndarray | None:
        """Joint targets (radians, 6) at time ``t``, or ``None`` (no chunk, or past ``valid_until``)."""
        layers = self._layers
        if not layers or t > layers[-1].t_end + self.config.max_extrapolate_s:
            return None
        cf = self.config.crossfade_s
        weights = [1.0] * len(layers)
        first = 0
        for i in range(len(layers) - 1, 0, -1):
            w = smoothstep((t - layers[i].start) / cf) if cf > 0.0 else (1.0 if t >= layers[i].start else 0.0)
            weights[i] = w
            if w >= 1.0:
                first = i
                break
        y = np.array(layers[first].value(t, self._linear), dtype=float)
        for i in range(first + 1, len(layers)):
            w = weights[i]
            if w > 0.0:
                y = (1.0 - w) * y + w * layers[i].value(t, self._linear)
        return y
