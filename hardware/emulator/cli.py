"""``python -m hardware.emulator``: serve an emulated arm on a pty until SIGINT or SIGTERM.

The pty path is the first line on stdout (flushed); nothing else goes to stdout. Bad arguments exit 2
with a message naming the option and the allowed values. ``main`` is reused by ``harmowam emulate``.
"""

from __future__ import annotations

import argparse
import gc
import signal
import threading
from collections.abc import Sequence

import structlog

from hardware.arms import ARMS
from hardware.emulator.faults import ALLOWED_KEYS, FaultSpec, parse_faults
from hardware.emulator.server import Emulator

log = structlog.get_logger(__name__)

PHYSICS = ("kinematic", "mujoco")
MUJOCO_ARMS = ("so100", "so101")  # the MuJoCo model is the SO-101's; SO-100 shares its geometry


def _faults(text: str) -> FaultSpec:
    try:
        return parse_faults(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser(prog: str = "python -m hardware.emulator") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Emulate an arm's servo bus on a pseudo-terminal. Prints the port path first.",
    )
    parser.add_argument("--arm", required=True, choices=list(ARMS), help="arm profile to emulate")
    parser.add_argument("--baud", type=int, default=1_000_000, help="bus baud rate (default 1000000)")
    parser.add_argument(
        "--faults", type=_faults, default=FaultSpec(),
        help=f"fault SPEC: comma-separated key=value, keys: {', '.join(ALLOWED_KEYS)}",
    )
    parser.add_argument("--physics", choices=PHYSICS, default="kinematic", help="motion model")
    parser.add_argument("--seed", type=int, default=0, help="seed of initial positions and fault dice")
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m hardware.emulator") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)  # exits 2 on bad arguments
    arm = ARMS[args.arm]
    allowed = sorted(set.intersection(*(set(m.model.baud_codes.values()) for m in arm.motors)))
    if args.baud not in allowed:
        parser.error(f"argument --baud: {args.baud} is not a rate the {arm.name} servos support "
                     f"(allowed: {', '.join(map(str, allowed))})")
    motion = None
    if args.physics == "mujoco":
        if arm.name not in MUJOCO_ARMS:
            parser.error(f"argument --physics: mujoco exists for {', '.join(MUJOCO_ARMS)} only, not {arm.name} "
                         "(use --physics kinematic)")
        from hardware.sim.arm import MujocoArm

        motion = MujocoArm()
    stop = threading.Event()
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {}
    if in_main_thread:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    emu = Emulator(arm, baud=args.baud, faults=args.faults, motion=motion, seed=args.seed)
    try:
        port = emu.start()
        try:
            print(port, flush=True)
        except BrokenPipeError:
            return 0
        gc.freeze()  # what exists now is never scanned again: keeps collector pauses off the reply path
        log.info("emulating", arm=arm.name, port=port, baud=args.baud, physics=args.physics, faults=args.faults.to_spec() or "none")
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:  # handlers not installed (not the main thread)
        pass
    finally:
        emu.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("emulator stopped", arm=arm.name, stats=str(emu.stats))
    return 0
