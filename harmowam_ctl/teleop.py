"""The human side of the teleop override: read a leader arm, decide when the human takes over and
when control goes back.

Three layers, so that the servo tick never awaits I/O:

* ``LeaderArm`` (async) reads ``Present_Position`` of a leader arm at ``rate_hz`` and publishes a
  ``JointState`` (radians, stamped with the bus reading's ``t``) into a ``harmowam_ctl.slots.Slot``. It never
  writes anything to the bus: a leader stays limp. Bus errors are counted; only
  ``max_consecutive_errors`` failures in a row end the loop (one corrupt packet must not end teleop).
* ``TakeoverDetector`` is pure logic with explicit times. The reference pose is the leader's pose when
  the detector starts or when control was last handed back, so a leader left anywhere does not
  trigger. Moving any joint more than ``engage_rad`` from it, or a key toggle, hands control to the
  human; a key toggle, or (``release="still"``) holding the leader still, hands it back.
* ``Teleop`` combines the two: ``poll(now, key_toggle)`` reads the slot and the detector, no I/O. A
  reading older than ``max_age_s`` means "not active" and a fresh reference pose once data returns.

Radians -> follower: ``target = joint_scale * leader + joint_offset`` per joint (see ``TeleopConfig``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

import numpy as np
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from hardware.arms import JOINT_NAMES, ArmProfile, Role
from hardware.bus import ServoBus, open_bus
from hardware.errors import PortError, ServoError
from harmowam_ctl.clock import Clock, MonotonicClock
from harmowam_ctl.slots import Slot
from harmowam_ctl.types import N_JOINTS, JointState

log = structlog.get_logger(__name__)

T_contra = TypeVar("T_contra", contravariant=True)


class Sink(Protocol[T_contra]):
    """Where ``LeaderArm.run`` publishes (a ``harmowam_ctl.slots.Slot``)."""

    def put(self, value: T_contra) -> object: ...


class PositionConverter(Protocol):
    """Ticks -> radians for one arm (``calibration``'s ArmCalibration is one): id -> ticks in,
    6 radians out in ``JOINT_NAMES`` order."""

    def positions_to_radians(self, values: dict[int, int]) -> np.ndarray: ...


# --- config --------------------------------------------------------------------------------------


def _joint_map(value: Mapping[str, float], default: float, what: str) -> dict[str, float]:
    unknown = sorted(set(value) - set(JOINT_NAMES))
    if unknown:
        raise ValueError(f"unknown joint(s) {', '.join(unknown)} in {what}; allowed: {', '.join(JOINT_NAMES)}")
    out = {j: float(value.get(j, default)) for j in JOINT_NAMES}
    for j, v in out.items():
        if not math.isfinite(v):
            raise ValueError(f"{what} for {j} must be a finite number, not {v}")
    return out


class TeleopConfig(BaseModel):
    """How the leader arm is read and when it takes over.

    Leader -> follower mapping, per joint in radians: ``follower = joint_scale * leader + joint_offset``.
    Joints left out keep scale 1 and offset 0. A leader's gripper is a trigger handle whose travel
    differs from the follower's jaw (SO-101 follower jaw: -0.175..1.745 rad). To map a leader gripper
    range ``[l0, l1]`` onto the follower range ``[f0, f1]``: ``joint_scale={"gripper": (f1 - f0) / (l1 -
    l0)}``, ``joint_offset={"gripper": f0 - scale * l0}`` (read l0, l1 off the leader's calibration or by
    squeezing the handle fully both ways). A negative scale inverts a joint.
    """

    model_config = ConfigDict(extra="forbid")

    engage_rad: float = Field(
        0.12, gt=0.0, le=3.0,
        description="moving any leader joint this far (rad) from its reference pose hands control to the human")
    release: Literal["key", "still"] = Field(
        "key", description="what hands control back: 'key' (the take-over key only) or 'still' (the key, or the "
        "leader held still for still_s)")
    still_rad_s: float = Field(0.05, gt=0.0, description="a joint slower than this (rad/s) counts as still")
    still_s: float = Field(1.5, gt=0.0, description="seconds every joint must stay still to hand back")
    speed_window_s: float = Field(
        0.1, gt=0.0, validate_default=True,
        description="seconds over which joint speeds are measured (longer: less sensitive to encoder quantisation)")
    rate_hz: float = Field(100.0, gt=0.0, le=1000.0, description="leader read rate (Hz)")
    max_age_s: float = Field(
        0.1, gt=0.0, validate_default=True, description="a leader reading older than this (s) is stale: not active")
    max_consecutive_errors: int = Field(5, ge=1, description="failed leader reads in a row that end teleop")
    joint_scale: dict[str, float] = Field(
        default_factory=lambda: dict.fromkeys(JOINT_NAMES, 1.0), description="per-joint leader->follower scale")
    joint_offset: dict[str, float] = Field(
        default_factory=lambda: dict.fromkeys(JOINT_NAMES, 0.0), description="per-joint leader->follower offset (rad)")

    @field_validator("joint_scale")
    @classmethod
    def _scale(cls, v: dict[str, float]) -> dict[str, float]:
        out = _joint_map(v, 1.0, "joint_scale")
        for j, s in out.items():
            if s == 0.0:
                raise ValueError(f"joint_scale for {j} must be non-zero (1 = as the leader, -1 = inverted)")
        return out

    @field_validator("joint_offset")
    @classmethod
    def _offset(cls, v: dict[str, float]) -> dict[str, float]:
        return _joint_map(v, 0.0, "joint_offset")

    @field_validator("speed_window_s")
    @classmethod
    def _window(cls, v: float, info: ValidationInfo) -> float:
        still_s = info.data.get("still_s")
        if still_s is not None and v >= still_s:
            raise ValueError(f"speed_window_s ({v}) must be shorter than still_s ({still_s})")
        return v

    @field_validator("max_age_s")
    @classmethod
    def _age(cls, v: float, info: ValidationInfo) -> float:
        rate_hz = info.data.get("rate_hz")
        if rate_hz is not None and v <= 1.0 / rate_hz:
            raise ValueError(f"max_age_s ({v}) must exceed one read period (1/rate_hz = {1.0 / rate_hz:.4f} s), "
                             "or every reading is stale; raise max_age_s or rate_hz")
        return v

    def to_follower(self, leader: np.ndarray) -> np.ndarray:
        """Leader radians -> follower radians (``joint_scale * leader + joint_offset``)."""
        scale = np.array([self.joint_scale[j] for j in JOINT_NAMES])
        offset = np.array([self.joint_offset[j] for j in JOINT_NAMES])
        return scale * leader + offset


# --- the detector --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TeleopState:
    """Whether the human drives now; ``target`` (follower radians) only when active; ``reason`` is the
    last transition's cause; ``changed`` is true on the update that flipped ``active``; ``t`` the
    leader sample's time (``None`` without one)."""

    active: bool
    target: np.ndarray | None
    reason: str
    changed: bool
    t: float | None = None


class TakeoverDetector:
    """Take-over / hand-back decisions from leader poses at explicit, non-decreasing times."""

    def __init__(self, config: TeleopConfig | None = None) -> None:
        self.config = config or TeleopConfig()
        self.reset("detector started")

    def reset(self, reason: str = "reset") -> None:
        """Not active; the next pose seen becomes the reference."""
        self.active = False
        self.reference: np.ndarray | None = None
        self.reason = reason
        self._history: deque[tuple[float, np.ndarray]] = deque()
        self._still_since: float | None = None
        self._last_t: float | None = None

    @property
    def last_t(self) -> float | None:
        """The time of the last update (``None`` before the first, and after ``reset``)."""
        return self._last_t

    def update(self, now: float, leader: np.ndarray, key_toggle: bool = False) -> TeleopState:
        pose = np.array(leader, dtype=float)  # a copy: the history must not change under us
        if pose.shape != (N_JOINTS,) or not np.all(np.isfinite(pose)):
            raise ValueError(f"leader pose must be {N_JOINTS} finite radians, got {leader!r}")
        if self._last_t is not None and now < self._last_t:
            raise ValueError(f"time went back: {now} < {self._last_t} (pass monotonic times)")
        self._last_t = now
        was = self.active
        if self.reference is None:
            self.reference = pose.copy()
            self.reason = "reference pose set"
        if not self.active:
            if key_toggle:
                self._engage(now, pose, "key t")
            else:
                moved = np.abs(pose - self.reference)
                i = int(np.argmax(moved))
                if moved[i] > self.config.engage_rad:
                    self._engage(now, pose, f"leader moved: {JOINT_NAMES[i]} {moved[i]:.2f} rad")
        elif key_toggle:
            self._release(pose, "key t")
        elif self.config.release == "still":
            still = self._still_for(now, pose)
            if still is not None and still >= self.config.still_s:
                self._release(pose, f"leader still {still:.1f} s")
        target = self.config.to_follower(pose) if self.active else None
        return TeleopState(self.active, target, self.reason, self.active != was, now)

    def _engage(self, now: float, pose: np.ndarray, reason: str) -> None:
        self.active, self.reason = True, reason
        self._history = deque([(now, pose)])
        self._still_since = None
        log.info("teleop_engaged", reason=reason)

    def _release(self, pose: np.ndarray, reason: str) -> None:
        self.active, self.reason = False, reason
        self.reference = pose.copy()  # where the human let go: no instant re-trigger
        log.info("teleop_released", reason=reason)

    def _still_for(self, now: float, pose: np.ndarray) -> float | None:
        """Seconds every joint has been slower than still_rad_s (None: moving, or too little history).
        Speeds are measured against the newest sample at least ``speed_window_s`` old."""
        hist, window = self._history, self.config.speed_window_s
        if hist and hist[-1][0] == now:
            hist[-1] = (now, pose)
        else:
            hist.append((now, pose))
        while len(hist) >= 2 and hist[1][0] <= now - window:
            hist.popleft()
        t0, p0 = hist[0]
        span = now - t0
        if span < window:
            return None
        if float(np.max(np.abs(pose - p0))) / span >= self.config.still_rad_s:
            self._still_since = None
            return None
        if self._still_since is None:
            self._still_since = t0  # the whole window was slow
        return now - self._still_since


# --- the latest-value slot -----------------------------------------------------------------------


# --- the leader arm ------------------------------------------------------------------------------


class LeaderArm:
    """A leader arm on its bus: reads only (PING at open, SYNC_READ after); never torque, never goals.

    ``reads``, ``errors`` (total failed reads), ``consecutive_errors`` and ``overruns`` (read periods
    missed because a read took too long) are counters for telemetry.
    """

    def __init__(
        self,
        bus: ServoBus,
        converter: PositionConverter,
        config: TeleopConfig | None = None,
        *,
        ids: Sequence[int] | None = None,
        clock: Clock | None = None,
        verify: bool = True,
    ) -> None:
        profile = bus.profile
        if ids is None:
            if profile is None:
                raise ValueError("LeaderArm needs servo ids: pass ids= or a bus opened with the leader's arm profile")
            ids = profile.ids
        if len(ids) != N_JOINTS:
            raise ValueError(f"a leader arm has {N_JOINTS} servos (ids in JOINT_NAMES order), got {list(ids)}")
        if profile is not None and profile.role is not Role.LEADER:
            log.warning("leader_profile_not_leader", profile=profile.name,
                        hint="pass a leader profile: so101-leader, so100-leader or koch-leader")
        self.bus, self.converter, self.ids = bus, converter, tuple(ids)
        self.config = config or TeleopConfig()
        self.clock: Clock = clock or MonotonicClock()
        self.verify = verify
        self.reads = self.errors = self.consecutive_errors = self.overruns = 0
        self.torque_on_ids: tuple[int, ...] = ()

    @classmethod
    def on_port(cls, profile: ArmProfile, port: str, converter: PositionConverter,
                config: TeleopConfig | None = None, **bus_kw: object) -> LeaderArm:
        """A LeaderArm on a new bus for ``profile`` at ``port`` (call ``open()`` next)."""
        return cls(open_bus(profile, port, **bus_kw), converter, config)

    async def open(self) -> None:
        """Open the port, check every servo answers (ping) and warn if a servo holds torque (reads only)."""
        await self.bus.open()
        try:
            if self.verify and self.bus.profile is not None:
                await self.bus.verify()
            torque = await self.bus.sync_read("Torque_Enable", self.ids)
        except BaseException:
            await self.bus.close()
            raise
        self.torque_on_ids = tuple(i for i, v in torque.values.items() if v)
        if self.torque_on_ids:
            log.warning("leader_torque_on", ids=list(self.torque_on_ids), port=self.bus.port,
                        hint="the leader is stiff: power-cycle the leader arm (teleop never writes to it)")

    async def close(self) -> None:
        """Close the port; servo state is untouched."""
        await self.bus.close()

    async def __aenter__(self) -> LeaderArm:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def read(self) -> JointState:
        """One reading in radians, stamped with the bus reading's ``t``; raises on any failure."""
        reading = await self.bus.sync_read("Present_Position", self.ids)
        positions = np.asarray(self.converter.positions_to_radians(dict(reading.values)), dtype=float)
        if positions.shape != (N_JOINTS,) or not np.all(np.isfinite(positions)):
            raise ValueError(f"the leader's converter returned {positions!r} for ticks {reading.values}: "
                             f"expected {N_JOINTS} finite radians (check the leader's calibration)")
        index = {sid: k for k, sid in enumerate(self.ids)}
        faults = {index[sid]: f for sid, f in reading.faults.items() if sid in index}
        return JointState(t=reading.t, positions=positions, faults=faults)

    async def run(self, slot: Sink[JointState]) -> None:
        """Read at ``rate_hz`` into ``slot`` until cancelled. A failed read (bus error or bad values) is
        logged and skipped; ``max_consecutive_errors`` in a row re-raise the last one. A port that
        stopped working (``PortError``) raises at once: it does not come back by retrying."""
        period = 1.0 / self.config.rate_hz
        due = self.clock.now()
        while True:
            try:
                state = await self.read()
            except PortError:
                raise
            except (ServoError, ValueError, KeyError) as exc:
                self.errors += 1
                self.consecutive_errors += 1
                log.warning("leader_read_failed", error=str(exc).splitlines()[0],
                            consecutive=self.consecutive_errors, limit=self.config.max_consecutive_errors)
                if self.consecutive_errors >= self.config.max_consecutive_errors:
                    exc.add_note(f"{self.consecutive_errors} leader reads in a row failed on {self.bus.port}: "
                                 "teleop stopped")
                    raise
            else:
                self.reads += 1
                self.consecutive_errors = 0
                slot.put(state)
            due += period
            now = self.clock.now()
            if due < now:  # a slow read: skip the missed periods instead of bursting to catch up
                self.overruns += int((now - due) / period) + 1
                due = now
            await self.clock.sleep_until(due)


# --- leader + detector ---------------------------------------------------------------------------


class Teleop:
    """The runtime's handle: ``run()`` is the leader's read task, ``poll()`` the servo tick's question."""

    def __init__(self, leader: LeaderArm | None, config: TeleopConfig | None = None,
                 slot: Slot[JointState] | None = None) -> None:
        self.config = config or (leader.config if leader is not None else TeleopConfig())
        self.leader = leader
        self.slot: Slot[JointState] = slot if slot is not None else Slot()
        self.detector = TakeoverDetector(self.config)

    async def open(self) -> None:
        if self.leader is not None:
            await self.leader.open()

    async def close(self) -> None:
        if self.leader is not None:
            await self.leader.close()

    async def run(self) -> None:
        if self.leader is None:
            raise RuntimeError("Teleop.run needs a LeaderArm (this Teleop only polls a slot filled elsewhere)")
        await self.leader.run(self.slot)

    def poll(self, now: float, key_toggle: bool = False) -> TeleopState:
        """Who should drive, from the newest leader reading; never awaits. A missing or stale reading
        hands control back (the key toggle is ignored then) and the reference pose is taken afresh
        from the next fresh reading."""
        state = self.slot.latest()
        age = None if state is None else now - state.t
        if age is None or age > self.config.max_age_s:
            was = self.detector.active
            why = "no reading yet" if age is None else f"{age * 1e3:.0f} ms old"
            self.detector.reset(f"leader reading stale ({why})")
            if was:
                log.info("teleop_released", reason=self.detector.reason)
            return TeleopState(False, None, self.detector.reason, was, None if state is None else state.t)
        last = self.detector.last_t
        return self.detector.update(state.t if last is None else max(state.t, last), state.positions, key_toggle)
