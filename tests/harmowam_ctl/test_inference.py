"""PolicyRunner: both stages off the event loop, in threads or in a policy process; failures, hangs,
deaths and closing. Process-mode tests spawn a real child (about a second each, torch's import)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from types import MappingProxyType

import numpy as np
import pytest

from hardware.sim.tasks import get_task
from harmowam_ctl.inference import PolicyError, PolicyRunner
from policies.interface import ActionChunk, Observation, WorldPrediction
from policies.registry import PolicySpec
from policies.synthetic import OUTPUT_SCALE

MODES = ["thread", "process"]
FAST = {"predict_ms": 1.0, "act_ms": 1.0}
STATE = np.array([0.1, -0.4, 0.3, 1.2, 0.0, 0.8])


def _spec(**options: object) -> PolicySpec:
    return PolicySpec(name="synthetic", options={**FAST, **options})


def _obs(t: float | None = None, state: np.ndarray = STATE) -> Observation:
    t = time.monotonic() if t is None else t
    rng = np.random.default_rng(0)
    images = {c: rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for c in ("front", "wrist")}
    return Observation(t=t, state=state, state_t=t, images=MappingProxyType(images), image_t={"front": t, "wrist": t})


async def _started(spec: PolicySpec, mode: str, **kw: object) -> PolicyRunner:
    r = PolicyRunner(spec, mode, **kw)  # type: ignore[arg-type]
    await r.start()
    return r


@pytest.mark.parametrize("mode", MODES)
async def test_predict_and_act_stamp_t_done(mode):
    r = await _started(_spec(), mode)
    try:
        assert r.alive and r.mode == mode
        assert (r.pid == os.getpid()) == (mode == "thread")
        obs = _obs()
        t = time.monotonic()
        pred = await r.predict(obs)
        assert isinstance(pred, WorldPrediction) and pred.t_obs == obs.t and t <= pred.t_done <= time.monotonic()
        if mode == "process":
            assert pred.latent is None and pred.key > 0  # the latent stays in the child
        else:
            assert pred.latent is not None
        chunk = await r.act(pred, obs)
        assert isinstance(chunk, ActionChunk) and chunk.t0 == obs.t and pred.t_done <= chunk.t_done <= time.monotonic()
        assert np.abs(chunk.actions[0] - STATE).max() <= OUTPUT_SCALE + 1e-12
    finally:
        await r.close()
    assert not r.alive
    with pytest.raises(PolicyError, match="closed"):
        await r.predict(_obs())


async def test_both_modes_compute_the_same_chunk():
    obs = _obs(50.0)
    out = []
    for mode in MODES:
        async with PolicyRunner(_spec(), mode) as r:  # type: ignore[arg-type]
            out.append((await r.act(await r.predict(obs), obs)).actions)
    assert np.array_equal(out[0], out[1])


@pytest.mark.parametrize("mode", MODES)
async def test_reset_runs_in_the_worker(mode):
    async with PolicyRunner(_spec(), mode) as r:  # type: ignore[arg-type]
        obs = _obs(10.0)
        await r.act(await r.predict(obs), obs)
        moved = _obs(11.0, state=STATE + 0.3)
        kept = await r.act(await r.predict(moved), moved)
        assert np.abs(kept.actions[0] - moved.state).max() > 0.2
        await r.reset()
        fresh = await r.act(await r.predict(moved), moved)
        assert np.abs(fresh.actions[0] - moved.state).max() <= OUTPUT_SCALE + 1e-12


@pytest.mark.parametrize("mode", MODES)
async def test_a_policy_that_raises_gives_policy_error_and_the_runner_goes_on(mode):
    async with PolicyRunner(_spec(fault="raise", fault_stage="act", fault_after=1), mode) as r:  # type: ignore[arg-type]
        obs = _obs()
        pred = await r.predict(obs)
        await r.act(pred, obs)
        with pytest.raises(PolicyError, match="failed in act: RuntimeError: injected fault") as e:
            await r.act(pred, obs)
        assert "injected fault" in (e.value.remote_traceback or str(e.value.__cause__))
        assert r.alive
        assert isinstance(await r.act(pred, obs), ActionChunk)


@pytest.mark.parametrize("mode", MODES)
async def test_build_errors_surface_at_start_with_the_cause(mode):
    r = PolicyRunner(_spec(bogus=1), mode)  # type: ignore[arg-type]
    with pytest.raises(PolicyError, match=r"could not build policy 'synthetic'.*bogus.*check --policy"):
        await r.start()
    assert not r.alive
    with pytest.raises(PolicyError, match="closed"):
        await r.predict(_obs())


async def test_construction_errors():
    with pytest.raises(ValueError, match="thread, process"):
        PolicyRunner(_spec(), "fork")  # type: ignore[arg-type]
    env = get_task("pick_place").reset(0, cameras=False)
    with pytest.raises(PolicyError, match="thread mode only"):
        PolicyRunner(PolicySpec(name="scripted"), "process", context=env)
    r = PolicyRunner(_spec(), "thread")
    with pytest.raises(PolicyError, match="start"):
        await r.predict(_obs())
    await r.start()
    with pytest.raises(PolicyError, match="already started"):
        await r.start()
    await r.close()
    await r.close()  # idempotent


async def test_scripted_runs_in_thread_mode():
    env = get_task("pick_place").reset(0, cameras=False)
    async with PolicyRunner(PolicySpec(name="scripted"), "thread", context=env) as r:
        obs = _obs()
        pred = await r.predict(obs)
        chunk = await r.act(pred, obs)
        assert chunk.expert == "scripted" and chunk.horizon == 2
        assert np.array_equal(chunk.actions[0], env.joint_positions())


async def test_scripted_without_sim_fails_to_build():
    r = PolicyRunner(PolicySpec(name="scripted"), "thread")
    with pytest.raises(PolicyError, match="--policy scripted needs --sim"):
        await r.start()


@pytest.mark.parametrize("mode", MODES)
async def test_a_hung_stage_never_blocks_the_loop_and_frees_up_later(mode):
    hang = 1.0
    async with PolicyRunner(_spec(fault="hang", hang_s=hang), mode) as r:  # type: ignore[arg-type]
        obs = _obs()
        pred = await r.predict(obs)
        t = time.monotonic()
        stuck = asyncio.create_task(r.act(pred, obs))
        for _ in range(20):  # the loop runs while the act stage hangs
            await asyncio.sleep(0.005)
        assert not stuck.done() and time.monotonic() - t < hang
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        with pytest.raises(TimeoutError):  # the caller's timeout; the stage is still busy
            async with asyncio.timeout(0.05):
                await r.act(pred, obs)
        assert isinstance(await r.predict(obs), WorldPrediction)  # the other stage is free
        async with asyncio.timeout(hang + 10):
            later = await r.act(pred, obs)  # served once the hung call returns
        assert isinstance(later, ActionChunk) and time.monotonic() - t >= hang * 0.9


async def test_a_call_cancelled_before_it_starts_is_skipped():
    async with PolicyRunner(_spec(fault="hang", hang_s=0.3), "thread") as r:
        obs = _obs()
        pred = await r.predict(obs)
        first = asyncio.create_task(r.act(pred, obs))
        await asyncio.sleep(0.02)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.02):
                await r.act(pred, obs)  # queued behind the hung call, then given up
        await first
        await r.act(pred, obs)
        assert r._backend.policy._calls["act"] == 2  # the given-up call never ran


async def test_process_close_kills_a_hung_policy():
    r = await _started(_spec(fault="hang", fault_stage="predict"), "process", close_timeout_s=0.5)
    pid = r.pid
    pending = asyncio.create_task(r.predict(_obs()))
    await asyncio.sleep(0.1)
    t = time.monotonic()
    await r.close()
    assert time.monotonic() - t < 3.0 and not r.alive
    with pytest.raises(PolicyError, match="closed"):
        await pending
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_process_close_escalates_to_kill_when_the_child_does_not_answer():
    r = await _started(_spec(), "process", close_timeout_s=0.3)
    os.kill(r.pid, signal.SIGSTOP)  # deaf to the request and to SIGTERM; SIGKILL still works
    t = time.monotonic()
    await r.close()
    assert 0.5 < time.monotonic() - t < 5.0
    assert r._backend.exitcode == -signal.SIGKILL


async def test_a_child_that_exits_fails_pending_and_later_calls():
    async with PolicyRunner(_spec(fault="exit", exit_code=3), "process") as r:
        obs = _obs()
        pred = await r.predict(obs)
        with pytest.raises(PolicyError, match="policy process exited with code 3; .*start a new one"):
            await r.act(pred, obs)
        assert not r.alive
        with pytest.raises(PolicyError, match="exited with code 3"):
            await r.predict(obs)


async def test_a_child_killed_while_computing():
    async with PolicyRunner(_spec(fault="hang", fault_stage="predict"), "process") as r:
        pending = asyncio.create_task(r.predict(_obs()))
        await asyncio.sleep(0.1)
        os.kill(r.pid, signal.SIGKILL)
        with pytest.raises(PolicyError, match=r"exited with code -9 \(killed by SIGKILL\)"):
            async with asyncio.timeout(5):
                await pending


async def test_process_keeps_only_the_last_latents():
    async with PolicyRunner(_spec(), "process", history=2) as r:
        obs = _obs()
        old = await r.predict(obs)
        await r.predict(obs)
        await r.predict(obs)
        with pytest.raises(PolicyError, match="prediction 1 is gone.*last 2"):
            await r.act(old, obs)
        assert isinstance(await r.act(await r.predict(obs), obs), ActionChunk)


@pytest.mark.parametrize("mode", MODES)
async def test_workers_run_at_a_lower_cpu_priority(mode):
    base = os.getpriority(os.PRIO_PROCESS, 0)
    before = set(threading.enumerate())
    async with PolicyRunner(_spec(), mode, nice=5) as r:  # type: ignore[arg-type]
        await r.predict(_obs())
        if mode == "process":
            assert os.getpriority(os.PRIO_PROCESS, r.pid) == min(19, base + 5)
        else:
            workers = [t for t in set(threading.enumerate()) - before if t.name.startswith("policy-synthetic-")]
            assert len(workers) == 2
            assert all(os.getpriority(os.PRIO_PROCESS, t.native_id) == min(19, base + 5) for t in workers)
    assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the loop's thread keeps its priority
    with pytest.raises(ValueError, match="0..19"):
        PolicyRunner(_spec(), mode, nice=-1)  # type: ignore[arg-type]
