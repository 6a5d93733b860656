"""The latent world model: flow matching over the K imagined frames' tokens, and the transformer parts.

Sequence (width W): [time, state, current frame tokens (T), imagined frame tokens (K * T)]; every token
gets a spatial position and a frame embedding. Rectified flow (x_s = (1 - s) noise + s x_1) in the
x_1-prediction form: one forward predicts the clean imagined tokens x_1 from x_s, the velocity is
v = (x_1_hat - x_s) / (1 - s), and the loss is the MSE of x_1_hat (the velocity loss weighted by
(1 - s)^2; with few data and few steps it learns much faster). Sampling runs ``wm_steps`` Euler steps
from noise (s = 0); the last step lands on its x_1 prediction. The hidden tokens of the last step's final block
(normalised, B x N x W) are the latent the experts consume (the paper's F^V).
With ``wm_residual`` (the default) x_1 is predicted as the current frame's tokens plus the output layer's
change: the output layer starts at zero, so an untrained model imagines "nothing moves" (not blank
frames) and training only has to learn the motion; stage 1 reaches a useful world model in far fewer steps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from policies.harmowam.config import HarmoWAMConfig


def time_embedding(s: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of flow times s in [0, 1]: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32, device=s.device) / half)
    a = 1000.0 * s.float()[:, None] * freqs[None]
    return torch.cat([a.sin(), a.cos()], dim=1)


class Attention(nn.Module):
    """Multi-head attention; ``kv`` (precomputed with ``keys_values``) makes it cross-attention."""

    def __init__(self, width: int, heads: int, cross: bool = False) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)
        self.cross = cross

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, w = x.shape
        return x.reshape(b, n, self.heads, w // self.heads).transpose(1, 2)

    def keys_values(self, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv(ctx).chunk(2, dim=-1)
        return self._split(k), self._split(v)

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        k, v = kv if kv is not None else self.keys_values(x)
        y = F.scaled_dot_product_attention(self._split(self.q(x)), k, v)
        b, _, n, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(b, n, -1))


class Block(nn.Module):
    """Pre-norm transformer block: self-attention, optional cross-attention, MLP."""

    def __init__(self, width: int, heads: int, mlp_ratio: int, cross: bool = False) -> None:
        super().__init__()
        self.n1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.cross = Attention(width, heads, cross=True) if cross else None
        self.n2 = nn.LayerNorm(width) if cross else None
        self.n3 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = x + self.attn(self.n1(x))
        if self.cross is not None:
            assert kv is not None and self.n2 is not None
            x = x + self.cross(self.n2(x), kv)
        return x + self.mlp(self.n3(x))


class WorldModel(nn.Module):
    """Flow-matching transformer over latent frame tokens (module doc)."""

    def __init__(self, cfg: HarmoWAMConfig) -> None:
        super().__init__()
        w, t = cfg.wm_width, cfg.tokens_per_frame
        self.cfg = cfg
        self.patch_in = nn.Linear(cfg.token_dim, w)
        self.pos = nn.Parameter(0.02 * torch.randn(t, w))
        self.frame = nn.Parameter(0.02 * torch.randn(cfg.n_future + 1, w))
        self.state_in = nn.Linear(cfg.state_dim, w)
        self.time_in = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, w))
        self.blocks = nn.ModuleList(Block(w, cfg.wm_heads, cfg.mlp_ratio) for _ in range(cfg.wm_depth))
        self.norm = nn.LayerNorm(w)
        self.out = nn.Linear(w, cfg.token_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, noisy: torch.Tensor, s: torch.Tensor, current: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """noisy (B, K*T, D), s (B,), current (B, T, D), state (B, state_dim, normalised) ->
        predicted clean tokens x_1 (B, K*T, D), hidden tokens (B, 2 + (K+1)*T, W)."""
        b, t, k = noisy.shape[0], self.cfg.tokens_per_frame, self.cfg.n_future
        frames = torch.cat([current, noisy], dim=1).reshape(b, k + 1, t, -1)
        x = self.patch_in(frames) + self.pos[None, None] + self.frame[None, :, None]
        temb = self.time_in(time_embedding(s, self.pos.shape[1]))
        x = x.reshape(b, (k + 1) * t, -1)
        x = torch.cat([temb[:, None], self.state_in(state)[:, None], x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        h = self.norm(x)
        x1 = self.out(h[:, 2 + t :])
        if self.cfg.wm_residual:  # the change from the current frame (module doc)
            x1 = x1 + current.repeat(1, k, 1)
        return x1, h

    def loss(self, current: torch.Tensor, future: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """Flow-matching loss of the imagined tokens ``future`` (B, K*T, D) given the current ones."""
        noise = torch.randn_like(future)
        s = torch.rand(future.shape[0], device=future.device)
        x = (1 - s)[:, None, None] * noise + s[:, None, None] * future
        x1, _ = self(x, s, current, state)
        return F.mse_loss(x1, future)

    def sample(self, current: torch.Tensor, state: torch.Tensor, steps: int,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Euler steps from noise: imagined tokens (B, K*T, D) and the last step's hidden tokens."""
        b = current.shape[0]
        shape = (b, self.cfg.n_future * self.cfg.tokens_per_frame, self.cfg.token_dim)
        x = torch.randn(shape, generator=generator, device=current.device)
        h = current.new_zeros(0)
        for i in range(steps):
            s = torch.full((b,), i / steps, device=current.device)
            x1, h = self(x, s, current, state)
            x = x + (x1 - x) / (steps - i)  # Euler step of v = (x1 - x) / (1 - s), ds = 1 / steps
        return x, h
