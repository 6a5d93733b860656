"""The action pathway's eyes: ``ActionVision``, a small conv net per camera trained by the action loss.

Why (issue 13, measured): the world model's autoencoder is trained for reconstruction and frozen before the
experts train; it reconstructed none of the cube's pixels in the front camera and a linear probe on its
latent located the cube to 12 mm where a grasp needs a few. So the experts and the gate also read features
that the action loss shapes: per camera, four 3x3 convolutions (GroupNorm, SiLU; the first and third of stride 2) and a 1x1
convolution to ``keypoints`` heat maps, each reduced by a spatial softmax to the expected (x, y) of its
activation in [-1, 1] (Levine et al.'s spatial-softmax keypoints: where things are, not a global mean).
Output: (B, C * keypoints * 2).

``shift_augment`` moves each training image by up to +-``pixels`` (replicate padding, a random crop), the
augmentation the plain BC anchor used; the world model never sees augmented frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from policies.harmowam.config import HarmoWAMConfig


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(8 if cout % 8 == 0 else 1, cout), nn.SiLU())


class SpatialSoftmax(nn.Module):
    """(B, K, h, w) maps -> (B, K * 2) expected coordinates in [-1, 1]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, k, h, w = x.shape
        p = torch.softmax(x.flatten(2), dim=-1).reshape(b, k, h, w)
        ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
        ex = (p.sum(2) * xs).sum(-1)
        ey = (p.sum(3) * ys).sum(-1)
        return torch.stack([ex, ey], dim=-1).flatten(1)


class CameraKeypoints(nn.Module):
    def __init__(self, channels: tuple[int, int, int, int], keypoints: int) -> None:
        super().__init__()
        c1, c2, c3, c4 = channels
        # stride 2 first: the 96 px frame becomes 48 x 48 before the wider layers (about half the cost of
        # striding later), 24 x 24 keypoint maps at the end
        self.net = nn.Sequential(_block(3, c1, 2), _block(c1, c2, 1), _block(c2, c3, 2), _block(c3, c4, 1),
                                 nn.Conv2d(c4, keypoints, 1))
        self.softmax = SpatialSoftmax()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.softmax(self.net(images * 2.0 - 1.0))


class ActionVision(nn.Module):
    """Per-camera keypoints (module doc). ``features`` = output width."""

    def __init__(self, cfg: HarmoWAMConfig) -> None:
        super().__init__()
        self.cams = nn.ModuleList(CameraKeypoints(cfg.vision_channels, cfg.keypoints) for _ in cfg.cameras)
        self.features = len(cfg.cameras) * cfg.keypoints * 2

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, C, 3, S, S) in [0, 1] -> (B, C * keypoints * 2)."""
        return torch.cat([net(images[:, i]) for i, net in enumerate(self.cams)], dim=1)


def shift_augment(images: torch.Tensor, pixels: int) -> torch.Tensor:
    """Each (..., 3, S, S) image moved by a random whole-pixel offset in [-pixels, pixels] (torch's RNG)."""
    if pixels <= 0:
        return images
    lead, (ch, h, w) = images.shape[:-3], images.shape[-3:]
    x = images.reshape(-1, ch, h, w)
    n = x.shape[0]
    padded = F.pad(x, (pixels,) * 4, mode="replicate")
    ox = torch.randint(0, 2 * pixels + 1, (n,), device=x.device)
    oy = torch.randint(0, 2 * pixels + 1, (n,), device=x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device)[None])  # n, h
    cols = (ox[:, None] + torch.arange(w, device=x.device)[None])  # n, w
    idx = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    return out.reshape(*lead, ch, h, w)
