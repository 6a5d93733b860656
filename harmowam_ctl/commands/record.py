"""``harmowam record``: teleoperated (or policy + human take-over) demonstrations into a LeRobotDataset,
through the same runtime as ``harmowam run`` (see ``harmowam_ctl.record``). Exit codes: 0 every
requested episode saved, 1 a fault, a write failure or a stop before the end (the episodes saved so far
stay in the dataset), 2 a bad option (nothing recorded, nothing deleted)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from calibration import CalibrationError
from harmowam_ctl.commands.run import _common, _flags, add_policy_units
from harmowam_ctl.config import ConfigError, build
from harmowam_ctl.inference import PolicyError

EXIT_OK, EXIT_FAILURE = 0, 1


def add_parser(sub: Any) -> None:
    p = sub.add_parser("record", help="record demonstrations (teleop, or a policy with human take-over) into a LeRobotDataset")
    _common(p, out_help="LeRobot dataset root to create (or --resume / --overwrite)")
    p.add_argument("--policy", help="a policy drives and the human takes over (DAgger-style): scripted (with --sim), "
                   "synthetic or a checkpoint; without it the leader arm drives")
    p.add_argument("--policy-mode", choices=["auto", "thread", "process"], help="where inference runs (default auto)")
    add_policy_units(p)
    p.add_argument("--trust-checkpoint-code", action="store_true",
                   help="load an ACT checkpoint whose processor files name code outside LeRobot's and this "
                   "program's packages (that code runs: only for checkpoints from a source you trust)")
    p.add_argument("--episodes", type=int, help="episodes to save (default 1)")
    p.add_argument("--episode-s", type=float, help="seconds per episode (default 30)")
    p.add_argument("--reset-s", type=float, help="seconds between episodes to reset the scene (default 10; not with --sim)")
    p.add_argument("--fps", type=int, help="frames per second (default 30)")
    p.add_argument("--images", dest="video", action="store_false", default=None,
                   help="store cameras as PNG images instead of AV1 videos (lerobot-record's default, and ours)")
    p.add_argument("--task-text", help="the LeRobot task string (default: the simulated task's instruction)")
    p.add_argument("--repo-id", help="dataset id (default local/<--out's name>)")
    p.add_argument("--resume", action="store_true", default=None, help="append episodes to the dataset in --out")
    p.add_argument("--overwrite", action="store_true", default=None, help="delete the dataset in --out and record anew")


def configs(args: argparse.Namespace) -> tuple[Any, Any]:
    """(RunConfig, RecordConfig) from the flags; ConfigError naming the flag when one is wrong."""
    from harmowam_ctl import runconfig
    from harmowam_ctl.record import RecordConfig

    flags, sets = _flags(args, "record")
    tel = flags.get("telemetry") or {}
    tel.pop("out_dir", None)  # --out is the dataset here, not the telemetry folder
    if not tel:
        flags.pop("telemetry", None)
    cfg = runconfig.load(args.config, flags, sets)
    if cfg.policy:  # a name, or a checkpoint directory -> its builder and options (as `harmowam run` does)
        from policies.registry import resolve_policy

        try:
            spec = resolve_policy(cfg.policy)
            options = {**spec.options, **cfg.policy_options}
            if spec.name == "act":  # checkpoint code is refused here, before any device is opened
                from policies.act import checked_act_options

                options = checked_act_options(options, bool(getattr(args, "trust_checkpoint_code", False)))
        except ValueError as e:
            raise ConfigError(f"--policy: {e}") from None
        cfg = cfg.model_copy(update={"policy": spec.name, "policy_options": options})
    rec = build(RecordConfig, {
        "out": args.out, "repo_id": args.repo_id, "episodes": args.episodes, "episode_s": args.episode_s,
        "reset_s": args.reset_s, "fps": args.fps, "video": args.video, "task_text": args.task_text, "resume": args.resume,
        "overwrite": args.overwrite,
    })
    return cfg, rec


def run(args: argparse.Namespace) -> int:
    from harmowam_ctl.record import KEY_HELP, Recording, RecordError, check

    cfg, rec = configs(args)
    check(cfg, rec)  # bad options end here, before any device is opened
    if cfg.keyboard and sys.stdin.isatty():
        print(f"keys: {KEY_HELP}", file=sys.stderr)
    recording = Recording(cfg, rec, say=lambda text: print(text, file=sys.stderr, flush=True))
    try:
        result = asyncio.run(recording.run())
    except (CalibrationError, PolicyError, RecordError) as e:
        print(f"harmowam record: {e}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(_text(result))
    return EXIT_OK if result["complete"] else EXIT_FAILURE


def _text(r: dict[str, Any]) -> str:
    lines = [f"saved {r['saved']}/{r['requested']} episode(s) into {r['path']} ({r['repo_id']}), discarded {r['discarded']}"]
    for e in r["episodes"]:
        lines.append(f"  episode {e['episode_index']}: {e['frames']} frames, {e['interventions']} intervention(s) "
                     f"({e['intervention_s']:.1f} s), ended by {e['ended_by']}"
                     + (f"; {e['missed_frames']} missed (loop late), {e['dropped_frames']} dropped (writer behind)"
                        if e.get("missed_frames") or e.get("dropped_frames") else ""))
    for s in r["sessions"]:
        if s["outcome"] == "aborted" or s["faults"]:
            lines.append(f"  stopped: {s['stop_cause'] or s['fault']}" + "".join(
                f"\n  - {f['name']}: {f['detail']}" for f in s["faults"]))
    return "\n".join(lines)
