"""``harmowam diagnose``: open-loop checks of a trained HarmoWAM policy on a LeRobot dataset (``policies.diagnose``).

``harmowam diagnose --policy CKPT --dataset DIR [--episodes N] [--max-frames F] [--camera NAME=KEY]
[--probe-episodes P] [--seed S] [--json] [--out FILE]``

Runs the policy over at most ``N`` training and ``N`` held-out episodes of the dataset (the checkpoint's
meta says which episodes it trained on; a dataset it was not trained on counts as held-out), the first
``F`` frames of each, three times (own, swapped and grey images), and reports: the open-loop action
error, whether the actions depend on the images, the gate's accuracy per phase and, on ``harmowam sim
demos`` data, whether the first actions tell where the object is (one call at the first frame of each of at
most ``P`` episodes). What was sampled (and progress, one line
an episode) goes to stderr; the report to stdout (``--json``: the same numbers as JSON); ``--out FILE`` also
writes the JSON.

Exit codes: 0 diagnosed (whatever the verdicts), 1 the policy failed on the data, 2 bad input (a missing
checkpoint or dataset, a camera the dataset does not have, another robot's action size, other units).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
PROG = "harmowam diagnose"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "diagnose", help="open-loop checks of a trained policy on a dataset: action error, does it look, gate, object probe",
        description="Open-loop checks of a trained HarmoWAM policy on a LeRobot dataset (train vs held-out episodes).",
    )
    p.add_argument("--policy", required=True, help="HarmoWAM checkpoint directory (harmowam train --out, or its final/)")
    p.add_argument("--dataset", required=True, help="LeRobot dataset: its folder or its repo id under $HF_LEROBOT_HOME (the training dataset or another)")
    p.add_argument("--episodes", type=int, default=5, help="at most this many training and this many held-out episodes (default 5)")
    p.add_argument("--max-frames", type=int, default=200, help="the first frames of each episode that are run (default 200)")
    p.add_argument("--camera", action="append", default=[], metavar="NAME=KEY",
                   help="read the policy's camera NAME from dataset feature KEY (repeat; default: as in training)")
    p.add_argument("--probe-episodes", type=int, default=60,
                   help="object probe (harmowam sim demos data): first frames of at most this many episodes (default 60; 0: skip)")
    p.add_argument("--seed", type=int, default=0, help="the policy's random seed (default 0)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--out", help="also write the JSON report to this file")
    p.set_defaults(handler=run)
    return p


def _cameras(items: list[str]) -> dict[str, str]:
    out = {}
    for s in items:
        name, sep, key = s.partition("=")
        if not sep or not name.strip() or not key.strip():
            raise ValueError(f"--camera {s!r}: expected NAME=KEY, e.g. --camera front=observation.images.top")
        out[name.strip()] = key.strip()
    return out


def _finite(x: Any) -> Any:
    """NaN/inf -> None, so the JSON is standard."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from policies.diagnose import DiagnoseInputError, format_text, load_inputs
    from policies.diagnose import run as diagnose_run

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        cams = _cameras(args.camera)
        import torch

        torch.set_num_threads(1)
        from policies.dataset_dir import resolve_dataset

        inputs = load_inputs(args.policy, str(resolve_dataset(args.dataset)), episodes=args.episodes, max_frames=args.max_frames,
                             cameras=cams, seed=args.seed, probe_episodes=args.probe_episodes)
    except (DiagnoseInputError, ValueError) as e:
        say(f"{PROG}: {e}")
        return EXIT_USAGE
    tr = [e.episode for e in inputs.episodes if e.split == "train"]
    ho = [e.episode for e in inputs.episodes if e.split == "held_out"]
    say(f"{PROG}: {inputs.split_note}")
    say(f"{PROG}: sampled train episodes {tr or 'none'}, held-out {ho or 'none'}; at most {args.max_frames} frames each "
        f"(dataset read in {inputs.load_s:.1f} s)")
    try:
        report = _finite(diagnose_run(inputs, progress=lambda m: say(f"  {m}")))
    except Exception as e:  # the policy failed on this data: say where
        say(f"{PROG}: the policy failed on the dataset: {type(e).__name__}: {e}")
        return EXIT_FAILURE
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2) if args.json else format_text(report))
    return EXIT_OK
