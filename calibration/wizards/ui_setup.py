"""Terminal UI of `harmowam setup-motors` and `harmowam find-port` (on ``calibration.tui``).

The wizards are state machines (``setup_motors.py``, ``find_port.py``); this module only shows their
screens, turns keys into answers and shows scan progress on a live line. Keys: Enter continues (or
retries), ``r`` retries, ``y``/``n`` answer a question, ``q`` or Esc quits. Ctrl-C at any point cancels:
EEPROM writes already started finish first, then the wizard says what state the motors are in.

Exit codes: 0 done, 1 not finished (quit, or the bus check failed), 130 Ctrl-C.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from calibration import tui
from calibration.wizards.setup_screens import Answer, Screen, State

KEYMAP = {
    Answer.CONTINUE: ("enter",),
    Answer.RETRY: ("r", "enter"),
    Answer.YES: ("y",),
    Answer.NO: ("n",),
    Answer.CANCEL: ("q", "esc", "eof"),
}
HINTS = {
    Answer.CONTINUE: "[Enter] continue",
    Answer.RETRY: "[r/Enter] retry",
    Answer.YES: "[y] yes",
    Answer.NO: "[n] no",
    Answer.CANCEL: "[q] quit",
}
TABLE_HEADERS = ("joint", "id", "model", "firmware", "volts", "status")


class NotInteractiveError(RuntimeError):
    """stdin cannot be read key by key (e.g. /dev/null or a regular file)."""


def answer_for(key: str | None, allowed: tuple[Answer, ...]) -> Answer | None:
    """The answer ``key`` gives on a screen that accepts ``allowed`` (None: not one of them)."""
    for answer in allowed:  # in the screen's order: Enter is CONTINUE where offered, else RETRY
        if key in KEYMAP[answer]:
            return answer
    return None


def screen_lines(screen: Screen, out: tui.Screen) -> list[str]:
    st = out.style
    colour = {State.DONE: "green", State.FAILED: "red", State.PROBLEM: "red", State.CONFIRM: "yellow"}.get(screen.state)
    lines = ["", st(screen.title, "bold", *((colour,) if colour else ()))]
    lines += [f"  {line}" for line in screen.lines]
    if screen.table:
        rows = [(r.joint, r.id, r.model, r.firmware, "-" if r.voltage_v is None else f"{r.voltage_v:.1f}", r.status)
                for r in screen.table]
        lines += ["", *(f"  {line}" for line in tui.table(TABLE_HEADERS, rows, right=[False, True, False, False, True, False]))]
    if screen.answers:
        lines.append(st("  " + "   ".join(HINTS[a] for a in screen.answers), "cyan"))
    return lines


class WizardUI:
    """Runs one wizard in the terminal: ``await WizardUI(wizard).run()`` -> exit code."""

    def __init__(self, wizard: Any, *, keys: tui.Keys | None = None, out: tui.Screen | None = None) -> None:
        self.wizard = wizard
        self.keys = keys or tui.Keys()
        self.out = out or tui.Screen()
        if hasattr(wizard, "on_progress"):
            wizard.on_progress = self.progress

    def progress(self, what: str, fraction: float) -> None:
        self.out.render([f"  {what:<32} {tui.bar(fraction)}"])

    def show(self, screen: Screen) -> None:
        self.out.say("\n".join(screen_lines(screen, self.out)))

    async def _call(self, name: str, *args: Any) -> Screen:
        fn = getattr(self.wizard, name)
        if inspect.iscoroutinefunction(fn):
            return await fn(*args)
        return await asyncio.to_thread(fn, *args)  # a blocking wizard (find-port waits for USB)

    async def _ask(self, allowed: tuple[Answer, ...]) -> Answer:
        while True:
            answer = answer_for(await self.keys.get(), allowed)
            if answer is not None:
                return answer

    async def run(self) -> int:
        try:
            screen = await self._call("start")  # opens the port: its errors come before the terminal is touched
            try:
                self.keys.open()
            except OSError as err:
                raise NotInteractiveError(
                    f"this command is interactive: run it in a terminal (stdin cannot be read key by key: {err})"
                ) from None
            try:
                while not screen.final:
                    self.show(screen)
                    screen = await self._call("step", await self._ask(screen.answers))
            finally:
                self.keys.close()
        except asyncio.CancelledError:  # Ctrl-C
            screen = await self._cancel()
            self.show(screen)
            self.out.close()
            return 130
        finally:
            close = getattr(self.wizard, "close", None)
            if close is not None:
                await close()
        self.show(screen)
        self.out.close()
        return 0 if screen.state is State.DONE else 1

    async def _cancel(self) -> Screen:
        if hasattr(self.wizard, "cancel"):
            return await self._call("cancel")
        return await self._call("step", Answer.CANCEL)


def run_ui(wizard: Any) -> int:
    """The whole interactive session (its own event loop); Ctrl-C is handled inside."""
    return asyncio.run(WizardUI(wizard).run())
