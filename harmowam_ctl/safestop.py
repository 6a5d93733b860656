"""The safe stop: hold with torque, then (configurable) move slowly to a rest pose, then release torque.

Field note 12: LeRobot drops the arm on Ctrl-C. Here a stop request first freezes the command where it
is (torque stays on), then, if a rest pose is known, drives all joints to it together on a straight line
in joint space at ``rest_speed_rad_s`` (the slowest joint sets the pace; the safety filter still applies),
waits until the arm is there, and only then releases torque. If the arm does not get there in
``rest_timeout_s`` (an obstacle, a stalled joint), torque stays ON and the user is told: holding is
safe, dropping is not.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# Folded on the table, where a powered-off SO-100/SO-101 rests (hardware.sim.arm.REST_TICKS in radians).
SO_REST_RAD = (0.0, -1.693, 1.588, 1.164, 0.0, 0.0)
REST_POSES: dict[str, tuple[float, ...]] = {"so100": SO_REST_RAD, "so101": SO_REST_RAD}


class SafeStopConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hold_s: float = Field(0.5, ge=0.0, le=10.0, description="hold where the arm is, torque on, first")
    move_to_rest: bool | None = Field(
        None, description="then move to rest_pose (default: yes when the arm has a known rest pose)"
    )
    rest_pose: list[float] | None = Field(
        None, min_length=6, max_length=6, description="6 joint angles (rad); default: the arm's folded pose"
    )
    rest_speed_rad_s: float = Field(0.4, gt=0.0, le=2.0, description="speed of the slowest-paced joint")
    rest_tolerance_rad: float = Field(0.1, gt=0.0, le=0.5, description="'at rest' when every arm joint is this close")
    rest_timeout_s: float = Field(15.0, gt=0.0, le=120.0)
    release_torque: bool | None = Field(
        None, description="release torque once at rest (default: yes when moving to rest; never if rest is not reached)"
    )

    def resolved(self, arm: str) -> tuple[bool, np.ndarray | None, bool]:
        """(move_to_rest, rest pose or None, release_torque) for ``arm``."""
        rest = self.rest_pose if self.rest_pose is not None else REST_POSES.get(arm)
        move = self.move_to_rest if self.move_to_rest is not None else rest is not None
        if move and rest is None:
            raise ValueError(
                f"--safe-stop.move-to-rest needs --safe-stop.rest-pose for arm {arm!r} (6 angles in radians)"
            )
        release = self.release_torque if self.release_torque is not None else move
        return move, (np.asarray(rest, dtype=float) if move else None), release


class SafeStop:
    """The plan of one safe stop, started at ``now`` from the last command ``start``."""

    def __init__(self, config: SafeStopConfig, arm: str, start: np.ndarray, now: float, cause: str) -> None:
        self.move, self.rest, self.release = config.resolved(arm)
        self.cfg = config
        self.cause = cause
        self.start = np.asarray(start, dtype=float).copy()
        self.t0 = now
        self.t_move = now + config.hold_s
        if self.rest is not None:
            span = float(np.max(np.abs(self.rest - self.start)))
            self.t_arrive = self.t_move + span / config.rest_speed_rad_s
        else:
            self.t_arrive = self.t_move
        self.reached = False
        self.skip_rest = False  # a second stop request: hold where it is and finish now

    @property
    def phase(self) -> str:
        return "hold" if self.rest is None or self.skip_rest else "rest"

    def target(self, now: float) -> np.ndarray:
        if self.rest is None or self.skip_rest or now <= self.t_move:
            return self.start.copy()
        if now >= self.t_arrive:
            return self.rest.copy()
        w = (now - self.t_move) / (self.t_arrive - self.t_move)
        return self.start + w * (self.rest - self.start)

    def done(self, now: float, present: np.ndarray) -> bool:
        """Whether the stop is complete; sets ``reached`` (at rest) on the way."""
        if self.skip_rest:
            return True
        if self.rest is None:
            return now >= self.t_move
        if now < self.t_arrive:
            return False
        err = np.abs(np.asarray(present, dtype=float)[:5] - self.rest[:5])
        if float(np.max(err)) <= self.cfg.rest_tolerance_rad:
            self.reached = True
            return True
        return now >= self.t_arrive + self.cfg.rest_timeout_s

    @property
    def release_torque(self) -> bool:
        return self.release and self.reached and not self.skip_rest
