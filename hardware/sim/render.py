"""Off-screen rendering of the simulated scene: one ``SimRenderer`` per thread.

A ``mujoco.Renderer`` owns an OpenGL (EGL) context that is made current on the thread that uses it:
create, use and ``close`` a ``SimRenderer`` on one thread. Close it explicitly: when a renderer is
garbage-collected, MuJoCo's EGL clean-up releases whatever context is current on the collecting thread,
which breaks any other renderer in use there.

The renderer keeps its own ``MjData``: ``sync`` copies the arm's state under the arm's lock (a few
microseconds) and computes the kinematics on that copy, so rendering never holds up the physics.
"""

from __future__ import annotations

import time

import mujoco
import numpy as np

from hardware.sim.arm import MujocoArm


class RenderError(RuntimeError):
    """Off-screen rendering is not available."""


def _render_fixes() -> str:
    import os

    import hardware.sim

    if hardware.sim.MUJOCO_GL_SET_TOO_LATE:
        return (
            "mujoco was imported before hardware.sim could set MUJOCO_GL=egl, so it chose another OpenGL "
            "back-end: set MUJOCO_GL=egl in the environment, or import hardware.sim before mujoco"
        )
    return (
        f"MUJOCO_GL={os.environ.get('MUJOCO_GL', '(unset)')}; off-screen rendering needs MUJOCO_GL=egl "
        "and a working libEGL (Mesa's on a machine without a GPU: Debian/Ubuntu packages libegl1 and libegl-mesa0)"
    )


class SimRenderer:
    """Renders named cameras of ``model`` at ``resolution`` (width, height)."""

    def __init__(self, model: mujoco.MjModel, resolution: tuple[int, int] = (96, 96)) -> None:
        w, h = int(resolution[0]), int(resolution[1])
        if w <= 0 or h <= 0:
            raise ValueError(f"resolution must be positive, not {resolution!r}")
        self.model = model
        self.resolution = (w, h)
        if w > model.vis.global_.offwidth or h > model.vis.global_.offheight:
            raise ValueError(
                f"{w}x{h} is larger than the scene's off-screen buffer "
                f"{model.vis.global_.offwidth}x{model.vis.global_.offheight}: pass a larger offscreen_size to load_scene"
            )
        try:
            self._renderer = mujoco.Renderer(model, height=h, width=w)
        except Exception as e:
            raise RenderError(f"cannot create an off-screen renderer: {e} ({_render_fixes()})") from e
        self.data = mujoco.MjData(model)
        self._option = mujoco.MjvOption()  # geom groups 0-2 visible (collision geoms are group 3)
        self._cams: dict[str, int] = {}
        for c in range(model.ncam):
            name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, c)
            if name:
                self._cams[name] = c

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(self._cams)

    def camera_id(self, view: str) -> int:
        try:
            return self._cams[view]
        except KeyError:
            raise ValueError(f"the scene has no camera {view!r} (cameras: {', '.join(self._cams) or 'none'})") from None

    def sync(self, arm: MujocoArm) -> float:
        """Copy the arm's state; returns ``time.monotonic()`` at the copy (the shutter time)."""
        arm.copy_state_into(self.data)
        t = time.monotonic()
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)
        return t

    def sync_from(self, data: mujoco.MjData) -> None:
        """Copy the state of another ``MjData`` of the same model (no arm, no lock)."""
        self.data.time = data.time
        self.data.qpos[:] = data.qpos
        if self.model.nmocap:
            self.data.mocap_pos[:] = data.mocap_pos
            self.data.mocap_quat[:] = data.mocap_quat
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)

    def render(self, view: str | int) -> np.ndarray:
        """A new H x W x 3 uint8 RGB image of camera ``view`` at the last synced state."""
        cam = self.camera_id(view) if isinstance(view, str) else int(view)
        self._renderer.update_scene(self.data, camera=cam, scene_option=self._option)
        return self._renderer.render()

    def close(self) -> None:
        r, self._renderer = self._renderer, None
        if r is not None:
            r.close()

    def __enter__(self) -> SimRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
