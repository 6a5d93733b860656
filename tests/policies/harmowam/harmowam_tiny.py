"""Test helpers: a tiny HarmoWAM (64 px, 2 cameras, width 32) and fixed synthetic batches, so each test
runs in seconds on one thread. Imported by path (tests are not packages)."""

from __future__ import annotations

import torch

from policies.harmowam.config import HarmoWAMConfig

TINY = dict(
    image_size=64, latent_channels=4, encoder_channels=(8, 16, 16, 32), wm_width=32, wm_depth=1, wm_heads=2,
    expert_width=32, expert_depth=1, expert_heads=2, horizon=6, n_future=2, gate_hidden=16, wm_steps=2,
    expert_steps=3,
)


def tiny_config(**kw: object) -> HarmoWAMConfig:
    return HarmoWAMConfig(**{**TINY, **kw})


def make_batch(cfg: HarmoWAMConfig, b: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random but structured data: smooth images, actions that depend on the state and the images."""
    g = torch.Generator().manual_seed(seed)
    c, k, s, h = len(cfg.cameras), cfg.n_future, cfg.image_size, cfg.horizon
    base = torch.rand(b, 1, c, 3, 4, 4, generator=g)
    drift = 0.1 * torch.randn(b, 1, c, 3, 4, 4, generator=g)
    steps = torch.arange(k + 1, dtype=torch.float32).reshape(1, k + 1, 1, 1, 1, 1)
    small = (base + steps * drift).clamp(0, 1)  # b, k+1, c, 3, 4, 4
    frames = torch.nn.functional.interpolate(small.reshape(-1, 3, 4, 4), size=(s, s), mode="bilinear", align_corners=False)
    frames = frames.reshape(b, k + 1, c, 3, s, s)
    state = torch.randn(b, cfg.state_dim, generator=g)
    ramp = torch.linspace(0, 1, h).reshape(1, h, 1)
    actions = state[:, None, : cfg.action_dim] + ramp * base.mean(dim=(1, 2, 4, 5))[:, None, :1] * 2.0
    valid = torch.ones(b, h, dtype=torch.bool)
    valid[0, -2:] = False
    phase = torch.arange(b) % 2
    return {"images": frames[:, 0], "future_images": frames[:, 1:], "state": state, "actions": actions,
            "action_valid": valid, "phase": phase}


def shake_outputs(model: torch.nn.Module, seed: int = 0, std: float = 0.1) -> None:
    """Give the zero-initialised output layers random weights (as after training), so a sample depends
    on its noise and on the inputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in (model.world.out, model.predictive.out):
            layer.weight.copy_(std * torch.randn(layer.weight.shape, generator=g))


torch.set_num_threads(1)
