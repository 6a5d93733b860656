"""The `harmowam` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence

from hardware.arms import ARMS
from hardware.errors import HardwareError
from harmowam_ctl import lerobot_flags, logs
from harmowam_ctl.commands import baseline as baseline_cmd
from harmowam_ctl.commands import calibrate as calibrate_cmd
from harmowam_ctl.commands import check as check_cmd
from harmowam_ctl.commands import diagnose as diagnose_cmd
from harmowam_ctl.commands import evaluate as eval_cmd
from harmowam_ctl.commands import record as record_cmd
from harmowam_ctl.commands import run as run_cmd
from harmowam_ctl.commands import setup as setup_cmd
from harmowam_ctl.commands import sim as sim_cmd
from harmowam_ctl.commands import train as train_cmd
from harmowam_ctl.config import ConfigError, build

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="harmowam",
        description="Run learned manipulation policies safely on SO-100/SO-101 and Koch desktop arms.",
    )
    p.add_argument("--log-level", choices=logs.LEVELS, help="log level (default: $HARMOWAM_LOG or warning)")
    p.add_argument("--log-json", action="store_true", help="log JSON lines instead of text")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    em = sub.add_parser(
        "emulate",
        help="serve emulated servos on a pseudo-terminal (prints its path first)",
        add_help=False,
    )

    sc = sub.add_parser("scan", help="list the servos that answer on a port")
    sc.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyACM0")
    sc.add_argument("--arm", choices=sorted(ARMS), help="check the servos against this arm profile")
    sc.add_argument("--family", choices=["feetech", "dynamixel"], help="protocol (implied by --arm)")
    sc.add_argument("--baud", type=int, help="baud rate (default 1000000)")
    sc.add_argument("--json", action="store_true", help="print JSON")

    bench = sub.add_parser("bench", help="benchmarks (results go to docs/BENCHMARKS.md)")
    bsub = bench.add_subparsers(dest="bench", metavar="WHAT")
    bb = bsub.add_parser("bus", help="time one servo control cycle against the emulator, and LeRobot's")
    bb.add_argument("--arm", choices=sorted(ARMS), help="arm to emulate (default so101)")
    bb.add_argument("--baud", type=int, help="baud rate (default 1000000)")
    bb.add_argument("--cycles", type=int, help="timed cycles (default 1000)")
    bb.add_argument("--warmup", type=int, help="untimed cycles first (default 50)")
    bb.add_argument("--no-lerobot", dest="lerobot", action="store_false", default=None, help="skip LeRobot's bus")
    bb.add_argument("--json", action="store_true", help="print JSON")
    bs = bsub.add_parser("sim", help="time rendering a camera frame and one 30 Hz step of the simulated SO-101")
    bs.add_argument("--resolution", type=int, help="square image size in pixels (default 96)")
    bs.add_argument("--samples", type=int, help="timed renders / steps (default 300)")
    bs.add_argument("--json", action="store_true", help="print JSON")

    bl = bsub.add_parser("loop", help="the runtime vs a LeRobot-style synchronous loop on the simulated arm")
    bl.add_argument("--duration", dest="duration_s", type=float, help="seconds of each loop (default 15)")
    bl.add_argument("--policy-mode", choices=["thread", "process"], help="where the runtime's policy runs (default process)")
    bl.add_argument("--no-baseline", dest="baseline", action="store_false", default=None, help="skip the synchronous loop")
    bl.add_argument("--sim-mode", choices=["process", "inprocess"], help="where the simulated world runs (default process)")
    bl.add_argument("--policy", help="synthetic (default: ~23 ms of torch work per chunk) or a trained checkpoint directory")
    bl.add_argument("--trust-checkpoint-code", action="store_true", default=None,
                    help="load an ACT checkpoint whose processor files name code outside LeRobot's and this "
                    "program's packages (that code runs: only for checkpoints from a source you trust)")
    bl.add_argument("--json", action="store_true", help="print JSON")

    bp = bsub.add_parser("policy", help="time one HarmoWAM policy step (one torch thread) and LeRobot ACT's")
    bp.add_argument("--checkpoint", help="a HarmoWAM checkpoint directory (default: a fresh default-size model)")
    bp.add_argument("--samples", type=int, help="timed samples (default 200)")
    bp.add_argument("--json", action="store_true", help="print JSON")

    demo = sub.add_parser("demo", help="what exists today, on an emulated arm: scan, move, benchmark")
    demo.add_argument("--arm", choices=sorted(ARMS), default="so101")
    demo.add_argument("--cycles", type=int, default=1000, help="benchmark cycles")
    sim_cmd.add_parser(sub)
    calibrate_cmd.add_parser(sub)
    check_cmd.add_parser(sub)
    train_cmd.add_parser(sub)
    eval_cmd.add_parser(sub)
    diagnose_cmd.add_parser(sub)
    run_cmd.add_parsers(sub)
    record_cmd.add_parser(sub)
    baseline_cmd.add_parser(sub)
    setup_cmd.add_parser(sub)
    return p


def _cmd_emulate(args: argparse.Namespace) -> int:
    from hardware.emulator import main as emulate_main

    return emulate_main(list(args.rest), prog="harmowam emulate")


def _cmd_scan(args: argparse.Namespace) -> int:
    from harmowam_ctl.scan import ScanConfig, format_table, scan

    cfg = build(ScanConfig, {"port": args.port, "arm": args.arm, "family": args.family, "baud": args.baud})
    rows = asyncio.run(scan(cfg))
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return EXIT_OK


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.bench == "sim":
        from harmowam_ctl.bench import sim

        cfg = build(sim.BenchSimConfig, {"resolution": args.resolution, "samples": args.samples})
        result = sim.run(cfg)
        print(json.dumps(result, indent=2) if args.json else sim.format_text(result))
        return EXIT_OK
    if args.bench == "loop":
        from harmowam_ctl.bench import loop

        cfg = build(loop.BenchLoopConfig, {"duration_s": args.duration_s, "policy_mode": args.policy_mode, "baseline": args.baseline,
                                           "sim_mode": args.sim_mode, "policy": args.policy,
                                           "trust_checkpoint_code": args.trust_checkpoint_code})
        try:
            loop.policy_spec(cfg)
        except ValueError as e:
            print(f"harmowam bench loop: --policy: {e}", file=sys.stderr)
            return EXIT_USAGE
        result = loop.run(cfg)
        print(json.dumps(result, indent=2) if args.json else loop.format_text(result))
        return EXIT_OK
    if args.bench == "policy":
        from harmowam_ctl.bench import policy

        pcfg = build(policy.BenchPolicyConfig, {"checkpoint": args.checkpoint, "samples": args.samples})
        try:
            result = policy.run(pcfg)
        except ValueError as err:  # a checkpoint that cannot be loaded (CheckpointError names the problem)
            print(f"harmowam bench policy: {err}", file=sys.stderr)
            return EXIT_FAILURE
        print(json.dumps(result, indent=2) if args.json else policy.format_text(result))
        return EXIT_OK
    if args.bench != "bus":
        print("harmowam bench: choose what to benchmark: bus, sim or loop", file=sys.stderr)
        return EXIT_USAGE
    from harmowam_ctl.bench import bus

    cfg = build(
        bus.BenchBusConfig,
        {"arm": args.arm, "baud": args.baud, "cycles": args.cycles, "warmup": args.warmup, "lerobot": args.lerobot},
    )
    result = bus.run(cfg)
    print(json.dumps(result, indent=2) if args.json else bus.format_text(result))
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from harmowam_ctl.demo import run_demo

    return run_demo(args.arm, args.cycles)


COMMANDS = {"emulate": _cmd_emulate, "scan": _cmd_scan, "bench": _cmd_bench, "demo": _cmd_demo, "sim": sim_cmd.run, "run": run_cmd.run, "teleop": run_cmd.run, "record": record_cmd.run, "baseline": baseline_cmd.run, "train": train_cmd.run, "eval": eval_cmd.run, "diagnose": diagnose_cmd.run, "find-port": setup_cmd.run, "setup-motors": setup_cmd.run, "calibrate": calibrate_cmd.run, "check": check_cmd.run}


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever downloaded at run time
    argv = list(sys.argv[1:] if argv is None else argv)
    found = lerobot_flags.hints(argv)  # before argparse: its "required" errors would hide the hint
    if found:
        print(lerobot_flags.message(argv, found), file=sys.stderr)
        return EXIT_USAGE
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "emulate":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        logs.configure(args.log_level, args.log_json)
        return COMMANDS[args.command](args)
    except ConfigError as err:
        print(f"harmowam {args.command}: invalid option\n{err}", file=sys.stderr)
        return EXIT_USAGE
    except HardwareError as err:
        print(f"harmowam {args.command}: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"harmowam {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
