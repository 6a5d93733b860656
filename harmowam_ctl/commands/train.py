"""``harmowam train``: train the HarmoWAM policy on a local LeRobot dataset (``policies.harmowam.train``).

``harmowam train --dataset DIR --out DIR [--config FILE] [--steps N] [--resume | --overwrite]
[--camera NAME=KEY ...] [--batch-size B] [--seed S] [--threads T] [--no-progress] [--json]``

* ``--config FILE``: a YAML or JSON ``TrainConfig`` (any field; ``model:`` overrides the model config,
  ``data:`` the dataset mapping and labels). Flags override the file.
* ``--steps N``: the TOTAL number of optimisation steps, shared by the enabled stages in the
  proportions of the config (defaults 1000 autoencoder + 4000 world + 4000 expert, so ``--steps 300``
  = 33 + 134 + 133; with ``e2e_steps`` set it gets its share too). Per-stage counts: set
  ``autoencoder_steps``/``world_steps``/``expert_steps``/``e2e_steps`` in the config file.
* ``--camera NAME=KEY`` (repeatable): the model's cameras, in the order given, and the dataset feature
  each one reads (``--camera front=observation.images.top --camera wrist=observation.images.wrist``);
  default: ``front`` and ``wrist`` from ``observation.images.front``/``.wrist``.
* A non-empty ``--out`` is refused unless ``--resume`` (continue from its newest checkpoint with its
  saved config) or ``--overwrite`` (replace a previous training output; nothing else is ever deleted).
The trained policy is ``OUT/final`` (``--policy OUT/final``); a progress bar goes to stderr and the
summary (steps, samples/s per stage, losses, validation) to stdout. Several GPUs:
``accelerate launch -m harmowam_ctl.cli train ...``.

Exit codes: 0 done, 1 training failed (e.g. a non-finite loss), 2 bad option, config, dataset or output
directory (the message names it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from harmowam_ctl.config import ConfigError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
PROG = "harmowam train"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train",
        help="train the HarmoWAM policy on a local LeRobot dataset",
        description="Train HarmoWAM (stage 1 world model, stage 2 experts + gate, optional end-to-end) on a local LeRobot dataset.",
    )
    p.add_argument("--dataset", required=True, help="LeRobot dataset: its folder, or its repo id under $HF_LEROBOT_HOME")
    p.add_argument("--dataset-units", help="the joints' units when the dataset cannot say: rad, lerobot, lerobot-degrees, lerobot-range")
    p.add_argument("--out", required=True, help="output directory; the policy ends up in OUT/final")
    p.add_argument("--config", help="YAML/JSON training config (TrainConfig fields; model: and data: sections)")
    p.add_argument("--steps", type=int, help="total steps, split over the stages in the config's proportions")
    p.add_argument("--camera", action="append", metavar="NAME=KEY", help="model camera NAME reads dataset feature KEY (repeat; order = model order)")
    p.add_argument("--batch-size", type=int, help="samples per step (default 32)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true", help="continue the training in --out from its newest checkpoint")
    existing.add_argument("--overwrite", action="store_true", help="replace the training output in --out")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=run)
    return p


def _read_file(path: str) -> dict[str, Any]:
    f = Path(path)
    try:
        doc = yaml.safe_load(f.read_text(encoding="utf-8"))  # JSON is YAML too
    except OSError as e:
        raise ConfigError(f"--config {path}: cannot be read: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"--config {path}: not valid YAML/JSON: {e}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"--config {path}: must be a mapping of TrainConfig fields, got {type(doc).__name__}")
    return doc


def _cameras(specs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for s in specs:
        name, sep, key = s.partition("=")
        if not sep or not name.strip() or not key.strip():
            raise ConfigError(f"--camera {s!r}: expected NAME=KEY, e.g. --camera front=observation.images.front")
        if name in out:
            raise ConfigError(f"--camera {name}: given twice")
        out[name.strip()] = key.strip()
    return out


def build_config(args: argparse.Namespace) -> tuple[Any, bool]:
    """(TrainConfig, whether anything was given beyond the defaults)."""
    from pydantic import ValidationError

    from harmowam_ctl.config import explain
    from policies.harmowam.train import TrainConfig, TrainError

    doc = _read_file(args.config) if args.config else {}
    given = bool(doc)
    for flag, field in (("batch_size", "batch_size"), ("seed", "seed"), ("threads", "torch_threads")):
        if getattr(args, flag, None) is not None:
            doc[field] = getattr(args, flag)
            given = True
    if args.camera:
        cams = _cameras(args.camera)
        doc.setdefault("data", {})
        if not isinstance(doc["data"], dict):
            raise ConfigError("--config: data must be a mapping")
        doc["data"]["cameras"] = cams
        doc.setdefault("model", {})
        if isinstance(doc["model"], dict):
            doc["model"]["cameras"] = list(cams)
        given = True
    try:
        cfg = TrainConfig(**doc)
    except ValidationError as e:
        src = f"--config {args.config}" if args.config else "options"
        raise ConfigError(f"{src}:\n{explain(e)}") from None
    if args.steps is not None:
        if args.steps < 1:
            raise ConfigError(f"--steps: must be a positive integer, got {args.steps}")
        try:
            cfg = cfg.with_total_steps(args.steps)
        except TrainError as e:
            raise ConfigError(str(e)) from None
        given = True
    return cfg, given


def format_summary(s: dict[str, Any]) -> str:
    lines = [f"{'trained' if s['complete'] else 'stopped at'} step {s['step']}/{s['total_steps']} in {s['seconds']:.0f} s "
             f"on {s['device']} x{s['processes']} (batch {s['batch_size']}; {s['train_samples']} train / {s['val_samples']} validation samples)"]
    for name, st in s["stages"].items():
        line = (f"  {name}: {st['steps_done']} steps, {st.get('samples_per_s') or 0:.1f} samples/s, "
                f"loss {st.get('first_loss', float('nan')):.4f} -> {st.get('last_loss', float('nan')):.4f}")
        v = st.get("val")
        if v:
            line += "; validation " + ", ".join(f"{k} {val:.4f}" for k, val in v.items())
        lines.append(line)
    if s.get("final"):
        lines.append(f"  policy: {s['final']}  (harmowam run --policy {s['final']} ...)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cfg, given = build_config(args)
    from policies.dataset_dir import DatasetNotFound, resolve_dataset
    from policies.harmowam.data import DatasetError
    from policies.harmowam.train import TrainError, train

    if getattr(args, "dataset_units", None):
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"units": args.dataset_units})})
        given = True
    try:
        dataset = resolve_dataset(args.dataset)
    except DatasetNotFound as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        summary = train(dataset, args.out, cfg if (given or not args.resume) else None,
                        resume=args.resume, overwrite=args.overwrite, progress=args.progress)
    except (DatasetError, TrainError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, RuntimeError, ValueError) as e:
        print(f"{PROG}: training failed: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILURE
    if summary.get("process_index", 0) == 0:  # one summary under torchrun / accelerate launch
        print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return EXIT_OK
