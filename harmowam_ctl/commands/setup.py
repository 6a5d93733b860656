"""`harmowam find-port` (which serial port is the arm's) and `harmowam setup-motors` (each motor's ID
and baud, one motor at a time). Both are interactive: the wizards live in ``calibration/wizards``.

Exit codes: 0 done, 1 not finished (quit, a failed bus check, or a port/servo error), 2 a bad option,
130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hardware.arms import ARMS, arm


def add_parser(sub: Any) -> None:
    sub.add_parser(
        "find-port",
        help="find the arm's serial port: unplug and replug its USB cable",
        description="Lists the serial ports, asks you to unplug the arm's USB cable, names the port that "
        "disappeared, checks it comes back when replugged and that you may open it.",
    )
    sm = sub.add_parser(
        "setup-motors",
        help="give each motor its ID and the bus baud, one motor at a time (resumable)",
        description="Connect one motor at a time, as asked: each gets its ID and baud (EEPROM). Checks the "
        "model, the supply voltage and the firmware of every motor, then the whole bus. Motors already set "
        "up are skipped, so you can run it again after any interruption.",
    )
    sm.add_argument("--arm", required=True, choices=sorted(ARMS), help="arm profile (which motor gets which ID)")
    sm.add_argument("--port", required=True, help="serial port of the arm's adapter (see `harmowam find-port`)")


def run(args: argparse.Namespace) -> int:
    from calibration.wizards.find_port import FindPortWizard
    from calibration.wizards.setup_motors import SetupMotorsWizard
    from calibration.wizards.ui_setup import NotInteractiveError, run_ui

    if args.command == "find-port":
        wizard: FindPortWizard | SetupMotorsWizard = FindPortWizard()
    else:
        wizard = SetupMotorsWizard(arm(args.arm), args.port)
    try:
        code = run_ui(wizard)
    except NotInteractiveError as err:
        print(f"harmowam {args.command}: {err}", file=sys.stderr)
        return 1
    if code == 130:
        print(f"harmowam {args.command}: interrupted", file=sys.stderr)
    return code
