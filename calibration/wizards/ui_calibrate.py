"""The terminal UI of the calibration wizard: keys in, a live joint table out.

``await run_ui(wizard, keys, screen)`` starts the wizard and loops until it ends: a key becomes an
event (Enter: confirm; r: restart the ranges; q, Esc, Ctrl-C, end of input: cancel), and every
``1/rate_hz`` seconds without a key the wizard samples the joints; the screen is redrawn after
each. The UI never touches the bus: the wizard does. Returns the final ``Step``.
"""

from __future__ import annotations

import math

from calibration.tui import Keys, Screen, bar, table
from calibration.wizards.calibrate import TERMINAL, CalibrateWizard, Event, JointRow, Step

CANCEL_KEYS = {"q", "Q", "esc", "eof", "ctrl-c"}
NUMBERED = (Step.MIDDLE, Step.RANGES, Step.REVIEW, Step.WRITING, Step.SAVING, Step.VERIFYING)
TITLES = {
    Step.CONNECTING: "connecting", Step.MIDDLE: "homing at mid-range", Step.RANGES: "recording ranges",
    Step.REVIEW: "review", Step.WRITING: "writing EEPROM", Step.SAVING: "saving the file",
    Step.VERIFYING: "verify", Step.DONE: "done", Step.CANCELLED: "cancelled", Step.FAILED: "failed",
}
HELP = {
    Step.MIDDLE: "Enter: the arm is at mid-range    q/Esc/Ctrl-C: cancel (nothing written)",
    Step.RANGES: "Enter: done    r: start the ranges again    q/Esc/Ctrl-C: cancel (nothing written)",
    Step.REVIEW: "Enter: write and save    q/Esc/Ctrl-C: cancel (nothing written)",
    Step.VERIFYING: "Enter: finish    (the calibration is saved)",
}


def _deg(ticks: float) -> str:
    return f"{ticks * 360 / 4096:6.1f}"


def _cells(w: CalibrateWizard, r: JointRow) -> list[object]:
    reading = "-" if r.raw is None else r.raw
    if w.state is Step.MIDDLE:
        return [r.joint, r.id, reading, "full turn" if r.full_turn else ""]
    if w.state is Step.VERIFYING:
        rad = "-" if r.rad is None else f"{r.rad:+.3f}"
        deg = "-" if r.rad is None else f"{math.degrees(r.rad):+7.1f}"
        return [r.joint, r.id, reading, r.lo, r.hi, rad, deg]
    span = "" if r.lo is None or r.hi is None else _deg(r.hi - r.lo)
    present = "-" if r.present is None else r.present
    lo = "-" if r.lo is None else r.lo
    hi = "-" if r.hi is None else r.hi
    mark = "full turn" if r.full_turn else ""
    if w.state is Step.RANGES and not r.full_turn and r.lo is not None and r.hi is not None:
        mark = "moved" if r.hi - r.lo >= w.min_span else "move it"
    return [r.joint, r.id, present, lo, hi, span, mark]


def _headers(state: Step) -> list[str]:
    if state is Step.MIDDLE:
        return ["joint", "id", "reading", ""]
    if state is Step.VERIFYING:
        return ["joint", "id", "reading", "min", "max", "rad", "deg"]
    return ["joint", "id", "reading", "min", "max", "range deg", ""]


def render_lines(w: CalibrateWizard, style=None) -> list[str]:
    """The whole screen for the wizard's current state."""
    s = style or (lambda text, *names: text)
    step = NUMBERED.index(w.state) + 1 if w.state in NUMBERED else None
    where = f"step {step}/{len(NUMBERED)}: {TITLES[w.state]}" if step else TITLES[w.state]
    lines = [s(f"harmowam calibrate  {w.profile.name} '{w.name}'  -  {where}", "bold")]
    if step:
        lines.append(bar(step / len(NUMBERED), 30))
    lines += ["", s(w.message, "cyan"), ""]
    if w.state not in (Step.CONNECTING, Step.FAILED, Step.CANCELLED, Step.DONE):
        rows = [_cells(w, r) for r in w.rows()]
        right = [False, True, True, True, True, True, False]
        lines += table(_headers(w.state), rows, right[: len(rows[0])])
    if w.state is Step.WRITING and w.progress[1]:
        lines += ["", "EEPROM " + bar(w.progress[0] / w.progress[1], 30)]
    for p in w.problems:
        lines.append(s(f"! {p}", "red", "bold"))
    for n in w.notes:
        lines.append(s(f"note: {n}", "yellow"))
    if w.alert:
        lines.append(s(f"! {w.alert} (retrying)", "red"))
    if w.state in HELP:
        lines += ["", s(HELP[w.state], "dim")]
    return lines


async def run_ui(wizard: CalibrateWizard, keys: Keys, screen: Screen, rate_hz: float = 20.0) -> Step:
    period = 1.0 / rate_hz
    shown: list[object] = []

    def draw(w: CalibrateWizard) -> None:
        key = [w.state, list(w.problems), w.progress if w.state is Step.WRITING else None]
        changed = key != shown
        shown[:] = key
        screen.render(render_lines(w, screen.style), permanent=changed)

    wizard.listener = draw
    try:
        await wizard.start()
        while wizard.state not in TERMINAL:
            key = await keys.get(timeout=period)
            if key is None:
                await wizard.handle(Event.SAMPLE)
            elif key == "enter":
                await wizard.handle(Event.CONFIRM)
            elif key in ("r", "R"):
                await wizard.handle(Event.RESTART)
            elif key in CANCEL_KEYS:
                await wizard.handle(Event.CANCEL)
    finally:
        if wizard.state not in TERMINAL:
            await wizard.cancel()  # the UI task was cancelled: torque off, nothing written
        wizard.listener = None
        screen.close()
    return wizard.state
