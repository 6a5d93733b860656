"""Cameras, real and simulated, behind one interface.

* ``Frame``: one image (H x W x 3 uint8 RGB) with ``t_capture`` (``time.monotonic()`` seconds, stamped
  when the frame was captured, not when it was read), a per-camera ``index`` (0, 1, 2...) and the
  camera's ``name``.
* ``Camera``: ``start()``, ``stop()``, ``latest()`` (the newest frame or ``None``, never blocks) and
  ``wait(after_index, timeout)`` (block until a frame newer than ``after_index`` exists: a control loop
  passes the index of the frame it used last). ``fps`` and ``resolution`` (width, height).
* Each camera has a capture thread writing into a ``FrameSlot``: a latest-value slot. A slow consumer
  skips frames; nothing queues up, so nothing grows and nothing goes stale behind a queue.
* ``OpenCVCamera``: a USB/V4L2 camera (or anything ``cv2.VideoCapture`` opens) read by such a thread.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hardware.errors import HardwareError


@dataclass(frozen=True, slots=True)
class Frame:
    image: np.ndarray  # H x W x 3, uint8, RGB
    t_capture: float  # time.monotonic() at capture
    index: int  # 0, 1, 2... per camera since start()
    camera: str

    @property
    def age(self) -> float:
        """Seconds since capture."""
        return time.monotonic() - self.t_capture


class CameraError(HardwareError):
    """A camera cannot be opened or stopped delivering frames."""


@runtime_checkable
class Camera(Protocol):
    name: str

    @property
    def fps(self) -> float: ...

    @property
    def resolution(self) -> tuple[int, int]:  # (width, height)
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def latest(self) -> Frame | None: ...

    def wait(self, after_index: int = -1, timeout: float | None = None) -> Frame | None: ...


class FrameSlot:
    """The newest frame of one camera, shared between its capture thread and any readers.

    ``put`` replaces the frame and wakes waiters. ``wait(after_index, timeout)`` returns the newest frame
    whose index is greater than ``after_index``, or ``None`` on timeout; once the producer has
    ``fail``-ed, waiting raises its error (``latest`` still returns the last good frame: check its
    ``t_capture``). ``close`` (camera stopped) makes waiters return ``None`` at once.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._error: BaseException | None = None
        self._closed = False

    def put(self, frame: Frame) -> None:
        with self._cond:
            self._frame = frame
            self._cond.notify_all()

    def latest(self) -> Frame | None:
        with self._cond:
            return self._frame

    def wait(self, after_index: int = -1, timeout: float | None = None) -> Frame | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._error is not None:
                    raise self._error
                f = self._frame
                if f is not None and f.index > after_index:
                    return f
                if self._closed:
                    return None
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)

    def fail(self, error: BaseException) -> None:
        with self._cond:
            self._error = error
            self._cond.notify_all()

    @property
    def error(self) -> BaseException | None:
        with self._cond:
            return self._error

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reset(self) -> None:
        with self._cond:
            self._frame, self._error, self._closed = None, None, False


# --- OpenCV -----------------------------------------------------------------------------------------------


class Capture(Protocol):
    """What ``OpenCVCamera`` uses of ``cv2.VideoCapture`` (tests pass a fake)."""

    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's names

    def set(self, prop: int, value: float) -> bool: ...

    def get(self, prop: int) -> float: ...

    def grab(self) -> bool: ...

    def retrieve(self) -> tuple[bool, Any]: ...

    def release(self) -> None: ...


# cv2.CAP_PROP_* values (stable across OpenCV 3/4), so that this module imports without cv2
CAP_PROP_FRAME_WIDTH = 3
CAP_PROP_FRAME_HEIGHT = 4
CAP_PROP_FPS = 5
CAP_PROP_BUFFERSIZE = 38


def describe_source(source: int | str) -> str:
    if isinstance(source, int):
        return f"/dev/video{source} (index {source})"
    return str(source)


def _open_fixes(source: int | str) -> list[str]:
    fixes = []
    if isinstance(source, int):
        dev = f"/dev/video{source}"
        present = sorted(p for p in os.listdir("/dev") if p.startswith("video")) if os.path.isdir("/dev") else []
        if not os.path.exists(dev):
            fixes.append(
                f"{dev} does not exist; video devices now: "
                + (", ".join(f"/dev/{p}" for p in present) if present else "none (is the camera plugged in?)")
            )
        elif not os.access(dev, os.R_OK | os.W_OK):
            fixes.append(f"no permission on {dev}: add yourself to the video group (`sudo usermod -aG video $USER`, then log in again)")
        fixes.append("list cameras and their indices with `v4l2-ctl --list-devices` (one camera often has two /dev/video nodes; use the first)")
    elif isinstance(source, str) and source.startswith("/dev/") and not os.path.exists(source):
        fixes.append(f"{source} does not exist: is the camera plugged in? (`ls /dev/video*`)")
    fixes.append("close other programs using the camera (another harmowam or lerobot, a browser, cheese, OBS)")
    fixes.append("unplug and replug the camera; USB hubs without their own power often starve cameras")
    return fixes


def _default_capture_factory(source: int | str, backend: int | None) -> Capture:
    import cv2  # opencv-python-headless, installed with LeRobot

    if backend is None:
        return cv2.VideoCapture(source)
    return cv2.VideoCapture(source, backend)


def _bgr_to_rgb(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img[:, :, ::-1])


class OpenCVCamera:
    """A camera read through ``cv2.VideoCapture`` by its own capture thread into a latest-value slot.

    ``source``: a device index (``0`` = ``/dev/video0``) or a path/URL. ``resolution`` (width, height)
    and ``fps`` are requested from the driver; ``start`` raises ``CameraError`` when the camera cannot be
    opened, does not accept the requested resolution, or delivers no frame within ``first_frame_timeout``.
    ``t_capture`` is stamped right after ``grab()`` returns (before decoding); the driver's buffer is set
    to one frame so a grabbed frame is fresh. After ``max_failures`` failed grabs in a row (unplugged),
    the thread stops and ``wait`` raises the ``CameraError``.
    ``capture_factory(source, backend)``: builds the capture object (tests pass a fake).
    """

    def __init__(
        self,
        source: int | str,
        *,
        name: str | None = None,
        resolution: tuple[int, int] | None = (640, 480),
        fps: float = 30.0,
        backend: int | None = None,
        first_frame_timeout: float = 5.0,
        max_failures: int = 30,
        capture_factory: Callable[[int | str, int | None], Capture] | None = None,
    ) -> None:
        self.source = source
        self.name = name if name is not None else f"camera{source}" if isinstance(source, int) else str(source)
        self._resolution = resolution
        self._fps = float(fps)
        self._backend = backend
        self._first_frame_timeout = first_frame_timeout
        self._max_failures = max_failures
        self._factory = capture_factory or _default_capture_factory
        self._slot = FrameSlot()
        self._cap: Capture | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    # --- Camera ------------------------------------------------------------------------------------------

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def resolution(self) -> tuple[int, int]:
        return self._resolution if self._resolution is not None else (0, 0)

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            where = describe_source(self.source)
            try:
                cap = self._factory(self.source, self._backend)
            except Exception as e:  # cv2 raises for malformed URLs and missing back-ends
                raise CameraError(f"camera {self.name!r} ({where}) could not be opened: {e}", _open_fixes(self.source)) from e
            if cap is None or not cap.isOpened():
                if cap is not None:
                    cap.release()
                raise CameraError(f"camera {self.name!r} ({where}) could not be opened", _open_fixes(self.source))
            self._configure(cap, where)
            self._cap = cap
            self._slot.reset()
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
            self._thread.start()
        first = self._slot.wait(-1, self._first_frame_timeout)
        if first is None:
            err = self._slot.error
            self.stop()
            if isinstance(err, CameraError):
                raise err
            raise CameraError(
                f"camera {self.name!r} ({describe_source(self.source)}) opened but delivered no frame "
                f"within {self._first_frame_timeout:g} s",
                [
                    "another program may hold the camera, or the USB bandwidth is exhausted (several cameras on one hub):"
                    " try a lower resolution or fps, or another USB port",
                    "unplug and replug the camera",
                ],
            )

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
            t, self._thread = self._thread, None
        if t is not None:
            t.join(timeout=2.0)
        with self._lock:
            cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()
        self._slot.close()

    def latest(self) -> Frame | None:
        return self._slot.latest()

    def wait(self, after_index: int = -1, timeout: float | None = None) -> Frame | None:
        return self._slot.wait(after_index, timeout)

    def __enter__(self) -> OpenCVCamera:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- internals ---------------------------------------------------------------------------------------

    def _configure(self, cap: Capture, where: str) -> None:
        cap.set(CAP_PROP_BUFFERSIZE, 1)
        if self._fps > 0:
            cap.set(CAP_PROP_FPS, self._fps)
        if self._resolution is None:
            w, h = int(cap.get(CAP_PROP_FRAME_WIDTH)), int(cap.get(CAP_PROP_FRAME_HEIGHT))
            self._resolution = (w, h)
            return
        w, h = self._resolution
        cap.set(CAP_PROP_FRAME_WIDTH, w)
        cap.set(CAP_PROP_FRAME_HEIGHT, h)
        got = (int(round(cap.get(CAP_PROP_FRAME_WIDTH))), int(round(cap.get(CAP_PROP_FRAME_HEIGHT))))
        if got != (w, h):
            cap.release()
            raise CameraError(
                f"camera {self.name!r} ({where}) does not do {w}x{h}: the driver set {got[0]}x{got[1]}",
                [
                    "use a resolution the camera supports (`v4l2-ctl -d <device> --list-formats-ext` lists them)",
                    f"or set resolution to {got[0]}x{got[1]}",
                ],
            )

    def _run(self) -> None:
        cap = self._cap
        assert cap is not None
        index, failures = 0, 0
        w, h = self.resolution
        while not self._stop.is_set():
            ok, img, last = False, None, None
            try:
                ok = bool(cap.grab())
                t = time.monotonic()  # the frame is in the driver now: stamp it before decoding
                if ok:
                    ok, img = cap.retrieve()
            except Exception as e:  # a driver error: count it like a failed grab
                ok, last = False, e
            if not ok or img is None:
                failures += 1
                if failures >= self._max_failures:
                    self._slot.fail(
                        CameraError(
                            f"camera {self.name!r} ({describe_source(self.source)}) stopped delivering frames "
                            f"({failures} failed reads in a row{': ' + str(last) if last else ''})",
                            ["is it still plugged in? (`ls /dev/video*`)", "unplug and replug the camera, then restart"],
                        )
                    )
                    return
                self._stop.wait(0.01)
                continue
            failures = 0
            img = _bgr_to_rgb(np.asarray(img))
            if (w, h) != (0, 0) and img.shape[:2] != (h, w):
                self._slot.fail(
                    CameraError(
                        f"camera {self.name!r} ({describe_source(self.source)}) delivered {img.shape[1]}x{img.shape[0]} "
                        f"frames, not the {w}x{h} it agreed to",
                        ["set resolution to what the camera really delivers"],
                    )
                )
                return
            self._slot.put(Frame(image=img, t_capture=t, index=index, camera=self.name))
            index += 1
