"""HarmoWAM's parts: shapes, where gradients go in each training stage, statistics, overfitting a tiny
fixed batch (each loss falls by >= 5x), determinism."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from policies.harmowam import HarmoWAM, HarmoWAMConfig
from policies.harmowam.encoder import from_tokens, to_tokens

sys.path.insert(0, str(Path(__file__).parent))  # tests are not packages (--import-mode=importlib)
from harmowam_tiny import make_batch, shake_outputs, tiny_config  # noqa: E402


def _model(cfg: HarmoWAMConfig, seed: int = 0) -> HarmoWAM:
    torch.manual_seed(seed)
    return HarmoWAM(cfg)


def _grads(module: torch.nn.Module) -> list[float]:
    return [0.0 if p.grad is None else float(p.grad.abs().sum()) for p in module.parameters()]


def test_default_config_shapes():
    cfg = HarmoWAMConfig()
    assert (cfg.grid, cfg.tokens_per_frame, cfg.token_dim) == (6, 9, 2 * cfg.latent_channels * 4)
    assert cfg.horizon == 12 and cfg.n_future * cfg.future_stride == 12 and cfg.dt == pytest.approx(1 / 30)
    assert cfg.routing == "gate" and cfg.gate_threshold == 0.5 and cfg.react_weight == 0.1 and cfg.gate_weight == 0.05


@pytest.mark.parametrize("bad, field", [({"image_size": 80}, "image_size"), ({"cameras": ("a", "a")}, "cameras"),
                                         ({"wm_width": 30, "wm_heads": 4}, "wm_width"), ({"expert_width": 33, "expert_heads": 3}, "expert_width.*even"),
                                         ({"routing": "blend"}, "routing"),
                                         ({"bogus": 1}, "bogus")])
def test_config_errors_name_the_field(bad, field):
    with pytest.raises(ValidationError, match=field):
        HarmoWAMConfig(**bad)


def test_tokens_hold_every_cameras_patch_and_round_trip():
    z = torch.randn(2, 3, 4, 6, 6)  # B, C, c, g, g
    t = to_tokens(z)
    assert t.shape == (2, 9, 3 * 4 * 4)
    # token 4 is the middle 2 x 2 patch (rows 2-3, columns 2-3) of every camera
    expect = torch.cat([z[:, cam, :, 2:4, 2:4].reshape(2, -1) for cam in range(3)], dim=1)
    assert torch.equal(t[:, 4], expect)
    assert torch.equal(from_tokens(t, 3, 4, 6), z)


def test_shapes_of_each_part():
    cfg = tiny_config()
    m = _model(cfg).eval()
    batch = make_batch(cfg, b=3)
    k, c, h = cfg.n_future, len(cfg.cameras), cfg.horizon
    with torch.no_grad():
        z, pooled = m.encode(batch["images"])
        assert z.shape == (3, c, cfg.latent_channels, cfg.grid, cfg.grid) and z.abs().max() <= 1
        assert pooled.shape == (3, c, cfg.encoder_channels[-1])
        img = m.decode(z)
        assert img.shape == batch["images"].shape and 0 <= img.min() and img.max() <= 1
        w = m.imagine(batch["images"], batch["state"], torch.Generator().manual_seed(0))
        assert w.future.shape == (3, k, c, cfg.latent_channels, cfg.grid, cfg.grid)
        assert w.hidden.shape == (3, 2 + (k + 1) * cfg.tokens_per_frame, cfg.wm_width)
        assert w.current.shape == (3, cfg.tokens_per_frame, cfg.token_dim)
        s = m.gate_prob(w)
        assert s.shape == (3,) and ((s > 0) & (s < 1)).all()
        assert m.predictive_actions(w, torch.Generator().manual_seed(0)).shape == (3, h, cfg.action_dim)
        assert m.reactive_actions(w).shape == (3, h, cfg.action_dim)


def test_stage1_gradients_reach_the_world_model_only():
    cfg = tiny_config()
    m = _model(cfg)
    shake_outputs(m)
    loss, logs = m.world_loss(make_batch(cfg))
    loss.backward()
    assert set(logs) == {"loss", "wm", "recon"} and all(np.isfinite(list(logs.values())))
    for part in (m.encoder, m.decoder, m.world):
        assert min(_grads(part)) >= 0 and sum(_grads(part)) > 0, part
    assert sum(_grads(m.world.blocks)) > 0 and sum(_grads(m.world.patch_in)) > 0
    for part in (m.gate, m.predictive, m.reactive):
        assert sum(_grads(part)) == 0, part


def test_flow_loss_never_reaches_the_autoencoder():
    """Stop-gradient: the flow-matching inputs and targets are encoded without gradient, so only the
    reconstruction trains the encoder (with recon_weight 0 it gets nothing), and the future frames are
    not in the graph at all."""
    cfg = tiny_config(recon_weight=0.0)
    m = _model(cfg)
    shake_outputs(m)
    batch = make_batch(cfg)
    batch["images"].requires_grad_(True)
    batch["future_images"].requires_grad_(True)
    m.world_loss(batch)[0].backward()
    assert sum(_grads(m.world)) > 0
    assert sum(_grads(m.encoder)) == 0 and sum(_grads(m.decoder)) == 0
    assert batch["future_images"].grad is None  # the target got no gradient
    # the world stage after an autoencoder stage: only the flow transformer learns
    m.zero_grad(set_to_none=True)
    batch["images"].grad = None
    loss, logs = m.world_loss(batch, train_autoencoder=False)
    loss.backward()
    assert set(logs) == {"loss", "wm"} and sum(_grads(m.world)) > 0
    assert all(p.grad is None for p in m.autoencoder_parameters())
    assert batch["images"].grad is None and batch["future_images"].grad is None


def test_reconstruction_of_a_random_camera_subset():
    cfg = tiny_config(cameras=("a", "b", "c"), recon_frames=2)
    m = _model(cfg)
    torch.manual_seed(5)
    draws = [m.recon_cameras(8, 3) for _ in range(4)]
    for d in draws:
        assert d.shape == (8, 2) and all(len(set(row.tolist())) == 2 for row in d)  # distinct per sample
    assert set(torch.cat(draws).flatten().tolist()) == {0, 1, 2}  # every camera is drawn over the steps
    batch = make_batch(cfg)
    batch["images"].requires_grad_(True)
    torch.manual_seed(9)
    loss, logs = m.autoencoder_loss(batch)
    loss.backward()
    torch.manual_seed(9)
    cams = m.recon_cameras(4, 3)
    rows = torch.arange(4)[:, None]
    with torch.no_grad():
        chosen = batch["images"][rows, cams]
        assert float(loss) == pytest.approx(float(((m.decode(m.encode(chosen)[0]) - chosen) ** 2).mean()), rel=1e-5)
    # only the chosen frames are encoded: the others get no gradient
    used = torch.zeros(4, 3, dtype=torch.bool)
    used[rows, cams] = True
    per_frame = batch["images"].grad.abs().sum(dim=(2, 3, 4))
    assert (per_frame[used] > 0).all() and (per_frame[~used] == 0).all()
    with pytest.raises(ValidationError, match="recon_frames"):
        tiny_config(recon_frames=3)  # two cameras


@pytest.mark.parametrize("train_world", [False, True])
def test_stage2_gradients(train_world):
    cfg = tiny_config()
    m = _model(cfg)
    shake_outputs(m)  # output layers not zero (as after some training), so gradients flow through them
    loss, logs = m.expert_loss(make_batch(cfg), train_world=train_world)
    loss.backward()
    assert set(logs) == {"loss", "pred", "react", "gate", "gate_acc"}
    assert logs["loss"] == pytest.approx(logs["pred"] + 0.1 * logs["react"] + 0.05 * logs["gate"], rel=1e-5)
    for part in (m.gate, m.predictive, m.reactive):
        assert sum(_grads(part)) > 0, part
    # each expert's own input layers learn (nothing disconnected)
    assert sum(_grads(m.predictive.wm_in)) > 0 and sum(_grads(m.predictive.vis_in)) > 0
    assert sum(_grads(m.reactive.frame)) > 0 and sum(_grads(m.reactive.latent_in)) > 0
    wm_grad = sum(_grads(m.encoder)) + sum(_grads(m.world))
    if train_world:
        assert sum(_grads(m.encoder)) > 0 and sum(_grads(m.world.blocks)) > 0
    else:
        assert wm_grad == 0 and all(p.grad is None for p in m.world_parameters())
    assert sum(_grads(m.decoder)) == 0  # the decoder is for display and stage 1 only


def test_parameter_groups_partition_the_model():
    m = _model(tiny_config())
    world, experts = {id(p) for p in m.world_parameters()}, {id(p) for p in m.expert_parameters()}
    assert not world & experts and world | experts == {id(p) for p in m.parameters()}


def test_stats_normalise_inside_and_come_back_in_dataset_units():
    cfg = tiny_config()
    m = _model(cfg).eval()
    batch = make_batch(cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        before = m.reactive_actions(m.imagine(batch["images"], batch["state"], g))
    mean, std = np.full(6, 100.0), np.full(6, 2.0)
    m.set_stats({"state": {"mean": np.zeros(6), "std": np.ones(6)}, "action": {"mean": mean, "std": std}})
    with torch.no_grad():
        after = m.reactive_actions(m.imagine(batch["images"], batch["state"], torch.Generator().manual_seed(0)))
    assert torch.allclose(after, before * 2.0 + 100.0, atol=1e-4)
    assert torch.equal(m.state_dict()["action_mean"], torch.full((6,), 100.0))  # saved with the weights
    with pytest.raises(ValueError, match=r"\['action'\]\['std'\]"):
        m.set_stats({"state": {"mean": np.zeros(6), "std": np.ones(6)}, "action": {"mean": mean}})
    with pytest.raises(ValueError, match=r"stats\['state'\]\['mean'\] must be 6"):
        m.set_stats({"state": {"mean": np.zeros(5), "std": np.ones(6)}, "action": {"mean": mean, "std": std}})


def _train(loss_fn, params, steps: int, lr: float) -> None:
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        loss, _ = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()


def _imagination_error(m: HarmoWAM, batch) -> tuple[float, float]:
    """Mean squared error of the imagined future latents relative to their energy, and the same for
    'nothing moves' (the current latent copied)."""
    with torch.no_grad():
        w = m.imagine(batch["images"], batch["state"], torch.Generator().manual_seed(0))
        true = m.encode(batch["future_images"])[0]
        energy = (true**2).mean()
        copy = w.z[:, None].expand_as(true)
        return float(((w.future - true) ** 2).mean() / energy), float(((copy - true) ** 2).mean() / energy)


def _recon_per_camera(m: HarmoWAM, batch) -> torch.Tensor:
    with torch.no_grad():
        frames = torch.cat([batch["images"][:, None], batch["future_images"]], dim=1)
        return ((m.decode(m.encode(frames)[0]) - frames) ** 2).mean(dim=(0, 1, 3, 4, 5))


def test_world_model_overfits_a_tiny_batch():
    """The default recipe: the autoencoder alone (one random camera per sample and step), then flow
    matching on the frozen autoencoder."""
    cfg = tiny_config(image_size=32)
    m = _model(cfg)
    batch = make_batch(cfg)
    err0, copy0 = _imagination_error(m, batch)
    assert err0 == pytest.approx(copy0)  # residual form, zero-initialised output: imagines "nothing moves"
    recon0 = _recon_per_camera(m, batch)
    torch.manual_seed(0)
    _train(lambda: m.autoencoder_loss(batch), list(m.autoencoder_parameters()), 300, 5e-3)
    recon = _recon_per_camera(m, batch)
    assert (recon < 0.25 * recon0).all(), (recon, recon0)  # every camera (and the future frames) reconstructed
    frozen = {k: v.clone() for k, v in m.state_dict().items() if k.startswith(("encoder", "decoder"))}
    _, logs0 = m.world_loss(batch, train_autoencoder=False)
    _train(lambda: m.world_loss(batch, train_autoencoder=False), list(m.world.parameters()), 120, 5e-3)
    _, logs = m.world_loss(batch, train_autoencoder=False)
    assert logs["wm"] < 0.2 * logs0["wm"]
    err, copy = _imagination_error(m, batch)
    assert err < 0.5 * copy, (err, copy)  # closer than "nothing moves": it learned the motion
    got = m.imagination_error(batch, torch.Generator().manual_seed(0))
    assert got["imagine_vs_copy"] == pytest.approx(err / copy, rel=1e-4)
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in frozen.items())


def test_world_model_overfits_when_trained_jointly_and_without_the_residual_form():
    """``autoencoder_steps: 0`` (autoencoder and flow at once) and ``wm_residual=False`` (checkpoints
    of before the field) still learn."""
    cfg = tiny_config(image_size=32, wm_residual=False)
    m = _model(cfg)
    batch = make_batch(cfg)
    err0, _ = _imagination_error(m, batch)
    assert err0 == pytest.approx(1.0)  # zero-initialised output, no residual: imagines all-zero latents
    _, logs0 = m.world_loss(batch)
    torch.manual_seed(0)
    _train(lambda: m.world_loss(batch), list(m.world_parameters()), 150, 5e-3)
    _, logs = m.world_loss(batch)
    err, copy = _imagination_error(m, batch)
    assert err < 0.2 * err0, (err, err0)
    assert err < copy
    assert logs["recon"] < 0.2 * logs0["recon"]


def test_experts_and_gate_overfit_a_tiny_batch_on_a_frozen_world_model():
    cfg = tiny_config(image_size=32)
    m = _model(cfg)
    batch = make_batch(cfg)
    world_before = {k: v.clone() for k, v in m.state_dict().items() if k.startswith(("encoder", "world", "decoder"))}
    torch.manual_seed(1)
    _, first = m.expert_loss(batch)
    _train(lambda: m.expert_loss(batch), list(m.expert_parameters()), 250, 3e-3)
    torch.manual_seed(1)
    _, last = m.expert_loss(batch)
    assert last["pred"] < first["pred"] / 5, (first, last)
    assert last["react"] < first["react"] / 5, (first, last)
    assert last["gate"] < first["gate"] / 5 and last["gate_acc"] == 1.0
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in world_before.items())  # stage 2 froze it
    # sampled chunks (the inference path) match the targets, not just the training loss
    m.eval()
    with torch.no_grad():
        w = m.imagine(batch["images"], batch["state"], torch.Generator().manual_seed(0))
        pred = m.predictive_actions(w, torch.Generator().manual_seed(0))
        react = m.reactive_actions(w)
    valid = batch["action_valid"]
    spread = batch["actions"][valid].std()
    assert (pred - batch["actions"])[valid].abs().mean() < 0.2 * spread
    assert (react - batch["actions"])[valid].abs().mean() < 0.2 * spread


def test_same_seed_same_model_and_samples():
    cfg = tiny_config()
    a, b = _model(cfg, seed=3).eval(), _model(cfg, seed=3).eval()
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(_model(cfg, seed=4).world.pos, a.world.pos)
    for m in (a, b):
        shake_outputs(m)
    batch = make_batch(cfg, b=2)

    def sample(m: HarmoWAM, s1: int, s2: int) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            w = m.imagine(batch["images"], batch["state"], torch.Generator().manual_seed(s1))
            return w.future, m.predictive_actions(w, torch.Generator().manual_seed(s2))

    fa, pa = sample(a, 7, 8)
    fb, pb = sample(b, 7, 8)
    assert torch.equal(fa, fb) and torch.equal(pa, pb)
    fc, pc = sample(a, 9, 10)  # other noise, other samples
    assert not torch.allclose(fa, fc) and not torch.allclose(pa, pc)
