"""The process-adaptive gate: ``GateHead`` (s_t from pooled current visual features) and ``Router``
(which expert acts, per act call).

Routing modes (``HarmoWAMConfig.routing``):
    gate        the method: a hard switch. s_t > threshold -> "predictive" (interaction), else "reactive"
                (transit); once an expert is chosen it keeps control for at least ``min_dwell`` calls and
                is replaced only when s_t crosses the far side of the band (threshold +- ``gate_band``), so a
                noisy s_t near the threshold never makes the experts alternate.
    reversed    ablation: the same switch with the roles swapped (high s_t -> reactive).
    average     ablation: both experts run and their chunks are averaged ("average").
    schedule    ablation: ignores s_t; reactive for ``schedule_period`` calls, then predictive, alternating.
    predictive, reactive   ablation: always that expert.
"""

from __future__ import annotations

import torch
from torch import nn

from policies.harmowam.config import HarmoWAMConfig

PREDICTIVE, REACTIVE, AVERAGE = "predictive", "reactive", "average"


class GateHead(nn.Module):
    """MLP -> the gate's logit (B,). Inputs (``gate_inputs``): the cameras' pooled encoder features, and with
    ``full`` also the state conditioning (state and its difference: a closing gripper, a slowing arm) and the
    action pathway's keypoints (where the gripper is relative to the object)."""

    def __init__(self, cfg: HarmoWAMConfig, features: int) -> None:
        super().__init__()
        self.full = cfg.gate_inputs == "full"
        n = len(cfg.cameras) * features + ((cfg.cond_dim + cfg.vision_dim) if self.full else 0)
        self.mlp = nn.Sequential(
            nn.LayerNorm(n),
            nn.Linear(n, cfg.gate_hidden), nn.SiLU(),
            nn.Linear(cfg.gate_hidden, cfg.gate_hidden), nn.SiLU(),
            nn.Linear(cfg.gate_hidden, 1),
        ) if self.full else nn.Sequential(
            nn.LayerNorm(n),
            nn.Linear(n, cfg.gate_hidden), nn.SiLU(),
            nn.Linear(cfg.gate_hidden, 1),
        )

    def forward(self, pooled: torch.Tensor, cond: torch.Tensor | None = None, vision: torch.Tensor | None = None) -> torch.Tensor:
        """pooled (B, C, F) [, cond (B, cond_dim), vision (B, V)] -> logits (B,)."""
        x = pooled.flatten(1)
        if self.full:
            parts = [x] + [t for t in (cond, vision) if t is not None]
            x = torch.cat(parts, dim=1)
        return self.mlp(x)[:, 0]


class Router:
    """Chooses the expert for each act call from s_t (module doc). ``reset()`` forgets the episode."""

    def __init__(self, cfg: HarmoWAMConfig) -> None:
        self.mode = cfg.routing
        self.threshold, self.band, self.min_dwell = cfg.gate_threshold, cfg.gate_band, cfg.min_dwell
        self.period = cfg.schedule_period
        self.reset()

    def reset(self) -> None:
        self.current: str | None = None
        self.dwell = 0
        self.calls = 0

    def choose(self, s: float) -> str:
        self.calls += 1
        if self.mode in (PREDICTIVE, REACTIVE, AVERAGE):
            return self.mode
        if self.mode == "schedule":
            return REACTIVE if ((self.calls - 1) // self.period) % 2 == 0 else PREDICTIVE
        high, low = (PREDICTIVE, REACTIVE) if self.mode == "gate" else (REACTIVE, PREDICTIVE)
        if self.current is None:
            chosen = high if s > self.threshold else low
        elif self.dwell < self.min_dwell:
            chosen = self.current
        elif self.current == low and s > self.threshold + self.band:
            chosen = high
        elif self.current == high and s < self.threshold - self.band:
            chosen = low
        else:
            chosen = self.current
        self.dwell = self.dwell + 1 if chosen == self.current else 1
        self.current = chosen
        return chosen
