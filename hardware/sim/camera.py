"""Simulated cameras of the MuJoCo SO-101, behind the ``hardware.camera.Camera`` interface.

``SimCameraRig`` owns one capture thread and one off-screen renderer for several views of one arm
(``front``: fixed, looking at the workspace; ``wrist``: on the gripper, looking along the fingers). At
``fps`` it advances the simulation to now (so the world moves even when nobody reads the servos),
copies the state (the "shutter": ``t_capture`` is stamped then), renders every view from that same
state and puts each image into that view's latest-value slot. ``SimCamera`` is one view of a rig, a
``Camera``; ``sim_cameras(arm)`` builds a rig and returns its cameras by name, and ``SimCamera(arm,
"front")`` alone makes a private rig. Starting any camera of a rig starts the thread; it stops when
the last one is stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from hardware.camera import CameraError, Frame, FrameSlot
from hardware.sim.arm import MujocoArm
from hardware.sim.render import SimRenderer

DEFAULT_RESOLUTION = (96, 96)
DEFAULT_FPS = 30.0
DEFAULT_VIEWS = ("front", "wrist")


class SimCameraRig:
    """Renders ``views`` of ``arm`` at ``fps`` in one thread (see the module doc).

    ``advance``: advance the simulation to the current time before each frame (default). With
    ``advance=False`` the picture shows the arm as of its last ``advance_to`` (whoever drives it).
    """

    def __init__(
        self,
        arm: MujocoArm,
        views: Sequence[str] = DEFAULT_VIEWS,
        *,
        resolution: tuple[int, int] = DEFAULT_RESOLUTION,
        fps: float = DEFAULT_FPS,
        advance: bool = True,
        first_frame_timeout: float = 10.0,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, not {fps!r}")
        missing = [v for v in views if v not in arm.scene.camera_names]
        if missing:
            raise ValueError(
                f"the scene has no camera {', '.join(map(repr, missing))} (cameras: {', '.join(arm.scene.camera_names)})"
            )
        self.arm = arm
        self.views = tuple(views)
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.fps = float(fps)
        self.advance = advance
        self.first_frame_timeout = first_frame_timeout
        self.slots = {v: FrameSlot() for v in self.views}
        self.cameras = {v: SimCamera(arm, v, rig=self) for v in self.views}
        self.render_times: list[float] = []  # seconds per frame (all views), the last few hundred
        self._lock = threading.Lock()
        self._users = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # --- lifecycle ------------------------------------------------------------------------------------

    def acquire(self) -> None:
        with self._lock:
            self._users += 1
            if self._thread is None:
                for s in self.slots.values():
                    s.reset()
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="sim-cameras", daemon=True)
                self._thread.start()
        try:
            first = self.slots[self.views[0]].wait(-1, self.first_frame_timeout)
        except BaseException:
            self.release()  # the thread failed (it stored the error): release our use of it
            raise
        if first is None:
            self.release()
            raise CameraError(
                f"the simulated cameras delivered no frame within {self.first_frame_timeout:g} s",
                ["the machine may be overloaded; `python -m hardware.sim.bench` measures what a frame costs"],
            )

    def release(self) -> None:
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users:
                return
            self._stop.set()
            t, self._thread = self._thread, None
        if t is not None:
            t.join(timeout=5.0)
        for s in self.slots.values():
            s.close()

    def start(self) -> None:
        self.acquire()

    def stop(self) -> None:
        """Stop the thread whatever the number of users."""
        with self._lock:
            self._users = 1
        self.release()

    @property
    def running(self) -> bool:
        with self._lock:
            return self._thread is not None

    # --- the capture thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            renderer = SimRenderer(self.arm.model, self.resolution)
        except Exception as e:
            err = CameraError(f"the simulated cameras cannot render: {e}")
            for s in self.slots.values():
                s.fail(err)
            return
        period = 1.0 / self.fps
        index = 0
        next_t = time.monotonic()
        try:
            while not self._stop.is_set():
                t0 = time.monotonic()
                if self.advance:
                    self.arm.advance_to(t0)
                t_capture = renderer.sync(self.arm)
                images = {v: renderer.render(v) for v in self.views}
                for v, img in images.items():
                    self.slots[v].put(Frame(image=img, t_capture=t_capture, index=index, camera=v))
                index += 1
                self.render_times.append(time.monotonic() - t0)
                if len(self.render_times) > 512:
                    del self.render_times[:256]
                next_t += period
                now = time.monotonic()
                if next_t < now - period:  # fell behind by more than a frame: drop, don't burst
                    next_t = now
                self._stop.wait(max(0.0, next_t - now))
        except Exception as e:  # a render failure must reach the readers, not vanish with the thread
            err = CameraError(f"the simulated cameras stopped: {type(e).__name__}: {e}")
            for s in self.slots.values():
                s.fail(err)
        finally:
            renderer.close()


class SimCamera:
    """One view of a ``SimCameraRig``, as a ``Camera``. ``name`` defaults to the view's name."""

    def __init__(
        self,
        arm: MujocoArm,
        view: str = "front",
        *,
        rig: SimCameraRig | None = None,
        name: str | None = None,
        resolution: tuple[int, int] = DEFAULT_RESOLUTION,
        fps: float = DEFAULT_FPS,
        advance: bool = True,
    ) -> None:
        self.view = view
        self.name = name or view
        self._rig = rig if rig is not None else SimCameraRig(arm, (view,), resolution=resolution, fps=fps, advance=advance)
        if view not in self._rig.views:
            raise ValueError(f"the rig renders {self._rig.views}, not {view!r}")
        self._started = False
        self._lock = threading.Lock()

    @property
    def rig(self) -> SimCameraRig:
        return self._rig

    @property
    def fps(self) -> float:
        return self._rig.fps

    @property
    def resolution(self) -> tuple[int, int]:
        return self._rig.resolution

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        try:
            self._rig.acquire()
        except BaseException:
            with self._lock:
                self._started = False
            raise

    def stop(self) -> None:
        with self._lock:
            if not self._started:
                return
            self._started = False
        self._rig.release()

    def latest(self) -> Frame | None:
        f = self._rig.slots[self.view].latest()
        return f if f is None or f.camera == self.name else _renamed(f, self.name)

    def wait(self, after_index: int = -1, timeout: float | None = None) -> Frame | None:
        f = self._rig.slots[self.view].wait(after_index, timeout)
        return f if f is None or f.camera == self.name else _renamed(f, self.name)

    def __enter__(self) -> SimCamera:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _renamed(f: Frame, name: str) -> Frame:
    return Frame(image=f.image, t_capture=f.t_capture, index=f.index, camera=name)


def sim_cameras(
    arm: MujocoArm,
    views: Sequence[str] = DEFAULT_VIEWS,
    *,
    resolution: tuple[int, int] = DEFAULT_RESOLUTION,
    fps: float = DEFAULT_FPS,
    advance: bool = True,
) -> dict[str, SimCamera]:
    """Cameras for ``views`` of ``arm`` sharing one rig (one thread, one renderer, one state per frame)."""
    return SimCameraRig(arm, views, resolution=resolution, fps=fps, advance=advance).cameras
