"""``harmowam diagnose`` on a tiny LeRobot dataset and a tiny HarmoWAM trained on it in the fixture (seconds)."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pytest
import torch

from harmowam_ctl import cli

sys.path.insert(0, str(Path(__file__).parents[1] / "policies"))  # tests are not packages (--import-mode=importlib)
import tiny_dataset  # noqa: E402

TINY_MODEL = dict(
    image_size=32, latent_channels=4, encoder_channels=(8, 8, 16, 16), wm_width=32, wm_depth=1, wm_heads=2,
    expert_width=32, expert_depth=1, expert_heads=2, gate_hidden=16, horizon=6, n_future=2, future_stride=2,
    wm_steps=2, expert_steps=2, recon_frames=2,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from policies.harmowam.train import TrainConfig, train

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("diagnose")
    ds = tiny_dataset.make_tiny_dataset(root / "ds", episodes=4, frames=24, size=32)
    cfg = TrainConfig(autoencoder_steps=2, world_steps=2, expert_steps=4, batch_size=8, lr=3e-3, world_lr=3e-3,
                      warmup_steps=1, log_every=5, val_every=100, save_every=100, val_batches=1, model=TINY_MODEL,
                      data={"val_fraction": 0.5})
    train(ds, root / "run", cfg, progress=False)
    return root / "run", ds


def _numbers(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from _numbers(v)
    elif isinstance(x, list):
        for v in x:
            yield from _numbers(v)
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        yield x


def test_the_report_has_finite_numbers_for_train_and_held_out_episodes(trained, tmp_path, capsys):
    run, ds = trained
    out = tmp_path / "r" / "report.json"
    assert cli.main(["diagnose", "--policy", str(run), "--dataset", str(ds), "--episodes", "2", "--max-frames", "10",
                     "--json", "--out", str(out)]) == 0
    cap = capsys.readouterr()
    r = json.loads(cap.out)
    assert json.loads(out.read_text()) == r
    meta = json.loads((run / "final" / "config.json").read_text())["meta"]
    assert r["same_dataset"] is True
    assert r["sampled"]["train"]["episodes"] == meta["train_episodes"]
    assert r["sampled"]["held_out"]["episodes"] == meta["val_episodes"]
    assert r["sampled"]["train"]["frames"] == 20 and r["sampled"]["policy_calls"] == 4 * 10 * 3
    assert "sampled train episodes" in cap.err and "x 3 passes" in cap.err
    assert r["units"]["dataset"] == "radians" and r["units"]["rad_per_unit"] == [1.0] * 6
    for split in ("train", "held_out"):
        ol = r["open_loop"][split]
        assert ol["frames"] == 20 and len(ol["first"]["per_joint"]) == 6 and ol["chunk"]["mean_rad"] > 0
    look = r["look"]
    assert look["ratio"] is not None and look["ratio"] >= 0 and look["episode_spread"]["mean"] > 0
    g = r["gate"]
    assert g["available"] and g["threshold"] == 0.5 and 0 <= g["all"]["balanced_accuracy"] <= 1
    assert g["all"]["interaction"]["frames"] + g["all"]["transit"]["frames"] == 40
    assert r["object_probe"]["available"] is False and "harmowam_demos.json" in r["object_probe"]["reason"]
    assert r["latent_probe"]["available"] is False
    assert all(math.isfinite(v) for v in _numbers(r))


def test_the_text_report_and_another_dataset_counts_as_held_out(trained, tmp_path, capsys):
    run, ds = trained
    other = tmp_path / "copy"
    shutil.copytree(ds, other)
    assert cli.main(["diagnose", "--policy", str(run / "final"), "--dataset", str(other), "--episodes", "1",
                     "--max-frames", "6"]) == 0
    text = capsys.readouterr().out
    assert "not the dataset the checkpoint was trained on" in text and "train episodes none" in text
    for start in ("1. open-loop error", "2. looking: ", "3. gate vs phase", "4. object-position probe: not available",
                  "   latent-feature probe: not available"):
        assert start in text
    assert "swap not measured (one episode sampled" in text


def _edit_info(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    info = json.loads((dst / "meta" / "info.json").read_text())
    edit(info)
    (dst / "meta" / "info.json").write_text(json.dumps(info))
    return dst


def test_bad_input_exits_2_naming_the_fix(trained, tmp_path, capsys):
    run, ds = trained

    def diag(*argv: str) -> str:
        assert cli.main(["diagnose", *argv]) == 2
        return capsys.readouterr().err

    assert "no such directory" in diag("--policy", str(tmp_path / "nope"), "--dataset", str(ds))
    assert "--dataset" in diag("--policy", str(run), "--dataset", str(tmp_path / "nope"))
    err = diag("--policy", str(run), "--dataset", str(ds), "--camera", "front=observation.images.top")
    assert "'observation.images.top', which the dataset does not have" in err and "--camera front=KEY" in err
    assert "the policy has no camera 'side'" in diag("--policy", str(run), "--dataset", str(ds), "--camera", "side=x")
    assert "NAME=KEY" in diag("--policy", str(run), "--dataset", str(ds), "--camera", "front")

    def seven(info: dict) -> None:
        info["features"]["action"]["shape"] = [7]

    err = diag("--policy", str(run), "--dataset", str(_edit_info(ds, tmp_path / "seven", seven)))
    assert "'action' has shape [7], the policy's action has 6 values" in err and "another robot" in err

    def lerobot(info: dict) -> None:  # the same numbers declared in LeRobot's units: not what it was trained on
        for key in ("observation.state", "action"):
            info["features"][key].pop("units")

    err = diag("--policy", str(run), "--dataset", str(_edit_info(ds, tmp_path / "lerobot", lerobot)))
    assert "the checkpoint was trained on radians" in err
    assert "at least 1" in diag("--policy", str(run), "--dataset", str(ds), "--episodes", "0")
