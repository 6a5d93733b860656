"""``HarmoWAMConfig``: every size and setting of the HarmoWAM policy (saved in a checkpoint's config.json).

Shapes that follow from it (``image_size`` S, cameras C, ``latent_channels`` c):
    latent grid g = S / 16 per camera (96 px -> 6 x 6), patchified 2 x 2 -> ``tokens_per_frame`` = (g/2)^2
    tokens (96 px -> 9), each token holding every camera's patch (C * c * 4 numbers).
    World-model sequence: time + state + current frame tokens + ``n_future`` imagined frames' tokens.
Default size (4.1 M parameters): chosen so that one policy step (world model + gate + the slower,
predictive expert) takes ~13 ms of CPU time on one thread of the development machine (AMD EPYC), well
under the 30 ms goal and LeRobot ACT's ~60 ms (``harmowam bench policy``).
Imagined frame k (1..K) is ``k * future_stride`` frames after the observation: at 30 fps and the defaults
(K = 4, stride 3) the model imagines 0.1, 0.2, 0.3 and 0.4 s ahead, the span of a 12-step chunk.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Routing = Literal["gate", "average", "schedule", "reversed", "predictive", "reactive"]
ROUTINGS: tuple[str, ...] = ("gate", "average", "schedule", "reversed", "predictive", "reactive")


class HarmoWAMConfig(BaseModel):
    """Sizes and settings of the HarmoWAM model and policy (module doc)."""

    model_config = ConfigDict(extra="forbid")

    # data
    cameras: tuple[str, ...] = Field(("front", "wrist"), min_length=1, max_length=8, description="camera names, in order")
    image_size: int = Field(96, ge=32, le=256, description="square image size the model sees (px, multiple of 32)")
    state_dim: int = Field(6, ge=1, le=64, description="joint state size")
    action_dim: int = Field(6, ge=1, le=64, description="action size (the runtime takes 6 joints)")
    horizon: int = Field(12, ge=1, le=200, description="action chunk length H")
    n_future: int = Field(4, ge=1, le=32, description="imagined future frames K")
    future_stride: int = Field(3, ge=1, le=60, description="dataset frames between imagined frames")
    fps: float = Field(30.0, gt=0, le=1000, description="dataset frame rate: a chunk step lasts 1/fps s")
    # sizes
    latent_channels: int = Field(8, ge=1, le=64, description="autoencoder latent channels per grid cell")
    encoder_channels: tuple[int, int, int, int] = Field((24, 48, 64, 96), description="conv encoder widths (4 stride-2 stages)")
    wm_width: int = Field(192, ge=16, le=1024, description="world-model transformer width")
    wm_depth: int = Field(3, ge=1, le=24, description="world-model transformer blocks")
    wm_heads: int = Field(4, ge=1, le=16, description="world-model attention heads")
    expert_width: int = Field(192, ge=16, le=1024, description="predictive/reactive expert width")
    expert_depth: int = Field(3, ge=1, le=24, description="predictive expert transformer blocks")
    expert_heads: int = Field(4, ge=1, le=16, description="predictive expert attention heads")
    mlp_ratio: int = Field(2, ge=1, le=8, description="transformer MLP hidden = ratio * width")
    gate_hidden: int = Field(64, ge=4, le=1024, description="gate MLP hidden size")
    # sampling
    wm_residual: bool = Field(True, description=(
        "the world model predicts each imagined frame as the current frame plus a learned change (it starts at "
        "'nothing moves' and learns the motion); False: the frame itself (checkpoints of format version 1)"))
    wm_steps: int = Field(4, ge=1, le=100, description="flow-matching Euler steps of the world model at inference")
    expert_steps: int = Field(5, ge=1, le=100, description="flow-matching Euler steps of the predictive expert")
    react_on: Literal["imagined", "true"] = Field(
        "imagined", description="reactive expert trains on imagined future latents (as at inference) or true ones")
    # gate and routing
    gate_threshold: float = Field(0.5, gt=0, lt=1, description="s_t above it: interaction (predictive expert)")
    gate_band: float = Field(0.1, ge=0, lt=0.5, description="hysteresis: switch only past threshold +- band")
    min_dwell: int = Field(3, ge=1, le=1000, description="act calls an expert keeps control at least")
    routing: Routing = Field("gate", description="gate (the method), or an ablation: " + ", ".join(ROUTINGS[1:]))
    schedule_period: int = Field(10, ge=1, le=10_000, description="routing=schedule: act calls per expert turn")
    # the action pathway (issue 13): features the action loss shapes, proprioceptive history, the gate's inputs
    action_vision: bool = Field(True, description=(
        "an action-trained spatial-softmax keypoint encoder per camera (policies.harmowam.vision) feeds both experts "
        "and the gate (False: only the frozen world model's features, checkpoints before issue 13)"))
    vision_channels: tuple[int, int, int, int] = Field((32, 32, 64, 64), description="keypoint encoder conv widths")
    keypoints: int = Field(32, ge=1, le=256, description="spatial-softmax keypoints per camera")
    state_history: int = Field(6, ge=0, le=120, description=(
        "frames back for the state difference s_t - s_(t-k) every head sees (velocity); 0: the state alone"))
    gate_inputs: Literal["pooled", "full"] = Field("full", description=(
        "pooled: the world model's pooled frame features only (before issue 13); full: plus the joint state, its "
        "difference and the action pathway's keypoints"))
    aug_shift_px: int = Field(4, ge=0, le=32, description="training: random shift of the action pathway's images (px)")
    aug_state_noise: float = Field(0.05, ge=0, le=1, description=(
        "training: Gaussian noise on the normalised state the heads see (std, in units of the state's std)"))
    # losses
    react_weight: float = Field(0.1, ge=0, description="weight of L_react in stage 2")
    gate_weight: float = Field(0.05, ge=0, description="weight of L_gate in stage 2")
    recon_weight: float = Field(1.0, ge=0, description="weight of the autoencoder reconstruction in stage 1")
    recon_frames: int = Field(1, ge=1, le=8, description=(
        "stage 1: current camera frames decoded per sample and step (random cameras; at most the camera count)"))
    # inference
    decode_frames: bool = Field(False, description="decode imagined frames (first camera) for display at predict")

    @field_validator("cameras")
    @classmethod
    def _unique(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v) or any(not c for c in v):
            raise ValueError(f"camera names must be non-empty and distinct, got {list(v)}")
        return v

    @field_validator("image_size")
    @classmethod
    def _size(cls, v: int) -> int:
        if v % 32:
            raise ValueError(f"must be a multiple of 32 (16 px per latent cell, 2 x 2 cells per token), got {v}")
        return v

    @model_validator(mode="after")
    def _heads(self) -> HarmoWAMConfig:
        if self.recon_frames > len(self.cameras):
            raise ValueError(f"recon_frames ({self.recon_frames}) must be at most the number of cameras ({len(self.cameras)})")
        for w, h, name in ((self.wm_width, self.wm_heads, "wm"), (self.expert_width, self.expert_heads, "expert")):
            if w % h or w % 2:
                raise ValueError(f"{name}_width ({w}) must be even and a multiple of {name}_heads ({h})")
        return self

    @property
    def grid(self) -> int:
        """Latent cells per side per camera."""
        return self.image_size // 16

    @property
    def tokens_per_frame(self) -> int:
        return (self.grid // 2) ** 2

    @property
    def token_dim(self) -> int:
        """Numbers in one frame token: every camera's 2 x 2 patch of latent cells."""
        return len(self.cameras) * self.latent_channels * 4

    @property
    def cond_dim(self) -> int:
        """The joint-state conditioning the heads read: the state, and its difference over ``state_history``."""
        return self.state_dim * (2 if self.state_history else 1)

    @property
    def vision_dim(self) -> int:
        return len(self.cameras) * self.keypoints * 2 if self.action_vision else 0

    @property
    def dt(self) -> float:
        return 1.0 / self.fps
