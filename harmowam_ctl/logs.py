"""structlog set-up for the `harmowam` command: human-readable lines on stderr, JSON with --log-json."""

from __future__ import annotations

import logging
import os
import sys

import structlog

LEVELS = ("debug", "info", "warning", "error")


class _Stderr:
    """Whatever ``sys.stderr`` is at the moment of writing (it may be swapped, e.g. by a test harness, after
    configure ran); a closed stream drops the line instead of raising in a worker thread."""

    def write(self, text: str) -> int:
        try:
            return sys.stderr.write(text)
        except (ValueError, OSError):
            return 0

    def flush(self) -> None:
        try:
            sys.stderr.flush()
        except (ValueError, OSError):
            pass


def configure(level: str | None = None, json: bool = False) -> None:
    """Configure structlog (and stdlib logging, which LeRobot uses) once per process.

    ``level`` defaults to $HARMOWAM_LOG or "warning", so commands print only what the user asked for.
    """
    name = (level or os.environ.get("HARMOWAM_LOG") or "warning").lower()
    if name not in LEVELS:
        raise ValueError(f"log level {name!r} is not one of: {', '.join(LEVELS)}")
    numeric = getattr(logging, name.upper())
    # child processes (the policy process) configure themselves from these: same level, same format
    os.environ["HARMOWAM_LOG"] = name
    os.environ["HARMOWAM_LOG_JSON"] = "1" if json else ""
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=False),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),
        cache_logger_on_first_use=False,
    )
