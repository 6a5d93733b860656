"""Runtime samples, each with its monotonic timestamp. Policy-facing types live in ``policies.interface``
(re-exported here) because ``policies`` never imports the runtime."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from hardware.bus.types import ServoFault
from policies.interface import N_JOINTS, ActionChunk, Observation, Policy, WorldPrediction

__all__ = [
    "N_JOINTS", "ActionChunk", "Command", "JointState", "Observation", "Policy", "Source", "WorldPrediction",
    "joint_vector",
]


def joint_vector(x: Any, *, finite: bool = False) -> np.ndarray | None:
    """A float copy of ``x`` with shape (6,), or None when it cannot be one (with ``finite``: also when
    an entry is NaN or inf)."""
    if x is None:
        return None
    try:
        a = np.array(x, dtype=float)
    except (TypeError, ValueError):
        return None
    if a.shape != (N_JOINTS,) or (finite and not np.all(np.isfinite(a))):
        return None
    return a


@dataclass(frozen=True, slots=True)
class JointState:
    """One read of the arm: positions (radians, 6), loads (-1..1, sign = direction; ``None`` if not
    read), the servos' error bits by joint index, all sampled at ``t`` (monotonic)."""

    t: float
    positions: np.ndarray
    loads: np.ndarray | None = None
    faults: dict[int, ServoFault] = field(default_factory=dict)


class Source(str, Enum):
    """Who drives the arm."""

    HUMAN = "human"
    POLICY = "policy"
    HOLD = "hold"


@dataclass(frozen=True, slots=True)
class Command:
    """What one servo tick sent: the filtered targets (radians, 6), who drove, and why."""

    t: float
    targets: np.ndarray
    source: Source
    reason: str = ""
