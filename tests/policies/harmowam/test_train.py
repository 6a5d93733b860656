"""HarmoWAM training (policies.harmowam.train) and ``harmowam train`` on a tiny LeRobot dataset."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from harmowam_ctl import cli
from policies.harmowam.checkpoint import load_checkpoint
from policies.harmowam.policy import HarmoWAMPolicy
from policies.harmowam.train import StreamSampler, TrainConfig, TrainError, checkpoints, train
from policies.interface import Observation

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests are not packages (--import-mode=importlib)
import tiny_dataset  # noqa: E402

TINY_MODEL = dict(
    image_size=32, latent_channels=4, encoder_channels=(8, 8, 16, 16), wm_width=32, wm_depth=1, wm_heads=2,
    expert_width=32, expert_depth=1, expert_heads=2, gate_hidden=16, horizon=6, n_future=2, future_stride=2,
    wm_steps=2, expert_steps=2, recon_frames=2,
)
CFG = TrainConfig(autoencoder_steps=20, world_steps=10, expert_steps=30, batch_size=8, lr=3e-3, world_lr=3e-3, warmup_steps=2, log_every=5, val_every=10,
                  save_every=20, val_batches=2, model=TINY_MODEL, data={"val_fraction": 0.34})


@pytest.fixture(scope="module")
def ds_root(tmp_path_factory):
    return tiny_dataset.make_tiny_dataset(tmp_path_factory.mktemp("h4train") / "ds", episodes=3, frames=40, size=32)


@pytest.fixture(scope="module")
def run_a(ds_root, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("h4runs") / "a"
    return out, train(ds_root, out, CFG, progress=False)


def _rows(out: Path, split: str) -> list[dict]:
    return [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["split"] == split]


def test_steps_are_split_over_the_stages_in_proportion():
    c = TrainConfig(autoencoder_steps=500, world_steps=1500, expert_steps=2000).with_total_steps(400)
    assert c.plan() == [("autoencoder", 0, 50), ("world", 50, 200), ("expert", 200, 400)]
    c = TrainConfig(autoencoder_steps=0, world_steps=300, expert_steps=300, e2e_steps=100).with_total_steps(70)
    assert (c.autoencoder_steps, c.world_steps, c.expert_steps, c.e2e_steps) == (0, 30, 30, 10)
    assert c.plan() == [("world", 0, 30), ("expert", 30, 60), ("e2e", 60, 70)]
    c = TrainConfig(autoencoder_steps=0, world_steps=1000, expert_steps=10).with_total_steps(5)
    assert c.total_steps == 5 and c.expert_steps >= 1
    with pytest.raises(TrainError, match="at least one step per enabled stage"):
        TrainConfig().with_total_steps(1)


def test_data_order_is_a_function_of_seed_and_step():
    full = StreamSampler(10, 4, seed=3, start_step=0)
    it = iter(full)
    batches = [next(it) for _ in range(5)]
    assert sorted(batches[0] + batches[1] + batches[2][:2]) == list(range(10))  # epoch 0 is a permutation
    later = iter(StreamSampler(10, 4, seed=3, start_step=3))
    assert [next(later), next(later)] == batches[3:5]
    other = iter(StreamSampler(10, 4, seed=4, start_step=0))
    assert next(other) != batches[0]
    # two processes get disjoint batches of the same stream
    r0, r1 = iter(StreamSampler(10, 2, 3, 0, rank=0, world=2)), iter(StreamSampler(10, 2, 3, 0, rank=1, world=2))
    assert next(r0) + next(r1) == batches[0]


def test_training_writes_a_loadable_policy(run_a, ds_root):
    out, summary = run_a
    assert summary["complete"] and summary["final"] == str(out / "final")
    model, cfg, meta = load_checkpoint(out / "final")
    assert cfg.image_size == 32 and cfg.fps == 30.0
    assert meta["units"]["kinds"] == ["rad"] * 6 and meta["units"]["robot_type"] == "so_follower"
    assert meta["phase_source"] == "dataset" and len(meta["val_episodes"]) == 1
    # the dataset's statistics are in the weights
    assert not torch.allclose(model.action_mean, torch.zeros(6))
    state, _ = tiny_dataset.episode_arrays(0, 40)
    images = {c: tiny_dataset.render(c, state[3], 32) for c in ("front", "wrist")}
    obs = Observation(t=1.0, state=state[3], state_t=1.0, images=images, image_t={c: 1.0 for c in images})
    policy = HarmoWAMPolicy.from_checkpoint(out / "final", seed=0, torch_threads=1)
    chunk = policy.act(policy.predict(obs), obs)
    assert chunk.actions.shape == (6, 6) and np.isfinite(chunk.actions).all()
    assert chunk.expert in ("predictive", "reactive") and 0.0 <= chunk.gate <= 1.0


def test_losses_fall_and_validation_is_recorded(run_a):
    out, summary = run_a
    train_rows = _rows(out, "train")
    ae = [r for r in train_rows if r["stage"] == "autoencoder"]
    world = [r for r in train_rows if r["stage"] == "world"]
    expert = [r for r in train_rows if r["stage"] == "expert"]
    st = summary["stages"]
    assert ae and st["autoencoder"]["last_loss"] < 0.7 * st["autoencoder"]["first_loss"]  # first step -> last 5
    assert world[-1]["wm"] < 0.8 * world[0]["wm"]  # frozen autoencoder: the flow targets stay put
    assert expert[-1]["loss"] < 0.6 * expert[0]["loss"]
    val = _rows(out, "val")
    assert [r["step"] for r in val] == [10, 20, 30, 40, 50, 60]
    assert all(0.0 <= r["gate_acc"] <= 1.0 for r in val if r["stage"] == "expert")
    assert all(r["imagine_vs_copy"] > 0 and r["copy_mse"] > 0 for r in val if r["stage"] == "world")
    for stage, steps in (("autoencoder", 20), ("world", 10), ("expert", 30)):
        st = summary["stages"][stage]
        assert st["steps_done"] == steps and st["samples_per_s"] > 0 and "val" in st


def test_checkpoints_hold_the_training_state_without_pickle(run_a):
    out, _ = run_a
    names = [p.name for p in checkpoints(out)]
    assert names == ["step_0000040", "step_0000060"]  # keep_checkpoints=2 of 20, 30 (stage end), 40, 60
    doc = json.loads((out / "checkpoints" / "step_0000040" / "training_state.json").read_text())
    assert doc["step"] == 40 and doc["stage"] == "expert" and doc["scheduler"]["last_epoch"] == 10
    tensors = load_file(str(out / "checkpoints" / "step_0000040" / "training_state.safetensors"))
    assert "rng.torch" in tensors and any(k.endswith(".exp_avg") for k in tensors)
    assert not [p for p in out.rglob("*") if p.suffix in (".pt", ".pth", ".bin", ".pkl", ".pickle")]


def test_resume_continues_exactly_where_it_stopped(run_a, ds_root, tmp_path):
    out_a, _ = run_a
    out = tmp_path / "b"
    part = train(ds_root, out, CFG, progress=False, stop_after=37)  # stops inside stage 2
    assert part["step"] == 37 and not part["complete"] and not (out / "final").exists()
    assert checkpoints(out)[-1].name == "step_0000037"
    with open(out / "metrics.jsonl", "a") as f:  # a line an interrupted run wrote after its checkpoint
        f.write(json.dumps({"step": 39, "stage": "expert", "split": "train", "loss": 9.0}) + "\n")
    done = train(ds_root, out, None, progress=False, resume=True)
    assert done["complete"] and done["step"] == 60
    wa, wb = load_file(str(out_a / "final" / "model.safetensors")), load_file(str(out / "final" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    # same losses at every logged step, and no stale line; the step-40 row averages steps 38..40 only
    # (the log window restarts at a resume), so it is left out of the comparison
    assert [r["step"] for r in _rows(out, "train")] == [r["step"] for r in _rows(out_a, "train")]
    assert [r for r in _rows(out, "train") if r["step"] != 40] == [r for r in _rows(out_a, "train") if r["step"] != 40]


def test_output_directory_rules(ds_root, tmp_path):
    small = CFG.model_copy(update={"autoencoder_steps": 0, "world_steps": 1, "expert_steps": 1})  # joint stage 1
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(TrainError, match="is not empty; pass --resume .* --overwrite"):
        train(ds_root, foreign, small, progress=False)
    with pytest.raises(TrainError, match="not a harmowam training output; it is never deleted"):
        train(ds_root, foreign, small, progress=False, overwrite=True)
    with pytest.raises(TrainError, match="nothing to resume"):
        train(ds_root, foreign, small, progress=False, resume=True)
    assert (foreign / "keep.txt").read_text() == "mine"
    out = tmp_path / "run"
    train(ds_root, out, small, progress=False)
    with pytest.raises(TrainError, match=r"differs from the one it was started with \(lr\)"):
        train(ds_root, out, small.model_copy(update={"lr": 1e-3}), progress=False, resume=True)
    again = train(ds_root, out, small.model_copy(update={"expert_steps": 2}), progress=False, overwrite=True)
    assert again["step"] == 3 and json.loads((out / "train_config.json").read_text())["train"]["expert_steps"] == 2


def test_cli_train_end_to_end(ds_root, tmp_path, capsys):
    conf = tmp_path / "tiny.yaml"
    conf.write_text(json.dumps(CFG.model_dump(mode="json") | {"save_every": 100}))
    out = tmp_path / "cli"
    args = ["train", "--dataset", str(ds_root), "--out", str(out), "--config", str(conf), "--steps", "6", "--no-progress"]
    assert cli.main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["complete"] and [st["steps_done"] for st in summary["stages"].values()] == [2, 1, 3]
    assert (out / "final" / "model.safetensors").is_file()
    assert cli.main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert cli.main(["train", "--dataset", str(ds_root), "--out", str(out), "--resume", "--no-progress"]) == 0
    assert "trained step 6/6" in capsys.readouterr().out
    bad_cam = ["train", "--dataset", str(ds_root), "--out", str(tmp_path / "x"), "--camera", "front=observation.images.top"]
    assert cli.main(bad_cam) == 2
    err = capsys.readouterr().err
    assert "'front'" in err and "observation.images.wrist" in err
    conf.write_text("batch_size: 0\n")
    assert cli.main(["train", "--dataset", str(ds_root), "--out", str(tmp_path / "y"), "--config", str(conf)]) == 2
    assert "--batch-size" in capsys.readouterr().err


def test_resume_refuses_a_checkpoint_of_another_model_config(ds_root, tmp_path):
    """A run started by an older version (its checkpoint config lacks ``wm_residual``, so it loads as
    False) is not silently continued with the new default."""
    out = tmp_path / "old"
    small = CFG.model_copy(update={"autoencoder_steps": 1, "world_steps": 1, "expert_steps": 1})
    train(ds_root, out, small, progress=False, stop_after=2)
    ck = checkpoints(out)[-1]
    doc = json.loads((ck / "config.json").read_text())
    del doc["config"]["wm_residual"]
    (ck / "config.json").write_text(json.dumps(doc))
    with pytest.raises(TrainError, match=r"another model config \(wm_residual\).*--overwrite"):
        train(ds_root, out, None, progress=False, resume=True)


def test_two_processes_under_torchrun_train_with_no_code_change(ds_root, tmp_path):
    """``torchrun --nproc_per_node 2`` on the CPU (gloo): both processes train (disjoint batches, gradients
    averaged by DDP), only the main one writes; the result loads as a policy."""
    import os
    import subprocess

    conf = tmp_path / "tiny.yaml"
    conf.write_text(json.dumps(CFG.model_dump(mode="json") | {"save_every": 100, "torch_threads": 1}))
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "harmowam_ctl.cli", "train", "--dataset", str(ds_root),
         "--out", str(out), "--config", str(conf), "--steps", "6", "--no-progress", "--json"],
        capture_output=True, text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)  # one summary (the main process), not two
    assert summary["processes"] == 2 and summary["complete"] and summary["device"].startswith("cpu")
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(r["step"] <= 6 for r in rows)
    assert len({r["step"] for r in rows if r["split"] == "train"}) == len([r for r in rows if r["split"] == "train"])  # one writer
    policy = HarmoWAMPolicy.from_checkpoint(out / "final")
    assert policy.cfg.image_size == 32


def test_init_from_a_trained_policy_continues_from_its_weights(run_a, ds_root, tmp_path):
    """More expert steps on run_a's frozen world model: the world model and autoencoder come out exactly
    as run_a left them (a fresh start would differ), the experts move on, and the output says where it
    started."""
    out_a, _ = run_a
    more = CFG.model_copy(update={"autoencoder_steps": 0, "world_steps": 0, "expert_steps": 3, "init_from": str(out_a)})
    summary = train(ds_root, tmp_path / "more", more, progress=False)
    assert summary["complete"]
    a, _, _ = load_checkpoint(out_a / "final")
    b, _, meta = load_checkpoint(tmp_path / "more" / "final")
    sa, sb = a.state_dict(), b.state_dict()
    world = [k for k in sa if k.startswith(("world.", "encoder.", "decoder."))]
    experts = [k for k in sa if k.startswith("predictive.")]
    assert world and experts
    assert all(torch.equal(sa[k], sb[k]) for k in world)
    assert any(not torch.equal(sa[k], sb[k]) for k in experts)
    assert meta["init_from"] == str(out_a / "final")


def test_init_from_refuses_another_model_or_a_missing_checkpoint(run_a, ds_root, tmp_path):
    out_a, _ = run_a
    other = CFG.model_copy(update={"model": {**TINY_MODEL, "wm_width": 64}, "init_from": str(out_a)})
    with pytest.raises(TrainError, match=r"init_from .*wm_width 32 there, 64 here"):
        train(ds_root, tmp_path / "x", other, progress=False)
    with pytest.raises(TrainError, match="init_from"):
        train(ds_root, tmp_path / "y", CFG.model_copy(update={"init_from": str(tmp_path / "nowhere")}), progress=False)
