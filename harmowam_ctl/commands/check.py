"""``harmowam check --arm so101 --port /dev/ttyACM0 --calibration my_arm [--leader] [--json]``: is the arm
ready? Every motor answers with its model, firmware agrees, voltage and temperature are within the
servos' own limits, and the servos hold the calibration file's homing offsets, limits and drive modes.

Exit codes: 0 all is well (warnings are printed), 1 a problem (each names the joint, the field, what
the file says and what the servo holds; a missing or broken calibration file names the file and what to
do), 2 bad option.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from harmowam_ctl.commands.calibrate import WIZARD_LATENCY_S, ArmOptions, add_arm_options, options

EXIT_OK, EXIT_FAILURE = 0, 1


def add_parser(sub: Any) -> None:
    p = sub.add_parser("check", help="check the servos (health, ids, firmware) hold the calibration file")
    add_arm_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from calibration import CalibrationError, load_calibration

    opts = options(args, ArmOptions)
    profile = opts.profile()
    try:
        cal = load_calibration(profile, opts.calibration)
    except CalibrationError as e:
        _report_error(args.json, f"{e}")
        return EXIT_FAILURE
    report = asyncio.run(_inspect(opts, profile, cal))
    report["calibration"] = str(cal.source)
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    report["ok"] = not errors
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    if errors:
        first = errors[0]
        print(f"harmowam check: {len(errors)} problem(s); first: {first['joint']}: {first['field']} "
              f"should be {first['expected']}, the servo has {first['found']}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _report_error(as_json: bool, message: str) -> None:
    if as_json:
        print(json.dumps({"ok": False, "error": message}, indent=2))
    print(f"harmowam check: {message}", file=sys.stderr)


async def _inspect(opts: ArmOptions, profile, cal) -> dict[str, Any]:
    from calibration.verify import servo_health, survey, verify_calibration
    from hardware.bus import open_bus

    async with open_bus(profile, opts.port, opts.baud, latency_s=WIZARD_LATENCY_S) as bus:
        servos = await survey(bus, profile)
        if all(s.model_number is None for s in servos.values()):
            await bus.verify(profile)  # raises the bus's own error: no servo answered (baud? power?)
        rows, health = await servo_health(bus, profile, servos)
        findings = await verify_calibration(bus, profile, cal, servos)
    seen = set()
    merged = []
    for f in [*findings, *health]:
        key = (f.joint, f.field)
        if key not in seen:
            seen.add(key)
            merged.append(f.as_dict())
    return {"arm": profile.name, "port": opts.port, "name": opts.calibration, "servos": rows, "findings": merged}


def format_report(report: dict[str, Any]) -> str:
    from calibration.tui import table

    rows = [[r["id"], r["joint"], r["model"], r["firmware"],
             "-" if r["voltage_v"] is None else f"{r['voltage_v']:.1f}",
             "-" if r["temperature_c"] is None else r["temperature_c"], r["faults"]] for r in report["servos"]]
    lines = [f"{report['arm']} on {report['port']}, calibration '{report['name']}' ({report['calibration']})", ""]
    lines += table(["id", "joint", "model", "fw", "volts", "temp C", "faults"], rows,
                   [True, False, False, False, True, True, False])
    lines.append("")
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    warnings = [f for f in report["findings"] if f["severity"] != "error"]
    for label, group in (("PROBLEM", errors), ("warning", warnings)):
        for f in group:
            hint = f" ({f['hint']})" if f["hint"] else ""
            lines.append(f"{label}: {f['joint']}: {f['field']} should be {f['expected']}, "
                         f"the servo has {f['found']}{hint}")
    if not errors:
        lines.append("OK: every servo answers and holds this calibration (homing offsets, limits"
                     + (", drive modes" if report["arm"].startswith("koch") else "") + ").")
    return "\n".join(lines)
