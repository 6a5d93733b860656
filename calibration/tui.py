"""Small terminal toolkit for the interactive wizards (calibrate, check, setup-motors, find-port).

Generic on purpose: nothing here knows about servos. Three parts:

``Keys``
    Async single-key input on an fd (stdin by default) without blocking the event loop: the terminal
    goes into cbreak mode without echo (ISIG stays on, so Ctrl-C is still SIGINT), bytes arrive by an
    ``add_reader`` callback and are decoded into key names: ``"enter"``, ``"esc"``, ``"backspace"``,
    ``"up"``/``"down"``/``"left"``/``"right"``, ``"eof"`` (input closed) or the character itself
    (``"q"``, ``"r"``...). ``await keys.get(timeout)`` returns the next key or ``None`` after
    ``timeout`` seconds. Not a terminal (a pipe): the same, without touching terminal settings (a
    newline is ``"enter"``). Settings are restored by ``close()``/leaving the ``with`` block.
    ``open()`` raises ``OSError`` when the fd cannot be watched (a regular file, ``/dev/null``).

``Screen``
    A live block of lines redrawn in place with ANSI escapes (cursor up, clear line; no curses):
    ``render(lines)`` replaces the block, ``say(text)`` prints a permanent line above it,
    ``close()`` leaves the last block on screen. When the stream is not a terminal nothing is
    redrawn: ``render`` prints only blocks marked ``permanent=True``.

Formatting
    ``table(headers, rows)`` -> aligned lines, ``bar(fraction)`` -> a progress bar,
    ``Style`` -> bold/colour codes that vanish when the stream is not a terminal.
"""

from __future__ import annotations

import asyncio
import os
import sys
import termios
from collections import deque
from collections.abc import Sequence
from typing import TextIO

ESC = "\x1b"
CSI = ESC + "["
_ARROWS = {"A": "up", "B": "down", "C": "right", "D": "left"}


def decode_keys(data: bytes) -> list[str]:
    """Key names in one chunk of terminal input (see the module doc)."""
    keys: list[str] = []
    text = data.decode("utf-8", errors="replace")
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == ESC:
            if i + 1 < n and text[i + 1] in "[O":
                j = i + 2
                while j < n and not "\x40" <= text[j] <= "\x7e":
                    j += 1
                final = text[j] if j < n else ""
                keys.append(_ARROWS.get(final, "unknown"))
                i = j + 1
                continue
            keys.append("esc")
        elif c in "\r\n":
            keys.append("enter")
            if c == "\r" and i + 1 < n and text[i + 1] == "\n":
                i += 1
        elif c in "\x7f\x08":
            keys.append("backspace")
        elif c == "\x04":
            keys.append("eof")
        elif c.isprintable():
            keys.append(c)
        i += 1
    return keys


class Keys:
    """Async key reader (see the module doc). Use inside a running event loop."""

    def __init__(self, fd: int | None = None, maxlen: int = 64) -> None:
        self.fd = sys.stdin.fileno() if fd is None else fd
        self.is_tty = os.isatty(self.fd)
        self._queue: deque[str] = deque(maxlen=maxlen)
        self._event: asyncio.Event | None = None
        self._saved: list | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._eof = False

    def open(self) -> Keys:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        if self.is_tty:
            self._saved = termios.tcgetattr(self.fd)
            mode = termios.tcgetattr(self.fd)
            mode[3] &= ~(termios.ICANON | termios.ECHO)  # lflags: no line editing, no echo; ISIG kept
            mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0
            termios.tcsetattr(self.fd, termios.TCSADRAIN, mode)
        try:
            self._loop.add_reader(self.fd, self._on_readable)
        except OSError:  # a regular file or /dev/null cannot be watched: callers say "run it in a terminal"
            self._loop = None
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._loop is not None:
            try:
                self._loop.remove_reader(self.fd)
            except (ValueError, OSError):
                pass
            self._loop = None
        if self._saved is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            except termios.error:
                pass
            self._saved = None

    def __enter__(self) -> Keys:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def push(self, key: str) -> None:
        """Queue a key as if typed (signal handlers and tests use it)."""
        self._queue.append(key)
        if self._event is not None:
            self._event.set()

    def _on_readable(self) -> None:
        try:
            data = os.read(self.fd, 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # EOF: stop watching, report it once
            if self._loop is not None:
                self._loop.remove_reader(self.fd)
            if not self._eof:
                self._eof = True
                self.push("eof")
            return
        for key in decode_keys(data):
            self.push(key)

    async def get(self, timeout: float | None = None) -> str | None:
        """The next key, or None when ``timeout`` seconds pass first."""
        assert self._event is not None, "use Keys inside `with` (or call open()) in a running loop"
        if not self._queue:
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), timeout)
            except TimeoutError:
                return None
        return self._queue.popleft() if self._queue else None


class Style:
    """ANSI styles, or plain text when ``enabled`` is false."""

    CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36", "inverse": "7"}

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, *names: str) -> str:
        if not self.enabled or not names:
            return text
        return f"{CSI}{';'.join(self.CODES[n] for n in names)}m{text}{CSI}0m"


class Screen:
    """A block of lines redrawn in place (see the module doc)."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        if live is None:
            try:
                live = self.stream.isatty()
            except (AttributeError, ValueError):
                live = False
        self.live = live
        self.style = Style(live)
        self._drawn = 0  # lines of the live block currently on screen
        self._cursor_hidden = False

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            pass

    def _erase(self) -> str:
        if not self.live or not self._drawn:
            return ""
        out = f"\r{CSI}{self._drawn}A" if self._drawn else "\r"
        self._drawn = 0
        return out + f"{CSI}J"  # clear from the cursor to the end of the screen

    def render(self, lines: Sequence[str], *, permanent: bool = False) -> None:
        """Replace the live block with ``lines``. Not live: print them only when ``permanent``."""
        if not self.live:
            if permanent:
                self._write("".join(f"{line}\n" for line in lines))
            return
        out = self._erase()
        if not self._cursor_hidden:
            out += f"{CSI}?25l"
            self._cursor_hidden = True
        out += "".join(f"{line}{CSI}K\n" for line in lines)
        self._drawn = len(lines)
        self._write(out)

    def say(self, text: str) -> None:
        """A permanent message; the live block (if any) is erased and must be rendered again."""
        self._write(self._erase() + text + "\n")

    def close(self) -> None:
        """Leave the last block where it is and show the cursor again."""
        if self._cursor_hidden:
            self._write(f"{CSI}?25h")
            self._cursor_hidden = False
        self._drawn = 0


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[bool] | None = None) -> list[str]:
    """Aligned text lines: a header, a rule, then the rows. ``right[i]``: right-align column i
    (default: numbers right, text left, decided by the first row)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    if right is None:
        first = rows[0] if rows else ()
        right = [isinstance(v, (int, float)) and not isinstance(v, bool) for v in first] or [False] * len(headers)
        right = list(right) + [False] * (len(headers) - len(right))

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if right[i] else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    return [line(list(headers)), "  ".join("-" * w for w in widths), *(line(r) for r in cells)]


def bar(fraction: float, width: int = 20) -> str:
    """``[########------------]  40%`` for fraction 0.4 (clamped to 0..1)."""
    f = min(1.0, max(0.0, fraction))
    full = round(f * width)
    return f"[{'#' * full}{'-' * (width - full)}] {round(f * 100):3d}%"
