"""``harmowam run`` (a policy drives the arm) and ``harmowam teleop`` (a leader arm drives it), both on
the same runtime. Exit codes: 0 the run ended with a safe stop, 1 a fault (the arm could not be driven to
a safe stop, or set-up failed), 2 a bad option or config file."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from calibration import CalibrationError
from hardware.arms import ARMS
from harmowam_ctl.config import ConfigError
from harmowam_ctl.inference import PolicyError
from harmowam_ctl.keyboard import KEY_HELP

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _common(p: argparse.ArgumentParser, out_help: str = "folder for summary.json and plot.png (default runs/<time>)") -> None:
    p.add_argument("--config", help="YAML file with any RunConfig settings (flags override it)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="any other setting, e.g. --set watchdogs.camera.deadline_s=1.0 (repeatable)")
    p.add_argument("--arm", choices=sorted(ARMS), help="follower arm (default so101)")
    p.add_argument("--port", help="follower's serial port (not with --sim)")
    p.add_argument("--calibration", help="follower calibration name (LeRobot's robot id)")
    p.add_argument("--sim", action="store_true", default=None, help="drive the simulated arm (starts the emulator)")
    p.add_argument("--task", help="simulated task (with --sim; default pick_place)")
    p.add_argument("--seed", type=int, help="scene/policy seed (default 0)")
    p.add_argument("--duration", dest="duration_s", type=float, help="seconds, then a safe stop (default: until stopped)")
    p.add_argument("--rate", dest="rate_hz", type=float, help="servo tick rate in Hz (default 100)")
    p.add_argument("--camera", action="append", metavar="NAME=SOURCE", help="an OpenCV camera, e.g. front=0 (repeatable)")
    p.add_argument("--leader-arm", choices=sorted(a for a in ARMS if "leader" in a), help="leader arm for teleop")
    p.add_argument("--leader-port", help="leader's serial port")
    p.add_argument("--leader-calibration", help="leader calibration name")
    p.add_argument("--leader-sim", action="store_true", default=None, help="an emulated leader arm")
    p.add_argument("--out", help=out_help)
    p.add_argument("--rerun", action="store_true", default=None, help="also write a rerun recording (run.rrd)")
    p.add_argument("--no-keyboard", dest="keyboard", action="store_false", default=None, help="do not read keys")
    p.add_argument("--no-status", dest="status", action="store_false", default=None, help="no status line")
    p.add_argument("--no-realtime", dest="realtime", action="store_false", default=None,
                   help="do not ask for real-time priority (SCHED_FIFO) for the servo tick's threads")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")


def add_policy_units(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy-units", choices=["rad", "lerobot", "lerobot-degrees", "lerobot-range"],
                   help="the joints' units of a checkpoint that does not record them (lerobot: LeRobot's default for "
                   "the arm, SO degrees / Koch -100..100, gripper 0..100); refused if the checkpoint says otherwise")


def add_parsers(sub: Any) -> None:
    run = sub.add_parser("run", help="drive the arm from a policy (safety filter, watchdogs, teleop override)")
    _common(run)
    run.add_argument("--policy", help="scripted (with --sim), synthetic, or a checkpoint (issue 5)")
    run.add_argument("--policy-mode", choices=["auto", "thread", "process"], help="where inference runs (default auto)")
    add_policy_units(run)
    run.add_argument("--trust-checkpoint-code", action="store_true",
                     help="load an ACT checkpoint whose processor files name code outside LeRobot's and this "
                     "program's packages (that code runs: only for checkpoints from a source you trust)")
    tel = sub.add_parser("teleop", help="drive the follower from a leader arm (same runtime, same safety)")
    _common(tel)


def _flags(args: argparse.Namespace, command: str) -> tuple[dict[str, Any], list[str]]:
    flags: dict[str, Any] = {
        k: getattr(args, k, None)
        for k in ("arm", "port", "calibration", "sim", "task", "seed", "duration_s", "rate_hz", "leader_arm",
                  "leader_port", "leader_calibration", "leader_sim", "keyboard", "status", "realtime", "policy", "policy_mode", "policy_units")
    }
    sets = list(args.set)
    if args.camera:
        cams = []
        for item in args.camera:
            name, sep, source = item.partition("=")
            if not sep or not name or not source:
                raise ConfigError(f"--camera {item}: write it as NAME=SOURCE, e.g. front=0 or wrist=/dev/video2")
            cams.append({"name": name, "source": int(source) if source.isdigit() else source})
        flags["cameras"] = cams
    tel: dict[str, Any] = {}
    if args.out:
        tel["out_dir"] = args.out
    if args.rerun:
        tel["rerun"] = True
    if tel:
        flags["telemetry"] = tel
    if command == "teleop":
        flags["policy"] = None
        if not args.leader_arm:
            raise ConfigError("--leader-arm: required for teleop (so101-leader, so100-leader or koch-leader)")
    return flags, sets


def run(args: argparse.Namespace) -> int:
    from harmowam_ctl import runconfig
    from harmowam_ctl.setup import session

    flags, sets = _flags(args, args.command)
    cfg = runconfig.load(args.config, flags, sets)
    if args.command == "run" and not cfg.policy and not cfg.leader_arm:
        raise ConfigError("--policy: required (scripted with --sim, synthetic, or a checkpoint)")
    if args.command == "run" and cfg.policy:  # a name, or a checkpoint directory -> its builder and options
        from policies.registry import resolve_policy

        try:
            spec = resolve_policy(cfg.policy)
            options = {**spec.options, **cfg.policy_options}
            if spec.name == "act":  # checkpoint code is refused here, before any device is opened
                from policies.act import checked_act_options

                options = checked_act_options(options, args.trust_checkpoint_code)
        except ValueError as e:
            raise ConfigError(f"--policy: {e}") from None
        cfg = cfg.model_copy(update={"policy": spec.name, "policy_options": options})
    if cfg.keyboard and sys.stdin.isatty():
        print(f"keys: {KEY_HELP}", file=sys.stderr)

    async def main() -> dict[str, Any]:
        async with session(cfg) as rt:
            summary = await rt.run()
            sim = rt.p.sim
            paths = rt.p.telemetry.write()
            summary = rt.p.telemetry.summary()
            summary["state"] = rt.lifecycle.state.value
            summary["fault"] = rt.fault
            summary["files"] = {k: str(v) for k, v in paths.items()}
            if sim is not None:
                summary["task_success"] = sim.success()
            return summary

    try:
        summary = asyncio.run(main())
    except (CalibrationError, PolicyError) as e:
        print(f"harmowam {args.command}: {e}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(_text(summary))
    return EXIT_FAILURE if summary.get("fault") else EXIT_OK


def _text(s: dict[str, Any]) -> str:
    j = s.get("tick_jitter_ms") or {}
    e = s.get("e2e_latency_ms") or {}
    lines = [
        f"state: {s.get('state')}  ticks: {s.get('ticks')}  rate: {_f(s.get('tick_hz'))} Hz  "
        f"jitter p99: {_f(j.get('p99'))} ms  e2e p50/p99: {_f(e.get('p50'))}/{_f(e.get('p99'))} ms",
        "time by source: " + ", ".join(f"{k} {_f(v)} s" for k, v in (s.get("time_by_source_s") or {}).items()),
        f"faults: {len(s.get('faults') or [])}" + "".join(f"\n  - {f.get('name')}: {f.get('detail')}" for f in s.get("faults") or []),
    ]
    if s.get("task_success") is not None:
        lines.append(f"task success: {s['task_success']}")
    if s.get("files"):
        lines.append("written: " + ", ".join(s["files"].values()))
    return "\n".join(lines)


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)
