"""``HarmoWAMPolicy``: the HarmoWAM model behind ``policies.interface.Policy``.

``predict(obs)``: the cameras named in the config (resized to ``image_size`` when they differ) and the
joint state -> the world model imagines the K next latent frames; the prediction's ``latent`` is the
``World`` the act stage needs, ``frames`` the imagined frames of the first camera (K x S x S x 3 uint8)
when ``decode_frames`` is set. ``act(prediction, obs)``: the gate's s_t, the router's choice (``gate.py``:
a hard switch with hysteresis and a minimum dwell), the chosen expert's chunk of H targets from
``t0 = obs.t`` every ``1 / fps`` s. ``reset()`` forgets the router's state and re-seeds the noise.

State history (``state_history`` k > 0): ``predict`` keeps the joint states it was given (with their times)
since the last ``reset`` and passes the one nearest to ``state_t - k / fps`` as the previous state (the oldest
it has early in an episode, as training clamps to an episode's first frame), so observations must come in
time order.

Deterministic for a seed: predict and act draw their noise from two ``torch.Generator``s seeded from
``seed`` (two, because the runtime calls the stages from two threads). The targets are in the units the
model was trained on (the checkpoint's ``meta.units``); the runtime converts (``policies.units``).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from policies.harmowam.config import HarmoWAMConfig
from policies.harmowam.encoder import image_tensor
from policies.harmowam.gate import AVERAGE, PREDICTIVE, Router
from policies.harmowam.model import HarmoWAM, World
from policies.interface import N_JOINTS, ActionChunk, Observation, WorldPrediction

# config fields a user may change when loading a checkpoint (they do not change the weights' shapes)
INFERENCE_FIELDS = frozenset({"routing", "decode_frames", "gate_threshold", "gate_band", "min_dwell",
                              "schedule_period", "wm_steps", "expert_steps"})


class HarmoWAMPolicy:
    """HarmoWAM behind the two-stage policy interface (module doc)."""

    name = "harmowam"

    def __init__(self, model: HarmoWAM, *, seed: int = 0, torch_threads: int = 1, meta: Mapping[str, Any] | None = None) -> None:
        cfg = model.cfg
        if cfg.action_dim != N_JOINTS:
            raise ValueError(f"the runtime drives {N_JOINTS} joints; this model's action_dim is {cfg.action_dim}")
        torch.set_num_threads(int(torch_threads))
        self.model = model.eval()
        self.cfg: HarmoWAMConfig = cfg
        self.meta = dict(meta or {})
        self.seed = int(seed)
        self.router = Router(cfg)
        self.reset()

    @classmethod
    def from_checkpoint(cls, directory: str | os.PathLike[str], seed: int = 0, torch_threads: int = 1,
                        overrides: Mapping[str, Any] | None = None) -> HarmoWAMPolicy:
        """Load a checkpoint (``CheckpointError`` naming the problem); ``overrides``: ``INFERENCE_FIELDS``."""
        from policies.harmowam.checkpoint import load_checkpoint

        bad = sorted(set(overrides or {}) - INFERENCE_FIELDS)
        if bad:
            raise ValueError(f"cannot override {', '.join(bad)} when loading a checkpoint (allowed: {', '.join(sorted(INFERENCE_FIELDS))})")
        torch.set_num_threads(int(torch_threads))
        model, _, meta = load_checkpoint(directory, overrides)
        return cls(model, seed=seed, torch_threads=torch_threads, meta=meta)

    @property
    def cameras(self) -> tuple[str, ...]:
        """The observation camera names this policy needs."""
        return tuple(self.cfg.cameras)

    def reset(self) -> None:
        self.router.reset()
        self._history: deque[tuple[float, np.ndarray]] = deque()
        self._g_predict = torch.Generator().manual_seed(2 * self.seed)
        self._g_act = torch.Generator().manual_seed(2 * self.seed + 1)

    def inputs(self, obs: Observation) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, C, 3, S, S) images and (1, state_dim) state from an observation (ValueError naming what is off)."""
        images = []
        for cam in self.cfg.cameras:
            if cam not in obs.images:
                have = ", ".join(obs.images) or "none"
                raise ValueError(f"HarmoWAM needs camera {cam!r} (trained on {', '.join(self.cfg.cameras)}); the observation has: {have}")
            try:
                images.append(image_tensor(obs.images[cam], self.cfg.image_size))
            except ValueError as e:
                raise ValueError(f"camera {cam!r}: {e}") from None
        state = np.asarray(obs.state, dtype=np.float32).reshape(-1)
        if state.shape != (self.cfg.state_dim,) or not np.all(np.isfinite(state)):
            raise ValueError(f"HarmoWAM needs {self.cfg.state_dim} finite joint values, got {obs.state!r}")
        return torch.stack(images)[None], torch.from_numpy(state)[None]

    def previous_state(self, t: float, state: torch.Tensor) -> torch.Tensor | None:
        """The state ``state_history`` frames before ``t`` from the states seen since ``reset`` (module doc);
        records ``(t, state)``. None without history."""
        k = self.cfg.state_history
        if not k:
            return None
        h = self._history
        h.append((float(t), state))
        want = float(t) - k * self.cfg.dt
        while len(h) > 2 and h[1][0] <= want:
            h.popleft()  # the second-oldest is old enough: the oldest is no longer needed
        if len(h) > 1 and h[1][0] <= want:
            return h[1][1]
        best = min(h, key=lambda e: abs(e[0] - want))
        return best[1]

    def predict(self, obs: Observation) -> WorldPrediction:
        images, state = self.inputs(obs)
        prev = self.previous_state(obs.state_t, state)
        frames = None
        with torch.inference_mode():
            world = self.model.imagine(images, state, self._g_predict, prev_state=prev)
            if self.cfg.decode_frames:
                img = self.model.decode(world.future[0, :, 0])  # K, 3, S, S (first camera)
                frames = (img.permute(0, 2, 3, 1) * 255.0).round().to(torch.uint8).numpy()
        return WorldPrediction(t_obs=obs.t, latent=world, frames=frames)

    def act(self, prediction: WorldPrediction, obs: Observation) -> ActionChunk:
        world = prediction.latent
        if not isinstance(world, World):
            raise ValueError("HarmoWAM's act needs the prediction of its own predict (a World latent)")
        with torch.inference_mode():
            s = float(self.model.gate_prob(world)[0])
            expert = self.router.choose(s)
            actions = self.expert_actions(world, expert)
        return ActionChunk(t0=obs.t, dt=self.cfg.dt, actions=actions.astype(float), t_obs=obs.t, gate=s, expert=expert)

    def expert_actions(self, world: World, expert: str) -> np.ndarray:
        """The H x 6 chunk of ``expert`` ("predictive", "reactive" or "average") for a batch-1 world."""
        with torch.inference_mode():
            if expert == AVERAGE:
                a = 0.5 * (self.model.predictive_actions(world, self._g_act) + self.model.reactive_actions(world))
            elif expert == PREDICTIVE:
                a = self.model.predictive_actions(world, self._g_act)
            else:
                a = self.model.reactive_actions(world)
        return a[0].numpy()
