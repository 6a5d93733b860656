"""``SyntheticPolicy``: a stand-in policy that does real torch work for a realistic time.

It exists so that the runtime and its benchmarks can be exercised honestly before HarmoWAM exists:
``predict`` and ``act`` cost about what a small learned policy costs, on one torch thread.

Model (weights drawn from ``seed``; nothing is trained)
    predict: every camera image (H x W x 3 uint8, any size: resized to 96 x 96 when it is not) goes
    through a conv encoder (3 -> 32 -> 64 -> 128 channels, stride 2 each, pooled to 4 x 4 = 16 tokens),
    the cameras' tokens are averaged, a state embedding is added, then ``predict_depth`` residual MLP
    blocks (width 384, hidden 1536) run over the 16 tokens. The 16 x 384 token tensor is the latent.
    act: ``act_depth`` blocks of the same kind over the latent, pooled, a linear head gives H x 6.

Sizes: ``predict_ms``/``act_ms`` choose the depths (``predict_depth``/``act_depth``, from ``_BLOCK_MS``
and ``_ENCODER_MS``); the widths stay fixed. Measured on the development machine (AMD EPYC, 2 cores
shared, one torch thread, median of 50 calls, two 96 x 96 cameras unless said):

    =====================  ===========  ============  ========
    predict_ms / act_ms    depths p, a  predict (ms)  act (ms)
    =====================  ===========  ============  ========
    15 / 8 (default)       19, 11       14.8          8.1
    15 / 8, no camera      19, 11       14.0          8.2
    15 / 8, three cameras  19, 11       15.2          8.0
    30 / 2                 39, 3        28.5          1.9
    5 / 4                  5, 5         4.8           3.4
    1 / 1                  1, 1         1.5           0.5
    =====================  ===========  ============  ========

One block costs ~0.75 ms, the encoder ~0.4 ms per camera. A faster or busier machine gives other
times: the depths do not adapt (so the outputs stay the same for a seed on every machine).

Actions
    A slow sinusoid around an anchor: the observed state at the first ``act`` after ``reset``:
    ``a_j(t) = anchor_j + A_j * sin(2 pi f_j (t - t_anchor))`` (``A`` = ``amplitude_rad`` per arm
    joint, half of it for the gripper; ``f_j`` = ``freq_hz`` times a factor in 0.7..1.3 drawn from the
    seed, so the joints do not move in lockstep), so it starts where the arm is and, being a function
    of absolute time ``t0 + k*dt``, consecutive chunks agree where they overlap. ``tanh(model output) * 1e-3`` rad is added, so the torch work feeds the
    result (chunks agree to within 2e-3 rad) and every target stays within ``A + 1e-3`` of the anchor.
    The chunk has ``horizon`` steps of ``dt`` seconds from ``t0 = obs.t``; ``expert="synthetic"``.

Fault injection (options ``fault`` = ``raise`` | ``hang`` | ``exit``, ``fault_stage``, ``fault_after``,
``fault_count``, ``hang_s``, ``exit_code``): a stage call raises, blocks for ``hang_s``, or ends the
process (process mode only), so the runtime's handling of a failing, stalled or crashed policy can be
exercised end to end. Off by default.

Threads: the constructor calls ``torch.set_num_threads(torch_threads)``, which is process-wide.
Deterministic: the same seed and inputs give the same outputs.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import threading
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from policies.interface import N_JOINTS, ActionChunk, Observation, WorldPrediction

IMAGE_SIZE = 96
TOKENS = 16
WIDTH = 384
OUTPUT_SCALE = 1e-3  # radians: how much the network's output moves a target
# measured (module doc): one residual block; the encoder for two cameras
_BLOCK_MS = 0.75
_ENCODER_MS = 0.9


class SyntheticOptions(BaseModel):
    """``PolicySpec.options`` for ``--policy synthetic``."""

    model_config = ConfigDict(extra="forbid")

    predict_ms: float = Field(15.0, gt=0, le=1000, description="target predict time on one torch thread (ms)")
    act_ms: float = Field(8.0, gt=0, le=1000, description="target act time on one torch thread (ms)")
    horizon: int = Field(12, ge=1, le=200, description="steps per action chunk")
    dt: float = Field(1.0 / 30.0, gt=0, le=1.0, description="seconds between chunk steps")
    amplitude_rad: float = Field(0.15, ge=0, le=0.2, description="sinusoid amplitude per arm joint (rad)")
    freq_hz: float = Field(0.2, gt=0, le=2.0, description="sinusoid frequency (Hz)")
    # fault injection, to exercise the runtime's reactions (module doc)
    fault: Literal["raise", "hang", "exit"] | None = Field(None, description="what goes wrong, if anything")
    fault_stage: Literal["predict", "act"] = Field("act", description="which stage misbehaves")
    fault_after: int = Field(0, ge=0, description="calls of that stage that work before the first fault")
    fault_count: int = Field(1, ge=0, description="calls that fault (0: every call from then on)")
    hang_s: float = Field(3600.0, gt=0, description="how long a 'hang' lasts (s)")
    exit_code: int = Field(3, ge=1, le=255, description="the policy process's exit code for 'exit'")


def predict_depth(ms: float) -> int:
    """Residual blocks for a predict of about ``ms`` (two cameras)."""
    return max(1, round((ms - _ENCODER_MS) / _BLOCK_MS))


def act_depth(ms: float) -> int:
    return max(1, round(ms / _BLOCK_MS))


class _Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.up = nn.Linear(width, 4 * width)
        self.down = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.1 * self.down(F.gelu(self.up(x)))


class _Net(nn.Module):
    def __init__(self, depth_p: int, depth_a: int, horizon: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 32, 5, 2, 2), nn.ReLU(),
            nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(64, 128, 3, 2, 1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
        )
        self.embed = nn.Linear(128, WIDTH)
        self.state = nn.Linear(N_JOINTS, WIDTH)
        self.world = nn.Sequential(*(_Block(WIDTH) for _ in range(depth_p)))
        self.policy = nn.Sequential(*(_Block(WIDTH) for _ in range(depth_a)))
        self.head = nn.Linear(WIDTH, horizon * N_JOINTS)
        self.horizon = horizon

    def world_model(self, images: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        if images.shape[0]:
            feat = self.encoder(images)  # n_cam x 128 x 4 x 4
            tokens = self.embed(feat.flatten(2).transpose(1, 2)).mean(0)  # 16 x W
        else:
            tokens = torch.zeros(TOKENS, WIDTH)
        return self.world(tokens + self.state(state))

    def actions(self, latent: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        x = self.policy(latent + self.state(state)).mean(0)
        return torch.tanh(self.head(x)).reshape(self.horizon, N_JOINTS)


def _images_tensor(images: dict[str, np.ndarray] | object) -> torch.Tensor:
    out = []
    for name, img in sorted(dict(images).items()):  # type: ignore[call-overload]
        a = np.asarray(img)
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise ValueError(f"camera {name!r}: the synthetic policy takes H x W x 3 uint8 RGB images, got {a.dtype} {a.shape}")
        x = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float().div_(255.0)
        if a.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):
            x = F.interpolate(x[None], size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)[0]
        out.append(x)
    return torch.stack(out) if out else torch.zeros(0, 3, IMAGE_SIZE, IMAGE_SIZE)


class SyntheticPolicy:
    """The stand-in policy (module doc). ``options``: ``SyntheticOptions`` fields."""

    name = "synthetic"

    def __init__(self, options: dict | None = None, *, seed: int = 0, torch_threads: int = 1) -> None:
        try:
            self.options = SyntheticOptions(**(options or {}))
        except ValidationError as e:
            bad = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
            raise ValueError(f"--policy synthetic options: {bad} (options: {', '.join(SyntheticOptions.model_fields)})") from None
        if self.options.fault == "exit" and multiprocessing.parent_process() is None:
            raise ValueError("the synthetic policy's fault 'exit' ends its process: use it in process mode only")
        self._calls = {"predict": 0, "act": 0}
        torch.set_num_threads(int(torch_threads))
        o = self.options
        self.predict_depth, self.act_depth = predict_depth(o.predict_ms), act_depth(o.act_ms)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = _Net(self.predict_depth, self.act_depth, o.horizon).eval()
        rng = np.random.default_rng(seed)
        self.freq = self.options.freq_hz * rng.uniform(0.7, 1.3, N_JOINTS)
        self.amplitude = np.full(N_JOINTS, o.amplitude_rad)
        self.amplitude[-1] *= 0.5  # the gripper
        self._anchor: tuple[float, np.ndarray] | None = None

    def reset(self) -> None:
        self._anchor = None

    def _maybe_fault(self, stage: str) -> None:
        o = self.options
        n = self._calls[stage]
        self._calls[stage] = n + 1
        if o.fault is None or stage != o.fault_stage or n < o.fault_after:
            return
        if o.fault_count and n >= o.fault_after + o.fault_count:
            return
        if o.fault == "raise":
            raise RuntimeError(f"injected fault in {stage} (call {n})")
        if o.fault == "hang":
            threading.Event().wait(o.hang_s)
        else:
            os._exit(o.exit_code)

    def predict(self, obs: Observation) -> WorldPrediction:
        self._maybe_fault("predict")
        images = _images_tensor(obs.images)
        state = torch.as_tensor(np.asarray(obs.state, dtype=np.float32))
        with torch.inference_mode():
            latent = self.net.world_model(images, state)
        return WorldPrediction(t_obs=obs.t, latent=latent)

    def act(self, prediction: WorldPrediction, obs: Observation) -> ActionChunk:
        self._maybe_fault("act")
        latent = prediction.latent
        if not isinstance(latent, torch.Tensor) or tuple(latent.shape) != (TOKENS, WIDTH):
            raise ValueError("the synthetic policy's act needs the latent of its own predict (a 16 x 384 tensor)")
        state = np.asarray(obs.state, dtype=float)
        with torch.inference_mode():
            out = self.net.actions(latent, torch.as_tensor(state, dtype=torch.float32)).numpy()
        if self._anchor is None:
            self._anchor = (obs.t, state.copy())
        t_a, anchor = self._anchor
        o = self.options
        t = obs.t + np.arange(o.horizon)[:, None] * o.dt - t_a
        wave = np.sin(2.0 * math.pi * self.freq * t)
        actions = anchor + self.amplitude * wave + OUTPUT_SCALE * out.astype(float)
        return ActionChunk(t0=obs.t, dt=o.dt, actions=actions, t_obs=obs.t, expert="synthetic")
