"""The policy side of the runtime: camera frames -> observations -> world prediction -> action chunks.

Three concurrent tasks joined by latest-value slots (``harmowam_ctl.slots``):

* ``observe``: waits (off the loop) for the primary camera's next frame, takes the newest frame of the
  other cameras, pairs them with the joint state read nearest the capture time, publishes an
  ``Observation`` stamped with the newest frame's capture time. Without cameras it publishes the joint
  state at ``policy_hz``.
* ``predict``: the world model on the newest observation -> ``WorldPrediction``.
* ``act``: the gate and expert on the newest prediction -> an ``ActionChunk`` for the action buffer.

The policy itself runs in a ``PolicyRunner`` (a thread or a process), never on the loop. A failing
policy call is reported to the watchdogs and retried on the next observation; it never ends the run.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import structlog

from harmowam_ctl.slots import Slot
from harmowam_ctl.types import ActionChunk, JointState, Observation, WorldPrediction

log = structlog.get_logger(__name__)


class JointHistory:
    """The last joint readings (a ring), to pair a frame with the state read nearest its capture."""

    def __init__(self, size: int = 64) -> None:
        self._states: deque[JointState] = deque(maxlen=size)

    def add(self, state: JointState) -> None:
        self._states.append(state)

    def latest(self) -> JointState | None:
        return self._states[-1] if self._states else None

    def nearest(self, t: float) -> JointState | None:
        if not self._states:
            return None
        times = [s.t for s in self._states]
        k = bisect.bisect_left(times, t)
        best = [self._states[j] for j in (k - 1, k) if 0 <= j < len(times)]
        return min(best, key=lambda s: abs(s.t - t))


class Pipeline:
    def __init__(
        self,
        *,
        cameras: Mapping[str, Any],
        joints: JointHistory,
        runner: Any,
        task: str,
        on_frame: Callable[[str, Any], None],
        on_chunk: Callable[[ActionChunk], None],
        on_stage: Callable[[str, float, float, float, ActionChunk | None], None],
        on_error: Callable[[str, BaseException], None],
        enabled: Callable[[], bool],
        policy_hz: float = 30.0,
        max_state_skew_s: float = 0.05,
        now: Callable[[], float],
        on_imagined: Callable[[float, Any], None] | None = None,
        overlap: bool = True,
    ) -> None:
        self.cameras = dict(cameras)
        self.joints = joints
        self.runner = runner
        self.task = task
        self.on_frame, self.on_chunk, self.on_stage, self.on_error = on_frame, on_chunk, on_stage, on_error
        self.enabled = enabled
        self.policy_hz = policy_hz
        self.max_state_skew_s = max_state_skew_s
        self.now = now
        self.on_imagined = on_imagined  # (observation time, K x H x W x 3 imagined frames) for rerun
        self.observations: Slot[Observation] = Slot()
        self.predictions: Slot[tuple[WorldPrediction, Observation]] = Slot()
        self.count = 0
        self.skipped_no_state = 0
        # overlap=False: predict waits for the act of its previous prediction to finish, so one
        # observation's latency is predict + act with the stages never competing for the CPU
        self.overlap = overlap
        self._act_idle = asyncio.Event()
        self._act_idle.set()

    # --- observe -------------------------------------------------------------------------------------

    async def observe(self) -> None:
        if not self.cameras:
            await self._observe_state_only()
            return
        async for frames in camera_frames(self.cameras, self.on_frame):
            t_obs = max(f.t_capture for f in frames.values())
            state = self.joints.nearest(t_obs)
            if state is None or abs(state.t - t_obs) > self.max_state_skew_s:
                self.skipped_no_state += 1  # stale data is refused, not used
                continue
            self._publish(
                Observation(
                    t=t_obs, state=state.positions, state_t=state.t,
                    images={n: f.image for n, f in frames.items()},
                    image_t={n: f.t_capture for n, f in frames.items()},
                    task=self.task, index=self.count,
                )
            )

    async def _observe_state_only(self) -> None:
        period = 1.0 / self.policy_hz
        while True:
            await asyncio.sleep(period)
            state = self.joints.latest()
            if state is None or self.now() - state.t > self.max_state_skew_s:
                continue
            self._publish(Observation(t=state.t, state=state.positions, state_t=state.t, task=self.task, index=self.count))

    def _publish(self, obs: Observation) -> None:
        self.count += 1
        self.observations.put(obs)

    # --- predict and act -----------------------------------------------------------------------------

    async def predict(self) -> None:
        version = 0
        while True:
            if not self.overlap:
                await self._act_idle.wait()
            obs, version = await self.observations.wait_newer(version)
            if not self.enabled():
                continue
            t_start = self.now()
            try:
                pred = await self.runner.predict(obs)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.on_error("predict", e)
                await asyncio.sleep(0.05)
                continue
            self.on_stage("predict", obs.t, t_start, self.now(), None)
            if pred.frames is not None and self.on_imagined is not None:
                self.on_imagined(obs.t, pred.frames)
            if not self.overlap:
                self._act_idle.clear()
            self.predictions.put((pred, obs))

    async def act(self) -> None:
        version = 0
        while True:
            (pred, obs), version = await self.predictions.wait_newer(version)
            try:
                if not self.enabled():
                    continue
                t_start = self.now()
                try:
                    chunk = await self.runner.act(pred, obs)
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    self.on_error("act", e)
                    await asyncio.sleep(0.05)
                    continue
                self.on_stage("act", obs.t, t_start, self.now(), chunk)
                self.on_chunk(chunk)
            finally:
                self._act_idle.set()


async def camera_frames(cameras: Mapping[str, Any], on_frame: Callable[[str, Any], None]) -> AsyncIterator[dict[str, Any]]:
    """Every new frame of the first camera (waited for off the loop) with the newest frame of each other
    camera, by name; ``on_frame`` sees each of them first (watchdogs, telemetry)."""
    names = list(cameras)
    primary = cameras[names[0]]
    index = -1
    while True:
        frame = await asyncio.to_thread(primary.wait, index, 0.25)
        if frame is None:
            continue  # the camera watchdog sees the silence
        index = frame.index
        frames = {names[0]: frame}
        for name in names[1:]:
            f = cameras[name].latest()
            if f is not None:
                frames[name] = f
        for name, f in frames.items():
            on_frame(name, f)
        yield frames
