"""The status line: redrawn in place on a terminal (rate-limited, immediate on a change of who drives or of
the state), one line per change elsewhere (never a flood)."""

from __future__ import annotations

import io
import re

import pytest

from harmowam_ctl.status import CLEAR_EOL, StatusLine
from harmowam_ctl.types import Source

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def drawn(out: str) -> list[str]:
    """The lines a terminal showed, one per redraw, without colours."""
    return [ANSI.sub("", part).rstrip("\n") for part in out.split("\r")[1:]]


def test_text_says_who_drives_why_state_rate_and_faults() -> None:
    text = StatusLine.text("active", Source.POLICY, "chunk 0.03 s old", 99.94, 2)
    assert text == "[POLICY] (chunk 0.03 s old) | state active |  99.9 Hz | faults 2"  # fixed width: no jumping
    assert "--.- Hz" in StatusLine.text("connected", "hold", "", None, 0)
    assert "--.- Hz" in StatusLine.text("connected", "hold", "", float("nan"), 0)


def test_non_tty_prints_one_line_per_change_only() -> None:
    out = io.StringIO()
    s = StatusLine(out)
    assert not s.tty
    for i in range(1000):  # 10 s of 100 Hz updates, only the rate moves
        s.update(i * 0.01, "active", Source.POLICY, "ok", 99.0 + (i % 7) * 0.1, 0)
    assert out.getvalue().count("\n") == 1
    s.update(10.0, "active", Source.HUMAN, "leader moved", 99.0, 0)  # a hand-over: at once
    s.update(10.01, "active", Source.HUMAN, "leader moved", 99.0, 1)  # a fault: at once
    s.update(10.02, "safe-stopped", Source.HOLD, "fault", 0.0, 1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[1].startswith("[HUMAN] (leader moved)") and lines[2].endswith("faults 1")
    assert "state safe-stopped" in lines[3] and "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    s.close()
    assert out.getvalue().count("\n") == 4


def test_non_tty_reason_flapping_is_rate_limited() -> None:
    out = io.StringIO()
    s = StatusLine(out, quiet_interval_s=1.0)
    for i in range(500):  # the reason alternates every tick for 5 s
        s.update(i * 0.01, "active", "hold", "stale frame" if i % 2 else "policy stalled", 100.0, 0)
    n = out.getvalue().count("\n")
    assert 4 <= n <= 6  # about one a second, not 500


def test_tty_redraws_in_place_at_most_every_interval() -> None:
    out = FakeTTY()
    s = StatusLine(out, interval_s=0.2, width=200, colour=False)
    assert s.tty
    for i in range(100):  # 1 s at 100 Hz, nothing but the rate changes
        s.update(i * 0.01, "active", Source.POLICY, "ok", 100.0, 0)
    lines = drawn(out.getvalue())
    assert 5 <= len(lines) <= 6  # t = 0, 0.2, 0.4, 0.6, 0.8 (+ rounding)
    assert all(line.endswith(CLEAR_EOL) for line in out.getvalue().split("\r")[1:])
    assert "\n" not in out.getvalue()
    s.update(1.001, "active", Source.HUMAN, "leader moved", 100.0, 0)  # a change is drawn at once
    assert drawn(out.getvalue())[-1].startswith("[HUMAN] (leader moved)")
    s.update(1.002, "safe-stopped", Source.HUMAN, "leader moved", 100.0, 0)
    assert "state safe-stopped" in drawn(out.getvalue())[-1]
    s.close()
    s.close()
    assert out.getvalue().endswith("\n") and out.getvalue().count("\n") == 1
    before = out.getvalue()
    s.update(2.0, "active", Source.POLICY, "ok", 100.0, 0)  # after close: nothing
    assert out.getvalue() == before


def test_tty_line_never_wraps_and_is_coloured() -> None:
    out = FakeTTY()
    s = StatusLine(out, width=40, colour=True)
    s.update(0.0, "active", Source.POLICY, "a very long reason " * 10, 100.0, 3)
    raw = out.getvalue()
    assert "\x1b[1;32m[POLICY]" in raw
    assert len(ANSI.sub("", raw).strip("\r")) <= 39


def test_clear_blanks_the_line_and_the_next_update_redraws() -> None:
    out = FakeTTY()
    s = StatusLine(out, interval_s=10.0, colour=False)
    s.update(0.0, "active", Source.POLICY, "ok", 100.0, 0)
    s.clear()
    assert out.getvalue().endswith("\r" + CLEAR_EOL)
    s.update(0.01, "active", Source.POLICY, "ok", 100.0, 0)  # well within interval_s, yet redrawn
    assert len(drawn(out.getvalue())) == 3
    s.close()
    assert out.getvalue().endswith("\n")


def test_streams_without_isatty_and_bad_intervals() -> None:
    class Sink:
        def __init__(self) -> None:
            self.parts: list[str] = []

        def write(self, s: str) -> int:
            self.parts.append(s)
            return len(s)

        def flush(self) -> None:
            pass

    sink = Sink()
    s = StatusLine(sink, interval_s=0.5)  # type: ignore[arg-type]
    s.update(0.0, "connected", Source.HOLD, "torque off", None, 0)
    assert not s.tty and sink.parts == ["[HOLD] (torque off) | state connected | --.- Hz | faults 0\n"]
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="interval_s must be > 0"):
            StatusLine(io.StringIO(), interval_s=bad)
