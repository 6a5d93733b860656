"""HarmoWAM checkpoints: the round trip gives identical actions; every kind of bad checkpoint gives a
CheckpointError that names the file and the problem."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from policies.harmowam import HarmoWAM
from policies.harmowam.checkpoint import CONFIG, WEIGHTS, CheckpointError, load_checkpoint, read_config, save_checkpoint
from policies.harmowam.policy import HarmoWAMPolicy
from policies.interface import Observation

sys.path.insert(0, str(Path(__file__).parent))  # tests are not packages (--import-mode=importlib)
from harmowam_tiny import shake_outputs, tiny_config  # noqa: E402

STATS = {"state": {"mean": np.arange(6.0), "std": np.full(6, 2.0)}, "action": {"mean": np.full(6, 0.5), "std": np.full(6, 0.25)}}


def _obs(i: int) -> Observation:
    rng = np.random.default_rng(i)
    images = {c: rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for c in ("front", "wrist")}
    return Observation(t=float(i), state=rng.normal(0, 0.5, 6), state_t=float(i), images=images)


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, HarmoWAM]:
    torch.manual_seed(0)
    cfg = tiny_config()
    model = HarmoWAM(cfg)
    shake_outputs(model)
    model.set_stats(STATS)
    save_checkpoint(tmp_path / "ckpt", model, cfg, {"stage": 2, "step": 123, "dataset": "demos/pick_place"})
    return tmp_path / "ckpt", model


def test_round_trip_gives_identical_actions(saved):
    path, model = saved
    assert sorted(p.name for p in path.iterdir()) == [CONFIG, WEIGHTS]  # no temporary files left behind
    doc = json.loads((path / CONFIG).read_text())
    assert doc["format"] == "harmowam" and doc["version"] == 1 and doc["config"]["wm_width"] == 32
    loaded, cfg, meta = load_checkpoint(path)
    assert cfg == model.cfg and meta == {"stage": 2, "step": 123, "dataset": "demos/pick_place"}
    assert not loaded.training
    assert torch.equal(loaded.action_std, torch.full((6,), 0.25)) and torch.equal(loaded.state_mean, torch.arange(6.0))
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    a, b = HarmoWAMPolicy(model, seed=1), HarmoWAMPolicy.from_checkpoint(path, seed=1)
    for expert in ("predictive", "reactive"):
        for i in range(2):
            o = _obs(i)
            assert np.array_equal(a.expert_actions(a.predict(o).latent, expert), b.expert_actions(b.predict(o).latent, expert))
    o = _obs(5)
    assert np.array_equal(a.act(a.predict(o), o).actions, b.act(b.predict(o), o).actions)


def test_overrides_change_inference_settings_only(saved):
    path, _ = saved
    _, cfg, _ = load_checkpoint(path, {"routing": "average", "wm_steps": 1})
    assert cfg.routing == "average" and cfg.wm_steps == 1
    assert read_config(path)[0].routing == "gate"  # the file is untouched


def test_missing_directory_and_files(saved, tmp_path):
    path, _ = saved
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")
    (path / WEIGHTS).unlink()
    with pytest.raises(CheckpointError, match=f"{WEIGHTS} is missing"):
        load_checkpoint(path)
    (path / CONFIG).unlink()
    with pytest.raises(CheckpointError, match=f"{CONFIG} is missing"):
        load_checkpoint(path)
    run = tmp_path / "run"
    (run / "pretrained_model").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="pretrained_model"):
        load_checkpoint(run)


@pytest.mark.parametrize("how", ["truncated", "corrupted", "empty"])
def test_bad_weights_file(saved, how):
    path, _ = saved
    f = path / WEIGHTS
    data = f.read_bytes()
    if how == "truncated":
        f.write_bytes(data[: len(data) // 2])
    elif how == "corrupted":
        f.write_bytes(b"\x07" * 8 + data[8:])  # a header length that makes no sense
    else:
        f.write_bytes(b"")
    with pytest.raises(CheckpointError, match=rf"{WEIGHTS} is not a readable safetensors file.*corrupted or truncated"):
        load_checkpoint(path)


@pytest.mark.parametrize("text, match", [
    ('{"format": "harmowam", "version": 1, "conf', "not readable JSON"),
    ("\x00\x01garbage", "not readable JSON"),
    ('[1, 2]', "not a HarmoWAM checkpoint config"),
    ('{"format": "harmowam", "version": 7, "config": {}}', "version 7"),
    ('{"format": "harmowam", "version": 1}', '"config" must be an object'),
])
def test_bad_config_file(saved, text, match):
    path, _ = saved
    (path / CONFIG).write_text(text)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


@pytest.mark.parametrize("change, match", [
    ({"wm_width": "big"}, r"invalid config field\(s\): wm_width"),
    ({"image_size": 70}, r"image_size: .*multiple of 32"),
    ({"not_a_field": 1}, "not_a_field"),
])
def test_config_that_does_not_validate_names_the_field(saved, change, match):
    path, _ = saved
    doc = json.loads((path / CONFIG).read_text())
    doc["config"].update(change)
    (path / CONFIG).write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_an_act_checkpoint_is_named(tmp_path):
    (tmp_path / CONFIG).write_text(json.dumps({"type": "act", "chunk_size": 100, "dim_model": 512}))
    save_file({"w": torch.zeros(2)}, str(tmp_path / WEIGHTS))
    with pytest.raises(CheckpointError, match="is a LeRobot ACT checkpoint.*--policy act"):
        load_checkpoint(tmp_path)
    (tmp_path / CONFIG).write_text(json.dumps({"type": "diffusion"}))
    with pytest.raises(CheckpointError, match="LeRobot 'diffusion' policy checkpoint"):
        load_checkpoint(tmp_path)


def test_weights_of_another_size_name_the_tensor(saved):
    path, _ = saved
    doc = json.loads((path / CONFIG).read_text())
    doc["config"]["wm_width"] = 64
    (path / CONFIG).write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=r"tensor '[\w.]+' has shape \(\d+, ?\d*\).*expects \(\d+, ?\d*\)"):
        load_checkpoint(path)


def test_missing_unexpected_and_non_finite_tensors(saved):
    path, _ = saved
    tensors = load_file(str(path / WEIGHTS))
    save_file({k: v for k, v in tensors.items() if k != "gate.mlp.3.bias"}, str(path / WEIGHTS))
    with pytest.raises(CheckpointError, match=r"missing: gate\.mlp\.3\.bias"):
        load_checkpoint(path)
    save_file({**tensors, "extra.weight": torch.zeros(3)}, str(path / WEIGHTS))
    with pytest.raises(CheckpointError, match=r"unexpected tensor\(s\) extra\.weight"):
        load_checkpoint(path)
    bad = dict(tensors)
    bad["world.out.weight"] = bad["world.out.weight"].clone()
    bad["world.out.weight"][0, 0] = float("nan")
    save_file(bad, str(path / WEIGHTS))
    with pytest.raises(CheckpointError, match=r"'world\.out\.weight' holds NaN"):
        load_checkpoint(path)
    save_file({**tensors, "action_std": tensors["action_std"].double()}, str(path / WEIGHTS))
    with pytest.raises(CheckpointError, match=r"'action_std' is torch.float64"):
        load_checkpoint(path)


def test_meta_must_be_json(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_config()
    with pytest.raises(CheckpointError, match="JSON-serialisable"):
        save_checkpoint(tmp_path, HarmoWAM(cfg), cfg, {"bad": object()})
    assert not (tmp_path / CONFIG).exists() and not (tmp_path / WEIGHTS).exists()


def test_no_pickle_in_the_files(saved):
    path, _ = saved
    raw = (path / WEIGHTS).read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    assert header["__metadata__"]["format"] == "harmowam"
    assert b"\x80\x04" not in raw[:2] and not raw.startswith(b"PK")  # neither a pickle nor a torch zip


def test_a_config_written_before_new_fields_loads_as_it_was_trained(saved):
    """Checkpoints saved before ``wm_residual``/``recon_frames`` existed: the world model then predicted
    the imagined frames directly, so such a config loads with ``wm_residual=False`` and the same weights
    give the same imagination as the old code; a new checkpoint records every field."""
    path, model = saved
    doc = json.loads((path / CONFIG).read_text())
    assert doc["config"]["wm_residual"] is True and doc["config"]["recon_frames"] == 1
    old = {k: v for k, v in doc["config"].items() if k not in ("wm_residual", "recon_frames")}
    (path / CONFIG).write_text(json.dumps({**doc, "config": old}))
    loaded, cfg, _ = load_checkpoint(path)
    assert cfg.wm_residual is False and cfg.recon_frames == 1
    g = torch.Generator().manual_seed(0)
    current = torch.randn(2, cfg.tokens_per_frame, cfg.token_dim, generator=g)
    noisy = torch.randn(2, cfg.n_future * cfg.tokens_per_frame, cfg.token_dim, generator=g)
    s, state = torch.tensor([0.0, 0.5]), torch.randn(2, 6, generator=g)
    with torch.no_grad():
        old_x1, _ = loaded.world(noisy, s, current, state)
        new_x1, _ = model.world(noisy, s, current, state)
    # the same weights: the residual form adds exactly the current frame's tokens to every imagined frame
    assert torch.allclose(new_x1, old_x1 + current.repeat(1, cfg.n_future, 1), atol=1e-6)
    with pytest.raises(CheckpointError, match=r"recon_frames .* at most the number of cameras"):
        (path / CONFIG).write_text(json.dumps({**doc, "config": {**old, "recon_frames": 3}}))
        load_checkpoint(path)
