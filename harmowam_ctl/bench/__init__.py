"""Benchmarks behind `harmowam bench`: each returns a dict that the command prints as text or JSON."""

from __future__ import annotations

import os
import platform


def machine() -> str:
    """'AMD EPYC, 2 cores, x86_64, Python 3.12.1': what a number in docs/BENCHMARKS.md was measured on."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model or platform.processor() or 'unknown CPU'}, {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
