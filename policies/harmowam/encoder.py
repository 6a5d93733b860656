"""The frame autoencoder: camera image <-> latent grid, and the 2 x 2 patch tokens the transformers read.

``FrameEncoder``: (N, 3, S, S) in [0, 1] -> latent (N, c, S/16, S/16) in [-1, 1] (tanh) and pooled
features (N, F) (the last conv stage averaged over space: the gate's "current visual features").
``FrameDecoder``: latent -> (N, 3, S, S) in [0, 1] (sigmoid). Both are part of the world model (stage 1).
Both run their convolutions on channels_last inputs (measured on one CPU thread: encoder forward ~1.4x,
encoder forward+backward ~1.8x, decoder ~1.4x faster; the weights and checkpoints are unchanged).
``resize_frames`` is the one resize of camera frames, for training data and inference alike.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from policies.harmowam.config import HarmoWAMConfig


class FrameEncoder(nn.Module):
    def __init__(self, cfg: HarmoWAMConfig) -> None:
        super().__init__()
        chans = (3, *cfg.encoder_channels)
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [nn.Conv2d(chans[i], chans[i + 1], 3, 2, 1), nn.GroupNorm(1, chans[i + 1]), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.to_latent = nn.Conv2d(chans[-1], cfg.latent_channels, 1)
        self.features = chans[-1]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body((images - 0.5).contiguous(memory_format=torch.channels_last))  # channels_last: ~1.5x faster convs on CPU
        return torch.tanh(self.to_latent(h)), h.mean(dim=(2, 3))


class FrameDecoder(nn.Module):
    """Nearest upsampling + convs up to S/2, then a pixel shuffle to S (cheap at full resolution)."""

    def __init__(self, cfg: HarmoWAMConfig) -> None:
        super().__init__()
        chans = tuple(reversed(cfg.encoder_channels))
        layers: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, chans[0], 3, 1, 1), nn.SiLU()]
        for i in range(3):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(chans[i], chans[i + 1], 3, 1, 1), nn.SiLU()]
        layers += [nn.Conv2d(chans[3], 12, 3, 1, 1), nn.PixelShuffle(2)]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(z.contiguous(memory_format=torch.channels_last)))


def resize_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(T, 3, H, W) uint8 -> (T, 3, size, size) uint8: bilinear (antialiased when shrinking), rounded.
    The one resize of camera frames: the training data (``data.py``, cached as uint8) and inference
    (``image_tensor``) both go through it, so a model sees the same pixels in training and at run time."""
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"expected (T, 3, H, W) uint8 frames, got {frames.dtype} {tuple(frames.shape)}")
    if frames.shape[-2:] == (size, size):
        return frames.contiguous()
    out = F.interpolate(frames.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def image_tensor(image: np.ndarray, size: int) -> torch.Tensor:
    """H x W x 3 uint8 RGB -> (3, size, size) float in [0, 1], resized by ``resize_frames`` when needed
    (bit-identical to the training data of a dataset recorded at the same resolution)."""
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {a.dtype} {a.shape}")
    x = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)
    return resize_frames(x[None], size)[0].float().div_(255.0)


def to_tokens(z: torch.Tensor) -> torch.Tensor:
    """(B, C, c, g, g) latents of C cameras -> (B, (g/2)^2, C*c*4) tokens (each a 2 x 2 patch, all cameras)."""
    b, n_cam, c, g, _ = z.shape
    t = z.reshape(b, n_cam, c, g // 2, 2, g // 2, 2)
    t = t.permute(0, 3, 5, 1, 2, 4, 6)  # b, gy, gx, cam, c, py, px
    return t.reshape(b, (g // 2) ** 2, n_cam * c * 4)


def from_tokens(t: torch.Tensor, n_cam: int, c: int, g: int) -> torch.Tensor:
    """Inverse of ``to_tokens``: (B, (g/2)^2, C*c*4) -> (B, C, c, g, g)."""
    b = t.shape[0]
    z = t.reshape(b, g // 2, g // 2, n_cam, c, 2, 2)
    z = z.permute(0, 3, 4, 1, 5, 2, 6)  # b, cam, c, gy, py, gx, px
    return z.reshape(b, n_cam, c, g, g)
