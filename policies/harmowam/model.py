"""``HarmoWAM``: frame autoencoder + latent world model + gate + predictive and reactive experts.

Training (``policies.harmowam.train`` drives it):
    stage 1  ``autoencoder_loss(batch)`` (reconstruction of ``recon_frames`` random current camera frames per
             sample), then ``world_loss(batch, train_autoencoder=False)`` (flow matching of the imagined
             frames' latents on the frozen autoencoder), or both at once (``train_autoencoder=True``);
             ``imagination_error(batch)`` measures progress.
    stage 2  ``expert_loss(batch)``: L_pred + react_weight * L_react + gate_weight * L_gate, with the world
             model run under ``no_grad`` (frozen) unless ``train_world=True`` (end-to-end fine-tune).
Batch: "images" (B, C, 3, S, S) in [0, 1]; "future_images" (B, K, C, 3, S, S); "state" (B, state_dim) and
"actions" (B, H, action_dim) in dataset units; "action_valid" (B, H) bool; "phase" (B,) 0/1.
Inference: ``imagine`` (world-model prediction) -> ``World``; ``gate_prob``, ``predictive_actions``,
``reactive_actions`` on it. States and actions are normalised inside with the statistics of
``set_stats`` (buffers, saved with the weights).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from policies.harmowam.config import HarmoWAMConfig
from policies.harmowam.encoder import FrameDecoder, FrameEncoder, from_tokens, to_tokens
from policies.harmowam.experts import PredictiveExpert, ReactiveExpert
from policies.harmowam.gate import GateHead
from policies.harmowam.vision import ActionVision, shift_augment
from policies.harmowam.world_model import WorldModel


def _f(x: torch.Tensor) -> float:
    return float(x.detach())


@dataclass
class World:
    """One world-model prediction (batch B): what the gate and the experts read."""

    z: torch.Tensor  # current latents (B, C, c, g, g)
    pooled: torch.Tensor  # current pooled visual features (B, C, F)
    current: torch.Tensor  # current frame tokens (B, T, D)
    future: torch.Tensor  # imagined latents (B, K, C, c, g, g)
    hidden: torch.Tensor  # the world model's last-step hidden tokens (B, N, W)
    state: torch.Tensor  # the heads' state conditioning (B, cond_dim): normalised state [, normalised s_t - s_(t-k)]
    vision: torch.Tensor | None = None  # the action pathway's keypoints (B, vision_dim), None without it


class HarmoWAM(nn.Module):
    def __init__(self, cfg: HarmoWAMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = FrameEncoder(cfg)
        self.decoder = FrameDecoder(cfg)
        self.world = WorldModel(cfg)
        self.gate = GateHead(cfg, self.encoder.features)
        self.predictive = PredictiveExpert(cfg)
        self.reactive = ReactiveExpert(cfg)
        self.vision = ActionVision(cfg) if cfg.action_vision else None
        for name, dim in self._stat_names():
            self.register_buffer(f"{name}_mean", torch.zeros(dim))
            self.register_buffer(f"{name}_std", torch.ones(dim))

    def _stat_names(self) -> list[tuple[str, int]]:
        names = [("state", self.cfg.state_dim), ("action", self.cfg.action_dim)]
        if self.cfg.state_history:
            names.append(("delta", self.cfg.state_dim))  # s_t - s_(t-k): its own scale (far smaller than the state's)
        return names

    # ---- statistics and parameter groups
    def set_stats(self, stats: Mapping[str, Mapping[str, Any]]) -> None:
        """{"state": {"mean", "std"}, "action": {"mean", "std"}[, "delta": ...]} (numpy or tensors); std floored at
        1e-3. ``delta`` (the state difference over ``state_history``) is needed when the model has history."""
        for name, dim in self._stat_names():
            if name == "delta" and name not in stats:  # hand-made stats (tests): no rescaling of the difference
                stats = {**stats, "delta": {"mean": np.zeros(dim), "std": np.ones(dim)}}
            for key in ("mean", "std"):
                try:
                    v = torch.as_tensor(np.asarray(stats[name][key], dtype=np.float32))
                except KeyError:
                    raise ValueError(f"stats need [{name!r}][{key!r}] (a vector of {dim})") from None
                if v.shape != (dim,) or not torch.isfinite(v).all():
                    raise ValueError(f"stats[{name!r}][{key!r}] must be {dim} finite numbers, got shape {tuple(v.shape)}")
                if key == "std":
                    v = v.clamp_min(1e-3)
                getattr(self, f"{name}_{key}").copy_(v)

    def autoencoder_parameters(self) -> Iterator[nn.Parameter]:
        for m in (self.encoder, self.decoder):
            yield from m.parameters()

    def world_parameters(self) -> Iterator[nn.Parameter]:
        for m in (self.encoder, self.decoder, self.world):
            yield from m.parameters()

    def expert_parameters(self) -> Iterator[nn.Parameter]:
        for m in (self.gate, self.predictive, self.reactive, self.vision):
            if m is not None:
                yield from m.parameters()

    def condition(self, state: torch.Tensor, prev_state: torch.Tensor | None = None, noise: float = 0.0) -> torch.Tensor:
        """The heads' state conditioning (B, cond_dim): the normalised state and, with ``state_history``, the
        normalised difference to ``prev_state`` (the state ``state_history`` frames earlier; None: no motion).
        ``noise``: training-time Gaussian noise (in normalised units) on the state part."""
        s = self.norm_state(state)
        if noise > 0:
            s = s + noise * torch.randn_like(s)
        if not self.cfg.state_history:
            return s
        d = torch.zeros_like(state) if prev_state is None else state - prev_state
        return torch.cat([s, (d - self.delta_mean) / self.delta_std], dim=1)

    def norm_state(self, state: torch.Tensor) -> torch.Tensor:
        return (state - self.state_mean) / self.state_std

    def norm_action(self, a: torch.Tensor) -> torch.Tensor:
        return (a - self.action_mean) / self.action_std

    def denorm_action(self, a: torch.Tensor) -> torch.Tensor:
        return a * self.action_std + self.action_mean

    # ---- parts
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., C, 3, S, S) -> latents (..., C, c, g, g), pooled features (..., C, F)."""
        lead = images.shape[:-3]
        z, pooled = self.encoder(images.reshape(-1, *images.shape[-3:]))
        return z.reshape(*lead, *z.shape[1:]), pooled.reshape(*lead, -1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(..., c, g, g) latents -> (..., 3, S, S) images in [0, 1]."""
        lead = z.shape[:-3]
        return self.decoder(z.reshape(-1, *z.shape[-3:])).reshape(*lead, 3, self.cfg.image_size, self.cfg.image_size)

    def _future_tokens(self, zf: torch.Tensor) -> torch.Tensor:
        return to_tokens(zf.flatten(0, 1)).reshape(zf.shape[0], -1, self.cfg.token_dim)

    def _future_latents(self, tokens: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        b = tokens.shape[0]
        z = from_tokens(tokens.reshape(b * c.n_future, c.tokens_per_frame, -1), len(c.cameras), c.latent_channels, c.grid)
        return z.reshape(b, c.n_future, *z.shape[1:])

    def imagine(self, images: torch.Tensor, state: torch.Tensor, generator: torch.Generator | None = None,
                prev_state: torch.Tensor | None = None, with_vision: bool = True) -> World:
        """World-model prediction: encode the current frames, sample the K imagined latents; plus the heads'
        state conditioning and (``with_vision``) the action pathway's keypoints."""
        z, pooled = self.encode(images)
        current = to_tokens(z)
        state_n = self.norm_state(state)
        future, hidden = self.world.sample(current, state_n, self.cfg.wm_steps, generator)
        vision = self.vision(images) if (with_vision and self.vision is not None) else None
        return World(z, pooled, current, self._future_latents(future), hidden, self.condition(state, prev_state), vision)

    def gate_logit(self, world: World) -> torch.Tensor:
        return self.gate(world.pooled, world.state, world.vision)

    def gate_prob(self, world: World) -> torch.Tensor:
        return torch.sigmoid(self.gate_logit(world))

    def predictive_actions(self, world: World, generator: torch.Generator | None = None) -> torch.Tensor:
        kvs = self.predictive.context(world.hidden, world.current, world.state, world.vision)
        a = self.predictive.sample(kvs, world.z.shape[0], self.cfg.expert_steps, generator)
        return self.denorm_action(a)

    def reactive_actions(self, world: World) -> torch.Tensor:
        frames = torch.cat([world.z[:, None], world.future], dim=1)
        return self.denorm_action(self.reactive(frames, world.hidden, world.state, world.vision))

    # ---- losses
    def recon_cameras(self, b: int, n_cam: int, device: torch.device | None = None) -> torch.Tensor:
        """(b, r) distinct random camera indices per sample (r = ``recon_frames``), drawn from torch's RNG."""
        r = min(self.cfg.recon_frames, n_cam)
        return torch.rand(b, n_cam, device=device).argsort(dim=1)[:, :r]

    def autoencoder_loss(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Reconstruction MSE of ``recon_frames`` random current camera frames per sample (only those are
        encoded and decoded: the decoder at full resolution costs ~3x the encoder). Over the steps every
        camera is drawn, and the current frames of all samples are every frame the world model reads."""
        images = batch["images"]
        b, n_cam = images.shape[:2]
        if self.cfg.recon_frames >= n_cam:
            chosen = images
        else:
            rows = torch.arange(b, device=images.device)[:, None]
            chosen = images[rows, self.recon_cameras(b, n_cam, images.device)]
        recon = F.mse_loss(self.decode(self.encode(chosen)[0]), chosen)
        return recon, {"loss": _f(recon), "recon": _f(recon)}

    def world_loss(self, batch: Mapping[str, torch.Tensor], train_autoencoder: bool = True) -> tuple[torch.Tensor, dict[str, float]]:
        """Stage 1: flow matching of the imagined latents on latents encoded WITHOUT gradient (current frames
        and the true future frames alike: as with the paper's frozen video VAE, only the reconstruction
        shapes the autoencoder; a flow loss reaching the encoder would teach it to hide motion), plus, when
        ``train_autoencoder``, ``recon_weight`` x ``autoencoder_loss``. ``train_autoencoder=False``: the
        autoencoder was trained before (the ``autoencoder`` stage) and is frozen, so the flow targets stay
        put and the ``wm`` loss measures progress."""
        frames = torch.cat([batch["images"][:, None], batch["future_images"]], dim=1)  # B, K+1, C, 3, S, S
        with torch.no_grad():
            z = self.encode(frames)[0]
        wm = self.world.loss(to_tokens(z[:, 0]), self._future_tokens(z[:, 1:]), self.norm_state(batch["state"]))
        if not train_autoencoder:
            return wm, {"loss": _f(wm), "wm": _f(wm)}
        recon, _ = self.autoencoder_loss(batch)
        loss = wm + self.cfg.recon_weight * recon
        return loss, {"loss": _f(loss), "wm": _f(wm), "recon": _f(recon)}

    @torch.no_grad()
    def imagination_error(self, batch: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, float]:
        """The inference path (``imagine``, ``wm_steps`` Euler steps) against the encoded true future frames:
        ``imagine_mse``, ``copy_mse`` (the "nothing moves" guess: the current latent repeated) and their ratio
        ``imagine_vs_copy`` (< 1: the world model predicts the motion). Unlike the flow loss, the ratio does
        not drift with the scale of the latent, which moves while stage 1 trains the encoder."""
        w = self.imagine(batch["images"], batch["state"], generator)
        true = self.encode(batch["future_images"])[0]
        err = ((w.future - true) ** 2).mean()
        copy = ((w.z[:, None] - true) ** 2).mean()
        return {"imagine_mse": _f(err), "copy_mse": _f(copy), "imagine_vs_copy": _f(err / copy.clamp_min(1e-12))}

    def expert_loss(self, batch: Mapping[str, torch.Tensor], train_world: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
        prev = batch.get("prev_state")
        if "world_hidden" in batch and not train_world:  # the frozen world model's output, cached (train.cache_world)
            world = World(batch["world_z"], batch["world_pooled"], batch["world_current"], batch["world_future"],
                          batch["world_hidden"], batch["state"])
        else:
            with torch.set_grad_enabled(train_world and torch.is_grad_enabled()):
                world = self.imagine(batch["images"], batch["state"], prev_state=prev, with_vision=False)
        if self.cfg.react_on == "true":
            with torch.set_grad_enabled(train_world and torch.is_grad_enabled()):
                world.future = self.encode(batch["future_images"])[0]
        # the action pathway: trained by this loss (augmented images, noisy state) whatever the world model does
        world.state = self.condition(batch["state"], prev, self.cfg.aug_state_noise if self.training else 0.0)
        if self.vision is not None:
            images = shift_augment(batch["images"], self.cfg.aug_shift_px) if self.training else batch["images"]
            world.vision = self.vision(images)
        valid = batch["action_valid"].bool()
        target = self.norm_action(batch["actions"])
        kvs = self.predictive.context(world.hidden, world.current, world.state, world.vision)
        l_pred = self.predictive.loss(target, valid, kvs)
        frames = torch.cat([world.z[:, None], world.future], dim=1)
        l_react = self.reactive.loss(self.reactive(frames, world.hidden, world.state, world.vision), target, valid)
        logits = self.gate_logit(world)
        phase = batch["phase"].reshape(-1).float()
        l_gate = F.binary_cross_entropy_with_logits(logits, phase)
        loss = l_pred + self.cfg.react_weight * l_react + self.cfg.gate_weight * l_gate
        acc = ((logits > 0).float() == phase).float().mean()
        logs = {"loss": _f(loss), "pred": _f(l_pred), "react": _f(l_react), "gate": _f(l_gate), "gate_acc": _f(acc)}
        return loss, logs
