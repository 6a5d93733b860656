"""What a policy sees and gives back, and the two-stage interface the runtime drives.

The runtime calls the two stages from two concurrent tasks, off the event loop:

    prediction = policy.predict(observation)      # world model: imagine the next frames
    chunk = policy.act(prediction, observation)   # gate + chosen expert: a timestamped action chunk

Times are ``time.monotonic()`` seconds. Joint values are radians, zero at the middle of the calibrated
range (``hardware.arms``), in the order of ``hardware.arms.JOINT_NAMES``. A chunk's step ``k`` is due at
``t0 + k * dt``; a policy sets ``t0`` to the observation's time (``obs.t``), so the runtime can drop the
steps already in the past when the chunk arrives late. Policies never read the clock themselves: the
runtime stamps ``t_done`` when a stage returns. A policy's ``predict`` may be trivial (a scripted or
ACT policy has no world model).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

N_JOINTS = 6


@dataclass(frozen=True, slots=True)
class Observation:
    """Camera images and joint state at one moment.

    ``t``: the observation's time = capture time of the newest of its camera frames (or ``state_t`` when
    there is no camera). ``images``: camera name -> H x W x 3 uint8 RGB. ``image_t``: camera name ->
    capture time. ``state``: joint positions (radians, 6), read at ``state_t``. ``task``: the instruction.
    """

    t: float
    state: np.ndarray
    state_t: float
    images: Mapping[str, np.ndarray] = field(default_factory=dict)
    image_t: Mapping[str, float] = field(default_factory=dict)
    task: str = ""
    index: int = 0  # counts observations of one run (0, 1, 2, ...)


@dataclass(frozen=True, slots=True)
class WorldPrediction:
    """The world model's output for one observation.

    ``latent``: policy-specific (a tensor; ``None`` when it stays inside a policy process, see ``key``).
    ``frames``: imagined future frames (K x H x W x 3 uint8) for display, or ``None``.
    ``key``: an opaque handle a policy running in another process uses to find its latent.
    """

    t_obs: float
    t_done: float = 0.0
    latent: Any = None
    frames: np.ndarray | None = None
    key: int = 0


@dataclass(frozen=True, slots=True)
class ActionChunk:
    """Joint targets over a short horizon: ``actions[k]`` (radians, 6) is due at ``t0 + k * dt``.

    ``gate``: the gate's value s_t in 0..1 (``None`` when the policy has no gate); ``expert``: the name of
    the expert that made the chunk (``"predictive"``, ``"reactive"``, ``"scripted"``, ...).
    """

    t0: float
    dt: float
    actions: np.ndarray
    t_obs: float
    t_done: float = 0.0
    gate: float | None = None
    expert: str | None = None

    def __post_init__(self) -> None:
        a = np.asarray(self.actions, dtype=float)
        if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] != N_JOINTS:
            raise ValueError(f"an action chunk is H x {N_JOINTS} joint targets, got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("an action chunk holds a non-finite joint target (NaN or inf)")
        if not self.dt > 0:
            raise ValueError(f"an action chunk's dt must be > 0 s, got {self.dt!r}")
        object.__setattr__(self, "actions", a)

    @property
    def horizon(self) -> int:
        return int(self.actions.shape[0])

    @property
    def t_end(self) -> float:
        """When the last step is due."""
        return self.t0 + (self.horizon - 1) * self.dt


@runtime_checkable
class Policy(Protocol):
    """The interface every policy (HarmoWAM, ACT, scripted, synthetic) implements."""

    name: str

    def reset(self) -> None:
        """Forget the episode so far (the runtime calls it at start and when control comes back from a
        human: the policy re-plans from the present state)."""

    def predict(self, obs: Observation) -> WorldPrediction: ...

    def act(self, prediction: WorldPrediction, obs: Observation) -> ActionChunk: ...
