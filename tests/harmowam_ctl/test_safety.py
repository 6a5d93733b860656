"""SafetyFilter: limits, velocity, acceleration, distance to present, start-up, NaN, stall; and the whole
tick chain buffer -> arbiter -> safety over a simulated second with a human take-over and hand-back."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from harmowam_ctl.arbiter import Arbiter, ArbiterConfig
from harmowam_ctl.buffer import ActionBuffer, BufferConfig
from harmowam_ctl.safety import FLAGS, SafetyConfig, SafetyFilter
from harmowam_ctl.types import ActionChunk, Source
from hardware.arms import KOCH, SO101

T = 1000.0
DT = 0.01
CFG = SafetyConfig()
LO, HI = np.array(CFG.lower_rad), np.array(CFG.upper_rad)
VMAX, AMAX = np.array(CFG.max_velocity_rad_s), np.array(CFG.max_accel_rad_s2)
MID = (LO + HI) / 2
TOL = 1e-9


def started(present=MID, config: SafetyConfig | None = None) -> SafetyFilter:
    f = SafetyFilter(config)
    f.reset(np.asarray(present, dtype=float), T)
    return f


# ------------------------------------------------------------------------------------------ config
def test_for_arm_intersects_profile_and_calibration_with_margin():
    cal = [(-1.0, 1.0), (-3.0, 3.0), (0.5, -0.5), None, (-2.0, 2.0), (0.0, 1.0)]
    c = SafetyConfig.for_arm(SO101, margin_rad=0.05, calibration_limits=cal)
    assert c.lower_rad[0] == pytest.approx(-0.95) and c.upper_rad[0] == pytest.approx(0.95)
    assert c.lower_rad[1] == pytest.approx(-1.745 + 0.05)  # profile narrower than calibration
    assert c.lower_rad[2] == pytest.approx(-0.45) and c.upper_rad[2] == pytest.approx(0.45)  # pair order free
    assert c.upper_rad[3] == pytest.approx(1.658 - 0.05)  # None: profile only
    assert c.lower_rad[5] == pytest.approx(0.05)
    by_name = SafetyConfig.for_arm(KOCH, calibration_limits={"gripper": (0.0, 1.0)}, stall_load=0.5)
    assert by_name.upper_rad[5] == pytest.approx(0.98) and by_name.lower_rad[0] == pytest.approx(-1.55)
    assert by_name.stall_load == 0.5
    assert np.allclose(SafetyConfig().lower_rad, SafetyConfig.for_arm(SO101).lower_rad)


def test_config_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="unknown joints"):
        SafetyConfig.for_arm(SO101, calibration_limits={"elbow": (0, 1)})
    with pytest.raises(ValueError, match="6"):
        SafetyConfig.for_arm(SO101, calibration_limits=[(0, 1)])
    with pytest.raises(ValidationError, match="must be below upper limit"):
        SafetyConfig.for_arm(SO101, margin_rad=2.0)
    with pytest.raises(ValidationError, match="shoulder_pan"):
        SafetyConfig(max_velocity_rad_s=(1.0, 2.0))
    with pytest.raises(ValidationError, match="> 0"):
        SafetyConfig(max_accel_rad_s2=-1.0)
    with pytest.raises(ValidationError):
        SafetyConfig(max_velocity=1.0)  # unknown field
    assert SafetyConfig(max_velocity_rad_s=2.0).max_velocity_rad_s == (2.0,) * 6


# ---------------------------------------------------------------------------------------- start-up
def test_first_output_is_the_present_position():
    present = MID + 0.3
    f = started(present)
    r = f.apply(HI, present, None, T)  # dt = 0: nothing may move
    assert np.array_equal(r.targets, present)
    r = f.apply(HI, present, None, T + DT)  # then it starts from rest, accelerating
    assert np.all(np.abs(r.targets - present) <= AMAX * DT * DT + TOL)


def test_apply_before_reset_and_bad_reset():
    with pytest.raises(RuntimeError, match="reset"):
        SafetyFilter().apply(MID, MID, None, T)
    with pytest.raises(ValueError, match="read the arm again"):
        SafetyFilter().reset([0.0, np.nan, 0, 0, 0, 0], T)
    with pytest.raises(ValueError):
        SafetyFilter().reset(np.zeros(5), T)


def test_present_outside_limits_is_approached_without_a_jump():
    present = MID.copy()
    present[1] = HI[1] + 0.3  # shoulder_lift sits 0.3 rad beyond its upper limit
    present[2] = LO[2] - 0.05
    f = started(present)
    out = f.apply(MID, present, None, T).targets
    assert np.array_equal(out, present)
    inside_at = None
    for k in range(1, 200):
        prev = out
        out = f.apply(MID, present, None, T + k * DT).targets  # the arm does not even follow
        assert np.all(np.abs(out - prev) <= VMAX * DT + TOL)
        assert out[1] <= prev[1] + TOL and out[2] >= prev[2] - TOL  # never further out
        if inside_at is None and np.all((out >= LO) & (out <= HI)):
            inside_at = k
        if inside_at is not None:
            assert np.all((out >= LO - TOL) & (out <= HI + TOL))  # once inside, stays inside
    assert inside_at is not None
    # 0.3 rad at <= 1.5 rad/s with the acceleration ramp takes more than 0.2 s, less than 0.5 s
    assert 20 <= inside_at <= 50


# --------------------------------------------------------------------------------- single behaviours
def test_step_target_accelerates_brakes_and_stops_without_overshoot():
    f = started(MID)
    goal = MID.copy()
    goal[0] += 0.5
    goal[5] += 0.5
    out, v_prev, peak = MID.copy(), np.zeros(6), 0.0
    for k in range(1, 150):
        r = f.apply(goal, out, None, T + k * DT)  # present = last command (an ideal servo)
        v = (r.targets - out) / DT
        assert np.all(np.abs(v - v_prev) <= AMAX * DT + 1e-6)
        assert np.all(np.abs(v) <= VMAX + 1e-6)
        assert np.all(r.targets <= goal + TOL)  # no overshoot
        peak = max(peak, float(v[0]))
        out, v_prev = r.targets, v
    assert np.allclose(out, goal)
    assert peak == pytest.approx(VMAX[0], rel=1e-6)  # cruises at the speed limit


def test_late_tick_cannot_license_a_big_step():
    f = started(MID)
    out = f.apply(MID + 1.0, MID, None, T + 0.01).targets
    for k in range(2, 40):  # get up to speed
        out = f.apply(MID + 1.0, out, None, T + k * 0.01).targets
    r = f.apply(MID + 1.0, out, None, T + 1.39 + 5.0)  # a 5 s stall of the loop
    assert np.all(np.abs(r.targets - out) <= VMAX * CFG.max_dt_s + TOL)


def test_time_going_back_moves_nothing():
    f = started(MID)
    a = f.apply(MID + 0.2, MID, None, T + 0.05).targets
    b = f.apply(MID + 0.2, MID, None, T + 0.01)
    assert np.array_equal(a, b.targets)


@pytest.mark.parametrize(
    "target",
    [np.full(6, np.nan), np.array([np.nan] * 5 + [-np.inf]), np.zeros(5), None, "garbage", [[0.0] * 6]],
)
def test_bad_target_never_reaches_the_output(target):
    f = started(MID)
    r = f.apply(target, MID, None, T + DT)
    assert "nan" in r.flags
    assert np.all(np.isfinite(r.targets))
    assert np.allclose(r.targets, MID)  # at rest: the previous command is held


def test_nan_entries_hold_only_those_joints_and_bad_present_is_survived():
    f = started(MID)
    target = MID + 0.1
    target[3] = np.nan
    for k in range(1, 50):
        r = f.apply(target, MID, np.full(6, np.nan), T + k * DT)
    assert r.targets[3] == MID[3] and r.targets[0] > MID[0]
    r = f.apply(MID, [np.nan] * 6, None, T + 0.6)
    assert "nan" in r.flags and np.all(np.isfinite(r.targets))
    r = f.apply(MID, None, None, float("nan"))
    assert "nan" in r.flags and np.all(np.isfinite(r.targets))


def test_targets_outside_limits_and_far_from_present_are_flagged():
    f = started(MID)
    r = f.apply(HI + 5.0, MID, None, T + DT)
    assert {"limit", "distance"} <= r.flags
    present = MID.copy()
    out = r.targets
    for k in range(2, 300):  # the arm is blocked at MID: the command stops max_step_from_present away
        out = f.apply(HI + 5.0, present, None, T + k * DT).targets
        assert np.all(out <= present + CFG.max_step_from_present_rad + TOL)
    assert np.allclose(out, np.minimum(present + CFG.max_step_from_present_rad, HI))
    assert r.flags <= FLAGS


def test_command_chases_an_arm_pushed_away_at_the_velocity_limit():
    f = started(MID)
    for k in range(1, 10):
        f.apply(MID, MID, None, T + k * DT)  # at rest on the target
    pushed = MID.copy()
    pushed[2] += 0.8  # someone shoves the elbow 0.8 rad away; the target stays where it was
    out = f.command
    d = CFG.max_step_from_present_rad
    for k in range(10, 40):
        r = f.apply(MID, pushed, None, T + k * DT)
        gap_before, gap = abs(out[2] - pushed[2]), abs(r.targets[2] - pushed[2])
        if gap_before > d:  # too far from the measured position: close in at full speed, not accelerating
            assert gap == pytest.approx(max(d, gap_before - VMAX[2] * DT))
            assert "distance" in r.flags
            if k == 10:
                assert r.braked  # from rest to full speed at once: the acceleration limit yields
        else:
            assert gap <= d + TOL
        out = r.targets


# ------------------------------------------------------------------------------------------ stall
def grip_run(f: SafetyFilter, t: float, target: np.ndarray, present: np.ndarray, load: float, ticks: int):
    loads = np.zeros(6)
    loads[5] = load
    results = []
    for _ in range(ticks):
        t += DT
        results.append(f.apply(target, present, loads, t))
    return t, results


def test_gripper_stall_opens_slightly_then_holds_until_released():
    present = MID.copy()
    present[5] = 0.3  # the gripper is blocked on an object at 0.3 rad
    f = started(present)
    closed = present.copy()
    closed[5] = 0.1  # asked to close further
    t, rs = grip_run(f, T, closed, present, 0.0, 20)  # no load yet: the command presses down
    assert rs[-1].targets[5] < 0.3 and "stall" not in rs[-1].flags
    t, rs = grip_run(f, t, closed, present, -0.8, 25)  # loaded (any sign) for 0.25 s: not yet
    assert not any("stall" in r.flags for r in rs)
    t, rs = grip_run(f, t, closed, present, -0.8, 10)  # past 0.3 s: stall
    assert "stall" in rs[-1].flags and f.stall_active
    t, rs = grip_run(f, t, closed, present, 0.0, 30)
    assert rs[-1].targets[5] == pytest.approx(0.3 + CFG.stall_open_rad)  # present + 0.1, held
    assert all("stall" in r.flags for r in rs)
    opened = present.copy()
    opened[5] = 0.6  # the request opens past the hold point: released
    t, rs = grip_run(f, t, opened, present, 0.0, 1)
    assert not f.stall_active and "stall" not in rs[-1].flags


def test_gripper_stall_released_after_release_time():
    cfg = SafetyConfig(stall_release_s=0.5, stall_time_s=0.1)
    present = MID.copy()
    present[5] = 0.3
    closed = present.copy()
    closed[5] = 0.0
    f = started(present, cfg)
    t, _ = grip_run(f, T, closed, present, 0.0, 10)
    t, rs = grip_run(f, t, closed, present, 0.9, 12)
    assert f.stall_active
    t, rs = grip_run(f, t, closed, present, 0.9, 45)
    assert f.stall_active  # still within 0.5 s
    t, rs = grip_run(f, t, closed, present, 0.0, 10)
    assert not f.stall_active and rs[-1].targets[5] < 0.4  # released: closing again


def test_no_stall_when_pushing_open_or_when_disabled():
    present = MID.copy()
    present[5] = 0.3
    opening = present.copy()
    opening[5] = 1.0
    f = started(present)
    _, rs = grip_run(f, T, opening, present, 0.9, 80)
    assert not any("stall" in r.flags for r in rs)
    closed = present.copy()
    closed[5] = 0.0
    f = started(present, SafetyConfig(gripper_index=None))
    _, rs = grip_run(f, T, closed, present, 0.9, 80)
    assert not any("stall" in r.flags for r in rs)


# ------------------------------------------------------------------------- property: the guarantees
@st.composite
def scenarios(draw):
    n = draw(st.integers(5, 60))
    span = HI - LO
    start = LO + np.array(draw(st.lists(st.floats(-0.3, 1.3), min_size=6, max_size=6))) * span
    ticks = []
    for _ in range(n):
        dt = draw(st.sampled_from([0.0, 0.001, 0.01, 0.01, 0.01, 0.02, 0.05, 0.5]))
        kind = draw(st.sampled_from(["random", "far", "near", "nan"]))
        if kind == "random":
            target = LO + np.array(draw(st.lists(st.floats(-1.0, 2.0), min_size=6, max_size=6))) * span
        elif kind == "far":
            target = np.array(draw(st.lists(st.sampled_from([-50.0, 50.0, 0.0]), min_size=6, max_size=6)))
        elif kind == "near":
            target = None  # the previous output plus a small offset, filled in the test
        else:
            target = np.array([np.nan, 0, np.inf, 0, 0, 0])
        jitter = np.array(draw(st.lists(st.floats(-0.05, 0.05), min_size=6, max_size=6)))
        random_present = draw(st.booleans())
        loads = np.array(draw(st.lists(st.floats(-1.0, 1.0), min_size=6, max_size=6)))
        ticks.append((dt, target, jitter, random_present, loads))
    return start, ticks


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sc=scenarios())
def test_guarantees_hold_for_any_input(sc):
    start, ticks = sc
    f = started(start)
    t = T
    out = f.apply(start, start, None, t).targets
    assert np.array_equal(out, start)  # start-up: exactly the present position
    v_prev = np.zeros(6)
    span = HI - LO
    for dt, target, jitter, random_present, loads in ticks:
        t += dt
        if target is None:
            target = out + jitter
        if random_present:
            present = LO + (jitter * 20 + 0.5) * span * 1.4 - 0.2 * span  # anywhere, also outside the limits
        else:
            present = out + jitter  # a servo roughly following
        r = f.apply(target, present, loads, t)
        new = r.targets
        dt_eff = min(dt, CFG.max_dt_s)
        assert new.shape == (6,) and np.all(np.isfinite(new))
        assert r.flags <= FLAGS
        # velocity: always
        assert np.all(np.abs(new - out) <= VMAX * dt_eff + TOL)
        # limits: inside stays inside; outside (start-up only) never moves further out
        inside = (out >= LO) & (out <= HI)
        assert np.all((new[inside] >= LO[inside] - TOL) & (new[inside] <= HI[inside] + TOL))
        above, below = out > HI, out < LO
        assert np.all(new[above] <= out[above] + TOL) and np.all(new[below] >= out[below] - TOL)
        if dt_eff > 0:
            v = (new - out) / dt_eff
            if not r.braked:  # acceleration: limited unless a hard clamp had to brake
                assert np.all(np.abs(v - v_prev) <= AMAX * dt_eff + 1e-6)
            v_prev = v
        else:
            assert np.array_equal(new, out)
        out = new


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    targets=st.lists(st.lists(st.floats(-3.0, 3.0), min_size=6, max_size=6), min_size=5, max_size=80),
    offset=st.lists(st.floats(-0.5, 0.5), min_size=6, max_size=6),
)
def test_blocked_arm_never_gets_a_command_beyond_max_step(targets, offset):
    """The arm is stuck (present does not move) and the targets jump anywhere: the command never goes
    further than max_step_from_present_rad from the measured position, and stays within the limits."""
    present = np.clip(MID + np.array(offset), LO, HI)
    f = started(present)
    d = CFG.max_step_from_present_rad
    for k, tg in enumerate(targets, start=1):
        out = f.apply(np.array(tg), present, None, T + k * DT).targets
        assert np.all(np.abs(out - present) <= d + TOL)
        assert np.all((out >= LO - TOL) & (out <= HI + TOL))


# --------------------------------------------------------- the chain: buffer -> arbiter -> safety
def test_chain_one_second_with_human_takeover_and_handback():
    """100 Hz ticks for 1 s. The policy sends a 20-step chunk every 0.1 s (observed 20 ms before it
    arrives). A human grabs the leader at 0.3 s, far from where the follower is, and lets go at 0.7 s;
    the runtime then clears the buffer (re-plan) and the policy starts again from the present position."""
    rng = np.random.default_rng(7)
    buf = ActionBuffer(BufferConfig(crossfade_s=0.1))
    arb = Arbiter(ArbiterConfig(ramp_s=0.3))
    safety = SafetyFilter()
    present = MID + np.array([0.2, -0.3, 0.4, 0.1, -0.2, 0.1])
    buf_t0 = T

    def policy_plan(t_obs: float, from_pos: np.ndarray, h: int = 20, dt: float = 0.02) -> ActionChunk:
        k = np.arange(h)[:, None]
        wobble = 0.15 * np.sin(3.0 * (t_obs - T + k * dt) + np.arange(6)) + rng.normal(0, 0.01, (1, 6))
        actions = np.clip(from_pos + 0.5 * k * dt + wobble - wobble[0], LO - 0.5, HI + 0.5)  # may exceed limits
        return ActionChunk(t0=t_obs, dt=dt, actions=actions, t_obs=t_obs)

    def leader(t: float) -> np.ndarray:
        return np.array([-1.0, 1.2, -1.0, 0.8, 1.5, 1.6]) + 0.3 * np.sin(4.0 * (t - T))  # far away, moving

    safety.reset(present, T)
    arb.reset(present, T)
    prev_out = None
    sources = []
    human_was_active = False
    vel = np.zeros(6)
    for k in range(101):
        now = T + k * DT
        human_active = 0.3 <= now - T < 0.7
        if human_was_active and not human_active:
            buf.clear(not_before=now)  # hand-back: re-plan from the present state
            buf_t0 = now
        human_was_active = human_active
        if k % 10 == 3 and now - buf_t0 >= 0.02:  # a chunk arrives, observed 20 ms ago
            buf.add(policy_plan(now - 0.02, present), now)
        d = arb.update(now, present, policy_target=buf.sample(now),
                       human_target=leader(now) if human_active else None, human_active=human_active)
        r = safety.apply(d.target, present, np.zeros(6), now)
        out = r.targets
        sources.append((d.source, d.changed))
        if prev_out is None:
            assert np.array_equal(out, present)  # no jump at start-up
        else:
            assert np.all(np.abs(out - prev_out) <= VMAX * DT + TOL)  # velocity, including every hand-over
            v = (out - prev_out) / DT
            if not r.braked:
                assert np.all(np.abs(v - vel) <= AMAX * DT + 1e-6)
            vel = v
        assert np.all((out >= LO - TOL) & (out <= HI + TOL))
        if d.changed and prev_out is not None:
            assert np.allclose(d.target, arb_prev)  # the arbiter's own output does not jump at a switch
        arb_prev = d.target
        prev_out = out
        present = present + 0.6 * (out - present)  # a servo following with a lag
    changes = [s for s, c in sources if c]
    assert changes == [Source.HOLD, Source.POLICY, Source.HUMAN, Source.HOLD, Source.POLICY]
    assert sources[35][0] is Source.HUMAN and sources[95][0] is Source.POLICY
    assert buf.refused_old == 0 and buf.added >= 6
