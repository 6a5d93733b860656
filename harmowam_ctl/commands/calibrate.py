"""``harmowam calibrate --arm so101 --port /dev/ttyACM0 --calibration my_arm [--leader]``: the interactive
calibration wizard (``calibration.wizards``) in the terminal. ``--calibration`` is the calibration name
(LeRobot's ``--robot.id``/``--teleop.id``), as for ``run``/``teleop``/``record``; the old ``--name`` still
works and prints a one-line hint.

Homing at mid-range, ranges recorded by moving each joint, limits written to the servos' EEPROM,
the file saved where LeRobot keeps it (``$HF_LEROBOT_CALIBRATION/robots|teleoperators/<type>/<name>.json``,
the old one backed up), then a live joint table in radians to verify. Ctrl-C, q or Esc at any point:
torque off, file untouched, servos as they were.

Exit codes: 0 saved, 1 failed (the message says why and what to do), 2 bad option, 130 cancelled.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hardware.arms import ARMS, ArmProfile, Role
from harmowam_ctl.config import ConfigError, build

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130
BASE_ARMS = sorted({a.removesuffix("-leader") for a in ARMS})
WIZARD_LATENCY_S = 0.05  # a generous reply margin: the wizard is not real-time, a missed deadline is worse


class _OldNameFlag(argparse.Action):
    """``--name``: the old spelling of ``--calibration``; still works, with a one-line hint on stderr."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: --name is now --calibration; --name still works for now "
              f"(write --calibration {values}, as for harmowam run/teleop/record)", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_arm_options(p: argparse.ArgumentParser) -> None:
    """--arm, --port, --calibration (old name: --name), --leader, --baud (shared with `harmowam check`)."""
    p.add_argument("--arm", required=True, choices=sorted({*BASE_ARMS, *ARMS}),
                   help="arm type (add --leader for its leader arm)")
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyACM0 (harmowam find-port)")
    name = p.add_mutually_exclusive_group(required=True)
    name.add_argument("--calibration", help="calibration name (LeRobot's --robot.id / --teleop.id)")
    name.add_argument("--name", dest="calibration", action=_OldNameFlag, help=argparse.SUPPRESS)
    p.add_argument("--leader", action="store_true", help="the arm is a leader (teleoperator) arm")
    p.add_argument("--baud", type=int, help="bus baud rate (default: the arm's, 1000000)")


class ArmOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arm: str
    port: str = Field(min_length=1)
    calibration: str = Field(min_length=1)
    leader: bool = False
    baud: int | None = Field(None, gt=0)

    @field_validator("arm")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in ARMS and v not in BASE_ARMS:
            raise ValueError(f"unknown arm; choose one of: {', '.join(BASE_ARMS)} (with --leader for a leader)")
        return v

    def profile(self) -> ArmProfile:
        name = self.arm
        if self.leader and not name.endswith("-leader"):
            name += "-leader"
        if name not in ARMS:
            raise ConfigError(f"--arm {self.arm} --leader: there is no {name} profile (arms: {', '.join(ARMS)})")
        return ARMS[name]


class CalibrateOptions(ArmOptions):
    rate_hz: float = Field(20.0, gt=0, le=200)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("calibrate", help="interactive calibration wizard (homing, ranges, EEPROM limits, LeRobot file)")
    add_arm_options(p)
    p.add_argument("--rate", dest="rate_hz", type=float, help="joint samples per second (default 20)")


def options(args: argparse.Namespace, model: type[ArmOptions], **extra: Any) -> ArmOptions:
    values = {k: getattr(args, k, None) for k in ("arm", "port", "calibration", "leader", "baud")}
    return build(model, {**values, **extra})


def run(args: argparse.Namespace) -> int:
    opts = options(args, CalibrateOptions, rate_hz=args.rate_hz)
    assert isinstance(opts, CalibrateOptions)
    profile = opts.profile()
    return asyncio.run(_main(opts, profile))


async def _main(opts: CalibrateOptions, profile: ArmProfile) -> int:
    from calibration.files import InvalidCalibrationName
    from calibration.tui import Keys, Screen
    from calibration.wizards.calibrate import CalibrateWizard, Step
    from calibration.wizards.ui_calibrate import run_ui
    from hardware.bus import open_bus

    screen = Screen(sys.stdout)
    role = "leader" if profile.role is Role.LEADER else "follower"
    async with open_bus(profile, opts.port, opts.baud, latency_s=WIZARD_LATENCY_S) as bus:
        try:
            wizard = CalibrateWizard(bus, profile, opts.calibration)
        except InvalidCalibrationName as e:
            raise ConfigError(f"--calibration: {e}") from None
        keys = Keys()
        try:
            keys.open()
        except OSError as e:
            print(f"harmowam calibrate: this command is interactive: run it in a terminal (stdin cannot be read "
                  f"key by key: {e}). Nothing was changed on the arm.", file=sys.stderr)
            return EXIT_FAILURE
        screen.say(f"Calibrating the {profile.name} {role} on {opts.port} as '{opts.calibration}' "
                   f"({wizard.path}). Torque goes OFF now: support the arm.")
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        presses = 0

        def on_sigint() -> None:  # 1st Ctrl-C: a cancel key; a 2nd: cancel the task (torque still goes off)
            nonlocal presses
            presses += 1
            if presses == 1:
                keys.push("ctrl-c")
            elif task is not None:
                task.cancel()

        loop.add_signal_handler(signal.SIGINT, on_sigint)
        try:
            state = await run_ui(wizard, keys, screen, opts.rate_hz)
        except asyncio.CancelledError:
            state = wizard.state
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            keys.close()
    if state is Step.FAILED:
        print(f"harmowam calibrate: {wizard.message}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK if state is Step.DONE else EXIT_CANCELLED  # the last screen says what happened
