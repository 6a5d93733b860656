"""Watchdogs: deadlines, clearing, escalation, latching, per-bit servo reactions, following error,
config errors; the loop-lag monitor on a fake clock and (once) on the real loop."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, Field

from hardware.bus.types import ServoFault as F
from harmowam_ctl.clock import FakeClock
from harmowam_ctl.config import ConfigError, build
from harmowam_ctl.watchdogs import LoopLagMonitor, Trip, Verdict, WatchdogConfig, Watchdogs

T0 = 100.0
EPS = 1e-3
ZERO = np.zeros(6)


def make(**sections: dict) -> tuple[Watchdogs, FakeClock]:
    clock = FakeClock(T0)
    return Watchdogs(WatchdogConfig(**sections), clock), clock


def quiet(**sections: dict) -> tuple[Watchdogs, FakeClock]:
    """Only the named watchdogs on (the bus deadline would trip in every long test otherwise)."""
    names = ("camera", "policy", "bus", "servo_faults", "following", "loop_lag")
    cfg = {n: {"enabled": False} for n in names}
    for n, v in sections.items():
        cfg[n] = {"enabled": True, **v}
    return make(**cfg)


def names(trips: list[Trip]) -> list[tuple[str, str, str]]:
    return [(t.name, t.subject, t.reaction) for t in trips]


# ---- camera ------------------------------------------------------------------------------------------
def test_camera_trips_at_its_deadline_not_before_and_clears() -> None:
    w, _ = quiet(camera={})
    w.set_cameras(["front", "wrist"])
    w.frame("front", T0 + 1.0)
    w.frame("wrist", T0 + 1.2)
    assert w.check(T0 + 1.5 - EPS).ok
    v = w.check(T0 + 1.5 + EPS)
    assert names(v.trips) == [("camera", "front", "hold")] and v.reaction == "hold"
    assert v.trips[0].since == pytest.approx(T0 + 1.5)
    assert "camera 'front' sent no frame for 0.50 s" in v.trips[0].detail and "cable" in v.trips[0].detail
    assert names(v.new) == [("camera", "front", "hold")]
    v = w.check(T0 + 1.62)
    assert v.new == [] and "0.62 s" in v.trips[0].detail
    w.frame("front", T0 + 1.6)
    assert w.check(T0 + 1.65).ok  # cleared: hold-level trips clear with their condition


def test_camera_never_sent_counts_from_listing_and_unlisted_cameras_are_watched() -> None:
    w, clock = quiet(camera={"deadline_s": 0.2})
    clock.set(T0 + 1.0)
    w.set_cameras(["front"])
    assert w.check(T0 + 1.2 - EPS).ok
    assert names(w.check(T0 + 1.2 + EPS).trips) == [("camera", "front", "hold")]
    w.frame("front", T0 + 1.3)
    w.frame("side", T0 + 1.3)  # not listed: watched from its first frame on
    assert w.check(T0 + 1.4).ok
    assert {t.subject for t in w.check(T0 + 1.6).trips} == {"front", "side"}
    w.set_cameras(["side"])  # front unplugged on purpose
    assert [t.subject for t in w.check(T0 + 1.6).trips] == ["side"]


def test_camera_escalates_after_escalate_after_s_and_reports_it_once() -> None:
    w, _ = quiet(camera={})
    w.set_cameras(["front"])
    w.frame("front", T0)
    since = T0 + 0.5
    v = w.check(since + 0.1)
    assert v.reaction == "hold" and len(v.new) == 1
    v = w.check(since + 5.0 - EPS)
    assert v.reaction == "hold" and v.new == []
    v = w.check(since + 5.0 + EPS)
    assert v.reaction == "safe_stop"
    assert names(v.new) == [("camera", "front", "safe_stop")] and "safe stop" in v.new[0].detail
    assert v.new[0].since == pytest.approx(since)
    assert w.check(since + 5.1).new == []


def test_escalate_none_never_escalates() -> None:
    w, _ = quiet(camera={"escalate_after_s": None})
    w.set_cameras(["front"])
    assert w.check(T0 + 1000.0).reaction == "hold"


# ---- policy ------------------------------------------------------------------------------------------
def test_policy_only_watched_while_it_drives() -> None:
    w, clock = quiet(policy={})
    w.chunk(T0)
    assert w.check(T0 + 30.0).ok  # a human drives: an old chunk does not matter
    clock.set(T0 + 30.0)
    w.set_policy_driving(True)  # timer starts now, not at the old chunk
    assert w.check(T0 + 30.5 - EPS).ok
    v = w.check(T0 + 30.5 + EPS)
    assert names(v.trips) == [("policy", "", "hold")] and "no new action chunk" in v.trips[0].detail
    w.chunk(T0 + 30.6)
    assert w.check(T0 + 30.7).ok
    w.set_policy_driving(False)
    assert w.check(T0 + 60.0).ok


def test_policy_stall_escalates_after_10_s() -> None:
    w, clock = quiet(policy={})
    w.set_policy_driving(True)
    w.chunk(T0 + 1.0)
    since = T0 + 1.5
    assert w.check(since + 10.0 - EPS).reaction == "hold"
    v = w.check(since + 10.0 + EPS)
    assert v.reaction == "safe_stop" and names(v.new) == [("policy", "", "safe_stop")]


def test_policy_error_holds_while_driving_until_the_next_chunk() -> None:
    w, clock = quiet(policy={"escalate_after_s": 2.0})
    w.set_policy_driving(True)
    w.chunk(T0)
    clock.set(T0 + 0.1)
    w.policy_error("CUDA out of memory")
    v = w.check(T0 + 0.1)
    assert names(v.new) == [("policy_error", "", "hold")]
    assert "CUDA out of memory" in v.new[0].detail and "traceback" in v.new[0].detail
    w.chunk(T0 + 0.05)  # finished before the crash: does not clear it
    assert w.check(T0 + 0.2).reaction == "hold"
    w.chunk(T0 + 0.3)
    assert w.check(T0 + 0.3).ok
    clock.set(T0 + 0.4)
    w.policy_error("boom")
    assert w.check(T0 + 2.4 - EPS).reaction == "hold"
    assert w.check(T0 + 2.4 + EPS).reaction == "safe_stop"


def test_policy_error_while_not_driving_is_not_a_trip() -> None:
    w, clock = quiet(policy={})
    w.policy_error("boom")
    assert w.check(T0 + 0.1).ok
    w.set_policy_driving(True)  # giving control to a crashed policy: hold
    assert [t.name for t in w.check(T0 + 0.1).trips] == ["policy_error"]
    w.set_policy_driving(False)
    assert w.check(T0 + 0.2).ok


# ---- bus ---------------------------------------------------------------------------------------------
def test_bus_trips_on_the_third_failed_tick_and_latches() -> None:
    w, _ = quiet(bus={"deadline_s": 100.0})
    w.bus_ok(T0)
    w.bus_failed(T0 + 0.01, "no reply from id 3 (elbow_flex)")
    w.bus_failed(T0 + 0.02, "no reply from id 3 (elbow_flex)")
    assert w.check(T0 + 0.02).ok
    w.bus_ok(T0 + 0.03)  # a good tick resets the count
    w.bus_failed(T0 + 0.04, "x")
    w.bus_failed(T0 + 0.05, "x")
    assert w.check(T0 + 0.05).ok
    w.bus_failed(T0 + 0.06, "no reply from id 3 (elbow_flex)")
    v = w.check(T0 + 0.06)
    assert names(v.trips) == [("bus", "", "safe_stop")] and v.trips[0].since == T0 + 0.06
    assert "3 servo ticks in a row failed" in v.trips[0].detail and "id 3 (elbow_flex)" in v.trips[0].detail
    assert w.latched
    w.bus_ok(T0 + 0.07)
    v = w.check(T0 + 0.07)
    assert v.reaction == "safe_stop" and names(v.trips) == [("bus", "", "safe_stop")] and v.new == []
    w.reset()
    assert not w.latched and w.check(T0 + 0.07).ok


def test_bus_failures_between_checks_are_not_missed() -> None:
    w, _ = quiet(bus={"max_failed_ticks": 2, "deadline_s": 100.0})
    w.bus_failed(T0, "a")
    w.bus_failed(T0 + 0.01, "b")
    w.bus_ok(T0 + 0.02)
    assert w.check(T0 + 0.02).reaction == "safe_stop"


def test_bus_deadline_without_a_good_read() -> None:
    w, clock = quiet(bus={})
    assert w.check(T0 + 0.1 - EPS).ok  # counted from construction
    w.bus_ok(T0 + 0.05)
    assert w.check(T0 + 0.15 - EPS).ok
    w.bus_failed(T0 + 0.1, "x")  # failures alone do not reset the deadline
    v = w.check(T0 + 0.15 + EPS)
    assert names(v.trips) == [("bus", "", "safe_stop")] and "no successful bus read" in v.trips[0].detail
    assert v.trips[0].since == pytest.approx(T0 + 0.15)


def test_bus_hold_reaction_clears() -> None:
    w, _ = quiet(bus={"reaction": "hold", "deadline_s": 100.0, "max_failed_ticks": 1})
    w.bus_failed(T0, "x")
    assert w.check(T0).reaction == "hold"
    w.bus_ok(T0 + 0.01)
    assert w.check(T0 + 0.01).ok


# ---- servo faults ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("bit", "reaction"), [
    (F.OVERLOAD, "hold"), (F.OVERCURRENT, "hold"), (F.OVERHEAT, "safe_stop"), (F.VOLTAGE, "safe_stop"),
    (F.ELECTRICAL_SHOCK, "safe_stop"), (F.SENSOR, "safe_stop"), (F.ENCODER, "safe_stop"), (F.ALERT, "hold"),
])
def test_servo_fault_default_reactions(bit: F, reaction: str) -> None:
    w, _ = quiet(servo_faults={})
    w.servo_faults(T0, {2: bit})
    v = w.check(T0)
    assert names(v.trips) == [("servo_faults", "elbow_flex", reaction)] and v.reaction == reaction
    assert v.trips[0].detail.startswith(f"elbow_flex: servo reports {bit.name}: ")


def test_overload_holds_then_escalates_after_1_s_and_clears_before() -> None:
    w, _ = quiet(servo_faults={})
    for k in range(11):
        w.servo_faults(T0 + 0.1 * k, {1: F.OVERLOAD})
    assert w.check(T0 + 1.0 - EPS).reaction == "hold"
    v = w.check(T0 + 1.0 + EPS)
    assert v.reaction == "safe_stop" and names(v.new) == [("servo_faults", "shoulder_lift", "safe_stop")]
    w2, _ = quiet(servo_faults={})
    w2.servo_faults(T0, {1: F.OVERLOAD})
    assert w2.check(T0 + 0.5).reaction == "hold"
    w2.servo_faults(T0 + 0.6, {})
    assert w2.check(T0 + 2.0).ok


def test_one_tick_fault_is_reported_even_if_cleared_before_the_check() -> None:
    w, _ = quiet(servo_faults={})
    w.servo_faults(T0, {0: F.OVERLOAD})
    w.servo_faults(T0 + 0.01, {})
    v = w.check(T0 + 0.01)
    assert v.reaction == "hold" and len(v.new) == 1  # seen once
    assert w.check(T0 + 0.02).ok  # then gone
    w.servo_faults(T0 + 0.03, {4: F.OVERHEAT})
    w.servo_faults(T0 + 0.04, {})
    assert w.check(T0 + 0.05).reaction == "safe_stop"
    assert w.check(T0 + 0.06).reaction == "safe_stop"  # latched


def test_alert_counts_only_without_specific_bits_and_bits_are_separate_trips() -> None:
    w, _ = quiet(servo_faults={"escalate_after_s": None})
    w.servo_faults(T0, {3: F.ALERT | F.OVERLOAD | F.OVERCURRENT, 5: F.NONE})
    v = w.check(T0)
    assert sorted(t.detail.split(":")[1] for t in v.trips) == [" servo reports OVERCURRENT", " servo reports OVERLOAD"]
    assert {t.subject for t in v.trips} == {"wrist_flex"}
    w.servo_faults(T0 + 0.01, {3: F.OVERCURRENT})
    v = w.check(T0 + 0.01)
    assert [t.detail.split(":")[1] for t in v.trips] == [" servo reports OVERCURRENT"] and v.new == []


def test_servo_fault_reactions_are_configurable_per_bit() -> None:
    w, _ = quiet(servo_faults={"overheat": "hold", "overload": "safe_stop", "voltage": "ignore"})
    w.servo_faults(T0, {0: F.OVERHEAT, 1: F.VOLTAGE})
    v = w.check(T0)
    assert names(v.trips) == [("servo_faults", "shoulder_pan", "hold")]
    w.servo_faults(T0 + 0.01, {0: F.OVERLOAD})
    assert w.check(T0 + 0.01).reaction == "safe_stop"


def test_unknown_joint_index_is_named() -> None:
    w, _ = quiet(servo_faults={})
    w.servo_faults(T0, {9: F.OVERLOAD})
    assert w.check(T0).trips[0].subject == "joint 9"


# ---- following error ---------------------------------------------------------------------------------
def feed(w: Watchdogs, t0: float, t1: float, targets, present, dt: float = 0.01) -> float:
    """Push one command per tick from t0 to t1 (targets/present: arrays or callables of t)."""
    n = int(round((t1 - t0) / dt))
    for k in range(n + 1):
        t = t0 + k * dt
        w.command(t, targets(t) if callable(targets) else targets, present(t) if callable(present) else present)
    return t0 + n * dt


def test_following_error_trips_after_grace_not_before() -> None:
    # times chosen half a tick off the lag and grace so no comparison sits on a float edge
    w, _ = quiet(following={"lag_s": 0.095, "grace_s": 0.245})
    feed(w, T0, T0 + 0.195, ZERO, ZERO)
    blocked = np.array([0, 0, 0.41, 0, 0, 0])
    feed(w, T0 + 0.205, T0 + 0.295, blocked, ZERO)  # the ZERO command is still within lag: no error yet
    assert w.check(T0 + 0.295).ok
    feed(w, T0 + 0.305, T0 + 0.545, blocked, ZERO)  # over the threshold from T0+0.305: 0.24 s
    assert w.check(T0 + 0.545).ok
    w.command(T0 + 0.555, blocked, ZERO)  # 0.25 s > grace
    v = w.check(T0 + 0.555)
    assert names(v.trips) == [("following", "elbow_flex", "safe_stop")]
    assert v.trips[0].since == T0 + 0.555
    assert v.trips[0].detail == ("elbow_flex: commanded 0.41 rad from the measured position for 0.25 s: "
                                 "a collision? clear the arm's path")
    feed(w, T0 + 0.565, T0 + 0.7, ZERO, ZERO)
    assert w.check(T0 + 0.7).reaction == "safe_stop"  # latched


def test_following_error_below_threshold_never_trips() -> None:
    w, _ = quiet(following={})
    feed(w, T0, T0 + 2.0, np.array([0.29, -0.29, 0.29, -0.29, 0.29, 0.29]), ZERO)
    assert w.check(T0 + 2.0).ok


def test_following_error_dip_restarts_the_grace() -> None:
    w, _ = quiet(following={"lag_s": 0.0})
    far = np.array([0.5, 0, 0, 0, 0, 0])
    feed(w, T0, T0 + 0.2, far, ZERO)
    w.command(T0 + 0.21, ZERO, ZERO)  # the joint caught up for one tick
    feed(w, T0 + 0.22, T0 + 0.42, far, ZERO)
    assert w.check(T0 + 0.42).ok
    feed(w, T0 + 0.43, T0 + 0.48, far, ZERO)
    assert w.check(T0 + 0.48).reaction == "safe_stop"


def test_a_servo_behind_a_moving_command_is_no_error_a_stuck_one_is() -> None:
    speed = 2.0  # rad/s, the servo follows 0.08 s behind: 0.16 rad behind the newest target
    target = lambda t: np.array([speed * (t - T0), 0, 0, 0, 0, 0])  # noqa: E731
    w, _ = quiet(following={"threshold_rad": 0.05})
    feed(w, T0, T0 + 1.0, target, lambda t: target(t - 0.08))
    assert w.check(T0 + 1.0).ok
    w2, _ = quiet(following={"threshold_rad": 0.05})
    feed(w2, T0, T0 + 1.0, target, lambda t: np.minimum(target(t), 0.2))  # hits an obstacle at 0.2 rad
    v = w2.check(T0 + 1.0)
    assert names(v.trips) == [("following", "shoulder_pan", "safe_stop")]


def test_gripper_excluded_by_default_and_has_its_own_threshold() -> None:
    squeeze = np.array([0, 0, 0, 0, 0, 1.0])
    w, _ = quiet(following={})
    feed(w, T0, T0 + 1.0, squeeze, ZERO)
    assert w.check(T0 + 1.0).ok
    w2, _ = quiet(following={"gripper_threshold_rad": 0.8})
    feed(w2, T0, T0 + 1.0, squeeze * 0.7, ZERO)
    assert w2.check(T0 + 1.0).ok
    feed(w2, T0 + 1.01, T0 + 2.0, squeeze, ZERO)
    assert names(w2.check(T0 + 2.0).trips) == [("following", "gripper", "safe_stop")]


def test_following_needs_a_command_older_than_lag() -> None:
    w, _ = quiet(following={"grace_s": 0.0, "lag_s": 0.5})
    far = np.full(6, 1.0)
    feed(w, T0, T0 + 0.49, far, ZERO)
    assert w.check(T0 + 0.49).ok
    feed(w, T0 + 0.5, T0 + 0.51, far, ZERO)
    assert w.check(T0 + 0.51).reaction == "safe_stop"


def test_following_rejects_mismatched_shapes() -> None:
    w, _ = quiet(following={})
    with pytest.raises(ValueError, match="targets"):
        w.command(T0, np.zeros(6), np.zeros(5))


# ---- loop lag ----------------------------------------------------------------------------------------
def test_loop_lag_trips_over_deadline_clears_and_escalates() -> None:
    w, _ = quiet(loop_lag={})
    w.loop_lag(T0, 0.049)
    assert w.check(T0).ok
    w.loop_lag(T0 + 0.01, 0.12)
    v = w.check(T0 + 0.01)
    assert names(v.new) == [("loop_lag", "", "hold")] and "120 ms late" in v.new[0].detail
    w.loop_lag(T0 + 0.02, 0.001)
    assert w.check(T0 + 0.02).ok
    for k in range(3, 200):
        w.loop_lag(T0 + 0.01 * k, 0.06)
    assert w.check(T0 + 1.03 - EPS).reaction == "hold"  # since T0 + 0.03
    assert w.check(T0 + 1.03 + EPS).reaction == "safe_stop"


def test_a_lag_spike_between_checks_is_reported_once() -> None:
    w, _ = quiet(loop_lag={})
    w.loop_lag(T0, 0.1)
    w.loop_lag(T0 + 0.01, 0.0)
    v = w.check(T0 + 0.01)
    assert v.reaction == "hold" and len(v.new) == 1
    assert w.check(T0 + 0.02).ok


# ---- all together ------------------------------------------------------------------------------------
def everything_wrong(w: Watchdogs) -> Verdict:
    w.set_cameras(["front"])
    w.set_policy_driving(True)
    w.policy_error("boom")
    for k in range(5):
        w.bus_failed(T0 + 0.01 * k, "x")
    w.servo_faults(T0, {i: F(0x1FF) for i in range(6)})
    feed(w, T0, T0 + 1.0, np.ones(6), ZERO)
    w.loop_lag(T0 + 1.0, 1.0)
    return w.check(T0 + 100.0)


def test_disabled_watchdogs_never_trip() -> None:
    w, _ = quiet()
    v = everything_wrong(w)
    assert v.ok and v.trips == [] and v.new == []


def test_everything_wrong_trips_every_watchdog_and_new_is_reported_once() -> None:
    w, _ = make()
    v = everything_wrong(w)
    assert v.reaction == "safe_stop"
    assert {t.name for t in v.trips} == {"camera", "policy", "policy_error", "bus", "servo_faults", "following",
                                         "loop_lag"}
    assert all(t.reaction == "safe_stop" for t in v.trips)  # 100 s: every hold escalated
    assert len(v.new) == len(v.trips)
    assert w.check(T0 + 100.0).new == []


@pytest.mark.parametrize("name", ["camera", "policy", "bus", "servo_faults", "following", "loop_lag"])
def test_each_watchdog_alone(name: str) -> None:
    w, _ = quiet(**{name: {}})
    v = everything_wrong(w)
    tripped = {t.name for t in v.trips}
    assert tripped == ({"policy", "policy_error"} if name == "policy" else {name})


def test_hold_is_the_verdict_when_only_holds_trip_and_safe_stop_wins() -> None:
    w, _ = quiet(loop_lag={}, servo_faults={})
    w.loop_lag(T0, 0.2)
    assert w.check(T0).reaction == "hold"
    w.servo_faults(T0, {0: F.VOLTAGE})
    v = w.check(T0)
    assert v.reaction == "safe_stop" and v.trips[0].reaction == "safe_stop"  # safe_stop trips first


# ---- config ------------------------------------------------------------------------------------------
class _Run(BaseModel):
    model_config = ConfigDict(extra="forbid")
    watchdogs: WatchdogConfig = Field(default_factory=WatchdogConfig)


def test_defaults() -> None:
    c = WatchdogConfig()
    assert (c.camera.deadline_s, c.camera.reaction, c.camera.escalate_after_s) == (0.5, "hold", 5.0)
    assert (c.policy.deadline_s, c.policy.escalate_after_s) == (0.5, 10.0)
    assert (c.bus.max_failed_ticks, c.bus.deadline_s, c.bus.reaction) == (3, 0.1, "safe_stop")
    sf = c.servo_faults
    assert (sf.overload, sf.overcurrent, sf.overheat, sf.escalate_after_s) == ("hold", "hold", "safe_stop", 1.0)
    assert (c.following.threshold_rad, c.following.grace_s, c.following.gripper_threshold_rad) == (0.3, 0.25, None)
    assert (c.loop_lag.deadline_s, c.loop_lag.escalate_after_s) == (0.05, 1.0)


@pytest.mark.parametrize(("values", "needles"), [
    ({"camera": {"reaction": "explode"}}, ["--watchdogs.camera.reaction", "'hold'", "'safe_stop'", "'explode'"]),
    ({"servo_faults": {"overheat": "panic"}},
     ["--watchdogs.servo-faults.overheat", "'hold'", "'safe_stop'", "'ignore'"]),
    ({"bus": {"deadline_s": -1}}, ["--watchdogs.bus.deadline-s", "greater than 0"]),
    ({"bus": {"max_failed_ticks": 0}}, ["--watchdogs.bus.max-failed-ticks", "greater than or equal to 1"]),
    ({"following": {"grace_s": -0.1}}, ["--watchdogs.following.grace-s"]),
    ({"camera": {"deadline": 1}}, ["--watchdogs.camera.deadline", "Extra inputs are not permitted"]),
    ({"loop_lag": {"escalate_after_s": 0}}, ["--watchdogs.loop-lag.escalate-after-s", "greater than 0"]),
])
def test_config_errors_name_the_flag_and_the_allowed_values(values: dict, needles: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        build(_Run, {"watchdogs": values})
    for needle in needles:
        assert needle in str(err.value)


def test_config_accepts_good_values() -> None:
    run = build(_Run, {"watchdogs": {"camera": {"reaction": "safe_stop"}, "following": {"gripper_threshold_rad": 0.9}}})
    assert run.watchdogs.camera.reaction == "safe_stop" and run.watchdogs.following.gripper_threshold_rad == 0.9


# ---- loop-lag monitor --------------------------------------------------------------------------------
async def test_monitor_reports_lateness_on_a_fake_clock() -> None:
    clock = FakeClock(T0)
    got: list[tuple[float, float]] = []
    mon = LoopLagMonitor(lambda t, lag: got.append((t, lag)), period=0.01, clock=clock)
    task = mon.start()
    await asyncio.sleep(0)
    clock.advance(0.01)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    clock.advance(0.04)  # the next wake was due at T0+0.02: 30 ms late
    for _ in range(3):
        await asyncio.sleep(0)
    task.cancel()
    assert [round(lag, 6) for _, lag in got] == [0.0, 0.03]
    assert got[-1][0] == pytest.approx(T0 + 0.05)
    assert mon.max_lag == pytest.approx(0.03) and mon.last_lag == pytest.approx(0.03) and mon.samples == 2


async def test_monitor_survives_a_failing_callback() -> None:
    clock = FakeClock(T0)
    mon = LoopLagMonitor(lambda t, lag: 1 / 0, period=0.01, clock=clock)
    task = mon.start()
    await asyncio.sleep(0)
    await clock.run_for(0.05, step=0.01)
    assert mon.samples >= 3 and not task.done()
    task.cancel()


def test_monitor_rejects_a_bad_period() -> None:
    with pytest.raises(ValueError, match="period"):
        LoopLagMonitor(period=0)


async def test_monitor_sees_a_real_blocked_loop_and_the_watchdog_holds() -> None:
    w = Watchdogs(WatchdogConfig(bus={"enabled": False}))
    lags: list[float] = []

    def report(t: float, lag: float) -> None:
        lags.append(lag)
        w.loop_lag(t, lag)

    task = LoopLagMonitor(report, period=0.01).start()
    await asyncio.sleep(0.05)

    async def blocker() -> None:
        time.sleep(0.1)  # what a forgotten blocking call on the loop does

    await asyncio.create_task(blocker())
    await asyncio.sleep(0.03)
    task.cancel()
    assert max(lags) >= 0.08
    assert min(lags) < 0.08
    v = w.check()
    assert any(t.name == "loop_lag" for t in v.new)
