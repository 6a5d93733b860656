"""The arbiter: who drives the arm this tick, and a bumpless hand-over whenever that changes.

Priority, highest first:

1. ``hold`` given (a reason from a watchdog or the user)       -> HOLD with that reason
2. ``human_active`` (the operator holds the leader arm):
   with a valid ``human_target``                              -> HUMAN
   without one (leader read failed this tick)                 -> HOLD ``human_no_target_reason``
   (deliberately not the policy: a one-tick leader glitch must not hand control to the policy, which the
   runtime answers by clearing the buffer and resetting the policy)
3. a valid ``policy_target``                                   -> POLICY
4. otherwise                                                   -> HOLD ``no_policy_reason``

A target that is not 6 finite numbers counts as not given.

HOLD freezes the output at the last output target when the hold began (not the present position, which
sags under gravity; the present position only when there was no output yet). Switching to HOLD is
immediate and continuous by construction. Switching to HUMAN or POLICY starts a ramp: the output is
``from + s(tau) * (goal(t) - from)`` with ``from`` = the last output, ``s`` the smoothstep and
``tau = (t - t_switch) / ramp_s``; on the switch tick it equals the last output, and the step per tick is
bounded by the goal's own motion plus ``1.5 * dt / ramp_s * |goal - from|``. A switch during a ramp starts
a new ramp from the current (blended) output. ``Decision.changed`` is True on the tick the source
changes (``previous`` = the source before, ``None`` on the first decision); a new hold reason while
already holding is not a change of source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog
from pydantic import BaseModel, ConfigDict, Field

from harmowam_ctl.buffer import smoothstep
from harmowam_ctl.types import N_JOINTS, Source, joint_vector

log = structlog.get_logger(__name__)

__all__ = ["Arbiter", "ArbiterConfig", "Decision"]


class ArbiterConfig(BaseModel):
    """Hand-over timing and the reason strings the arbiter reports."""

    model_config = ConfigDict(extra="forbid")

    ramp_s: float = Field(
        0.5, ge=0.0, le=10.0,
        description="seconds to blend from the last output onto a new driver's target (0: at once, jumps)",
    )
    no_policy_reason: str = Field("no policy output", description="HOLD reason when nobody gives a target")
    human_no_target_reason: str = Field(
        "human active but no leader reading", description="HOLD reason when the leader arm gave no position"
    )
    hold_reason: str = Field("hold requested", description="HOLD reason used when hold='' is given")
    human_reason: str = Field("human teleoperation", description="reason reported while the human drives")
    policy_reason: str = Field("policy", description="reason reported while the policy drives")


@dataclass(frozen=True, slots=True)
class Decision:
    """This tick's target (radians, 6; before the safety filter), who drives and why.
    ``changed``: the source differs from the previous tick's; ``previous``: that source (only when
    ``changed``). ``blend``: the ramp weight onto the source's target, 1.0 once the ramp is over."""

    target: np.ndarray
    source: Source
    reason: str
    changed: bool
    previous: Source | None = None
    blend: float = 1.0


def _vec(x: Any) -> np.ndarray | None:
    return joint_vector(x, finite=True)


class Arbiter:
    """Stateful source selection with bumpless ramps. One instance per arm."""

    def __init__(self, config: ArbiterConfig | None = None) -> None:
        self.config = config or ArbiterConfig()
        self._out: np.ndarray | None = None
        self._source: Source | None = None
        self._reason = ""
        self._hold_target: np.ndarray | None = None
        self._ramp_t0 = 0.0
        self._ramp_from: np.ndarray | None = None

    @property
    def source(self) -> Source | None:
        return self._source

    @property
    def reason(self) -> str:
        return self._reason

    @property
    def last_target(self) -> np.ndarray | None:
        return None if self._out is None else self._out.copy()

    def reset(self, present: Any, now: float) -> None:
        """Start over from the measured position (the first decision ramps from it)."""
        p = _vec(present)
        if p is None:
            raise ValueError(
                f"cannot start the arbiter: the present position must be {N_JOINTS} finite radians, got "
                f"{present!r}; read the arm again"
            )
        self._out = p
        self._source = None
        self._reason = ""
        self._hold_target = None
        self._ramp_from = None
        self._ramp_t0 = float(now)

    def update(
        self,
        now: float,
        present: Any,
        *,
        policy_target: np.ndarray | None,
        human_target: np.ndarray | None,
        human_active: bool,
        hold: str | None = None,
    ) -> Decision:
        c = self.config
        human = _vec(human_target) if human_active else None
        policy = _vec(policy_target)
        goal: np.ndarray | None = None
        if hold is not None:
            source, reason = Source.HOLD, hold or c.hold_reason
        elif human_active:
            if human is not None:
                source, reason, goal = Source.HUMAN, c.human_reason, human
            else:
                source, reason = Source.HOLD, c.human_no_target_reason
        elif policy is not None:
            source, reason, goal = Source.POLICY, c.policy_reason, policy
        else:
            source, reason = Source.HOLD, c.no_policy_reason

        base = self._out
        if base is None:
            base = _vec(present)
            if base is None:
                raise ValueError(
                    "the arbiter has no output yet and the present position is not 6 finite radians: "
                    "call reset(present, now) with a valid reading first"
                )
        changed = source is not self._source
        previous = self._source if changed else None
        if changed:
            log.info("control source changed", source=source.value, previous=getattr(previous, "value", None),
                     reason=reason)
            if source is Source.HOLD:
                self._hold_target = base.copy()
                self._ramp_from = None
            elif c.ramp_s > 0.0:
                self._ramp_from = base.copy()
                self._ramp_t0 = float(now)
            else:
                self._ramp_from = None

        blend = 1.0
        if source is Source.HOLD:
            assert self._hold_target is not None
            out = self._hold_target.copy()
        else:
            assert goal is not None
            out = goal
            if self._ramp_from is not None:
                blend = smoothstep((now - self._ramp_t0) / c.ramp_s)
                if blend >= 1.0:
                    self._ramp_from = None
                else:
                    out = self._ramp_from + blend * (goal - self._ramp_from)
        self._out = out
        self._source = source
        self._reason = reason
        return Decision(out.copy(), source, reason, changed, previous, blend)
