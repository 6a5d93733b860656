"""KinematicMotion: trapezoidal profiles, exact under any time partition, torque off, a hand on a joint.

Pure: time is passed in explicitly, nothing sleeps.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.emulator import KinematicMotion, MotionModel


def run(m: KinematicMotion, t_end: float, dt: float = 0.001, t0: float = 0.0) -> list[tuple[float, float, float]]:
    """Advance from t0 to t_end in steps of dt, recording (t, pos, vel) of joint 0."""
    out = []
    n = int(round((t_end - t0) / dt))
    for k in range(1, n + 1):
        t = t0 + k * dt
        m.advance_to(t)
        pos, vel, _ = m.state(0)
        out.append((t, pos, vel))
    return out


def test_is_a_motion_model():
    assert isinstance(KinematicMotion([0.0]), MotionModel)


def test_trapezoid_reaches_goal_in_the_textbook_time():
    m = KinematicMotion([0.0], t0=0.0)
    m.command(0, 3000.0, True, 1000.0, 5000.0)
    trace = run(m, 4.0)
    # accel 0.2 s (100 ticks), cruise 2.8 s, decel 0.2 s: arrives at 3.2 s
    arrived = next(t for t, p, v in trace if p == 3000.0 and v == 0.0)
    assert arrived == pytest.approx(3.2, abs=0.002)
    assert max(v for _, _, v in trace) == pytest.approx(1000.0, rel=1e-9)
    assert all(p <= 3000.0 + 1e-9 for _, p, _ in trace), "overshoot"
    # mid-cruise: position is linear in time
    t, p, v = trace[1499]  # t = 1.5 s
    assert p == pytest.approx(100.0 + 1000.0 * (1.5 - 0.2), abs=1e-6)
    # accelerations never exceed the limit
    vels = [v for _, _, v in trace]
    assert max(abs(b - a) for a, b in zip(vels, vels[1:])) <= 5000.0 * 0.001 + 1e-6


def test_short_move_is_a_triangle():
    m = KinematicMotion([1000.0], t0=0.0)
    m.command(0, 900.0, True, 3000.0, 5000.0)
    trace = run(m, 0.5)
    arrived = next(t for t, p, v in trace if p == 900.0 and v == 0.0)
    assert arrived == pytest.approx(2 * math.sqrt(100.0 / 5000.0), abs=0.002)
    peak = min(v for _, _, v in trace)
    assert peak == pytest.approx(-math.sqrt(100.0 * 5000.0), rel=0.01)  # never reaches vmax


def test_one_big_step_equals_many_small_ones():
    a, b = KinematicMotion([0.0], t0=0.0), KinematicMotion([0.0], t0=0.0)
    for m in (a, b):
        m.command(0, 2500.0, True, 1200.0, 4000.0)
    run(a, 1.3, dt=0.0005)
    b.advance_to(1.3)
    assert a.state(0)[0] == pytest.approx(b.state(0)[0], abs=1e-6)
    assert a.state(0)[1] == pytest.approx(b.state(0)[1], abs=1e-6)


def test_goal_reversal_mid_move_brakes_and_comes_back():
    m = KinematicMotion([0.0], t0=0.0)
    m.command(0, 4000.0, True, 2000.0, 4000.0)
    m.advance_to(0.6)
    pos, vel, _ = m.state(0)
    assert vel == pytest.approx(2000.0)
    m.command(0, pos, True, 2000.0, 4000.0)  # stop here
    m.advance_to(0.7)
    assert m.state(0)[0] > pos  # it cannot stop instantly: it overshoots
    m.advance_to(5.0)
    assert m.state(0)[:2] == (pos, 0.0)


def test_torque_off_stays_and_hand_moves_it():
    m = KinematicMotion([2048.0], t0=0.0)
    m.command(0, 3000.0, False, 3000.0, 20000.0)
    m.advance_to(1.0)
    assert m.state(0) == (2048.0, 0.0, 0.0)
    m.move_by_hand(0, -300.0)
    m.advance_to(m.time + 1.0)
    assert m.state(0)[0] == 1748.0


def test_torque_on_pulls_a_displaced_joint_back():
    m = KinematicMotion([2048.0], t0=0.0)
    m.command(0, 2048.0, True, 3000.0, 20000.0)
    m.move_by_hand(0, 400.0)  # uses the real clock for "now"
    t = m.time
    pos, _, load = m.state(0)
    assert pos == 2448.0
    m.advance_to(t + 0.01)
    pos2, vel, load = m.state(0)
    assert 2048.0 < pos2 < 2448.0 and vel < 0
    assert -1.0 <= load < 0  # pushing back toward the goal
    m.advance_to(t + 2.0)
    assert m.state(0)[:2] == (2048.0, 0.0)


def test_unlimited_acceleration_moves_at_speed():
    m = KinematicMotion([0.0], t0=0.0)
    m.command(0, 100.0, True, 1000.0, math.inf)
    m.advance_to(0.05)
    assert m.state(0)[0] == pytest.approx(50.0)
    m.advance_to(1.0)
    assert m.state(0)[:2] == (100.0, 0.0)


def test_time_never_runs_backwards():
    m = KinematicMotion([0.0], t0=10.0)
    m.command(0, 1000.0, True, 1000.0, 10000.0)
    m.advance_to(10.5)
    p = m.state(0)[0]
    m.advance_to(10.2)
    assert m.state(0)[0] == p


@settings(max_examples=150, deadline=None)
@given(
    start=st.floats(-5000, 5000),
    goals=st.lists(st.floats(-5000, 5000), min_size=1, max_size=4),
    vmax=st.floats(50, 8000),
    amax=st.floats(100, 100000),
    steps=st.lists(st.floats(1e-5, 0.3), min_size=1, max_size=30),
)
def test_property_limits_respected_and_goal_reached(start, goals, vmax, amax, steps):
    m = KinematicMotion([start], t0=0.0)
    t = 0.0
    for g in goals:
        m.command(0, g, True, vmax, amax)
        prev_v = m.state(0)[1]
        for dt in steps:
            t += dt
            m.advance_to(t)
            pos, vel, load = m.state(0)
            assert abs(vel) <= max(vmax, abs(prev_v)) * (1 + 1e-9) + 1e-6
            assert -1.0 <= load <= 1.0
            assert math.isfinite(pos)
    # long enough to finish any move from anywhere
    t += 20000.0 / vmax + 4 * vmax / amax + 1.0
    m.advance_to(t)
    assert m.state(0)[0] == pytest.approx(goals[-1], abs=1e-3)
    assert m.state(0)[1] == 0.0
