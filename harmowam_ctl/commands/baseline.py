"""``harmowam baseline act``: train LeRobot's ACT on a local dataset, the baseline HarmoWAM is compared with.

``harmowam baseline act --dataset DIR --out DIR [--steps N] [--batch-size B]`` runs LeRobot's own trainer
(``python -m lerobot.scripts.lerobot_train``, what ``lerobot-train`` runs) in a child process with ACT's
default config, except ``pretrained_backbone_weights=None`` (the default downloads ImageNet weights; nothing
is downloaded here: ``HF_HUB_OFFLINE=1``), on the local dataset (``--dataset.root=DIR``), on CUDA when torch
sees a GPU, else on the CPU. LeRobot's progress and logs stream through. The units are the dataset's
(``harmowam sim demos`` writes radians; nothing is converted). ``--set KEY=VALUE`` passes any other
``lerobot-train`` option (``--set policy.chunk_size=50``, ``--set save_freq=5000``; repeatable).

Afterwards ``DIR/harmowam_baseline.json`` records the dataset, its fps and units (``ActPolicy`` reads
them), and the command prints the checkpoint: ``harmowam run --sim --policy DIR`` runs it.

Exit codes: 0 trained, 1 LeRobot's trainer failed (its output says why; ``--out`` may hold a partial run),
2 bad option (the message names it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from harmowam_ctl.config import ConfigError, build

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
NOTE = "harmowam_baseline.json"  # policies.act.BASELINE_NOTE (not imported: it would load torch for --help)
N_JOINTS = 6


class BaselineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: Path
    out: Path
    steps: Annotated[int, Field(ge=1)] = 100_000  # LeRobot's defaults
    batch_size: Annotated[int, Field(ge=1, le=4096)] = 8
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_workers: Annotated[int, Field(ge=0, le=64)] | None = None
    torch_threads: Annotated[int, Field(ge=1, le=256)] | None = None
    set: list[str] = Field(default_factory=list)
    json_out: bool = False


def add_parser(sub: Any) -> None:
    p = sub.add_parser("baseline", help="train LeRobot's ACT on a dataset (the baseline)")
    bsub = p.add_subparsers(dest="baseline", metavar="POLICY")
    a = bsub.add_parser("act", help="LeRobot's ACT, default config, no pretrained backbone, via lerobot-train")
    a.add_argument("--dataset", required=True, help="LeRobot dataset: its folder, or its repo id under $HF_LEROBOT_HOME")
    a.add_argument("--out", required=True, help="run directory for lerobot-train (must not exist, or be empty)")
    a.add_argument("--steps", type=int, help="training steps (default 100000, LeRobot's)")
    a.add_argument("--batch-size", type=int, help="batch size (default 8, LeRobot's)")
    a.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default auto: cuda when available, else cpu")
    a.add_argument("--num-workers", type=int, help="data loader workers (default 0 on cpu, 4 on cuda)")
    a.add_argument("--torch-threads", type=int, help="CPU threads for the trainer (default: torch's)")
    a.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other lerobot-train option, e.g. --set policy.chunk_size=50 (repeatable)")
    a.add_argument("--json", dest="json_out", action="store_true", help="print the result as JSON")


def _dataset_info(root: Path) -> dict[str, Any]:
    info_path = root / "meta" / "info.json"
    if not root.is_dir():
        raise ConfigError(f"--dataset: {root} is not a directory (give a local LeRobot dataset, e.g. from harmowam sim demos)")
    try:
        info = json.loads(info_path.read_text())
        feats = info["features"]
        fps = float(info["fps"])
    except OSError:
        raise ConfigError(f"--dataset: {root} is not a LeRobot dataset ({info_path} is missing)") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"--dataset: {info_path} is damaged ({type(e).__name__}: {e})") from None
    action = feats.get("action", {})
    if list(action.get("shape", [])) != [N_JOINTS]:
        raise ConfigError(f"--dataset: its 'action' has shape {action.get('shape')}; the runtime drives {N_JOINTS} joints")
    cameras = sorted(k for k in feats if k.startswith("observation.images."))
    if not cameras:
        raise ConfigError("--dataset: it has no observation.images.* camera; ACT needs at least one")
    from policies.act import dataset_units_json

    return {"fps": fps, "units": dataset_units_json(info), "cameras": [c.rsplit(".", 1)[1] for c in cameras]}


def lerobot_args(cfg: BaselineConfig, device: str) -> list[str]:
    """``lerobot-train`` arguments: ours first, ``--set`` ones replace them."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", cfg.dataset.resolve().name) or "dataset"
    opts: dict[str, str] = {
        "dataset.repo_id": f"local/{name}", "dataset.root": str(cfg.dataset.resolve()),
        "policy.type": "act", "policy.pretrained_backbone_weights": "null", "policy.device": device,
        "policy.push_to_hub": "false", "output_dir": str(cfg.out.resolve()), "steps": str(cfg.steps),
        "batch_size": str(cfg.batch_size), "wandb.enable": "false",
        "num_workers": str(cfg.num_workers if cfg.num_workers is not None else (4 if device == "cuda" else 0)),
    }
    for item in cfg.set:
        key, sep, value = item.partition("=")
        key = key.strip().removeprefix("--")
        if not sep or not key:
            raise ConfigError(f"--set {item}: write it as KEY=VALUE, e.g. policy.chunk_size=50")
        if key in ("policy.type", "dataset.root", "output_dir"):
            raise ConfigError(f"--set {item}: {key} is set by this command (use --dataset/--out)")
        opts[key] = value
    return [f"--{k}={v}" for k, v in opts.items()]


def run(args: argparse.Namespace) -> int:
    if getattr(args, "baseline", None) != "act":
        print("harmowam baseline: choose the policy to train: act", file=sys.stderr)
        return EXIT_USAGE
    from policies.dataset_dir import DatasetNotFound, resolve_dataset

    try:
        args.dataset = str(resolve_dataset(args.dataset))
    except DatasetNotFound as e:
        raise ConfigError(str(e)) from None
    cfg = build(BaselineConfig, {k: getattr(args, k) for k in (
        "dataset", "out", "steps", "batch_size", "device", "num_workers", "torch_threads", "set", "json_out")})
    info = _dataset_info(cfg.dataset)
    if cfg.out.exists():
        if not cfg.out.is_dir() or any(cfg.out.iterdir()):
            raise ConfigError(f"--out: {cfg.out} already exists and is not empty; choose a new directory")
        cfg.out.rmdir()  # lerobot-train creates it and refuses an existing one
    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device: cuda is not available here (torch sees no GPU); use --device cpu")
    argv = [sys.executable, "-m", "lerobot.scripts.lerobot_train", *lerobot_args(cfg, device)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    if cfg.torch_threads:
        env.update(OMP_NUM_THREADS=str(cfg.torch_threads), MKL_NUM_THREADS=str(cfg.torch_threads))
    if info["units"] is None:
        print("harmowam baseline: note: the dataset does not say which units its joints are in (no SO/Koch robot_type); "
              "the runtime will refuse the policy until you declare them (harmowam run --policy-units ...)", file=sys.stderr)
    t0 = time.monotonic()
    proc = subprocess.run(argv, env=env, stdout=2 if cfg.json_out else None, check=False)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        print(f"harmowam baseline: lerobot-train failed with exit code {proc.returncode} (its output is above); "
              f"{cfg.out} may hold a partial run", file=sys.stderr)
        return EXIT_FAILURE
    from policies.act import find_pretrained_dir

    checkpoint = find_pretrained_dir(cfg.out)
    note = {"format": "harmowam-act-baseline", "dataset": str(cfg.dataset.resolve()), **info, "device": device,
            "steps": cfg.steps, "batch_size": cfg.batch_size, "lerobot_args": argv[3:], "train_s": round(seconds, 1)}
    (cfg.out / NOTE).write_text(json.dumps(note, indent=2) + "\n")
    result = {"checkpoint": str(checkpoint), "run_dir": str(cfg.out), **note}
    if cfg.json_out:
        print(json.dumps(result, indent=2))
    else:
        print(f"ACT checkpoint: {checkpoint}\ntrained {cfg.steps} steps on {device} in {seconds:.1f} s\n"
              f"run it: harmowam run --sim --policy {cfg.out}")
    return EXIT_OK
