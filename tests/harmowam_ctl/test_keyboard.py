"""KeyReader through a pseudo-terminal: key mapping, cbreak without echo (ISIG kept), the bounded
queue, terminal settings restored (close, exception, atexit), and a quiet 'off' when not a tty."""

from __future__ import annotations

import asyncio
import os
import termios
import threading
import time
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from harmowam_ctl import keyboard
from harmowam_ctl.keyboard import MAX_INTENTS, Intent, KeyReader, parse_keys

T, H, S, Q = Intent.TAKEOVER_TOGGLE, Intent.HOLD_TOGGLE, Intent.SAFE_STOP, Intent.QUIT


@pytest.fixture(autouse=True)
def _plain_structlog() -> None:
    structlog.reset_defaults()


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, int]]:
    master, slave = os.openpty()
    yield master, slave
    for fd in (master, slave):
        try:
            os.close(fd)
        except OSError:
            pass


async def _collect(reader: KeyReader, n: int, timeout: float = 3.0) -> list[Intent]:
    """Drain until ``n`` intents have come (the bytes cross a pty: real I/O, no clock to advance)."""
    got: list[Intent] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
        got += reader.intents()
    return got


def test_parse_keys_maps_keys_and_skips_escape_sequences() -> None:
    assert parse_keys(b"tThHsSqQ ") == [T, T, H, H, S, S, Q, Q, T]
    assert parse_keys(b"\x1b") == [S]  # a lone Esc
    assert parse_keys(b"\x1b[A\x1b[1;5C\x1bOP") == []  # arrow, ctrl-arrow, F1
    assert parse_keys(b"\x1b[Bt\x1bq") == [T, S, Q]  # sequence, key, Esc then q (Alt-q)
    assert parse_keys(b"xyz\r\n\x04\x00\xff123") == []  # unknown bytes are ignored
    assert parse_keys(b"") == []


async def test_keys_through_a_pty_in_cbreak_without_echo(pty_pair: tuple[int, int]) -> None:
    master, slave = pty_pair
    before = termios.tcgetattr(slave)
    assert before[3] & termios.ICANON  # a fresh pty is canonical: the test would be vacuous otherwise
    threads = threading.active_count()
    reader = KeyReader(fd=slave)
    assert reader.open() is True and reader.enabled
    try:
        mode = termios.tcgetattr(slave)
        assert not mode[3] & termios.ICANON and not mode[3] & termios.ECHO
        assert mode[3] & termios.ISIG  # Ctrl-C still raises SIGINT
        assert mode[6][termios.VMIN] == 1 and mode[6][termios.VTIME] == 0
        assert threading.active_count() == threads  # read by the loop, not a thread
        os.write(master, b"t")  # no newline: cbreak delivers it at once
        assert await _collect(reader, 1) == [T]
        os.write(master, b"h s\x1b[Aq\x1b")
        assert await _collect(reader, 5) == [H, T, S, Q, S]
        assert reader.intents() == []  # drained
        await asyncio.sleep(0.02)
        os.set_blocking(master, False)
        try:
            echoed = os.read(master, 100)
        except BlockingIOError:
            echoed = b""
        assert echoed == b""  # nothing echoed back to the terminal
    finally:
        reader.close()
    assert termios.tcgetattr(slave) == before
    assert not reader.enabled


async def test_queue_is_bounded_and_drops_the_oldest(pty_pair: tuple[int, int]) -> None:
    master, slave = pty_pair
    with KeyReader(fd=slave) as reader:
        os.write(master, b"h" * 40 + b"q")
        deadline = time.monotonic() + 3.0
        while reader.dropped < 9 and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        got = reader.intents()
    assert len(got) == MAX_INTENTS and reader.dropped == 41 - MAX_INTENTS
    assert got[-1] == Q and got[:-1] == [H] * (MAX_INTENTS - 1)


async def test_settings_restored_on_exception_and_by_atexit(
    pty_pair: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    master, slave = pty_pair
    before = termios.tcgetattr(slave)
    with pytest.raises(RuntimeError, match="boom"):
        with KeyReader(fd=slave):
            assert not termios.tcgetattr(slave)[3] & termios.ICANON
            raise RuntimeError("boom")
    assert termios.tcgetattr(slave) == before

    registered: list = []
    unregistered: list = []
    monkeypatch.setattr(keyboard.atexit, "register", registered.append)
    monkeypatch.setattr(keyboard.atexit, "unregister", unregistered.append)
    reader = KeyReader(fd=slave)
    reader.open()
    assert len(registered) == 1
    registered[0]()  # what atexit would run if the process ended without close()
    assert termios.tcgetattr(slave) == before
    reader.close()  # still safe afterwards, and unregisters the hook
    assert unregistered == registered
    reader.close()
    assert termios.tcgetattr(slave) == before


async def test_not_a_tty_means_keyboard_off_without_error() -> None:
    r, w = os.pipe()
    try:
        with capture_logs() as logs:
            reader = KeyReader(fd=r)
            assert reader.open() is False
        assert not reader.enabled
        assert [e["event"] for e in logs] == ["keyboard_off"]
        os.write(w, b"tq")
        await asyncio.sleep(0.01)
        assert reader.intents() == []
        reader.close()  # harmless
    finally:
        os.close(r)
        os.close(w)


async def test_default_fd_is_stdin_and_off_when_stdin_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoFileno:
        def fileno(self) -> int:
            raise ValueError("redirected stdin has no fileno")

    monkeypatch.setattr(keyboard.sys, "stdin", NoFileno())
    reader = KeyReader()
    assert reader.fd is None
    with capture_logs() as logs:
        assert reader.open() is False
    assert logs[0]["event"] == "keyboard_off"


async def test_terminal_going_away_turns_the_keyboard_off(pty_pair: tuple[int, int]) -> None:
    master, slave = pty_pair
    reader = KeyReader(fd=slave)
    reader.open()
    os.write(master, b"s")
    assert await _collect(reader, 1) == [S]
    os.close(master)  # the terminal hangs up: reads fail with EIO
    deadline = time.monotonic() + 3.0
    while reader.enabled and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    assert not reader.enabled
    reader.close()


def test_bad_maxlen_is_rejected() -> None:
    with pytest.raises(ValueError, match="maxlen"):
        KeyReader(fd=0, maxlen=0)


def test_open_needs_a_running_loop_or_an_explicit_one(pty_pair: tuple[int, int]) -> None:
    _, slave = pty_pair
    before = termios.tcgetattr(slave)
    with pytest.raises(RuntimeError, match="no running event loop"):
        KeyReader(fd=slave).open()
    assert termios.tcgetattr(slave) == before  # nothing changed on the way
    loop = asyncio.new_event_loop()
    try:
        reader = KeyReader(fd=slave)
        assert reader.open(loop) is True
        reader.close()
    finally:
        loop.close()
    assert termios.tcgetattr(slave) == before
