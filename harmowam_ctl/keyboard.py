"""Single-key commands from the terminal while the runtime runs, without blocking the event loop.

``KeyReader`` puts a terminal fd (stdin unless told) into cbreak mode without echo: keys arrive one
at a time, unechoed. ISIG stays on, so Ctrl-C still raises SIGINT (the runtime handles it: safe stop,
then exit) and Ctrl-Z still suspends. Bytes are read by an ``add_reader`` callback on the running
loop (no thread, never a blocking read), mapped to ``Intent`` values and kept in a bounded deque (the
oldest dropped beyond ``maxlen``); ``intents()`` drains it once per servo tick.

The terminal settings are restored by ``close()``, by leaving the ``with`` block (also on an
exception) and by an ``atexit`` hook. When the fd is not a terminal (CI, a pipe) the keyboard is
simply off: one log line, no error, ``intents()`` stays empty.

Keys: t or space -> TAKEOVER_TOGGLE; h -> HOLD_TOGGLE; s or Esc -> SAFE_STOP; q -> QUIT (the runtime
does a safe stop, then exits). Upper case works too. For ``harmowam record``: n or the right arrow ->
NEXT_EPISODE, r or the left arrow -> RERECORD (the runtime itself ignores both). Other terminal escape
sequences (other arrows, modified arrows, function keys: Esc [ ..., Esc O x) are ignored; a lone Esc is
a safe stop.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import sys
import termios
from collections import deque
from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType

import structlog

log = structlog.get_logger(__name__)

ESC = 0x1B
MAX_INTENTS = 32
KEY_HELP = "t/space: take over or hand back | h: hold | s/Esc: safe stop | q: safe stop and quit | Ctrl-C: stop"


class Intent(str, Enum):
    """What a key asks of the runtime."""

    TAKEOVER_TOGGLE = "takeover_toggle"
    HOLD_TOGGLE = "hold_toggle"
    SAFE_STOP = "safe_stop"
    QUIT = "quit"
    NEXT_EPISODE = "next_episode"  # harmowam record: end the episode now and save it
    RERECORD = "rerecord"  # harmowam record: discard the episode and record it again


KEYMAP: Mapping[int, Intent] = MappingProxyType({
    ord("t"): Intent.TAKEOVER_TOGGLE, ord("T"): Intent.TAKEOVER_TOGGLE, ord(" "): Intent.TAKEOVER_TOGGLE,
    ord("h"): Intent.HOLD_TOGGLE, ord("H"): Intent.HOLD_TOGGLE,
    ord("s"): Intent.SAFE_STOP, ord("S"): Intent.SAFE_STOP, ESC: Intent.SAFE_STOP,
    ord("q"): Intent.QUIT, ord("Q"): Intent.QUIT,
    ord("n"): Intent.NEXT_EPISODE, ord("N"): Intent.NEXT_EPISODE,
    ord("r"): Intent.RERECORD, ord("R"): Intent.RERECORD,
})
# Plain arrow keys (Esc [ X or Esc O X, no modifier parameters) that mean something.
ARROWS: Mapping[int, Intent] = MappingProxyType({ord("C"): Intent.NEXT_EPISODE, ord("D"): Intent.RERECORD})


def parse_keys(data: bytes) -> list[Intent]:
    """The intents in one chunk of terminal input, in order; other bytes are ignored."""
    out: list[Intent] = []
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b == ESC and i + 1 < n and data[i + 1] in b"[O":
            # CSI (Esc [ params final) or SS3 (Esc O final): skip to the final byte 0x40..0x7E
            j = i + 2
            while j < n and not 0x40 <= data[j] <= 0x7E:
                j += 1
            if j == i + 2 and j < n and data[j] in ARROWS:  # right/left arrow without modifiers
                out.append(ARROWS[data[j]])
            i = j + 1
            continue
        intent = KEYMAP.get(b)
        if intent is not None:
            out.append(intent)
        i += 1
    return out


def _stdin_fd() -> int | None:
    try:
        return sys.stdin.fileno() if sys.stdin is not None else None
    except (AttributeError, ValueError, OSError):  # replaced or closed stdin (pytest capture, daemons)
        return None


class KeyReader:
    """Keys from a terminal as ``Intent`` values. Open inside a running event loop; see the module doc."""

    def __init__(self, fd: int | None = None, *, maxlen: int = MAX_INTENTS) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be >= 1, not {maxlen}")
        self.fd = _stdin_fd() if fd is None else fd
        self._intents: deque[Intent] = deque(maxlen=maxlen)
        self.dropped = 0  # intents pushed out by newer ones before anyone drained them
        self.enabled = False
        self._saved: list | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._atexit = False

    def open(self, loop: asyncio.AbstractEventLoop | None = None) -> bool:
        """Start reading keys (cbreak, no echo). False, after one log line, when the fd is no terminal."""
        if self.enabled:
            return True
        loop = loop or asyncio.get_running_loop()
        if self.fd is None or not os.isatty(self.fd):
            log.info("keyboard_off", reason="stdin is not a terminal", fd=self.fd)
            return False
        try:
            saved = termios.tcgetattr(self.fd)
            mode = termios.tcgetattr(self.fd)
            mode[3] &= ~(termios.ICANON | termios.ECHO)  # lflag; ISIG stays: Ctrl-C still signals
            mode[6][termios.VMIN] = 1
            mode[6][termios.VTIME] = 0
            termios.tcsetattr(self.fd, termios.TCSANOW, mode)
        except termios.error as exc:
            log.info("keyboard_off", reason=f"terminal settings cannot be changed: {exc}", fd=self.fd)
            return False
        self._saved = saved
        atexit.register(self._restore)
        self._atexit = True
        try:
            loop.add_reader(self.fd, self._on_readable)
        except BaseException:
            self.close()
            raise
        self._loop = loop
        self.enabled = True
        log.info("keyboard_on", keys=KEY_HELP)
        return True

    def close(self) -> None:
        """Stop reading and restore the terminal settings. Safe to call twice."""
        if self._loop is not None:
            if not self._loop.is_closed():
                self._loop.remove_reader(self.fd)
            self._loop = None
        self.enabled = False
        self._restore()
        if self._atexit:
            atexit.unregister(self._restore)
            self._atexit = False

    def _restore(self) -> None:
        saved, self._saved = self._saved, None
        if saved is None or self.fd is None:
            return
        try:
            termios.tcsetattr(self.fd, termios.TCSANOW, saved)
        except (termios.error, OSError):  # the terminal is gone: nothing left to restore
            pass

    def __enter__(self) -> KeyReader:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> KeyReader:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def _on_readable(self) -> None:
        try:
            data = os.read(self.fd, 256)  # the fd is readable: this returns at once
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.warning("keyboard_off", reason=f"reading the terminal failed: {exc}")
            self.close()
            return
        if not data:
            log.info("keyboard_off", reason="the terminal closed")
            self.close()
            return
        for intent in parse_keys(data):
            if len(self._intents) == self._intents.maxlen:
                self.dropped += 1
            self._intents.append(intent)

    def intents(self) -> list[Intent]:
        """The intents since the last call, oldest first."""
        out = list(self._intents)
        self._intents.clear()
        return out
