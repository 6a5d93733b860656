"""The runtime: one asyncio TaskGroup drives the arm from a policy, under watchdogs, with teleop override.

Tasks (all in one ``asyncio.TaskGroup``):

* ``servo``: the fixed-rate tick (default 100 Hz), read -> update -> write. Read the joints (one sync
  read); update: the action buffer sampled at now, the leader arm and the keys, the watchdogs' verdict
  -> the arbiter (human > policy > hold) -> the safety filter; write: radians -> ticks through the
  calibration, one sync write. It wakes on ``Metronome`` (sub-millisecond), never waits for the policy.
* ``observe``, ``predict``, ``act``: the policy pipeline (``harmowam_ctl.pipeline``), the policy itself
  in a thread or a process (``harmowam_ctl.inference``).
* ``teleop`` (a leader arm), ``lag`` (event-loop lag monitor), ``status`` (terminal line + telemetry).

Every chunk the policy makes is checked before it enters the action buffer (``harmowam_ctl.plausibility``:
targets far outside the calibrated range, or faster than any arm moves, e.g. a policy in degrees driven as
radians): an implausible chunk is refused whole, never clamped, and reported as a policy error (hold, then
the policy watchdog's escalation to a safe stop) with an ``implausible_chunk`` fault naming the joint.

Any of the helper tasks failing is a fault that triggers a safe stop; it never cancels the servo tick.
A safe stop (``harmowam_ctl.safestop``) is requested by a watchdog, a key, SIGINT/SIGTERM, the end of
``duration_s`` or a failed task; the servo tick carries it out (hold, move to rest, release torque) and
then the run ends. A second SIGINT during a safe stop skips the move to rest: the arm holds where it is
with torque ON and the program exits (servos keep holding after the program ends: nothing drops).
If the bus itself is gone (unplugged), the state is FAULT: nothing can be commanded any more, and the
summary says so.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog

from hardware.bus import PortDisconnectedError
from hardware.errors import HardwareError
from hardware.realtime import set_normal, set_realtime
from harmowam_ctl.armio import ArmIO
from harmowam_ctl.clock import Clock, MonotonicClock
from harmowam_ctl.lifecycle import Lifecycle, State
from harmowam_ctl.metronome import Metronome
from harmowam_ctl.pipeline import JointHistory, Pipeline, camera_frames
from harmowam_ctl.plausibility import ChunkCheck, ImplausibleChunk
from harmowam_ctl.safestop import SafeStop, SafeStopConfig
from harmowam_ctl.telemetry import TickRecord
from harmowam_ctl.types import ActionChunk, Source

log = structlog.get_logger(__name__)
# SCHED_FIFO priorities (Parts.realtime): the metronome wakes the loop, which runs the tick, whose bus
# I/O thread talks to the servos; the simulated servos (hardware.sim.world_child) get 60.
RT_LOOP, RT_BUS, RT_METRONOME = 40, 45, 50

# A safe stop needs the bus. One that keeps failing this long during a stop ends the run in FAULT (the
# servos that still answer hold their last goal with torque on) instead of retrying forever.
STOP_BUS_GIVE_UP_S = 1.0


@dataclass
class Parts:
    """Everything the runtime drives, built by ``harmowam_ctl.setup`` (tests pass fakes)."""

    arm: ArmIO
    arm_name: str
    clock: Clock
    buffer: Any  # harmowam_ctl.buffer.ActionBuffer
    arbiter: Any  # harmowam_ctl.arbiter.Arbiter
    safety: Any  # harmowam_ctl.safety.SafetyFilter
    watchdogs: Any  # harmowam_ctl.watchdogs.Watchdogs
    telemetry: Any  # harmowam_ctl.telemetry.Telemetry
    safe_stop: SafeStopConfig = field(default_factory=SafeStopConfig)
    runner: Any = None  # harmowam_ctl.inference.PolicyRunner, or None (teleop only)
    cameras: Mapping[str, Any] = field(default_factory=dict)
    teleop: Any = None  # harmowam_ctl.teleop.Teleop, or None
    keyboard: Any = None  # harmowam_ctl.keyboard.KeyReader, or None
    status: Any = None  # harmowam_ctl.status.StatusLine, or None
    task: str = ""
    rate_hz: float = 100.0
    lookahead_s: float = 0.0
    duration_s: float | None = None
    policy_hz: float = 30.0
    lag_monitor: Any = None  # harmowam_ctl.watchdogs.LoopLagMonitor factory result, or None
    on_tick: Any = None  # optional callable(state, targets, source) for recorders
    switch_interval_s: float = 0.0005
    sim: Any = None  # the SimRig of a --sim run (task success, the scripted policy's context)
    check_calibration: bool = True  # the servos must hold the calibration's offsets and drive modes
    policy_overlap: bool = True  # predict the next observation while act runs (harmowam_ctl.pipeline)
    realtime: bool = False  # SCHED_FIFO for the loop, metronome and bus threads when allowed (hardware.realtime)
    plausibility: Any = None  # harmowam_ctl.plausibility.PlausibilityConfig of the chunk check (None: defaults, on)


class Runtime:
    def __init__(self, parts: Parts) -> None:
        self.p = parts
        self.clock = parts.clock
        self.lifecycle = Lifecycle(parts.clock)
        self.lifecycle.listeners.append(self._on_transition)
        self.joints = JointHistory()
        self.metronome = Metronome(parts.clock)
        self.stopping: SafeStop | None = None
        self.stop_requests = 0  # how many times a stop was asked for (the first starts it)
        self.early_stop: str | None = None  # a stop asked for before the arm was active
        self.last_cmd: np.ndarray | None = None
        self.source = Source.HOLD
        self.reason = "starting"
        self.user_hold: str | None = None
        self._policy_hold = False  # the current hold is the policy's own watchdog (it still drives)
        self._bus_fail_since: float | None = None  # first of the current run of failed reads
        self.takeover_key = False
        self.policy_obs_seen = 0.0
        self.fault: str | None = None
        self.pipeline: Pipeline | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.chunk_check: ChunkCheck | None = None  # harmowam_ctl.plausibility, on every chunk before the buffer
        self._implausible = False  # the newest chunk was refused as implausible (one fault per run of them)
        if parts.runner is not None:
            self.chunk_check = ChunkCheck.for_arm(parts.plausibility, parts.arm, parts.safety)
            if not self.chunk_check.enabled:
                parts.telemetry.event("plausibility", enabled=False)
            self.pipeline = Pipeline(
                cameras=parts.cameras, joints=self.joints, runner=parts.runner, task=parts.task,
                on_frame=self._on_frame, on_chunk=self._on_chunk, on_stage=self._on_stage,
                on_error=self._on_policy_error, enabled=self._policy_wanted, policy_hz=parts.policy_hz,
                now=parts.clock.now, on_imagined=parts.telemetry.imagined, overlap=parts.policy_overlap,
            )

    # --- run -----------------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        """Connect, activate, drive until a safe stop completes; returns the telemetry summary."""
        p = self.p
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.request_stop, f"signal {signal.Signals(sig).name}")
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests)
                pass
        switch = sys.getswitchinterval()
        # Threads of this process (the bus's I/O thread, an in-thread policy, a simulation) hand the GIL
        # over every 5 ms by default: far too coarse for a 100 Hz tick. 0.5 ms keeps the loop's waits short.
        sys.setswitchinterval(p.switch_interval_s)
        loop_rt = False
        try:
            if not await self._connect():
                loop_rt = self._realtime()  # after connect: the bus's I/O thread exists now
                async with asyncio.TaskGroup() as tg:
                    servo = tg.create_task(self._servo_loop(), name="servo")
                    helpers = [tg.create_task(self._guard(n, c), name=n) for n, c in self._helper_tasks()]
                    await servo
                    for t in helpers:
                        t.cancel()
        except HardwareError as e:
            self._fatal(f"{type(e).__name__}: {e}")
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.remove_signal_handler(sig)
                except (NotImplementedError, RuntimeError, ValueError):
                    pass
            sys.setswitchinterval(switch)
            if loop_rt:
                set_normal()  # this thread goes on (tests, the caller's code) at normal priority
            self.metronome.close()
            if p.status is not None:
                p.status.close()
        return p.telemetry.summary()

    def _realtime(self) -> bool:
        """``Parts.realtime``: SCHED_FIFO for the threads the tick waits on (``hardware.realtime``), loop
        thread below the metronome and the bus I/O thread. Returns whether this (the loop's) thread got it."""
        p = self.p
        if not p.realtime or not isinstance(self.clock, MonotonicClock):
            return False
        refused = set_realtime(RT_LOOP)
        bus_tid = getattr(getattr(p.arm, "bus", None), "io_thread_id", None)
        if refused is None and bus_tid:
            refused = set_realtime(RT_BUS, bus_tid)
        if refused is None:
            self.metronome.rt_priority = RT_METRONOME
            p.telemetry.event("realtime", granted=True, loop=RT_LOOP, bus=RT_BUS, metronome=RT_METRONOME)
            log.info("servo tick threads run at real-time priority", loop=RT_LOOP, bus=RT_BUS, metronome=RT_METRONOME)
            return True
        set_normal()
        p.telemetry.event("realtime", granted=False, why=refused)
        log.warning("servo tick threads run at normal priority: expect a few ms of jitter on a busy machine", why=refused)
        return False

    def _helper_tasks(self) -> list[tuple[str, Any]]:
        p, out = self.p, []
        if self.pipeline is not None:
            out += [("observe", self.pipeline.observe()), ("predict", self.pipeline.predict()), ("act", self.pipeline.act())]
        else:
            out += [("frames", self._frames_only())] if p.cameras else []
        if p.teleop is not None:
            out.append(("teleop", p.teleop.run()))
        if p.lag_monitor is not None:
            out.append(("lag", p.lag_monitor.run()))
        out.append(("status", self._status_loop()))
        return out

    async def _guard(self, name: str, coro: Any) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a helper failing stops the arm safely; it never cancels the servo tick
            log.error("task failed", task=name, error=repr(e))
            self.p.telemetry.fault(f"task_{name}", f"the {name} task failed: {type(e).__name__}: {e}", "safe_stop")
            self.request_stop(f"{name} task failed: {type(e).__name__}: {e}")

    async def _connect(self) -> bool:
        """Connect and activate; True when a stop came first (then the arm stays as it was: torque off
        unless something else left it on, never activated)."""
        p = self.p
        await p.arm.bus.open()
        await p.arm.bus.verify(p.arm.profile)
        if p.check_calibration:
            for warning in await p.arm.check_calibration():
                log.warning("calibration differs", finding=warning)
                p.telemetry.event("calibration_warning", finding=warning)
        self.lifecycle.to(State.CONNECTED, "bus open, every servo answered")
        if p.runner is not None:
            await p.runner.start()
        for cam in p.cameras.values():
            await asyncio.to_thread(cam.start)
        if self.early_stop is not None:
            self.lifecycle.to(State.SAFE_STOPPED, f"{self.early_stop} before the arm was active: not activated")
            return True
        state = await p.arm.activate()
        now = self.clock.now()
        self.joints.add(state)
        p.safety.reset(state.positions, now)
        p.arbiter.reset(state.positions, now)
        self.last_cmd = state.positions.copy()
        self.lifecycle.to(State.ACTIVE, "goal set to the present position, torque on")
        p.watchdogs.reset()  # deadlines count from activation, not from construction
        p.watchdogs.set_cameras(list(p.cameras))
        p.watchdogs.bus_ok(state.t)
        self.t_active = now
        return False

    # --- the servo tick ------------------------------------------------------------------------------

    async def _servo_loop(self) -> None:
        p = self.p
        period = 1.0 / p.rate_hz
        t_next = self.clock.now() + period
        end = None if p.duration_s is None else self.clock.now() + p.duration_s
        while True:
            t_sched = t_next
            await self.metronome.sleep_until(t_sched)
            t_start = self.clock.now()
            if end is not None and t_start >= end and self.stopping is None:
                self.request_stop(f"duration {p.duration_s:g} s reached")
            try:
                finished = await self._tick(t_sched, t_start)
            except PortDisconnectedError as e:
                self._fatal(f"the arm's port is gone: {e}")
                return
            if finished:
                return
            t_next += period
            now = self.clock.now()
            if t_next <= now:  # overrun: skip the missed ticks instead of bursting
                t_next += period * (int((now - t_next) / period) + 1)

    async def _tick(self, t_sched: float, t_start: float) -> bool:
        p = self.p
        try:
            state = await p.arm.read()
        except PortDisconnectedError:
            raise
        except HardwareError as e:
            now = self.clock.now()
            if self._bus_fail_since is None:
                self._bus_fail_since = now
            p.watchdogs.bus_failed(now, str(e))
            if self.stopping is None:
                self._apply_verdict(now)
            if self.stopping is not None and now - max(self._bus_fail_since, self.stopping.t0) >= STOP_BUS_GIVE_UP_S:
                self._fatal(
                    f"the bus kept failing for {STOP_BUS_GIVE_UP_S:g} s during the safe stop ({self.stopping.cause}), "
                    f"so it cannot finish; the servos that still answer hold their last goal with torque ON. "
                    f"Support the arm and switch its power off, check the bus cable and power, then run "
                    f"`harmowam scan`. Last error: {str(e).splitlines()[0]}"
                )
                return True
            return False
        self._bus_fail_since = None
        now = t_start  # one time base per tick for the buffer, arbiter and filter (and the telemetry)
        self.joints.add(state)
        # when the success was seen, not when the servo sampled: a blocked event loop delivers a good
        # reading late, and that is the loop-lag watchdog's business, not a bus failure
        p.watchdogs.bus_ok(self.clock.now())
        p.watchdogs.servo_faults(state.t, state.faults)  # every read: an empty picture clears old bits
        self._keys()
        if self.stopping is not None:
            return await self._stop_tick(t_sched, t_start, state)
        hold = self._apply_verdict(self.clock.now())
        if self.stopping is not None:
            return await self._stop_tick(t_sched, t_start, state)
        human_target, human_active = None, False
        if p.teleop is not None:
            ts = p.teleop.poll(now, self.takeover_key)
            self.takeover_key = False
            human_active, human_target = ts.active, ts.target
            if ts.changed:
                p.telemetry.event("teleop", active=ts.active, reason=ts.reason)
                if not ts.active and p.runner is not None:
                    # hand-back: forget the plan made while the human drove (and any in flight); the
                    # policy re-plans from the present state, the arbiter holds until it has
                    p.buffer.clear(not_before=now)
        policy_target = p.buffer.sample(now + p.lookahead_s) if p.runner is not None else None
        decision = p.arbiter.update(
            now, state.positions, policy_target=policy_target, human_target=human_target,
            human_active=human_active, hold=hold,
        )
        if decision.changed:
            self._on_handover(decision)
        self.source, self.reason = decision.source, decision.reason
        # Held for the policy's own trip (stalled, failed), the policy still counts as driving: otherwise the
        # trip clears itself, the stale plan in the buffer resumes, and POLICY/HOLD alternate.
        p.watchdogs.set_policy_driving(p.runner is not None and not human_active and (
            decision.source is Source.POLICY
            or (decision.source is Source.HOLD and (hold is None or self._policy_hold))))
        result = p.safety.apply(decision.target, state.positions, state.loads, now)
        await p.arm.write(result.targets)
        t_end = self.clock.now()
        p.watchdogs.command(t_end, result.targets, state.positions)
        e2e = None
        newest = getattr(p.buffer, "newest_t_obs", None)
        if decision.source is Source.POLICY and newest is not None and newest > self.policy_obs_seen:
            self.policy_obs_seen = newest
            e2e = now - newest
        self._record(t_sched, t_start, t_end, state, result.targets, decision.target, result.flags, e2e)
        self.last_cmd = result.targets
        return False

    def _apply_verdict(self, now: float) -> str | None:
        p = self.p
        verdict = p.watchdogs.check(now)
        self._policy_hold = False
        for trip in verdict.new:
            p.telemetry.fault(trip.name, trip.detail, trip.reaction)
            log.warning("watchdog", name=trip.name, reaction=trip.reaction, detail=trip.detail)
        if verdict.reaction == "safe_stop":
            if self.stopping is None:  # the verdict is latched: one request, not one per tick
                cause = "; ".join(t.detail for t in verdict.trips if t.reaction == "safe_stop") or "watchdog"
                self.request_stop(cause)
            return None
        if verdict.reaction == "hold":
            self._policy_hold = all(t.name in ("policy", "policy_error") for t in verdict.trips)
            return "; ".join(t.detail for t in verdict.trips) or "watchdog"
        return self.user_hold

    async def _stop_tick(self, t_sched: float, t_start: float, state: Any) -> bool:
        p, stop = self.p, self.stopping
        assert stop is not None
        now = t_start
        if self.lifecycle.state is State.ACTIVE:
            self.lifecycle.to(State.SAFE_STOPPING, stop.cause)
        target = stop.target(now)
        result = p.safety.apply(target, state.positions, state.loads, now)
        await p.arm.write(result.targets)
        t_end = self.clock.now()
        self.source, self.reason = Source.HOLD, f"safe stop ({stop.phase}): {stop.cause}"
        self._record(t_sched, t_start, t_end, state, result.targets, target, result.flags, None)
        self.last_cmd = result.targets
        if not stop.done(now, state.positions):
            return False
        if stop.release_torque:
            still_on = await p.arm.release_torque()
            how = "at rest, torque released"
            if still_on:
                how = f"at rest, but servos {still_on} still report torque ON after 3 tries: switch the arm's power off"
                p.telemetry.fault("torque_release", how, "none")
        elif stop.rest is not None and not stop.reached and not stop.skip_rest:
            how = "did NOT reach the rest pose in time: torque left ON so the arm does not drop; move it by hand after powering off"
            p.telemetry.fault("rest_not_reached", how, "hold")
        else:
            how = "holding with torque ON (servos keep holding after exit)"
        self.lifecycle.to(State.SAFE_STOPPED, f"{stop.cause}; {how}")
        return True

    # --- requests and events -------------------------------------------------------------------------

    def request_stop(self, cause: str) -> None:
        """Start a safe stop (any state, any time). A second request skips the move to rest."""
        self.stop_requests += 1
        if self.stopping is not None:
            if not self.stopping.skip_rest:
                self.stopping.skip_rest = True
                log.warning("second stop request: holding here with torque on and exiting", cause=cause)
            return
        if self.lifecycle.state is not State.ACTIVE or self.last_cmd is None:
            # not driving yet (connecting, loading the policy): remembered, and the arm is never activated
            if self.early_stop is None:
                self.early_stop = cause
            return
        self.stopping = SafeStop(self.p.safe_stop, self.p.arm_name, self.last_cmd, self.clock.now(), cause)
        self.p.telemetry.event("safe_stop", cause=cause)
        log.warning("safe stop", cause=cause)

    def _fatal(self, why: str) -> None:
        self.fault = why
        log.error("fault", cause=why)
        self.p.telemetry.fault("fault", why, "fault")
        if self.lifecycle.state not in (State.FAULT,):
            self.lifecycle.to(State.FAULT, why)

    def _keys(self) -> None:
        kb = self.p.keyboard
        if kb is None:
            return
        for intent in kb.intents():
            name = getattr(intent, "name", str(intent))
            self.p.telemetry.event("key", intent=name)
            if name == "SAFE_STOP":
                self.request_stop("safe-stop key")
            elif name == "QUIT":
                self.request_stop("quit key")
            elif name == "HOLD_TOGGLE":
                self.user_hold = None if self.user_hold else "hold key (press h again to resume)"
            elif name == "TAKEOVER_TOGGLE":
                self.takeover_key = True

    def _on_handover(self, decision: Any) -> None:
        p = self.p
        p.telemetry.event("source", source=decision.source.value, previous=getattr(decision.previous, "value", None), reason=decision.reason)
        if decision.previous is Source.HUMAN and p.runner is not None:
            self._bg(self._reset_policy())

    def _bg(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reset_policy(self) -> None:
        try:
            await self.p.runner.reset()
        except Exception as e:
            self._on_policy_error("reset", e)

    def _policy_wanted(self) -> bool:
        return self.lifecycle.state is State.ACTIVE and self.stopping is None

    def _on_frame(self, name: str, frame: Any) -> None:
        self.p.watchdogs.frame(name, frame.t_capture)
        self.p.telemetry.frame(name, frame)

    def _on_chunk(self, chunk: ActionChunk) -> None:
        now = self.clock.now()
        if self._refuse_implausible(chunk, now):
            return
        self.p.buffer.add(chunk, now)
        self.p.watchdogs.chunk(chunk.t_done or now)

    def _refuse_implausible(self, chunk: ActionChunk, now: float) -> bool:
        """``harmowam_ctl.plausibility``: True when the chunk is implausible. It never reaches the buffer (not
        clamped, not driven); it is a policy error (hold, then escalation) and, once per run of refused
        chunks, an ``implausible_chunk`` fault with the full message."""
        state = self.joints.latest()
        bad = None if self.chunk_check is None else self.chunk_check.check(
            chunk, None if state is None else state.positions, None if state is None else state.t, now)
        if bad is None:
            self._implausible = False
            return False
        if not self._implausible:
            self._implausible = True
            self.p.telemetry.fault("implausible_chunk", bad.message, "hold")
        # the policy answered (no "stalled" trip), but its answer is an error: the hold lasts while it repeats
        self.p.watchdogs.chunk(chunk.t_done or now)
        self._on_policy_error("act", ImplausibleChunk(bad))
        return True

    def _on_stage(self, stage: str, t_obs: float, t_start: float, t_done: float, chunk: ActionChunk | None) -> None:
        gate = chunk.gate if chunk is not None else None
        expert = chunk.expert if chunk is not None else None
        self.p.telemetry.policy(stage, t_obs, t_start, t_done, gate=gate, expert=expert)

    def _on_policy_error(self, stage: str, e: BaseException) -> None:
        text = f"policy {stage} failed: {type(e).__name__}: {e}"
        log.warning("policy error", stage=stage, error=repr(e))
        self.p.watchdogs.policy_error(text)

    def _on_transition(self, tr: Any) -> None:
        self.p.telemetry.event("lifecycle", old=tr.old.name, new=tr.new.name, cause=tr.cause)

    def _record(self, t_sched, t_start, t_end, state, targets, requested, flags, e2e) -> None:  # noqa: ANN001
        self.p.telemetry.tick(TickRecord(
            t_sched=t_sched, t_start=t_start, t_end=t_end, state_t=state.t, present=state.positions,
            target=targets, requested=requested, source=self.source, reason=self.reason,
            filter_flags=flags, e2e_s=e2e, chunk_age_s=None,
        ))
        if self.p.on_tick is not None:
            self.p.on_tick(state, targets, self.source)

    async def _frames_only(self) -> None:
        """Cameras without a policy (teleop): feed the camera watchdog and telemetry."""
        async for _ in camera_frames(self.p.cameras, self._on_frame):
            pass

    async def _status_loop(self) -> None:
        p = self.p
        while True:
            await asyncio.sleep(0.1)
            if p.status is not None:
                s = p.telemetry.summary_light()
                p.status.update(self.clock.now(), self.lifecycle.state.name.lower(), self.source, self.reason,
                                s.get("tick_hz"), len(s.get("faults", [])))
