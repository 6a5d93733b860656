"""Arbiter: priorities, reasons, frozen hold, bumpless ramps at every switch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from harmowam_ctl.arbiter import Arbiter, ArbiterConfig
from harmowam_ctl.buffer import smoothstep
from harmowam_ctl.types import Source

T = 1000.0
P0 = np.array([0.1, -0.2, 0.3, 0.0, 0.5, 0.2])
A = np.full(6, 0.4)
B = np.full(6, -0.4)


def arb(ramp_s: float = 0.5) -> Arbiter:
    a = Arbiter(ArbiterConfig(ramp_s=ramp_s))
    a.reset(P0, T)
    return a


@pytest.mark.parametrize(
    ("hold", "human_active", "human", "policy", "source", "reason"),
    [
        ("watchdog: stale frame", True, A, B, Source.HOLD, "watchdog: stale frame"),
        ("", False, None, B, Source.HOLD, "hold requested"),
        (None, True, A, B, Source.HUMAN, "human teleoperation"),
        (None, False, A, B, Source.POLICY, "policy"),  # a leader reading without the human active is ignored
        (None, True, None, B, Source.HOLD, "human active but no leader reading"),
        (None, False, None, None, Source.HOLD, "no policy output"),
        (None, False, None, np.array([0, 0, np.nan, 0, 0, 0]), Source.HOLD, "no policy output"),
        (None, False, None, np.zeros(5), Source.HOLD, "no policy output"),
        (None, True, np.full(6, np.inf), B, Source.HOLD, "human active but no leader reading"),
    ],
)
def test_priorities_and_reasons(hold, human_active, human, policy, source, reason):
    a = arb()
    d = a.update(T, P0, policy_target=policy, human_target=human, human_active=human_active, hold=hold)
    assert d.source is source
    assert d.reason == reason
    assert d.changed and d.previous is None  # the first decision after reset
    assert np.allclose(d.target, P0)  # a first decision starts from the present position: no jump
    assert np.all(np.isfinite(d.target))


def test_ramp_reaches_the_new_source_smoothly():
    a = arb(ramp_s=0.5)
    d0 = a.update(T, P0, policy_target=A, human_target=None, human_active=False)
    assert d0.source is Source.POLICY and np.allclose(d0.target, P0) and d0.blend == 0.0
    d1 = a.update(T + 0.25, P0, policy_target=A, human_target=None, human_active=False)
    assert not d1.changed and d1.previous is None
    assert np.allclose(d1.target, P0 + smoothstep(0.5) * (A - P0))
    d2 = a.update(T + 0.5, P0, policy_target=A, human_target=None, human_active=False)
    assert np.allclose(d2.target, A) and d2.blend == 1.0
    d3 = a.update(T + 0.51, P0, policy_target=B, human_target=None, human_active=False)
    assert np.allclose(d3.target, B)  # no ramp without a change of source


def test_hold_freezes_the_last_output_not_the_sagging_present():
    a = arb(ramp_s=0.0)
    a.update(T, P0, policy_target=A, human_target=None, human_active=False)
    sag = A - 0.05
    d = a.update(T + 0.01, sag, policy_target=None, human_target=None, human_active=False)
    assert d.source is Source.HOLD and d.changed and d.previous is Source.POLICY
    for k in range(2, 50):
        sag = sag - 0.01  # gravity pulls the arm down while holding
        d = a.update(T + 0.01 * k, sag, policy_target=None, human_target=None, human_active=False,
                     hold="watchdog: policy stalled" if k > 20 else None)
        assert np.array_equal(d.target, A)
        assert d.source is Source.HOLD
        assert d.changed is False  # a new hold reason is not a new source
    assert d.reason == "watchdog: policy stalled"


def test_hold_without_any_output_uses_present():
    a = Arbiter()
    d = a.update(T, P0, policy_target=None, human_target=None, human_active=False)
    assert d.source is Source.HOLD and np.allclose(d.target, P0)
    with pytest.raises(ValueError, match="reset"):
        Arbiter().update(T, [np.nan] * 6, policy_target=None, human_target=None, human_active=False)


def test_hold_during_a_ramp_freezes_at_the_blended_output():
    a = arb(ramp_s=0.5)
    a.update(T, P0, policy_target=A, human_target=None, human_active=False)
    mid = a.update(T + 0.2, P0, policy_target=A, human_target=None, human_active=False).target
    d = a.update(T + 0.21, P0, policy_target=A, human_target=None, human_active=False, hold="user pressed space")
    assert np.array_equal(d.target, mid) and d.reason == "user pressed space"


def test_human_takeover_and_handback_report_changes():
    a = arb(ramp_s=0.2)
    seq = [
        (False, None, A, Source.POLICY, None),
        (False, None, A, None, None),
        (True, B, A, Source.HUMAN, Source.POLICY),
        (True, B, A, None, None),
        (False, B, A, Source.POLICY, Source.HUMAN),
    ]
    for k, (active, human, policy, changed_to, previous) in enumerate(seq):
        d = a.update(T + 0.05 * k, P0, policy_target=policy, human_target=human, human_active=active)
        assert d.changed is (changed_to is not None)
        if changed_to is not None:
            assert d.source is changed_to
        assert d.previous is previous


def test_reset_requires_a_valid_present():
    with pytest.raises(ValueError, match="read the arm again"):
        Arbiter().reset(np.zeros(3), T)
    with pytest.raises(ValidationError):
        ArbiterConfig(ramp_s=-1)
    with pytest.raises(ValidationError):
        ArbiterConfig(ramp=1)


# -------------------------------------------------------- property: continuity at every switch
MODES = st.sampled_from(["policy", "human", "hold", "none", "human_no_target"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    modes=st.lists(st.tuples(MODES, st.integers(1, 40)), min_size=1, max_size=8),
    ramp_s=st.sampled_from([0.05, 0.2, 0.5]),
    dt=st.sampled_from([0.005, 0.01, 0.02]),
    offsets=st.lists(st.floats(-2.0, 2.0), min_size=12, max_size=12),
)
def test_no_jump_at_any_switch(modes, ramp_s, dt, offsets):
    a = arb(ramp_s=ramp_s)
    off_h, off_p = np.array(offsets[:6]), np.array(offsets[6:])

    def human(t):  # smooth scripted leader motion, speed <= 1 rad/s
        return off_h + 0.5 * np.sin(2.0 * (t - T) + np.arange(6))

    def policy(t):
        return off_p + 0.3 * np.cos(3.0 * (t - T) + np.arange(6))

    speed = 1.0  # max |d/dt| of either scripted target
    prev = P0.copy()
    frozen = ramp_from = None
    t = T
    for mode, ticks in modes:
        for _ in range(ticks):
            kw = dict(policy_target=None, human_target=None, human_active=False, hold=None)
            if mode == "policy":
                kw["policy_target"] = policy(t)
            elif mode == "human":
                kw.update(human_target=human(t), human_active=True, policy_target=policy(t))
            elif mode == "hold":
                kw.update(hold="test hold", policy_target=policy(t), human_target=human(t), human_active=True)
            elif mode == "human_no_target":
                kw.update(human_active=True, policy_target=policy(t))
            d = a.update(t, P0, **kw)
            if d.changed:
                # the switch tick itself never moves the output
                assert np.array_equal(d.target, prev)
                ramp_from = prev.copy()
            if d.source is not Source.HOLD:
                goal = kw["human_target"] if d.source is Source.HUMAN else kw["policy_target"]
                # out_k - out_k-1 = (w_k - w_k-1)(goal_k - from) + w_k-1 (goal_k - goal_k-1), |dw| <= 1.5 dt / ramp_s
                bound = speed * dt + 1.5 * dt / ramp_s * np.abs(goal - ramp_from) + 1e-9
                assert np.all(np.abs(d.target - prev) <= bound)
            if d.source is Source.HOLD:
                if d.changed:
                    frozen = prev.copy()
                assert np.array_equal(d.target, frozen)
            prev = d.target
            t += dt
