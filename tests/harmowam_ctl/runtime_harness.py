"""A harness for integration tests of the assembled runtime: the real ``Runtime`` and its real parts
(bus, calibration, buffer, arbiter, safety filter, watchdogs, telemetry, lag monitor) built the way
``harmowam_ctl.setup.session`` builds them, against an in-process emulated servo bus (``Emulator`` with
``KinematicMotion``: no MuJoCo), with a fake policy runner and fake cameras whose behaviour each test
controls while the run goes on.

    rig = Rig(tmp_path, duration_s=2.0)
    rig.runner.plan = some_function          # what the fake policy commands
    async with rig:                          # starts the emulator(s); stops them and closes the buses
        result = await rig.run(scenario)     # scenario(rig) runs beside the runtime
    rig.cols                                 # telemetry columns of every tick

Every tick is recorded twice: by ``Parts.on_tick`` (``rig.ticks``: wall time, present, targets, source,
reason) and in the telemetry (``rig.cols``, with the ``t_start`` the safety filter saw).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calibration import ArmCalibration
from hardware.arms import arm as arm_by_name
from hardware.bus import open_bus
from hardware.camera import Frame, FrameSlot
from hardware.emulator import Emulator, KinematicMotion
from harmowam_ctl.app import Parts, Runtime
from harmowam_ctl.arbiter import Arbiter
from harmowam_ctl.armio import ArmIO
from harmowam_ctl.buffer import ActionBuffer
from harmowam_ctl.clock import MonotonicClock
from harmowam_ctl.lifecycle import State
from harmowam_ctl.runconfig import RunConfig
from harmowam_ctl.safety import SafetyFilter
from harmowam_ctl.setup import safety_config
from harmowam_ctl.telemetry import SOURCES, Telemetry, TelemetryConfig
from harmowam_ctl.teleop import LeaderArm, Teleop
from harmowam_ctl.types import ActionChunk, Observation, Source, WorldPrediction
from harmowam_ctl.watchdogs import LoopLagMonitor, Watchdogs

# Follower joints start near the middle of their range (raw ticks), not all at 2048.
START_TICKS = [2048.0 + 60, 2048.0 - 80, 2048.0 + 120, 2048.0 - 40, 2048.0 + 30, 2048.0 + 200]


# --- fakes -----------------------------------------------------------------------------------------


Plan = Callable[[Observation, "FakeRunner"], np.ndarray]


def hold_plan(obs: Observation, runner: FakeRunner) -> np.ndarray:
    """Stay where the first observation found the arm, with a slow sway of the base joint."""
    base = runner.base if runner.base is not None else obs.state
    t = obs.t + np.arange(runner.horizon) * runner.dt
    out = np.tile(base, (runner.horizon, 1))
    out[:, 0] += 0.15 * np.sin(2 * np.pi * 0.5 * (t - runner.t_first))
    return out


class FakeRunner:
    """``PolicyRunner``'s async interface. ``mode``: ``"normal"`` (chunks from ``plan``), ``"hang"``
    (``act`` waits for ``release`` forever), ``"raise"`` (``act`` raises). Tests flip it mid-run."""

    def __init__(self, plan: Plan = hold_plan, horizon: int = 30, dt: float = 1 / 30) -> None:
        self.plan = plan
        self.mode = "normal"
        self.horizon, self.dt = horizon, dt
        self.base: np.ndarray | None = None
        self.t_first = 0.0
        self.started = self.closed = False
        self.predicts = self.acts = self.chunks = self.resets = self.raised = 0
        self.hanging = 0
        self.release: asyncio.Event | None = None

    async def start(self) -> None:
        self.started = True
        self.release = asyncio.Event()

    async def predict(self, obs: Observation) -> WorldPrediction:
        self.predicts += 1
        return WorldPrediction(t_obs=obs.t)

    async def act(self, prediction: WorldPrediction, obs: Observation) -> ActionChunk:
        self.acts += 1
        if self.base is None:
            self.base, self.t_first = np.array(obs.state, dtype=float), obs.t
        if self.mode == "hang":
            assert self.release is not None
            self.hanging += 1
            await self.release.wait()  # never set: a hung policy
        if self.mode == "raise":
            self.raised += 1
            raise RuntimeError("fake policy exploded")
        await asyncio.sleep(0.005)  # a policy takes some time
        self.chunks += 1
        return ActionChunk(t0=obs.t, dt=self.dt, actions=self.plan(obs, self), t_obs=obs.t)

    async def reset(self) -> None:
        self.resets += 1

    async def close(self) -> None:
        self.closed = True


class FakeCamera:
    """A ``hardware.camera.Camera``: a thread putting tiny frames stamped ``time.monotonic()`` into a
    ``FrameSlot`` at ``fps``; ``paused`` (an Event) silences it."""

    def __init__(self, name: str = "front", fps: float = 30.0) -> None:
        self.name = name
        self._fps = fps
        self.slot = FrameSlot()
        self.paused = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def resolution(self) -> tuple[int, int]:
        return (8, 6)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"fake-camera-{self.name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        period, due, index = 1.0 / self._fps, time.monotonic(), 0
        image = np.zeros((6, 8, 3), dtype=np.uint8)
        while not self._stop.is_set():
            if not self.paused.is_set():
                self.slot.put(Frame(image, time.monotonic(), index, self.name))
                index += 1
                self.sent += 1
            due += period
            self._stop.wait(max(0.0, due - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self.slot.close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def latest(self) -> Frame | None:
        return self.slot.latest()

    def wait(self, after_index: int = -1, timeout: float | None = None) -> Frame | None:
        return self.slot.wait(after_index, timeout)


class FakeKeyboard:
    """``KeyReader.intents()``: the intents queued by the test, once each."""

    def __init__(self) -> None:
        self.queue: list[Any] = []

    def intents(self) -> list[Any]:
        out, self.queue = self.queue, []
        return out


# --- the rig ---------------------------------------------------------------------------------------


@dataclass
class TickRow:
    t: float  # time.monotonic() when the tick was recorded
    present: np.ndarray
    targets: np.ndarray
    source: Source
    reason: str
    state: State


@dataclass
class Rig:
    tmp_path: Path
    duration_s: float | None = 2.0
    cameras: int = 1
    policy: bool = True
    faults: str | None = None
    start_ticks: list[float] = field(default_factory=lambda: list(START_TICKS))
    leader: bool = False
    keyboard: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)  # RunConfig fields (watchdogs, safe_stop...)

    def __post_init__(self) -> None:
        self.profile = arm_by_name("so101")
        self.cfg = RunConfig(sim=True, duration_s=self.duration_s, **self.overrides)
        self.emu = Emulator(self.profile, faults=self.faults, motion=KinematicMotion(self.start_ticks))
        self.cal = ArmCalibration.centered(self.profile)
        self.runner = FakeRunner() if self.policy else None
        self.cams = {f"cam{k}" if k else "front": FakeCamera(f"cam{k}" if k else "front") for k in range(self.cameras)}
        self.kb = FakeKeyboard() if self.keyboard else None
        self.ticks: list[TickRow] = []
        self.leader_emu: Emulator | None = None
        self.teleop: Teleop | None = None
        self.rt: Runtime | None = None
        self.summary: dict[str, Any] | None = None
        self.torque_calls: list[tuple[float, bool, np.ndarray]] = []  # (t, on, emulator positions in rad)
        self.writes: list[tuple[str, dict[int, int], dict[int, int]]] = []  # (register, values, present)
        self.after_tick: Callable[[], Any] | None = None  # called (once) at the end of the next tick

    async def __aenter__(self) -> Rig:
        port = self.emu.start()
        if self.leader:
            lp = arm_by_name("so101-leader")
            self.leader_emu = Emulator(lp, motion=KinematicMotion([2048.0] * len(lp.motors)))
            leader_port = self.leader_emu.start()
            self.teleop = Teleop(LeaderArm.on_port(lp, leader_port, ArmCalibration.centered(lp), self.cfg.teleop),
                                 self.cfg.teleop)
            await self.teleop.open()
        self._build(port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.bus.close()
            if self.teleop is not None:
                await self.teleop.close()
            for cam in self.cams.values():
                cam.stop()
            self.telemetry.close()
        finally:
            self.emu.stop()
            if self.leader_emu is not None:
                self.leader_emu.stop()

    def _build(self, port: str) -> None:
        """As ``harmowam_ctl.setup.session`` does, with the fakes and an on_tick recorder."""
        cfg, profile = self.cfg, self.profile
        clock = MonotonicClock()
        cal = self.cal.for_profile(profile)
        self.bus = bus = open_bus(profile, port)
        tcfg = cfg.telemetry.model_copy(update={"arm": cfg.arm, "out_dir": self.tmp_path / "run", "plot": False})
        self.telemetry = telemetry = Telemetry(tcfg, clock)
        watchdogs = Watchdogs(cfg.watchdogs, clock)
        lag = LoopLagMonitor(lambda t, lag_s: watchdogs.loop_lag(t, lag_s), period=0.01, clock=clock)
        arm = ArmIO(bus, profile, cal)
        self._spy(arm)
        self.safety_cfg = safety_config(cfg, profile, cal)
        parts = Parts(
            arm=arm, arm_name=cfg.arm, clock=clock,
            buffer=ActionBuffer(cfg.buffer), arbiter=Arbiter(cfg.arbiter),
            safety=SafetyFilter(self.safety_cfg), watchdogs=watchdogs, telemetry=telemetry,
            safe_stop=cfg.safe_stop, runner=self.runner, cameras=self.cams, teleop=self.teleop, keyboard=self.kb,
            status=None, task="test task", rate_hz=cfg.rate_hz,
            lookahead_s=cfg.lookahead_s, duration_s=cfg.duration_s, lag_monitor=lag, on_tick=self._on_tick,
            plausibility=cfg.plausibility,
        )
        self.rt = Runtime(parts)

    def _spy(self, arm: ArmIO) -> None:
        """Record every torque switch (with where the emulated joints were) and every bus write."""
        torque, bus_write = arm.torque, arm.bus.sync_write

        async def spy_torque(on: bool, ids: Any = None) -> None:
            self.torque_calls.append((time.monotonic(), on, self.emu_positions()))
            await torque(on, ids)

        async def spy_write(register: Any, values: Any) -> None:
            present = {s.id: s.get("Present_Position") for s in self.emu.servos if not s.dead}
            self.writes.append((register, dict(values), present))
            await bus_write(register, values)

        arm.torque = spy_torque  # type: ignore[method-assign]
        arm.bus.sync_write = spy_write  # type: ignore[method-assign]

    def _on_tick(self, state: Any, targets: np.ndarray, source: Source) -> None:
        assert self.rt is not None
        self.ticks.append(TickRow(time.monotonic(), np.array(state.positions), np.array(targets), source,
                                  self.rt.reason, self.rt.lifecycle.state))
        hook, self.after_tick = self.after_tick, None
        if hook is not None:
            hook()

    # --- running ------------------------------------------------------------------------------------

    async def run(self, scenario: Callable[[Rig], Awaitable[Any]] | None = None, timeout: float = 20.0) -> dict[str, Any]:
        """Run the runtime to its end (``timeout``: the test fails instead of hanging), with
        ``scenario(rig)`` beside it (cancelled when the run ends)."""
        assert self.rt is not None
        side = asyncio.create_task(scenario(self)) if scenario is not None else None
        try:
            self.summary = await asyncio.wait_for(self.rt.run(), timeout)
        finally:
            if side is not None:
                if side.done() and not side.cancelled() and side.exception() is not None:
                    raise side.exception()  # type: ignore[misc]
                side.cancel()
                try:
                    await side
                except asyncio.CancelledError:
                    pass
        self.t_end = time.monotonic()
        return self.summary

    async def until_active(self) -> float:
        """Wait for the ACTIVE state; returns the time it was reached."""
        assert self.rt is not None
        await asyncio.wait_for(self.rt.lifecycle.wait_for(State.ACTIVE), 10.0)
        return time.monotonic()

    async def until(self, cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> float:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            await asyncio.sleep(0.005)
        return time.monotonic()

    # --- reading the results ---------------------------------------------------------------------------

    def emu_positions(self) -> np.ndarray:
        """Where the emulated joints are now, in radians (read host-side, no wire)."""
        vals = {s.id: s.get("Present_Position") for s in self.emu.servos}
        return self.cal.positions_to_radians(vals)

    @property
    def cols(self) -> Any:
        return self.telemetry.columns()

    def sources(self) -> list[Source]:
        return [SOURCES[int(c)] for c in self.cols.source]

    def reasons(self) -> list[str]:
        c = self.cols
        return [c.reasons[int(k)] for k in c.reason]

    def fault_names(self) -> list[str]:
        return [f["name"] for f in self.telemetry.faults]

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.telemetry.events if e["kind"] == kind]
