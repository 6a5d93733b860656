"""Runtime samples, each with its monotonic timestamp. Policy-facing types live in ``policies.interface``
(re-exported here) because ``policies`` never imports the runtime."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from hardware.bus.types import ServoFault
from policies.interface import N_JOINTS, ActionChunk, Observation, Policy, WorldPrediction

__all__ = [
    "N_JOINTS", "ActionChunk", "Command", "JointState", "Observation", "Policy", "Source", "WorldPrediction",
]


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
