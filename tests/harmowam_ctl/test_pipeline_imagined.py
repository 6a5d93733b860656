"""The predict stage hands a prediction's imagined frames to telemetry (rerun), stamped with the
observation's time; a prediction without frames hands nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from harmowam_ctl.pipeline import JointHistory, Pipeline
from policies.interface import Observation, WorldPrediction


class _Runner:
    def __init__(self, frames: np.ndarray | None) -> None:
        self.frames = frames

    async def predict(self, obs: Observation) -> WorldPrediction:
        return WorldPrediction(t_obs=obs.t, frames=self.frames)


async def _imagined(frames: np.ndarray | None) -> list[tuple[float, Any]]:
    got: list[tuple[float, Any]] = []
    p = Pipeline(cameras={}, joints=JointHistory(), runner=_Runner(frames), task="t", on_frame=lambda *a: None,
                 on_chunk=lambda c: None, on_stage=lambda *a: None, on_error=lambda *a: None,
                 enabled=lambda: True, now=lambda: 0.0, on_imagined=lambda t, f: got.append((t, f)))
    task = asyncio.create_task(p.predict())
    p.observations.put(Observation(t=12.5, state=np.zeros(6), state_t=12.5))
    await asyncio.wait_for(p.predictions.wait_newer(0), 2.0)
    task.cancel()
    return got


async def test_imagined_frames_reach_telemetry_with_the_observation_time() -> None:
    frames = np.zeros((4, 8, 8, 3), np.uint8)
    got = await _imagined(frames)
    assert len(got) == 1 and got[0][0] == 12.5 and got[0][1] is frames


async def test_a_prediction_without_frames_hands_nothing() -> None:
    assert await _imagined(None) == []
