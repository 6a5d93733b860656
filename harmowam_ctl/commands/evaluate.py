"""``harmowam eval``: a trained policy, closed loop, on a simulated task (``policies.evaluate``).

``harmowam eval --policy CKPT --task T [--variations in_domain position ...] [--episodes N]
[--start-seed S] [--replan-every K] [--out FILE] [--json]``

``--policy`` takes what ``harmowam run`` takes: a ``harmowam train`` output, an ACT checkpoint from
``lerobot-train`` / ``harmowam baseline act``, ``synthetic``, or ``scripted`` (the task's scripted expert
through the same loop, re-planning every step: the reference). An ACT checkpoint whose processor files
name code outside LeRobot's and this program's packages is refused unless ``--trust-checkpoint-code``
(``policies.act.check_processor_code``). ``--variations``: the scene variations to
evaluate, each with ``--episodes`` seeds from ``--start-seed`` (default 1000: the demonstrations use seeds
from 0, so the scenes are held out). ``--set KEY=VALUE`` passes an inference override to a HarmoWAM
checkpoint (``--set routing=average`` for the ablations). Each episode's line goes to stderr as it ends; the
summary to stdout, and with ``--out FILE`` also to a JSON file (with every episode's record).

Exit codes: 0 evaluated (whatever the success rate), 1 an episode crashed, 2 bad option or checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from harmowam_ctl.config import ConfigError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
PROG = "harmowam eval"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval", help="success rate of a trained policy on a simulated task (closed loop, held-out seeds)",
        description="Run a trained policy closed loop on a simulated task over held-out seeds and scene variations.",
    )
    p.add_argument("--policy", required=True, help="checkpoint directory (harmowam train, lerobot-train ACT) or a policy name")
    p.add_argument("--task", default="pick_place", help="simulated task (default pick_place)")
    p.add_argument("--variations", nargs="+", default=["in_domain"],
                   help="scene variations: in_domain, position (spawn cells between the training ones), position_far "
                   "(the mirrored layout), background, object or YAML files (default in_domain)")
    p.add_argument("--episodes", type=int, default=20, help="episodes per variation (default 20)")
    p.add_argument("--start-seed", type=int, default=1000, help="first scene seed (default 1000, held out)")
    p.add_argument("--replan-every", type=int, default=6, help="chunk steps executed between policy calls (default 6)")
    p.add_argument("--seed", type=int, default=0, help="the policy's random seed (default 0)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="HarmoWAM inference override (repeat)")
    p.add_argument("--trust-checkpoint-code", action="store_true",
                   help="load an ACT checkpoint whose processor files name code outside LeRobot's and this "
                   "program's packages (that code runs: only for checkpoints from a source you trust)")
    p.add_argument("--policy-units", choices=["rad", "lerobot", "lerobot-degrees", "lerobot-range"],
                   help="the joints' units of a checkpoint that does not record them (refused if it says otherwise)")
    p.add_argument("--out", help="also write the result, with every episode, to this JSON file")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=run)
    return p


def _overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in items:
        k, sep, v = s.partition("=")
        if not sep or not k.strip():
            raise ConfigError(f"--set {s!r}: expected KEY=VALUE, e.g. --set routing=average")
        try:
            out[k.strip()] = json.loads(v)
        except ValueError:
            out[k.strip()] = v
    return out


def format_text(r: dict[str, Any]) -> str:
    lines = [f"{r['policy']} on {r['task']}:"]
    for spec, s in r["results"].items():
        lo, hi = s["rate_ci95"]
        share = ", ".join(f"{k} {v:.0%}" for k, v in s["expert_share"].items())
        lines.append(f"  {spec:12s} {s['successes']}/{s['episodes']} ({s['rate']:.0%}, 95% CI {lo:.0%}-{hi:.0%})  "
                     f"policy call p50 {s['policy_call_ms_p50']} ms  experts: {share}")
    return "\n".join(lines)


def sim_io(name: str, options: dict[str, Any], declared: str | None) -> Any:
    """The policy's units conversion on the simulated SO-101 (its calibration: tick 2048 = angle 0); a
    ValueError (``UnitsError``) naming the fix when its units are unknown or do not fit."""
    from calibration import ArmCalibration
    from hardware.arms import SO101
    from policies.units import bind_units

    return bind_units(name, options, SO101, ArmCalibration.simulated(SO101), declared)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from pydantic import ValidationError

    from harmowam_ctl.config import explain
    from policies.evaluate import EvalConfig, checked_task, evaluate
    from policies.registry import PolicySpec, build, resolve_policy

    try:
        cfg = EvalConfig(task=args.task, specs=tuple(args.variations), episodes=args.episodes,
                         start_seed=args.start_seed, replan_every=args.replan_every)
        spec = resolve_policy(args.policy)
        opts = {**spec.options, **_overrides(args.set)}
        if spec.name == "act":  # its processor files may name code: refused here unless trusted
            from policies.act import checked_act_options

            opts = checked_act_options(opts, args.trust_checkpoint_code)
        import torch

        torch.set_num_threads(1)
        if spec.name == "scripted":  # the task's expert, one step per call: the reference the others are held to
            from policies.scripted import ScriptedPolicy

            policy: Any = ScriptedPolicy
            cfg = cfg.model_copy(update={"replan_every": 1})
        else:
            policy = build(PolicySpec(name=spec.name, options=opts, seed=args.seed, io=sim_io(spec.name, opts, args.policy_units)))
        checked_task(cfg)
    except ValidationError as e:
        print(f"{PROG}: {explain(e)}", file=sys.stderr)
        return EXIT_USAGE
    except (ConfigError, ValueError, OSError, KeyError) as e:
        print(f"{PROG}: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return EXIT_USAGE

    def line(e: dict[str, Any]) -> None:
        print(f"{e['spec']} seed {e['seed']}: {'success at step ' + str(e['success_step']) if e['success'] else 'failed'}"
              f" ({e['calls']} policy calls)", file=sys.stderr, flush=True)

    episodes: list[dict[str, Any]] = []
    try:
        result = evaluate(policy, cfg, label=args.policy, on_episode=lambda e: (episodes.append(e), line(e)))
    except Exception as e:  # an episode crashed: say which, keep what ran
        print(f"{PROG}: an episode crashed after {len(episodes)} finished: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILURE
    if args.out:
        doc = {**result, "episodes": [{k: v for k, v in e.items() if k != "call_ms"} for e in episodes]}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(doc, indent=2))
    print(json.dumps(result, indent=2) if args.json else format_text(result))
    return EXIT_OK
