"""The runtime refuses implausible action chunks (``harmowam_ctl.plausibility``): a policy in the wrong
units holds the arm as a policy error, then the policy watchdog's escalation ends the run in a safe
stop; nothing is clamped and driven toward an end stop. Harness: ``runtime_harness`` (emulated bus, fake
policy runner). Real time with generous margins: assertions are on states and events, not exact timing.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from harmowam_ctl.lifecycle import State
from harmowam_ctl.types import Observation, Source

sys.path.insert(0, str(Path(__file__).parent))  # tests are not packages (--import-mode=importlib)
from runtime_harness import START_TICKS, FakeRunner, Rig, hold_plan  # noqa: E402

RAD_PER_TICK = 2 * np.pi / 4096
LEROBOT_DEGREES = np.array([37.0, -28.0, 45.0, 73.0, 72.0, 68.0])  # measured: a degrees policy read as radians
QUICK_STOP = {"hold_s": 0.1, "move_to_rest": False}


def degrees_plan(obs: Observation, runner: FakeRunner) -> np.ndarray:
    """A policy trained on LeRobot degrees: the pose it wants, in degrees, slowly drifting."""
    t = np.arange(runner.horizon) * runner.dt
    return LEROBOT_DEGREES + np.outer(t, np.full(6, 2.0))


def pose_in_degrees_plan(obs: Observation, runner: FakeRunner) -> np.ndarray:
    """The same mistake near the arm's pose: the observed joints in degrees (small numbers for a joint
    near the middle of its range, tens of 'radians' for the others)."""
    return np.tile(np.degrees(obs.state), (runner.horizon, 1))


async def until_source(rig: Rig, source: Source, timeout: float, reason: str = "") -> float:
    assert rig.rt is not None
    return await rig.until(lambda: rig.rt.source is source and reason in rig.rt.reason, timeout,
                           f"source {source.value} ({reason or 'any reason'}), now {rig.rt.source} {rig.rt.reason!r}")


async def test_a_policy_in_degrees_holds_the_arm_then_escalates_to_a_safe_stop(tmp_path: Any) -> None:
    rig = Rig(tmp_path, duration_s=20.0, overrides={
        "safe_stop": QUICK_STOP, "watchdogs": {"policy": {"escalate_after_s": 1.0}}})
    assert rig.runner is not None
    rig.runner.plan = degrees_plan
    marks: dict[str, float] = {}

    async def watch(rig: Rig) -> None:
        await rig.until_active()
        marks["hold"] = await until_source(rig, Source.HOLD, 10.0, "wrong units?")

    async with rig:
        summary = await rig.run(watch, timeout=40.0)
    rt = rig.rt
    assert rt is not None
    # the policy kept answering, every chunk was refused: it never drove, nothing entered the buffer
    assert rig.runner.chunks >= 3
    assert rig.rt.p.buffer.added == 0
    assert not any(s is Source.POLICY for s in rig.sources())
    assert not any(r.source is Source.POLICY for r in rig.ticks)
    # no command ever left where the arm was (the arm holds; never toward an end stop)
    first = rig.ticks[0]
    for r in rig.ticks:
        assert np.max(np.abs(r.targets - first.present)) < 3 * RAD_PER_TICK, r
    goals = [w[1] for w in rig.writes if w[0] == "Goal_Position"]
    assert len(goals) > 50
    start = {k + 1: t for k, t in enumerate(START_TICKS)}
    for g in goals:
        assert all(abs(v - start[sid]) <= 3 for sid, v in g.items()), g
    assert np.max(np.abs(rig.emu_positions() - first.present)) < 4 * RAD_PER_TICK
    # the hold names the joint and the units; the policy watchdog's hold escalated to the safe stop
    holds = [r for r in rig.ticks if r.source is Source.HOLD and "wrong units?" in r.reason]
    assert holds and "shoulder_pan" in holds[0].reason and "37.000 rad" in holds[0].reason
    names = rig.fault_names()
    assert names.count("implausible_chunk") == 1, names  # once per run of refused chunks, not per chunk
    policy_errors = [f for f in rig.telemetry.faults if f["name"] == "policy_error"]
    assert [f["reaction"] for f in policy_errors] == ["hold", "safe_stop"], policy_errors
    assert "policy" not in names, "a refused chunk is not a stalled policy"
    causes = [e["cause"] for e in rig.events("safe_stop")]
    assert len(causes) == 1 and "shoulder_pan" in causes[0] and "still after 1 s" in causes[0], causes
    assert "duration" not in causes[0]
    assert rt.lifecycle.state is State.SAFE_STOPPED
    assert rig.t_end - marks["hold"] < 15.0, "the run did not end by the escalation"
    # the run summary names it: the joint, the value, the limit and the units hint
    faults = json.dumps(summary["faults"])
    assert "implausible_chunk" in faults and "shoulder_pan" in faults and "wrong units" in faults
    full = next(f["detail"] for f in summary["faults"] if f["name"] == "implausible_chunk")
    assert "37.000 rad (2119.9 deg)" in full and "--policy-units" in full and "never clamped" in full


async def test_a_policy_switching_to_degrees_mid_run_holds_where_the_arm_is_and_recovers(tmp_path: Any) -> None:
    rig = Rig(tmp_path, duration_s=3.5, overrides={"safe_stop": QUICK_STOP})
    assert rig.runner is not None
    marks: dict[str, float] = {}

    async def switch(rig: Rig) -> None:
        assert rig.runner is not None
        await rig.until_active()
        await until_source(rig, Source.POLICY, 10.0)
        await asyncio.sleep(0.3)
        rig.runner.plan = pose_in_degrees_plan
        marks["switch"] = time.monotonic()
        marks["hold"] = await until_source(rig, Source.HOLD, 5.0, "wrong units?")
        await asyncio.sleep(0.5)
        rig.runner.plan = hold_plan
        marks["fixed"] = time.monotonic()
        marks["back"] = await until_source(rig, Source.POLICY, 5.0)

    async with rig:
        await rig.run(switch, timeout=40.0)
    held = [r for r in rig.ticks if marks["hold"] <= r.t < marks["fixed"]]
    assert len(held) > 20 and all(r.source is Source.HOLD for r in held)
    assert any("shoulder_pan" in r.reason for r in held)
    # while held the commands stay where they were when the hold began (braking from the sway only)
    ref = held[0].targets
    drift = max(float(np.max(np.abs(r.targets - ref))) for r in held)
    assert drift < 0.05, f"commands moved {drift:.3f} rad while the implausible chunks were refused"
    # and never anywhere near what the chunks asked for: every command of the run stays by the start pose
    base = rig.ticks[0].present
    assert max(float(np.max(np.abs(r.targets - base))) for r in rig.ticks) < 0.25
    # one refused run, one fault; a plausible chunk ends the hold (a policy error, like an exception)
    assert rig.fault_names().count("implausible_chunk") == 1
    assert marks["back"] > marks["fixed"]
    assert rig.rt is not None and rig.rt.lifecycle.state is State.SAFE_STOPPED
    assert "duration" in rig.events("safe_stop")[0]["cause"]
