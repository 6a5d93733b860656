"""The bus's log: structlog events that can never break servo I/O."""

from __future__ import annotations

import contextlib
from typing import Any

import structlog

_log = structlog.get_logger("hardware.bus")


def log(level: str, event: str, **fields: Any) -> None:
    """Emit ``event`` at ``level``. A failing log sink (a closed stream) is ignored, as stdlib logging does."""
    with contextlib.suppress(Exception):  # the bus thread must keep serving whatever the log configuration
        getattr(_log, level)(event, **fields)
