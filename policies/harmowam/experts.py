"""The two experts. Both work on normalised actions (the model's action statistics).

``PredictiveExpert`` (joint modeling): a transformer over the H action tokens that denoises the chunk by
flow matching (``expert_steps`` Euler steps; x_1-prediction form as in ``world_model``), cross-attending to a context of the world model's hidden
tokens, the current frame tokens and the joint state (keys/values computed once per chunk).

``ReactiveExpert`` (imagine-then-execute): inverse dynamics. Each of the K+1 latent frames (current, then
the imagined ones) and its difference from the previous one go through a small conv net to a vector;
with the pooled world-model latent and the state added, the sequence is stretched to H steps and a
multi-scale 1-D conv decoder (kernels 3, 5, 9 in parallel, residual) gives the chunk in one pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from policies.harmowam.config import HarmoWAMConfig
from policies.harmowam.world_model import Block, time_embedding


def masked_mean(per_step: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of (B, H, A) values over the valid (B, H) steps."""
    m = valid.to(per_step.dtype)[..., None].expand_as(per_step)
    return (per_step * m).sum() / m.sum().clamp_min(1.0)


class PredictiveExpert(nn.Module):
    def __init__(self, cfg: HarmoWAMConfig) -> None:
        super().__init__()
        w = cfg.expert_width
        self.cfg = cfg
        self.wm_in = nn.Linear(cfg.wm_width, w)
        self.vis_in = nn.Linear(cfg.token_dim, w)
        self.vis_pos = nn.Parameter(0.02 * torch.randn(cfg.tokens_per_frame, w))
        self.state_in = nn.Linear(cfg.cond_dim, w)
        self.kp_in = nn.Linear(cfg.vision_dim, w) if cfg.vision_dim else None
        self.act_in = nn.Linear(cfg.action_dim, w)
        self.act_pos = nn.Parameter(0.02 * torch.randn(cfg.horizon, w))
        self.time_in = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, w))
        self.blocks = nn.ModuleList(Block(w, cfg.expert_heads, cfg.mlp_ratio, cross=True) for _ in range(cfg.expert_depth))
        self.norm = nn.LayerNorm(w)
        self.out = nn.Linear(w, cfg.action_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def context(self, wm_hidden: torch.Tensor, current: torch.Tensor, state: torch.Tensor,
                vision: torch.Tensor | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-block cross-attention keys/values from the world-model latent, frame tokens, the state
        conditioning (state and its difference) and the action pathway's keypoints (one token each)."""
        parts = [self.wm_in(wm_hidden), self.vis_in(current) + self.vis_pos, self.state_in(state)[:, None]]
        if self.kp_in is not None and vision is not None:
            parts.append(self.kp_in(vision)[:, None])
        ctx = torch.cat(parts, dim=1)
        return [blk.cross.keys_values(ctx) for blk in self.blocks]  # type: ignore[union-attr]

    def denoise(self, a: torch.Tensor, s: torch.Tensor, kvs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        x = self.act_in(a) + self.act_pos + self.time_in(time_embedding(s, self.act_pos.shape[1]))[:, None]
        for blk, kv in zip(self.blocks, kvs, strict=True):
            x = blk(x, kv)
        return self.out(self.norm(x))

    def loss(self, target: torch.Tensor, valid: torch.Tensor, kvs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        noise = torch.randn_like(target)
        s = torch.rand(target.shape[0], device=target.device)
        x = (1 - s)[:, None, None] * noise + s[:, None, None] * target
        return masked_mean((self.denoise(x, s, kvs) - target) ** 2, valid)

    def sample(self, kvs: list[tuple[torch.Tensor, torch.Tensor]], batch: int, steps: int,
               generator: torch.Generator | None = None) -> torch.Tensor:
        x = torch.randn((batch, self.cfg.horizon, self.cfg.action_dim), generator=generator, device=self.act_pos.device)
        for i in range(steps):
            s = torch.full((batch,), i / steps, device=x.device)
            x = x + (self.denoise(x, s, kvs) - x) / (steps - i)
        return x


class _MultiScale(nn.Module):
    def __init__(self, w: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(w, w, k, padding=k // 2) for k in (3, 5, 9))
        self.norm = nn.GroupNorm(1, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.silu(self.norm(sum(c(x) for c in self.convs)))  # type: ignore[arg-type]


class ReactiveExpert(nn.Module):
    def __init__(self, cfg: HarmoWAMConfig) -> None:
        super().__init__()
        w, ch = cfg.expert_width, len(cfg.cameras) * cfg.latent_channels
        self.cfg = cfg
        self.frame = nn.Sequential(
            nn.Conv2d(2 * ch, 64, 3, 1, 1), nn.SiLU(), nn.Conv2d(64, 64, 3, 2, 1), nn.SiLU(), nn.Flatten(),
            nn.Linear(64 * (cfg.grid // 2) ** 2, w),
        )
        self.latent_in = nn.Linear(cfg.wm_width, w)
        self.state_in = nn.Linear(cfg.cond_dim, w)
        self.kp_in = nn.Sequential(nn.Linear(cfg.vision_dim, w), nn.SiLU(), nn.Linear(w, w)) if cfg.vision_dim else None
        self.step_pos = nn.Parameter(0.02 * torch.randn(w, cfg.horizon))
        self.decoder = nn.Sequential(_MultiScale(w), _MultiScale(w))
        self.head = nn.Conv1d(w, cfg.action_dim, 1)

    def forward(self, frames: torch.Tensor, wm_hidden: torch.Tensor, state: torch.Tensor,
                vision: torch.Tensor | None = None) -> torch.Tensor:
        """frames (B, K+1, C, c, g, g): current latent then the imagined ones -> actions (B, H, A) (normalised);
        ``state``: the state conditioning; ``vision``: the action pathway's keypoints."""
        b, n = frames.shape[:2]
        z = frames.flatten(2, 3)  # B, K+1, C*c, g, g
        diff = torch.cat([torch.zeros_like(z[:, :1]), z[:, 1:] - z[:, :-1]], dim=1)
        f = self.frame(torch.cat([z, diff], dim=2).flatten(0, 1)).reshape(b, n, -1)
        g = self.latent_in(wm_hidden.mean(1)) + self.state_in(state)
        if self.kp_in is not None and vision is not None:
            g = g + self.kp_in(vision)
        f = f + g[:, None]
        x = F.interpolate(f.transpose(1, 2), size=self.cfg.horizon, mode="linear", align_corners=True)
        return self.head(self.decoder(x + self.step_pos)).transpose(1, 2)

    def loss(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return masked_mean(F.smooth_l1_loss(pred, target, beta=0.1, reduction="none"), valid)
