"""One scripted episode with camera images: ``record_episode`` (no dataset format involved).

``record_episode(task, seed, spec)`` runs the task's scripted expert through ``run_episode`` and, in its
``on_step`` hook (called before each action is executed), renders every view from the state the action
is computed from. So frame ``i`` of the result is one consistent observation/action pair:
``images[view][i]`` and ``episode.joints[i]`` show the arm before ``episode.targets[i]`` is sent.

The renderer is made for the episode's compiled model (each reset compiles a new scene) and closed
when the episode ends, on the calling thread (see ``hardware.sim.render``). Images are kept in memory
(``steps x H x W x 3`` uint8 per view: ~5.5 MB per view for a 200-step episode at 96x96); the caller
decides what to keep, which is how ``hardware.sim.dataset`` drops failed episodes before anything
reaches the dataset writer.

``fps`` is the control rate of the episode (``TaskEnv``'s); the phase-label window is given in frames
at 30 Hz (``DEFAULT_WINDOW``) and scaled with ``fps`` so an interaction spans the same time.

``noise`` (an ``ActionNoise``, ``hardware.sim.noise``) records a recovery episode: the servos get
the expert's targets plus the noise; the images and ``episode.joints`` show the perturbed arm, and
``episode.targets`` (the label) stay the expert's noise-free targets (``episode.executed``: what was sent).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hardware.sim.noise import ActionNoise
from hardware.sim.render import SimRenderer
from hardware.sim.tasks import CONTROL_HZ, Episode, Task, TaskEnv, get_task, run_episode
from hardware.sim.tasks.expert import DEFAULT_WINDOW, Expert
from hardware.sim.variations import SceneVariation, VariationSpec

VIEWS = ("front", "wrist")


@dataclass
class RecordedEpisode:
    """An ``Episode`` plus its images: ``images[view]`` is ``steps x H x W x 3`` uint8."""

    episode: Episode
    images: dict[str, np.ndarray]
    sim_s: float = 0.0  # wall time of the physics, expert and IK (everything but rendering)
    render_s: float = 0.0  # wall time spent rendering (all views, all steps, renderer creation included)
    info: dict = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return int(self.episode.targets.shape[0])

    @property
    def success(self) -> bool:
        return bool(self.episode.success)


def label_window(fps: float) -> int:
    """The phase-label window in frames at ``fps`` (``DEFAULT_WINDOW`` frames at 30 Hz)."""
    return max(1, int(round(DEFAULT_WINDOW * float(fps) / CONTROL_HZ)))


def record_episode(
    task: Task | str,
    seed: int,
    spec: VariationSpec | str | Path | SceneVariation = "in_domain",
    *,
    resolution: int | tuple[int, int] = 96,
    views: Sequence[str] = VIEWS,
    fps: float = CONTROL_HZ,
    window: int | None = None,
    noise: ActionNoise | None = None,
) -> RecordedEpisode:
    """Run the scripted expert of ``task`` for ``seed``/``spec`` and render ``views`` at every step.

    ``resolution``: an int (square) or ``(width, height)``. ``window``: phase-label window in frames
    (default ``label_window(fps)``). ``noise``: perturb the executed actions (module doc). Raises
    ``VariationError`` when the spec cannot be sampled for this seed and ``RenderError`` when off-screen
    rendering is unavailable.
    """
    t = get_task(task) if isinstance(task, str) else task
    w, h = (resolution, resolution) if isinstance(resolution, int) else (int(resolution[0]), int(resolution[1]))
    if isinstance(spec, Path):
        spec = str(spec)
    frames: dict[str, list[np.ndarray]] = {v: [] for v in views}
    state: dict[str, object] = {"renderer": None, "render_s": 0.0}

    def on_step(env: TaskEnv, expert: Expert, targets: np.ndarray) -> None:
        t0 = time.perf_counter()
        r = state["renderer"]
        if r is None:
            r = state["renderer"] = SimRenderer(env.model, (w, h))
        r.sync(env.arm)
        for v in views:
            frames[v].append(r.render(v))
        state["render_s"] = float(state["render_s"]) + time.perf_counter() - t0

    env_kw = {"fps": float(fps), "offscreen_size": (max(640, w), max(480, h))}
    t0 = time.perf_counter()
    try:
        ep = run_episode(
            t, int(seed), spec, window=label_window(fps) if window is None else int(window), on_step=on_step,
            env_kw=env_kw, noise=noise,
        )
    finally:
        r = state["renderer"]
        if r is not None:
            r.close()
    total = time.perf_counter() - t0
    render_s = float(state["render_s"])
    images = {v: np.stack(frames[v]) if frames[v] else np.zeros((0, h, w, 3), np.uint8) for v in views}
    return RecordedEpisode(episode=ep, images=images, sim_s=total - render_s, render_s=render_s)
