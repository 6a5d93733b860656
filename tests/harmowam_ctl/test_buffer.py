"""ActionBuffer: continuity at every chunk arrival, late steps cut, old chunks refused, extrapolation limit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from harmowam_ctl.buffer import ActionBuffer, BufferConfig, smoothstep
from policies.interface import ActionChunk

T = 1000.0


def chunk(t0: float, actions, dt: float = 0.02, t_obs: float | None = None) -> ActionChunk:
    return ActionChunk(t0=t0, dt=dt, actions=np.asarray(actions, dtype=float), t_obs=t0 if t_obs is None else t_obs)


def ramp(h: int, start: float, step: float) -> np.ndarray:
    """h steps, every joint at start + k * step."""
    return np.repeat((start + step * np.arange(h))[:, None], 6, axis=1)


def test_empty_buffer_gives_none():
    buf = ActionBuffer()
    assert buf.sample(T) is None
    assert buf.valid_until is None
    assert buf.newest_t_obs is None


def test_linear_interpolation_between_steps():
    buf = ActionBuffer()
    buf.add(chunk(T, ramp(5, 0.0, 0.1)), now=T)
    assert np.allclose(buf.sample(T), 0.0)
    assert np.allclose(buf.sample(T + 0.01), 0.05)  # half-way between step 0 and step 1
    assert np.allclose(buf.sample(T + 0.07), 0.35)
    assert np.allclose(buf.sample(T + 0.08), 0.4)  # last step
    assert buf.added == 1 and buf.newest_t_obs == T


def test_hold_interpolation_keeps_the_earlier_step():
    buf = ActionBuffer(BufferConfig(interpolation="hold"))
    buf.add(chunk(T, ramp(5, 0.0, 0.1)), now=T)
    assert np.allclose(buf.sample(T + 0.019), 0.0)
    assert np.allclose(buf.sample(T + 0.021), 0.1)


def test_extrapolation_limit():
    buf = ActionBuffer(BufferConfig(max_extrapolate_s=0.05))
    buf.add(chunk(T, ramp(3, 0.0, 0.1)), now=T)  # last step due at T + 0.04
    assert np.allclose(buf.sample(T + 0.04), 0.2)
    assert np.allclose(buf.sample(T + 0.089), 0.2)  # last value held within the limit
    assert buf.sample(T + 0.0901) is None
    assert buf.valid_until == pytest.approx(T + 0.09)


def test_late_chunk_cuts_steps_already_due():
    buf = ActionBuffer()
    # steps at T, T+.02, ..., T+.18 with values 0, 1, 2, ... ; it arrives at T + 0.05 (between steps 2 and 3)
    actions = ramp(10, 0.0, 1.0)
    buf.add(chunk(T, actions), now=T + 0.05)
    assert np.allclose(buf.sample(T + 0.05), 2.5)  # the segment containing now, anchored at step 2
    # steps 0 and 1 are gone: asking before now gives the anchor step, never step 0 or 1
    assert np.allclose(buf.sample(T), 2.0)
    assert np.allclose(buf.sample(T + 0.02), 2.0)


def test_chunk_entirely_in_the_past_is_dropped():
    buf = ActionBuffer()
    buf.add(chunk(T, ramp(3, 0.0, 1.0)), now=T + 0.041)  # last step due at T + 0.04
    assert buf.dropped_stale == 1 and buf.added == 0
    assert buf.sample(T + 0.041) is None
    buf.add(chunk(T, ramp(3, 0.0, 1.0)), now=T + 0.04)  # last step due exactly now: usable
    assert buf.added == 1
    assert np.allclose(buf.sample(T + 0.04), 2.0)


def test_older_observation_refused_and_never_used():
    buf = ActionBuffer()
    buf.add(chunk(T + 0.1, ramp(10, 1.0, 0.0)), now=T + 0.12)
    before = buf.sample(T + 0.15)
    buf.add(chunk(T + 0.05, ramp(10, -1.0, 0.0)), now=T + 0.13)  # observed before the newest: refused
    assert buf.refused_old == 1 and buf.added == 1
    assert buf.newest_t_obs == T + 0.1
    assert np.allclose(buf.sample(T + 0.15), before)
    assert np.allclose(buf.sample(T + 0.3), 1.0)  # the refused chunk never shows, even after a crossfade


def test_crossfade_starts_at_arrival_not_at_t0():
    cf = 0.1
    buf = ActionBuffer(BufferConfig(crossfade_s=cf, max_extrapolate_s=1.0))
    buf.add(chunk(T, np.zeros((50, 6))), now=T)
    arrival = T + 0.2
    # the new plan was observed at T + 0.1 (t0 in the past): blending still starts at the arrival
    buf.add(chunk(T + 0.1, np.ones((50, 6))), now=arrival)
    assert np.allclose(buf.sample(arrival), 0.0)
    assert np.allclose(buf.sample(arrival + cf / 2), smoothstep(0.5))
    assert np.allclose(buf.sample(arrival + cf), 1.0)
    assert buf.layers == 2
    buf.add(chunk(T + 0.3, np.full((50, 6), 2.0)), now=arrival + cf + 0.01)
    assert buf.layers == 2  # the first chunk no longer shows: pruned


def test_arrival_after_the_old_chunk_expired_starts_directly():
    buf = ActionBuffer(BufferConfig(max_extrapolate_s=0.0))
    buf.add(chunk(T, np.zeros((2, 6))), now=T)
    buf.add(chunk(T + 0.1, np.ones((5, 6))), now=T + 0.1)  # nothing valid to blend from
    assert np.allclose(buf.sample(T + 0.1), 1.0)
    assert buf.layers == 1


def test_successive_arrivals_during_a_crossfade_are_continuous():
    buf = ActionBuffer(BufferConfig(crossfade_s=0.1, max_extrapolate_s=1.0))
    buf.add(chunk(T, np.zeros((60, 6))), now=T)
    for i, t in enumerate((T + 0.03, T + 0.05, T + 0.06)):
        before = buf.sample(t)
        buf.add(chunk(t, np.full((60, 6), float(i + 1) * (-1) ** i)), now=t)
        assert np.allclose(buf.sample(t), before, atol=1e-12)
    assert buf.layers == 4
    assert np.allclose(buf.sample(T + 0.2), 3.0)  # finally the newest plan


def test_clear_forgets_chunks_but_still_refuses_old_ones():
    buf = ActionBuffer()
    buf.add(chunk(T, np.ones((10, 6))), now=T)
    buf.clear()
    assert buf.sample(T + 0.01) is None
    buf.add(chunk(T - 0.01, np.ones((10, 6))), now=T + 0.01)  # computed before the clear
    assert buf.refused_old == 1 and buf.sample(T + 0.01) is None
    buf.clear(not_before=T + 0.5)
    buf.add(chunk(T + 0.2, np.ones((10, 6))), now=T + 0.25)  # newer than the newest, but before not_before
    assert buf.refused_old == 2
    buf.add(chunk(T + 0.5, np.full((10, 6), 3.0)), now=T + 0.52)
    assert buf.added == 2
    assert np.allclose(buf.sample(T + 0.52), 3.0)  # after a clear a chunk starts without crossfade


def test_config_rejects_bad_values():
    with pytest.raises(ValidationError, match="linear"):
        BufferConfig(interpolation="cubic")
    with pytest.raises(ValidationError):
        BufferConfig(crossfade_s=-0.1)
    with pytest.raises(ValidationError):
        BufferConfig(crossfade=0.1)  # unknown field


def test_bad_chunk_is_rejected_at_construction():
    with pytest.raises(ValueError):
        chunk(T, np.full((3, 6), np.nan))
    with pytest.raises(ValueError):
        chunk(T, np.zeros((3, 5)))


# ---------------------------------------------------------------- property: continuity
@st.composite
def chunk_sequences(draw):
    n = draw(st.integers(1, 6))
    t = T
    out = []
    for _ in range(n):
        t += draw(st.floats(0.0, 0.15))
        latency = draw(st.floats(0.0, 0.12))
        dt = draw(st.floats(0.01, 0.05))
        h = draw(st.integers(1, 12))
        vals = draw(st.lists(st.floats(-1.0, 1.0), min_size=h * 6, max_size=h * 6))
        out.append((t, chunk(t - latency, np.reshape(vals, (h, 6)), dt=dt)))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seq=chunk_sequences(), cf=st.sampled_from([0.05, 0.1, 0.2]), interp_probe=st.floats(0.0, 1.0))
def test_output_is_continuous_under_random_arrivals(seq, cf, interp_probe):
    buf = ActionBuffer(BufferConfig(crossfade_s=cf, max_extrapolate_s=0.1))
    slope = max(float(np.max(np.abs(np.diff(c.actions, axis=0)), initial=0.0)) / c.dt for _, c in seq)
    value_range = 2.0  # all values in [-1, 1]
    eps = 1e-6
    # |d/dt y| <= max chunk slope + (blend weight slope 1.5 / cf) * |difference| for each nested crossfade
    bound = (slope + len(seq) * 1.5 * value_range / cf) * eps + 1e-9
    for i, (now, c) in enumerate(seq):
        before = buf.sample(now)
        added = buf.added
        buf.add(c, now)
        after = buf.sample(now)
        if buf.added > added and before is not None:
            assert after is not None
            assert np.max(np.abs(after - before)) <= 1e-9, "jump at the arrival instant"
        if before is not None and buf.added == added:
            assert np.array_equal(after, before)  # refused or dropped: nothing changed
        until = seq[i + 1][0] if i + 1 < len(seq) else now + 0.3
        for t in np.linspace(now, until, 40)[:-1] + interp_probe * (until - now) / 40:
            a, b = buf.sample(t), buf.sample(t + eps)
            if a is not None and b is not None:
                assert np.max(np.abs(b - a)) <= bound, f"discontinuity at t={t - T:.6f}"
