"""``Pipeline(overlap=...)``: with overlap the next observation is predicted while act works on the last;
without it the stages take turns (one observation at a time), so they never compete for the CPU."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from harmowam_ctl.pipeline import JointHistory, Pipeline
from policies.interface import ActionChunk, Observation, WorldPrediction


class _Runner:
    """Records when each stage runs (a slow act) and whether the two ever ran at the same time."""

    def __init__(self) -> None:
        self.busy: set[str] = set()
        self.together = 0
        self.calls: list[str] = []

    async def _stage(self, name: str, seconds: float) -> None:
        self.busy.add(name)
        if len(self.busy) > 1:
            self.together += 1
        self.calls.append(name)
        await asyncio.sleep(seconds)
        self.busy.discard(name)

    async def predict(self, obs: Observation) -> WorldPrediction:
        await self._stage("predict", 0.01)
        return WorldPrediction(t_obs=obs.t)

    async def act(self, pred: WorldPrediction, obs: Observation) -> ActionChunk:
        await self._stage("act", 0.05)
        return ActionChunk(t0=obs.t, dt=0.1, actions=np.zeros((2, 6)), t_obs=obs.t)


async def _run(overlap: bool) -> tuple[_Runner, list[float]]:
    r = _Runner()
    chunks: list[float] = []
    p = Pipeline(cameras={}, joints=JointHistory(), runner=r, task="t", on_frame=lambda *a: None,
                 on_chunk=lambda c: chunks.append(c.t_obs), on_stage=lambda *a: None, on_error=lambda *a: None,
                 enabled=lambda: True, now=lambda: 0.0, overlap=overlap)
    tasks = [asyncio.create_task(p.predict()), asyncio.create_task(p.act())]
    for k in range(12):  # a new observation every 20 ms: faster than act
        p.observations.put(Observation(t=float(k), state=np.zeros(6), state_t=float(k)))
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.12)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return r, chunks


@pytest.mark.parametrize("overlap", [True, False])
async def test_stages_overlap_only_when_asked(overlap: bool) -> None:
    r, chunks = await _run(overlap)
    assert chunks and chunks == sorted(chunks)  # newest observations only, in order
    if overlap:
        assert r.together > 0
    else:
        assert r.together == 0
        # strictly alternating: predict, act, predict, act, ...
        assert all(a != b for a, b in zip(r.calls, r.calls[1:]))
