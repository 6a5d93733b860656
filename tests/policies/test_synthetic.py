"""The synthetic stand-in policy and the policy registry."""

from __future__ import annotations

import math
import pickle
import time
from types import MappingProxyType

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from policies.interface import ActionChunk, Observation, Policy, WorldPrediction
from policies.registry import PolicySpec, build, policy_names
from policies.synthetic import OUTPUT_SCALE, SyntheticPolicy, act_depth, predict_depth

STATE = np.array([0.1, -0.4, 0.3, 1.2, 0.0, 0.8])


def _obs(t: float, state: np.ndarray = STATE, cams: int = 2, size: tuple[int, int] = (96, 96), seed: int = 0) -> Observation:
    rng = np.random.default_rng(seed)
    images = {f"cam{i}": rng.integers(0, 256, (*size, 3), dtype=np.uint8) for i in range(cams)}
    return Observation(t=t, state=state, state_t=t, images=images, image_t={k: t for k in images})


def _fast(**kw: object) -> SyntheticPolicy:
    return SyntheticPolicy({"predict_ms": 1.0, "act_ms": 1.0, **kw})


def _chunk(p: SyntheticPolicy, obs: Observation) -> ActionChunk:
    return p.act(p.predict(obs), obs)


def _wave(p: SyntheticPolicy, t_anchor: float, anchor: np.ndarray, t: np.ndarray) -> np.ndarray:
    return anchor + p.amplitude * np.sin(2 * math.pi * p.freq * (t[:, None] - t_anchor))


def test_is_a_policy_and_chunk_is_timed_from_the_observation():
    p = _fast()
    assert isinstance(p, Policy)
    obs = _obs(100.0)
    pred = p.predict(obs)
    assert isinstance(pred, WorldPrediction) and pred.t_obs == 100.0
    assert isinstance(pred.latent, torch.Tensor) and tuple(pred.latent.shape) == (16, 384)
    c = p.act(pred, obs)
    assert c.horizon == 12 and c.t0 == 100.0 and c.t_obs == 100.0
    assert c.dt == pytest.approx(1 / 30) and c.expert == "synthetic" and c.gate is None


def test_starts_at_the_observed_state_and_stays_bounded():
    p = _fast(amplitude_rad=0.2)
    first = _chunk(p, _obs(50.0))
    assert np.abs(first.actions[0] - STATE).max() <= OUTPUT_SCALE + 1e-12
    worst = 0.0
    for k in range(1, 40):  # ~2 periods of the ~0.2 Hz waves, observed state drifting
        c = _chunk(p, _obs(50.0 + 0.25 * k, state=STATE + 0.05 * k))
        worst = max(worst, float(np.abs(c.actions - STATE).max()))
        assert np.abs(c.actions[:, :5] - STATE[:5]).max() <= 0.2 + OUTPUT_SCALE + 1e-12
        assert np.abs(c.actions[:, 5] - STATE[5]).max() <= 0.1 + OUTPUT_SCALE + 1e-12
    assert worst > 0.1  # it does move


def test_consecutive_chunks_agree_where_they_overlap():
    p = _fast()
    a = _chunk(p, _obs(10.0, seed=1))
    b = _chunk(p, _obs(10.0 + 4 / 30, state=STATE + 0.03, seed=2))  # 4 steps later, other images and state
    assert np.abs(a.actions[4:] - b.actions[:-4]).max() <= 2 * OUTPUT_SCALE + 1e-9
    assert np.abs(np.diff(a.actions, axis=0)).max() < 0.01  # smooth: < 0.3 rad/s at 30 Hz


def test_the_network_output_feeds_the_actions():
    p = _fast()
    obs = _obs(10.0)
    c = _chunk(p, obs)
    t = obs.t + np.arange(c.horizon) * c.dt
    residual = c.actions - _wave(p, obs.t, STATE, t)
    assert 0 < np.abs(residual).max() <= OUTPUT_SCALE + 1e-12
    other = p.act(p.predict(_obs(10.0, seed=5)), obs)  # other images -> other latent -> other actions
    assert not np.array_equal(other.actions, c.actions)


def test_deterministic_for_a_seed():
    obs = _obs(3.0)
    a, b, c = _fast(), _fast(), SyntheticPolicy({"predict_ms": 1.0, "act_ms": 1.0}, seed=1)
    assert np.array_equal(_chunk(a, obs).actions, _chunk(b, obs).actions)
    assert not np.array_equal(_chunk(a, _obs(3.5)).actions, _chunk(c, _obs(3.5)).actions)


def test_reset_takes_a_new_anchor():
    p = _fast()
    _chunk(p, _obs(1.0))
    moved = STATE + 0.3
    kept = _chunk(p, _obs(2.0, state=moved))
    assert np.abs(kept.actions[0] - moved).max() > 0.2  # still around the first anchor
    p.reset()
    fresh = _chunk(p, _obs(3.0, state=moved))
    assert np.abs(fresh.actions[0] - moved).max() <= OUTPUT_SCALE + 1e-12


@pytest.mark.parametrize("cams,size", [(0, (96, 96)), (1, (96, 96)), (3, (120, 160)), (2, (48, 64))])
def test_any_number_and_size_of_cameras(cams, size):
    p = _fast()
    obs = _obs(1.0, cams=cams, size=size)
    obs = Observation(t=obs.t, state=obs.state, state_t=obs.t, images=MappingProxyType(dict(obs.images)))
    assert _chunk(p, obs).actions.shape == (12, 6)


@pytest.mark.parametrize("img", [np.zeros((96, 96), np.uint8), np.zeros((96, 96, 4), np.uint8), np.zeros((96, 96, 3), np.float32)])
def test_bad_images_are_refused(img):
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        _fast().predict(Observation(t=0.0, state=STATE, state_t=0.0, images={"front": img}))


def test_act_needs_its_own_latent():
    with pytest.raises(ValueError, match="latent"):
        _fast().act(WorldPrediction(t_obs=0.0), _obs(0.0))


def test_depth_follows_the_requested_times():
    assert predict_depth(15) == 19 and act_depth(8) == 11
    assert predict_depth(30) > 2 * predict_depth(10) - 2 and act_depth(0.1) == 1
    p = SyntheticPolicy({"predict_ms": 30, "act_ms": 2})
    assert (p.predict_depth, p.act_depth) == (predict_depth(30), act_depth(2))
    assert len(p.net.world) == p.predict_depth and len(p.net.policy) == p.act_depth


def _median_ms(fn, n: int = 7) -> float:
    fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1e3


def test_it_computes_for_a_realistic_time():
    """Defaults aim at predict ~15 ms, act ~8 ms on one thread (wide margins: the machine is shared)."""
    p = SyntheticPolicy(torch_threads=1)
    obs = _obs(0.0)
    pred = p.predict(obs)
    t_predict = _median_ms(lambda: p.predict(obs))
    t_act = _median_ms(lambda: p.act(pred, obs))
    assert 4.0 < t_predict < 150.0
    assert 2.0 < t_act < 80.0
    assert t_predict > t_act


def test_torch_threads_are_set_by_the_constructor():
    before = torch.get_num_threads()
    try:
        SyntheticPolicy({"predict_ms": 1, "act_ms": 1}, torch_threads=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("options,word", [({"predict_ms": -1}, "predict_ms"), ({"bogus": 1}, "bogus"), ({"amplitude_rad": 0.5}, "amplitude_rad")])
def test_bad_options_name_the_option(options, word):
    with pytest.raises(ValueError, match=word) as e:
        SyntheticPolicy(options)
    assert "options: predict_ms" in str(e.value)


def test_fault_injection_raise_then_recover():
    p = _fast(fault="raise", fault_stage="act", fault_after=1)
    obs = _obs(0.0)
    pred = p.predict(obs)
    p.act(pred, obs)
    with pytest.raises(RuntimeError, match="injected fault in act"):
        p.act(pred, obs)
    p.act(pred, obs)


def test_fault_exit_only_in_a_policy_process():
    with pytest.raises(ValueError, match="process mode only"):
        _fast(fault="exit")


# --- registry -------------------------------------------------------------------------------------------


def test_registry_builds_synthetic_from_a_picklable_spec():
    spec = PolicySpec(name="synthetic", options={"predict_ms": 1, "act_ms": 1, "horizon": 5}, seed=3)
    again = pickle.loads(pickle.dumps(spec))
    assert again == spec
    p = build(again)
    assert isinstance(p, SyntheticPolicy) and p.options.horizon == 5
    assert np.array_equal(_chunk(p, _obs(1.0)).actions, _chunk(SyntheticPolicy(spec.options, seed=3), _obs(1.0)).actions)


def test_registry_names_and_errors():
    assert set(policy_names()) == {"synthetic", "scripted", "act", "harmowam"}
    with pytest.raises(ValueError, match="unknown policy 'hamrowam'.*synthetic, scripted"):
        PolicySpec(name="hamrowam")
    with pytest.raises(ValueError, match="synthetic, scripted"):
        build(PolicySpec.model_construct(name="nope", options={}, seed=0, torch_threads=1))
    with pytest.raises(ValueError, match="--policy scripted needs --sim"):
        build(PolicySpec(name="scripted"))
    with pytest.raises(ValidationError, match="torch_threads"):
        PolicySpec(name="synthetic", torch_threads=0)
    with pytest.raises(ValidationError, match="extra"):
        PolicySpec(name="synthetic", gpu=True)
