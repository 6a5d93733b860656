"""Test helper about processes, shared by tests in several folders (imported by path: tests are not
packages)."""

from __future__ import annotations

import time


def gone(pid: int, within_s: float) -> bool:
    """The process has exited within ``within_s`` (a zombie not yet reaped counts as gone; reaping is its
    parent's job)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except (FileNotFoundError, ProcessLookupError):
            return True
        time.sleep(0.05)
    return False
