"""The terminal status line: who drives the arm (policy, human, hold) and why, the lifecycle state, the
tick rate and the fault count.

On a terminal it is one line redrawn in place (carriage return + clear to end of line, cut to the
terminal width so it never wraps), at most every ``interval_s``, and at once when the source, the state
or the fault count changes. On anything else (a pipe, a log file) it writes a line only when the source,
the state or the fault count changes, and for a change of reason alone at most once per
``quiet_interval_s``: never a line per tick. ``update`` takes the time from the caller (monotonic seconds),
so tests drive it without sleeping. Log lines written to the same stream meanwhile should first call
``clear()`` on a terminal (the next ``update`` redraws).
"""

from __future__ import annotations

import os
import shutil
import sys
from enum import Enum
from typing import TextIO

CLEAR_EOL = "\x1b[K"
_COLOURS = {"policy": "\x1b[1;32m", "human": "\x1b[1;34m", "hold": "\x1b[1;33m"}
_RESET = "\x1b[0m"


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class StatusLine:
    """``update(now, state, source, reason, tick_hz, faults)`` as often as you like; ``close()`` at the end."""

    def __init__(self, stream: TextIO | None = None, interval_s: float = 0.2, *, quiet_interval_s: float = 1.0,
                 width: int | None = None, colour: bool | None = None) -> None:
        if interval_s <= 0 or quiet_interval_s < 0:
            raise ValueError(f"interval_s must be > 0 and quiet_interval_s >= 0 (got {interval_s}, {quiet_interval_s})")
        self.stream = stream if stream is not None else sys.stderr
        self.interval_s = interval_s
        self.quiet_interval_s = quiet_interval_s
        self.tty = _isatty(self.stream)
        self._width = width
        self.colour = (self.tty and "NO_COLOR" not in os.environ) if colour is None else colour
        self._key: tuple[str, str, int] | None = None  # source, state, faults of what is shown
        self._reason: str | None = None
        self._last_draw: float | None = None
        self._drawn = False  # a tty line is on screen, not yet ended
        self._closed = False

    @staticmethod
    def text(state: str, source: object, reason: str, tick_hz: float | None, faults: int) -> str:
        src = source.value if isinstance(source, Enum) else str(source)
        hz = "--.- Hz" if tick_hz is None or tick_hz != tick_hz else f"{tick_hz:5.1f} Hz"
        because = f" ({reason})" if reason else ""
        return f"[{src.upper()}]{because} | state {state} | {hz} | faults {faults}"

    def update(self, now: float, state: str, source: object, reason: str, tick_hz: float | None,
               faults: int) -> None:
        if self._closed:
            return
        src = source.value if isinstance(source, Enum) else str(source)
        key = (src, str(state), int(faults))
        changed = key != self._key
        since = None if self._last_draw is None else now - self._last_draw
        if self.tty:
            due = changed or since is None or since >= self.interval_s
        else:
            due = changed or (reason != self._reason and (since is None or since >= self.quiet_interval_s))
        if not due:
            return
        self._key, self._reason, self._last_draw = key, reason, now
        line = self.text(state, src, reason, tick_hz, faults)
        if self.tty:
            width = self._width or shutil.get_terminal_size((100, 24)).columns
            line = line[: max(10, width - 1)]
            if self.colour and src in _COLOURS:
                tag = f"[{src.upper()}]"
                line = line.replace(tag, f"{_COLOURS[src]}{tag}{_RESET}", 1)
            self.stream.write(f"\r{line}{CLEAR_EOL}")
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """Blank the line on a terminal (before printing something else); the next update redraws it."""
        if self.tty and self._drawn:
            self.stream.write(f"\r{CLEAR_EOL}")
            self.stream.flush()
            self._drawn = False
            self._key = None

    def close(self) -> None:
        """End the line (a newline after the last drawn line on a terminal). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
