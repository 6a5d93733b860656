"""hardware.camera: the latest-value FrameSlot and OpenCVCamera against a fake cv2.VideoCapture
(there is no /dev/video* on the test machines)."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from hardware.camera import (
    CAP_PROP_FPS,
    CAP_PROP_FRAME_HEIGHT,
    CAP_PROP_FRAME_WIDTH,
    Camera,
    CameraError,
    Frame,
    FrameSlot,
    OpenCVCamera,
)


class FakeCapture:
    """A cv2.VideoCapture stand-in: BGR frames whose blue channel holds the frame number."""

    def __init__(
        self,
        *,
        opened: bool = True,
        size: tuple[int, int] = (64, 48),
        accept_size: bool = True,
        period: float = 0.005,
        retrieve_delay: float = 0.0,
        fail_after: int | None = None,
        stall: bool = False,
    ) -> None:
        self.opened = opened
        self.props = {CAP_PROP_FRAME_WIDTH: float(size[0]), CAP_PROP_FRAME_HEIGHT: float(size[1]), CAP_PROP_FPS: 30.0}
        self.accept_size = accept_size
        self.period = period
        self.retrieve_delay = retrieve_delay
        self.fail_after = fail_after
        self.stall = stall
        self.grabs = 0
        self.grab_done: list[float] = []  # monotonic time each successful grab returned
        self.retrieve_start: list[float] = []  # and when each retrieve began
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802
        return self.opened

    def set(self, prop: int, value: float) -> bool:
        if prop in (CAP_PROP_FRAME_WIDTH, CAP_PROP_FRAME_HEIGHT) and not self.accept_size:
            return False
        self.props[prop] = float(value)
        return True

    def get(self, prop: int) -> float:
        return self.props.get(prop, 0.0)

    def grab(self) -> bool:
        if self.stall:  # a camera that opens but never delivers
            time.sleep(0.02)
            return False
        time.sleep(self.period)
        self.grabs += 1
        if self.fail_after is not None and self.grabs > self.fail_after:
            return False
        self.grab_done.append(time.monotonic())
        return True

    def retrieve(self) -> tuple[bool, np.ndarray]:
        self.retrieve_start.append(time.monotonic())
        if self.retrieve_delay:
            time.sleep(self.retrieve_delay)
        w, h = int(self.props[CAP_PROP_FRAME_WIDTH]), int(self.props[CAP_PROP_FRAME_HEIGHT])
        img = np.zeros((h, w, 3), np.uint8)
        img[:, :, 0] = self.grabs % 256  # blue (BGR)
        img[:, :, 2] = 200  # red
        return True, img

    def release(self) -> None:
        self.released = True


def camera_with(fake: FakeCapture, **kw: object) -> OpenCVCamera:
    kw.setdefault("resolution", (64, 48))
    kw.setdefault("first_frame_timeout", 2.0)
    return OpenCVCamera(2, name="top", capture_factory=lambda src, backend: fake, **kw)


# --- FrameSlot ------------------------------------------------------------------------------------------


def _frame(i: int) -> Frame:
    return Frame(image=np.zeros((2, 2, 3), np.uint8), t_capture=time.monotonic(), index=i, camera="c")


def test_slot_keeps_only_the_latest_frame() -> None:
    slot = FrameSlot()
    assert slot.latest() is None
    assert slot.wait(-1, 0.01) is None  # nothing yet: times out
    for i in range(5):
        slot.put(_frame(i))
    assert slot.latest().index == 4  # older frames are gone, not queued
    assert slot.wait(-1, 0).index == 4
    assert slot.wait(2, 0).index == 4
    t0 = time.monotonic()
    assert slot.wait(4, 0.05) is None  # nothing newer than 4
    assert time.monotonic() - t0 >= 0.045


def test_slot_wait_wakes_on_put_and_on_close() -> None:
    slot = FrameSlot()
    threading.Timer(0.05, slot.put, args=(_frame(0),)).start()
    f = slot.wait(-1, 2.0)
    assert f is not None and f.index == 0
    threading.Timer(0.05, slot.close).start()
    t0 = time.monotonic()
    assert slot.wait(0, 2.0) is None
    assert time.monotonic() - t0 < 1.0


def test_slot_failure_is_raised_to_waiters_but_latest_stays() -> None:
    slot = FrameSlot()
    slot.put(_frame(0))
    threading.Timer(0.05, slot.fail, args=(CameraError("unplugged"),)).start()
    with pytest.raises(CameraError, match="unplugged"):
        slot.wait(0, 2.0)
    assert slot.latest().index == 0
    slot.reset()
    assert slot.latest() is None and slot.error is None


# --- OpenCVCamera: opening ------------------------------------------------------------------------------


def test_cannot_open_names_the_device_and_what_to_check() -> None:
    fake = FakeCapture(opened=False)
    cam = camera_with(fake)
    with pytest.raises(CameraError) as e:
        cam.start()
    msg = str(e.value)
    assert "camera 'top' (/dev/video2 (index 2)) could not be opened" in msg
    if not os.path.exists("/dev/video2"):
        assert "/dev/video2 does not exist" in msg
    assert "v4l2-ctl --list-devices" in msg
    assert "close other programs" in msg
    assert fake.released


def test_cannot_open_a_path(tmp_path: object) -> None:
    cam = OpenCVCamera("/dev/video-nope", capture_factory=lambda s, b: FakeCapture(opened=False))
    with pytest.raises(CameraError, match=r"/dev/video-nope does not exist"):
        cam.start()


def test_factory_exception_becomes_camera_error() -> None:
    def boom(src: object, backend: object) -> FakeCapture:
        raise RuntimeError("backend GSTREAMER not available")

    with pytest.raises(CameraError, match="could not be opened: backend GSTREAMER not available"):
        OpenCVCamera(0, capture_factory=boom).start()


def test_real_opencv_without_a_device_gives_the_clear_error() -> None:
    pytest.importorskip("cv2")
    missing = next(i for i in range(40, 64) if not os.path.exists(f"/dev/video{i}"))
    with pytest.raises(CameraError, match=f"/dev/video{missing} does not exist"):
        OpenCVCamera(missing, first_frame_timeout=0.5).start()


def test_resolution_the_camera_refuses() -> None:
    fake = FakeCapture(size=(640, 480), accept_size=False)
    with pytest.raises(CameraError, match="does not do 1280x720: the driver set 640x480"):
        camera_with(fake, resolution=(1280, 720)).start()
    assert fake.released


def test_no_first_frame() -> None:
    fake = FakeCapture(stall=True)
    cam = camera_with(fake, first_frame_timeout=0.2, max_failures=1000)
    with pytest.raises(CameraError, match="opened but delivered no frame within 0.2 s"):
        cam.start()
    assert fake.released


# --- OpenCVCamera: running ------------------------------------------------------------------------------


def test_frames_are_rgb_latest_value_and_stamped_at_grab() -> None:
    fake = FakeCapture(period=0.005, retrieve_delay=0.01)
    cam = camera_with(fake)
    assert isinstance(cam, Camera)
    with cam:
        f = cam.wait(-1, 2.0)
        assert f.camera == "top" and f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8
        assert f.image[0, 0, 0] == 200  # red first: converted from BGR
        assert f.image[0, 0, 2] == (f.index + 1) % 256  # blue holds the grab number
        # stamped right after grab() returned, before the (slow) retrieve/decode
        assert fake.grab_done[f.index] <= f.t_capture <= fake.retrieve_start[f.index]
        # a slow reader skips frames: it always gets the newest one, nothing queues up
        time.sleep(0.2)
        g = cam.latest()
        assert g.index >= f.index + 5
        h = cam.wait(g.index, 1.0)
        assert h.index > g.index
        assert h.t_capture > g.t_capture
    assert fake.released
    assert cam.wait(10**9, 0.5) is None


def test_unplugged_camera_fails_the_waiters() -> None:
    fake = FakeCapture(period=0.002, fail_after=5)
    cam = camera_with(fake, max_failures=3)
    cam.start()
    try:
        last = None
        with pytest.raises(CameraError, match="stopped delivering frames"):
            while True:
                f = cam.wait(-1 if last is None else last.index, 2.0)
                assert f is not None
                last = f
        assert cam.latest().index == 4  # the last good frame is still there
    finally:
        cam.stop()


def test_resolution_none_takes_the_driver_default() -> None:
    cam = camera_with(FakeCapture(size=(32, 24)), resolution=None)
    with cam:
        assert cam.resolution == (32, 24)
        assert cam.wait(-1, 2.0).image.shape == (24, 32, 3)
