"""Watchdogs: deadlines and limits on what the runtime sees, each with a defined reaction.

The runtime pushes what happens as it happens (a frame captured, a chunk made, a bus read, a command
sent, the loop's lateness) and calls ``check(now)`` from its servo tick. ``check`` returns a ``Verdict``:
the strongest reaction wanted (``None``, ``"hold"``: the arbiter holds the arm where it is, or
``"safe_stop"``: run the safe-stop sequence), all current trips, and the trips that are ``new`` since the
previous check (log them / send them to telemetry exactly once).

Two kinds of condition:

- Ages, judged at ``check(now)``: a camera's newest frame, the policy's newest chunk, the newest good
  bus read. A timer counts from the newest event, or from when the Watchdogs were made / ``reset()`` /
  the camera was listed / the policy started driving, whichever is later: make (or ``reset``) the
  Watchdogs when the servo tick starts, not earlier, or the bus deadline trips at once.
- Samples, judged when pushed: bus failures in a row, servo error bits, following error, loop lag. A
  trip raised by a sample stays until a ``check`` has reported it, even if the next sample clears it,
  so a one-tick overheat bit or a 100 ms loop stall is never missed.

A hold-level trip clears when its condition clears; one that lasts ``escalate_after_s`` escalates to
safe_stop and is listed in ``new`` a second time, with reaction ``"safe_stop"``. A safe_stop verdict is
latched: every later ``check`` returns it, keeping the trips that caused it in ``trips``, until
``reset()`` (a new run).

Following error: the runtime calls ``command(t, targets, present)`` once per servo tick (targets sent at
``t``, positions read in that tick). The watchdog keeps the commands of the last ``lag_s`` seconds itself
and measures, per joint, how far the measured position lies outside the range of targets commanded in
``[t - lag_s, t]``: a servo that is still on its way along the commanded path is no error, one held back
by an obstacle is. The gripper is not watched unless ``gripper_threshold_rad`` is set (it stalls on
grasped objects by design). A trip needs the error above threshold in every sample for longer than
``grace_s`` (sample times, not check times: a dead bus cannot fake a collision).

Servo faults: call ``servo_faults(t, faults)`` after every successful read with the joints' error bits
(an empty dict when none): each call replaces the previous picture. ALERT (Dynamixel) counts only when
no specific bit came with it. If the bus is gone entirely, that is the runtime's FAULT, not a verdict.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import structlog
from pydantic import BaseModel, ConfigDict, Field

from hardware.arms import JOINT_NAMES
from hardware.bus.types import ServoFault
from harmowam_ctl.clock import Clock, MonotonicClock

__all__ = [
    "BusWatchdogConfig", "CameraWatchdogConfig", "FollowingWatchdogConfig", "LoopLagMonitor",
    "LoopLagWatchdogConfig", "PolicyWatchdogConfig", "ServoFaultWatchdogConfig", "Trip", "Verdict",
    "WatchdogConfig", "Watchdogs",
]

log = structlog.get_logger(__name__)

Reaction = Literal["hold", "safe_stop"]
BitReaction = Literal["hold", "safe_stop", "ignore"]
Seconds = Annotated[float, Field(gt=0)]
GRIPPER = JOINT_NAMES.index("gripper")
_ESCALATE = "seconds a hold-level trip may last before it escalates to safe_stop (None: never)"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="false: this watchdog never trips")


class CameraWatchdogConfig(_Model):
    """The newest frame of a camera is older than ``deadline_s``."""

    deadline_s: Seconds = Field(0.5, description="longest age of a camera's newest frame, seconds")
    reaction: Reaction = "hold"
    escalate_after_s: Seconds | None = Field(5.0, description=_ESCALATE)


class PolicyWatchdogConfig(_Model):
    """No new action chunk for ``deadline_s`` while the policy drives, or the policy raised."""

    deadline_s: Seconds = Field(0.5, description="longest time without a new chunk while the policy drives")
    reaction: Reaction = "hold"
    escalate_after_s: Seconds | None = Field(10.0, description=_ESCALATE)


class BusWatchdogConfig(_Model):
    """Servo ticks failing in a row (after the bus's own retries), or no good read for ``deadline_s``."""

    max_failed_ticks: Annotated[int, Field(ge=1)] = Field(3, description="failed ticks in a row that trip")
    deadline_s: Seconds = Field(0.1, description="longest time without a successful read, seconds")
    reaction: Reaction = "safe_stop"
    escalate_after_s: Seconds | None = Field(None, description=_ESCALATE)


class ServoFaultWatchdogConfig(_Model):
    """The reaction to each servo error bit ("ignore": none)."""

    overload: BitReaction = "hold"
    overcurrent: BitReaction = "hold"
    overheat: BitReaction = "safe_stop"
    voltage: BitReaction = "safe_stop"
    electrical_shock: BitReaction = "safe_stop"
    sensor: BitReaction = "safe_stop"
    encoder: BitReaction = "safe_stop"
    alert: BitReaction = Field("hold", description="Dynamixel alert whose cause could not be read")
    escalate_after_s: Seconds | None = Field(1.0, description=_ESCALATE)


class FollowingWatchdogConfig(_Model):
    """A joint stays too far from where it was commanded (a collision)."""

    threshold_rad: Seconds = Field(0.3, description="largest following error of an arm joint, radians")
    gripper_threshold_rad: Seconds | None = Field(None, description="the gripper's (None: not watched)")
    grace_s: Annotated[float, Field(ge=0)] = Field(0.25, description="how long the error may last, seconds")
    lag_s: Annotated[float, Field(ge=0)] = Field(0.1, description="how old a command may be and still count")
    reaction: Reaction = "safe_stop"
    escalate_after_s: Seconds | None = Field(None, description=_ESCALATE)


class LoopLagWatchdogConfig(_Model):
    """The event loop wakes later than ``deadline_s`` (reported by ``LoopLagMonitor``)."""

    deadline_s: Seconds = Field(0.05, description="largest lateness of the event loop, seconds")
    reaction: Reaction = "hold"
    escalate_after_s: Seconds | None = Field(1.0, description=_ESCALATE)


class WatchdogConfig(BaseModel):
    """All watchdogs (the runtime's ``--watchdogs.*`` flags)."""

    model_config = ConfigDict(extra="forbid")

    camera: CameraWatchdogConfig = Field(default_factory=CameraWatchdogConfig)
    policy: PolicyWatchdogConfig = Field(default_factory=PolicyWatchdogConfig)
    bus: BusWatchdogConfig = Field(default_factory=BusWatchdogConfig)
    servo_faults: ServoFaultWatchdogConfig = Field(default_factory=ServoFaultWatchdogConfig)
    following: FollowingWatchdogConfig = Field(default_factory=FollowingWatchdogConfig)
    loop_lag: LoopLagWatchdogConfig = Field(default_factory=LoopLagWatchdogConfig)


@dataclass(frozen=True, slots=True)
class Trip:
    """One tripped watchdog. ``name``: camera, policy, policy_error, bus, servo_faults, following or
    loop_lag; ``subject``: the camera or joint ('' when there is one); ``since``: when it tripped."""

    name: str
    reaction: Reaction
    detail: str
    since: float
    subject: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    reaction: Reaction | None
    trips: list[Trip]
    new: list[Trip]

    @property
    def ok(self) -> bool:
        return self.reaction is None


@dataclass(slots=True)
class _Cond:
    trip: Trip
    escalate_after: float | None
    active: bool = True
    reported: bool = False
    escalated: bool = False


_BIT_ADVICE = {
    "overload": "the joint is blocked or carries too much: free it (a red LED may need a power cycle)",
    "overcurrent": "the motor draws too much current: free the joint",
    "overheat": "let the servo cool down before the next run; avoid long stalls",
    "voltage": "the supply voltage is out of range: check the power supply and its connector",
    "electrical_shock": "electrical fault in the servo: power off and check its wiring",
    "sensor": "its position sensor failed: power-cycle the arm, replace the servo if it repeats",
    "encoder": "its encoder failed: power-cycle the arm, replace the servo if it repeats",
    "alert": "it raised an alert whose cause could not be read: power-cycle the arm",
}


def _escalated(c: _Cond) -> str:
    return f" (still after {c.escalate_after:g} s: safe stop)"


def _joint(i: int) -> str:
    return JOINT_NAMES[i] if 0 <= i < len(JOINT_NAMES) else f"joint {i}"


class Watchdogs:
    def __init__(self, config: WatchdogConfig | None = None, clock: Clock | None = None) -> None:
        self.config = config if config is not None else WatchdogConfig()
        self._clock = clock if clock is not None else MonotonicClock()
        self._cameras: dict[str, float] = {}  # name -> newest t_capture, or the time it was listed
        self.reset()

    def reset(self) -> None:
        """Forget everything (trips, latch, samples) and restart the timers now: a new run."""
        now = self._clock.now()
        self._armed = now
        self._cameras = dict.fromkeys(self._cameras, now)
        self._last_chunk = -np.inf
        self._driving_since: float | None = None
        self._policy_error: tuple[float, str] | None = None
        self._last_ok = -np.inf
        self._fails = 0
        self._cmds: deque[tuple[float, np.ndarray]] = deque()
        self._over_since: dict[int, float] = {}
        self._conds: dict[str, _Cond] = {}
        self._latched: dict[str, Trip] = {}

    @property
    def latched(self) -> bool:
        return bool(self._latched)

    # ---- inputs -------------------------------------------------------------------------------------
    def set_cameras(self, names: Iterable[str]) -> None:
        """The cameras to watch (replaces the list); a newly listed one has ``deadline_s`` from now."""
        now = self._clock.now()
        names = list(names)
        for gone in set(self._cameras) - set(names):
            del self._cameras[gone]
            self._clear(f"camera/{gone}")
        for name in names:
            self._cameras.setdefault(name, now)

    def frame(self, camera: str, t_capture: float) -> None:
        """A frame of ``camera`` captured at ``t_capture`` (an unlisted camera becomes watched)."""
        self._cameras[camera] = max(self._cameras.get(camera, -np.inf), t_capture)

    def chunk(self, t_done: float) -> None:
        self._last_chunk = max(self._last_chunk, t_done)
        if self._policy_error is not None and t_done >= self._policy_error[0]:
            self._policy_error = None

    def policy_error(self, exc_text: str) -> None:
        """The policy raised; trips while the policy drives, until its next chunk."""
        self._policy_error = (self._clock.now(), exc_text)

    def set_policy_driving(self, driving: bool) -> None:
        if driving and self._driving_since is None:
            self._driving_since = self._clock.now()
        elif not driving:
            self._driving_since = None

    def bus_ok(self, t: float) -> None:
        self._last_ok = max(self._last_ok, t)
        self._fails = 0
        self._clear("bus/failed")

    def bus_failed(self, t: float, detail: str) -> None:
        cfg = self.config.bus
        self._fails += 1
        if self._fails >= cfg.max_failed_ticks:
            self._raise("bus/failed", "bus", "", cfg.reaction, cfg, t,
                        f"{self._fails} servo ticks in a row failed on the bus (last: {detail}): check the "
                        "servos' power supply and the bus cable, then run `harmowam scan`")

    def servo_faults(self, t: float, faults: Mapping[int, ServoFault]) -> None:
        cfg = self.config.servo_faults
        seen: set[str] = set()
        for idx, bits in faults.items():
            bits = ServoFault(bits)
            if bits & ~ServoFault.ALERT:
                bits &= ~ServoFault.ALERT
            for bit in ServoFault:
                if not bit or not bits & bit:
                    continue
                field = (bit.name or "").lower()
                reaction = getattr(cfg, field)
                if reaction == "ignore":
                    continue
                key = f"servo/{idx}/{field}"
                seen.add(key)
                joint = _joint(idx)
                self._raise(key, "servo_faults", joint, reaction, cfg, t,
                            f"{joint}: servo reports {field.upper()}: {_BIT_ADVICE[field]}")
        for key in [k for k in self._conds if k.startswith("servo/") and k not in seen]:
            self._clear(key)

    def command(self, t: float, targets: Any, present: Any) -> None:
        """The targets sent at ``t`` and the positions read in the same tick (radians, joint order)."""
        cfg = self.config.following
        targets = np.asarray(targets, dtype=float)
        present = np.asarray(present, dtype=float)
        if targets.shape != present.shape or targets.ndim != 1:
            raise ValueError(f"command: targets {targets.shape} and present {present.shape} must be equal 1-D")
        self._cmds.append((t, targets))
        while len(self._cmds) >= 2 and self._cmds[1][0] <= t - cfg.lag_s:
            self._cmds.popleft()
        if self._cmds[0][0] > t - cfg.lag_s:
            return  # no command old enough for the servo to have reached it yet
        window = np.stack([c for _, c in self._cmds])
        err = np.maximum(np.maximum(window.min(axis=0) - present, present - window.max(axis=0)), 0.0)
        for j in range(len(present)):
            limit = cfg.gripper_threshold_rad if j == GRIPPER else cfg.threshold_rad
            key = f"following/{j}"
            if limit is None or not err[j] > limit:
                self._over_since.pop(j, None)
                self._clear(key)
                continue
            start = self._over_since.setdefault(j, t)
            if t - start > cfg.grace_s or cfg.grace_s == 0:
                joint = _joint(j)
                self._raise(key, "following", joint, cfg.reaction, cfg, t,
                            f"{joint}: commanded {err[j]:.2f} rad from the measured position for "
                            f"{t - start:.2f} s: a collision? clear the arm's path")

    def loop_lag(self, t: float, lag_s: float) -> None:
        cfg = self.config.loop_lag
        if lag_s > cfg.deadline_s:
            self._raise("loop_lag", "loop_lag", "", cfg.reaction, cfg, t,
                        f"the event loop woke {lag_s * 1e3:.0f} ms late (deadline {cfg.deadline_s * 1e3:.0f} ms): "
                        "close other programs; if it repeats, something blocks the loop (report it)")
        else:
            self._clear("loop_lag")

    # ---- verdict ------------------------------------------------------------------------------------
    def check(self, now: float | None = None) -> Verdict:
        now = self._clock.now() if now is None else now
        self._ages(now)
        trips: list[Trip] = []
        new: list[Trip] = []
        seen = set(self._conds)
        for key, c in list(self._conds.items()):
            if (c.active and not c.escalated and c.trip.reaction == "hold" and c.escalate_after is not None
                    and now - c.trip.since >= c.escalate_after):
                c.escalated = True
                c.trip = Trip(c.trip.name, "safe_stop", c.trip.detail + _escalated(c), c.trip.since, c.trip.subject)
                c.reported = False
            trips.append(c.trip)
            if not c.reported:
                new.append(c.trip)
                c.reported = True
            if not c.active:
                del self._conds[key]
            if c.trip.reaction == "safe_stop":
                self._latched.setdefault(key, c.trip)
        trips += [t for key, t in self._latched.items() if key not in seen]
        trips.sort(key=lambda t: (t.reaction != "safe_stop", t.since))
        reaction: Reaction | None = "safe_stop" if self._latched else ("hold" if trips else None)
        return Verdict(reaction, trips, new)

    def _ages(self, now: float) -> None:
        cam = self.config.camera
        for name, newest in self._cameras.items():
            ref = max(newest, self._armed)
            if now - ref > cam.deadline_s:
                self._raise(f"camera/{name}", "camera", name, cam.reaction, cam, ref + cam.deadline_s,
                            f"camera '{name}' sent no frame for {now - ref:.2f} s: check its cable/USB bandwidth "
                            "(fewer cameras or a lower resolution per USB controller)")
            else:
                self._clear(f"camera/{name}")
        pol = self.config.policy
        driving = self._driving_since
        ref = -np.inf if driving is None else max(self._last_chunk, driving, self._armed)
        if driving is not None and now - ref > pol.deadline_s:
            self._raise("policy/stalled", "policy", "", pol.reaction, pol, ref + pol.deadline_s,
                        f"the policy made no new action chunk for {now - ref:.2f} s: holding; it may be too "
                        "slow for this machine (try `harmowam bench`) or stuck")
        else:
            self._clear("policy/stalled")
        if driving is not None and self._policy_error is not None:
            t_err, text = self._policy_error
            self._raise("policy/error", "policy_error", "", pol.reaction, pol, max(t_err, driving),
                        f"the policy failed: {text[:200]}: holding; see the log for the traceback, or take over "
                        "with the leader arm")
        else:
            self._clear("policy/error")
        bus = self.config.bus
        ref = max(self._last_ok, self._armed)
        if now - ref > bus.deadline_s:
            self._raise("bus/silent", "bus", "", bus.reaction, bus, ref + bus.deadline_s,
                        f"no successful bus read for {now - ref:.2f} s: check the servos' power supply and the "
                        "bus cable, then run `harmowam scan`")
        else:
            self._clear("bus/silent")

    def _raise(self, key: str, name: str, subject: str, reaction: Reaction, cfg: _Model, since: float,
               detail: str) -> None:
        if not cfg.enabled:
            return
        c = self._conds.get(key)
        if c is None:
            esc = getattr(cfg, "escalate_after_s", None)
            self._conds[key] = _Cond(Trip(name, reaction, detail, since, subject), esc)
            return
        c.active = True
        c.trip = Trip(name, c.trip.reaction, detail + (_escalated(c) if c.escalated else ""), c.trip.since, subject)

    def _clear(self, key: str) -> None:
        c = self._conds.get(key)
        if c is None:
            return
        if c.reported:
            del self._conds[key]
        else:
            c.active = False


class LoopLagMonitor:
    """Sleeps ``period`` on the event loop again and again and reports each wake-up's lateness
    (``callback(t_wake, lag_s)``, e.g. ``Watchdogs.loop_lag``); ``last_lag``/``max_lag`` for telemetry.
    Run it as a task: ``tg.create_task(monitor.run())``. A callback that raises is logged, not fatal."""

    def __init__(self, callback: Callable[[float, float], Any] | None = None, *, period: float = 0.01,
                 clock: Clock | None = None) -> None:
        if not period > 0:
            raise ValueError(f"LoopLagMonitor period must be > 0 seconds (got {period!r})")
        self.period = period
        self._clock = clock if clock is not None else MonotonicClock()
        self._callback = callback
        self.last_lag = 0.0
        self.max_lag = 0.0
        self.samples = 0

    async def run(self) -> None:
        due = self._clock.now() + self.period
        while True:
            await self._clock.sleep_until(due)
            t = self._clock.now()
            lag = max(0.0, t - due)
            self.last_lag, self.max_lag, self.samples = lag, max(self.max_lag, lag), self.samples + 1
            if self._callback is not None:
                try:
                    self._callback(t, lag)
                except Exception:
                    log.exception("loop_lag_callback_failed")
            due = t + self.period

    def start(self) -> asyncio.Task[None]:
        return asyncio.create_task(self.run(), name="loop-lag-monitor")
