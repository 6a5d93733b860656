"""Builds a ``Runtime`` from a ``RunConfig`` and closes everything it opened, in reverse order.

    async with session(cfg) as rt:
        summary = await rt.run()

A real arm: the bus on ``--port``, the calibration file ``--calibration`` (LeRobot's location and
format), OpenCV cameras. ``--sim``: a ``SimRig`` (task scene, emulated bus, simulated cameras) and the
calibration of the simulated servos. The policy runs in a thread (``scripted``: it reads the
simulation) or a process (others), see ``choose_mode``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import structlog

from calibration import ArmCalibration, load_calibration
from calibration.units import UnitsError
from hardware.arms import arm as arm_by_name
from hardware.bus import open_bus
from hardware.camera import OpenCVCamera
from hardware.emulator import Emulator
from hardware.emulator.motion import KinematicMotion
from harmowam_ctl.app import Parts, Runtime
from harmowam_ctl.arbiter import Arbiter
from harmowam_ctl.armio import ArmIO
from harmowam_ctl.buffer import ActionBuffer
from harmowam_ctl.clock import MonotonicClock
from harmowam_ctl.config import ConfigError
from harmowam_ctl.inference import DEFAULT_NICE, PolicyRunner
from harmowam_ctl.keyboard import KeyReader
from harmowam_ctl.runconfig import RunConfig
from harmowam_ctl.safety import SafetyConfig, SafetyFilter
from harmowam_ctl.simrig import SimRig
from harmowam_ctl.status import StatusLine
from harmowam_ctl.telemetry import Telemetry
from harmowam_ctl.teleop import LeaderArm, Teleop
from harmowam_ctl.watchdogs import LoopLagMonitor, Watchdogs
from policies.registry import NEEDS_CONTEXT, PolicySpec
from policies.units import PolicyIO, bind_units, describe_io

log = structlog.get_logger(__name__)


def choose_mode(cfg: RunConfig) -> str:
    """``auto``: a thread for policies that read this process's simulation, else a process (a policy
    process cannot hold the GIL against the servo tick, and a hung one can be killed)."""
    if cfg.policy_mode != "auto":
        return cfg.policy_mode
    return "thread" if cfg.policy in NEEDS_CONTEXT else "process"


def safety_config(cfg: RunConfig, profile: Any, cal: ArmCalibration) -> SafetyConfig:
    lo, hi = cal.limits_rad_arrays()
    over: dict[str, Any] = {}
    s = cfg.safety
    if s.max_velocity_rad_s is not None:
        over["max_velocity_rad_s"] = s.max_velocity_rad_s
    if s.max_accel_rad_s2 is not None:
        over["max_accel_rad_s2"] = s.max_accel_rad_s2
    if s.max_step_from_present_rad is not None:
        over["max_step_from_present_rad"] = s.max_step_from_present_rad
    if s.stall_load is not None:
        over["stall_load"] = s.stall_load
    return SafetyConfig.for_arm(profile, margin_rad=s.margin_rad, calibration_limits=list(zip(lo, hi)), **over)


SWITCH_INTERVAL_S = 0.0005


def policy_io(cfg: RunConfig, profile: Any, cal: ArmCalibration) -> PolicyIO | None:
    """The policy's units conversion with this arm's calibration (``policies.units``); a ConfigError saying why
    and how to fix it when its units are unknown or do not fit the arm: raised before any bus is opened."""
    try:
        io = bind_units(str(cfg.policy), cfg.policy_options, profile, cal, cfg.policy_units)
    except (UnitsError, ValueError) as e:
        raise ConfigError(f"--policy {cfg.policy_options.get('checkpoint', cfg.policy)}: {e}") from None
    if io is not None:
        log.info("policy_units", policy=cfg.policy, units=describe_io(io), calibration=str(cal.source or "simulated"))
    return io


def policy_nice(cfg: RunConfig) -> int:
    """``cfg.policy_nice``, or by default 0 when the tick's threads will run at real-time priority (the
    policy then competes with the simulated world, not with the tick), else 10 (``inference.DEFAULT_NICE``)."""
    if cfg.policy_nice is not None:
        return cfg.policy_nice
    from hardware.realtime import permitted

    return 0 if cfg.realtime and permitted() else DEFAULT_NICE


@contextlib.asynccontextmanager
async def session(cfg: RunConfig, *, on_tick: Any = None, sim_options: dict[str, Any] | None = None) -> AsyncIterator[Runtime]:
    """``sim_options``: more ``SimRig`` fields for ``--sim`` (``mode``, ``world_nice``...; benchmarks)."""
    profile = arm_by_name(cfg.arm)
    clock = MonotonicClock()
    async with contextlib.AsyncExitStack() as stack:
        # Hand the GIL over every 0.5 ms from the start (as the runtime does while it runs): at Python's
        # default 5 ms, a busy thread (an in-process simulator, a policy thread) delays the bus thread's
        # reading of a ping reply past its timeout while the buses are opened and verified.
        stack.callback(sys.setswitchinterval, sys.getswitchinterval())
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        rig: SimRig | None = None
        if cfg.sim:
            # the policy's units are checked before the simulated world starts (a real arm: before its bus opens)
            io = policy_io(cfg, profile, ArmCalibration.simulated(profile)) if cfg.policy else None
            rig = SimRig(task=cfg.task, seed=cfg.seed, spec=cfg.spec, arm=cfg.arm, faults=cfg.sim_faults, **(sim_options or {}))
            stack.callback(rig.stop)
            port = rig.start()
            cal = ArmCalibration.simulated(profile)
            cameras: dict[str, Any] = rig.cameras if not cfg.cameras else {}
            task_text = rig.instruction
        else:
            assert cfg.port is not None
            port = cfg.port
            if cfg.calibration is None:
                raise ConfigError(
                    "--calibration: required for a real arm (the name you calibrated it under, as LeRobot's "
                    f"--robot.id); create one with `harmowam calibrate --arm {cfg.arm} --port {port} --calibration NAME`"
                )
            cal = load_calibration(profile, cfg.calibration)
            io = policy_io(cfg, profile, cal.for_profile(profile)) if cfg.policy else None
            cameras = {}
            task_text = cfg.task
        for c in cfg.cameras:
            cameras[c.name] = OpenCVCamera(c.source, fps=c.fps, resolution=(c.width, c.height), name=c.name)
        for cam in cameras.values():
            stack.callback(cam.stop)
        cal = cal.for_profile(profile)
        bus = open_bus(profile, port)
        stack.push_async_callback(bus.close)
        runner = None
        if cfg.policy:
            options = dict(cfg.policy_options)
            if cfg.telemetry.rerun and cfg.policy == "harmowam":
                options.setdefault("decode_frames", True)  # the imagined frames go into the rerun recording
            spec = PolicySpec(name=cfg.policy, options=options, seed=cfg.seed, torch_threads=cfg.torch_threads, io=io)
            runner = PolicyRunner(spec, choose_mode(cfg), context=rig.env if (rig and cfg.policy in NEEDS_CONTEXT) else None,
                                  nice=policy_nice(cfg))
            stack.push_async_callback(runner.close)
        teleop = None
        if cfg.leader_arm:
            leader = arm_by_name(cfg.leader_arm)
            if cfg.leader_sim:
                emu = Emulator(leader, motion=KinematicMotion([2048.0] * len(leader.motors)))
                stack.callback(emu.stop)
                leader_port = emu.start()
                leader_cal = ArmCalibration.centered(leader)
            else:
                assert cfg.leader_port is not None
                leader_port = cfg.leader_port
                if cfg.leader_calibration is None:
                    raise ConfigError("--leader-calibration: required with a real --leader-arm")
                leader_cal = load_calibration(leader, cfg.leader_calibration)
            teleop = Teleop(LeaderArm.on_port(leader, leader_port, leader_cal, cfg.teleop), cfg.teleop)
            await teleop.open()
            stack.push_async_callback(teleop.close)
        keyboard = None
        if cfg.keyboard and sys.stdin.isatty():
            keyboard = KeyReader()
            if keyboard.open():
                stack.callback(keyboard.close)
            else:
                keyboard = None
        tcfg = cfg.telemetry.model_copy(update={"arm": cfg.arm})
        telemetry = Telemetry(tcfg, clock)
        stack.callback(telemetry.close)
        watchdogs = Watchdogs(cfg.watchdogs, clock)
        lag = LoopLagMonitor(lambda t, lag_s: watchdogs.loop_lag(t, lag_s), period=0.01, clock=clock)
        parts = Parts(
            arm=ArmIO(bus, profile, cal), arm_name=cfg.arm, clock=clock,
            buffer=ActionBuffer(cfg.buffer), arbiter=Arbiter(cfg.arbiter),
            safety=SafetyFilter(safety_config(cfg, profile, cal)), watchdogs=watchdogs, telemetry=telemetry,
            safe_stop=cfg.safe_stop, runner=runner, cameras=cameras, teleop=teleop, keyboard=keyboard,
            status=StatusLine(sys.stderr) if cfg.status else None, task=task_text, rate_hz=cfg.rate_hz,
            lookahead_s=cfg.lookahead_s, duration_s=cfg.duration_s, lag_monitor=lag, on_tick=on_tick, sim=rig,
            check_calibration=not cfg.sim,  # a real arm's servos must hold its calibration file
            realtime=cfg.realtime, policy_overlap=cfg.policy_overlap, plausibility=cfg.plausibility,
        )
        yield Runtime(parts)
