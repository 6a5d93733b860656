"""HarmoWAMPolicy: the two stages, the router (hard switch, hysteresis, dwell, ablation modes),
determinism, bad observations, and the policy in the runtime's PolicyRunner (process mode)."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest
import torch

from harmowam_ctl.inference import PolicyError, PolicyRunner
from policies.harmowam import HarmoWAM
from policies.harmowam.checkpoint import save_checkpoint
from policies.harmowam.gate import Router
from policies.harmowam.policy import HarmoWAMPolicy
from policies.interface import ActionChunk, Observation, Policy, WorldPrediction
from policies.registry import PolicySpec, build

sys.path.insert(0, str(Path(__file__).parent))  # tests are not packages (--import-mode=importlib)
from harmowam_tiny import shake_outputs, tiny_config  # noqa: E402

STATE = np.array([0.1, -0.4, 0.3, 1.2, 0.0, 0.8])


def _obs(t: float = 10.0, size: int = 64, seed: int = 0, state: np.ndarray = STATE, cams=("front", "wrist")) -> Observation:
    rng = np.random.default_rng(seed)
    images = {c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in cams}
    return Observation(t=t, state=state, state_t=t, images=MappingProxyType(images), image_t=dict.fromkeys(cams, t))


def _model(seed: int = 0, **kw: object) -> HarmoWAM:
    torch.manual_seed(seed)
    m = HarmoWAM(tiny_config(**kw))
    shake_outputs(m, seed)
    return m


def _policy(seed: int = 0, model_seed: int = 0, **kw: object) -> HarmoWAMPolicy:
    return HarmoWAMPolicy(_model(model_seed, **kw), seed=seed)


def _force_gate(policy: HarmoWAMPolicy, s: float) -> None:
    last = policy.model.gate.mlp[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(math.log(s / (1 - s)))


def _step(p: HarmoWAMPolicy, obs: Observation) -> ActionChunk:
    return p.act(p.predict(obs), obs)


def test_predict_and_act_follow_the_interface():
    p = _policy()
    assert isinstance(p, Policy) and p.name == "harmowam"
    obs = _obs()
    pred = p.predict(obs)
    assert isinstance(pred, WorldPrediction) and pred.t_obs == obs.t and pred.frames is None
    chunk = p.act(pred, obs)
    assert chunk.t0 == obs.t and chunk.t_obs == obs.t and chunk.dt == pytest.approx(1 / 30)
    assert chunk.actions.shape == (p.cfg.horizon, 6) and np.all(np.isfinite(chunk.actions))
    assert 0 < chunk.gate < 1 and chunk.expert == ("predictive" if chunk.gate > 0.5 else "reactive")


def test_decoded_frames_for_display():
    p = _policy(decode_frames=True)
    frames = p.predict(_obs()).frames
    assert frames is not None and frames.dtype == np.uint8 and frames.shape == (p.cfg.n_future, 64, 64, 3)


def test_deterministic_for_a_seed_and_reset_replays():
    obs = [_obs(10.0 + i / 30, seed=i) for i in range(3)]
    a, b, c = _policy(seed=5), _policy(seed=5), _policy(seed=6)
    for p in (a, b, c):
        _force_gate(p, 0.9)  # the predictive expert: its noise matters
    run_a = [_step(a, o).actions for o in obs]
    run_b = [_step(b, o).actions for o in obs]
    run_c = [_step(c, o).actions for o in obs]
    assert all(np.array_equal(x, y) for x, y in zip(run_a, run_b, strict=True))
    assert not np.allclose(run_a[0], run_c[0])
    assert not np.allclose(run_a[0], run_a[1])  # the noise advances between calls
    a.reset()
    assert np.array_equal(_step(a, obs[0]).actions, run_a[0])


def test_other_image_sizes_are_resized():
    p = _policy()
    small, big = _obs(size=64), _obs(size=128)
    assert _step(p, big).actions.shape == (p.cfg.horizon, 6)
    assert p.inputs(big)[0].shape == p.inputs(small)[0].shape == (1, 2, 3, 64, 64)
    odd = Observation(t=1.0, state=STATE, state_t=1.0, images={"front": np.zeros((48, 80, 3), np.uint8), "wrist": np.zeros((64, 64, 3), np.uint8)})
    assert p.inputs(odd)[0].shape == (1, 2, 3, 64, 64)


def test_bad_observations_name_the_problem():
    p = _policy()
    with pytest.raises(ValueError, match=r"camera 'wrist'.*observation has: front"):
        p.predict(_obs(cams=("front",)))
    bad = Observation(t=1.0, state=STATE, state_t=1.0, images={"front": np.zeros((64, 64), np.uint8), "wrist": np.zeros((64, 64, 3), np.uint8)})
    with pytest.raises(ValueError, match=r"camera 'front'.*uint8 RGB"):
        p.predict(bad)
    with pytest.raises(ValueError, match="6 finite joint values"):
        p.predict(_obs(state=np.zeros(5)))
    with pytest.raises(ValueError, match="6 finite joint values"):
        p.predict(_obs(state=np.array([0, 0, np.nan, 0, 0, 0])))
    with pytest.raises(ValueError, match="its own predict"):
        p.act(WorldPrediction(t_obs=1.0, latent=torch.zeros(3)), _obs())


# ---- the router


def _runs(choices: list[str]) -> list[int]:
    out, n = [], 1
    for prev, cur in zip(choices, choices[1:], strict=False):
        if cur == prev:
            n += 1
        else:
            out.append(n)
            n = 1
    return out + [n]


@pytest.mark.parametrize("seed", range(5))
def test_gate_never_chatters_on_a_noisy_signal(seed):
    cfg = tiny_config(min_dwell=4, gate_band=0.1)
    r = Router(cfg)
    rng = np.random.default_rng(seed)
    # a noisy s_t that hovers around the threshold, with a few excursions
    s = np.clip(0.5 + 0.12 * rng.standard_normal(400) + 0.3 * np.sin(np.arange(400) / 40.0), 0, 1)
    choices = [r.choose(float(x)) for x in s]
    runs = _runs(choices)
    assert all(n >= 4 for n in runs[:-1]), runs  # minimum dwell
    for i in range(1, len(choices)):
        if choices[i] != choices[i - 1]:  # a switch needs s_t past the far side of the band
            assert (s[i] > 0.6) if choices[i] == "predictive" else (s[i] < 0.4), (i, s[i], choices[i])
    assert len(runs) > 2  # it does follow the big excursions
    # without hysteresis and dwell the same signal chatters: what the settings prevent
    raw = ["predictive" if x > 0.5 else "reactive" for x in s]
    assert min(_runs(raw)[:-1]) == 1 and len(_runs(raw)) > 3 * len(runs)


def test_gate_hard_switch_first_choice_and_dwell():
    r = Router(tiny_config(min_dwell=3, gate_band=0.1))
    assert r.choose(0.55) == "predictive"  # the first call: a plain threshold
    assert [r.choose(x) for x in (0.05, 0.05, 0.05, 0.45, 0.39)] == ["predictive", "predictive", "reactive", "reactive", "reactive"]
    assert [r.choose(x) for x in (0.58, 0.61)] == ["reactive", "predictive"]
    r.reset()
    assert r.choose(0.45) == "reactive"


def test_ablation_routing_modes():
    cfg = tiny_config(routing="reversed", min_dwell=1)
    r = Router(cfg)
    assert [r.choose(x) for x in (0.9, 0.1)] == ["reactive", "predictive"]
    for mode in ("predictive", "reactive", "average"):
        r = Router(tiny_config(routing=mode))
        assert {r.choose(x) for x in (0.0, 0.3, 0.7, 1.0)} == {mode}
    r = Router(tiny_config(routing="schedule", schedule_period=2))
    assert [r.choose(x) for x in (0.9, 0.9, 0.1, 0.1, 0.9, 0.1)] == ["reactive", "reactive", "predictive", "predictive", "reactive", "reactive"]


@pytest.mark.parametrize("s, expert", [(0.9, "predictive"), (0.1, "reactive")])
def test_policy_routes_to_the_gated_expert(s, expert):
    p = _policy()
    _force_gate(p, s)
    obs = _obs()
    pred = p.predict(obs)
    chunk = p.act(pred, obs)
    assert chunk.expert == expert and chunk.gate == pytest.approx(s, abs=1e-6)
    twin = _policy()
    _force_gate(twin, s)
    world = twin.predict(obs).latent
    assert np.array_equal(chunk.actions, twin.expert_actions(world, expert).astype(float))  # same seed, same draws


def test_average_mode_averages_the_two_experts():
    obs = _obs()
    p = _policy(routing="average")
    chunk = _step(p, obs)
    assert chunk.expert == "average"
    a, b = _policy(), _policy()
    pa = a.expert_actions(a.predict(obs).latent, "predictive")
    rb = b.expert_actions(b.predict(obs).latent, "reactive")
    assert np.allclose(chunk.actions, 0.5 * (pa + rb), atol=1e-6)
    assert not np.allclose(pa, rb)


# ---- registry and the runtime's runner


def test_registry_needs_a_checkpoint_and_rejects_bad_overrides(tmp_path):
    with pytest.raises(ValueError, match=r"needs options\['checkpoint'\]"):
        build(PolicySpec(name="harmowam"))
    cfg = tiny_config()
    save_checkpoint(tmp_path, _model(), cfg, {})
    with pytest.raises(ValueError, match="cannot override wm_width"):
        build(PolicySpec(name="harmowam", options={"checkpoint": str(tmp_path), "wm_width": 64}))
    p = build(PolicySpec(name="harmowam", options={"checkpoint": str(tmp_path), "routing": "reactive"}))
    assert _step(p, _obs()).expert == "reactive"


async def test_runs_in_the_policy_runner_process_mode_from_a_checkpoint(tmp_path):
    model = _model()
    save_checkpoint(tmp_path, model, model.cfg, {"note": "test"})
    spec = PolicySpec(name="harmowam", options={"checkpoint": str(tmp_path)}, seed=3)
    direct = HarmoWAMPolicy.from_checkpoint(tmp_path, seed=3)
    obs = [_obs(time.monotonic() + i / 30, seed=i) for i in range(2)]
    async with PolicyRunner(spec, "process") as r:
        assert r.pid is not None
        chunks = []
        for o in obs:
            pred = await r.predict(o)
            assert pred.latent is None and pred.key > 0  # the latent stays in the policy process
            chunks.append(await r.act(pred, o))
    for chunk, o in zip(chunks, obs, strict=True):
        want = _step(direct, o)
        assert chunk.t0 == o.t and chunk.expert == want.expert and chunk.gate == pytest.approx(want.gate)
        assert np.array_equal(chunk.actions, want.actions)


async def test_a_bad_checkpoint_fails_the_runner_start_with_the_reason(tmp_path):
    r = PolicyRunner(PolicySpec(name="harmowam", options={"checkpoint": str(tmp_path / "nope")}), "thread")
    with pytest.raises(PolicyError, match="does not exist"):
        await r.start()
