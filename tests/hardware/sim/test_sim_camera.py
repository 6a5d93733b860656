"""Simulated cameras: off-screen rendering of the MuJoCo SO-101 behind the Camera interface."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

pytest.importorskip("mujoco")

from hardware.camera import Camera, CameraError  # noqa: E402
from hardware.sim.arm import MujocoArm  # noqa: E402
from hardware.sim.camera import SimCamera, SimCameraRig, sim_cameras  # noqa: E402
from hardware.sim.render import SimRenderer  # noqa: E402

MOVED = [2048 + 500, 2048 - 300, 2048 + 400, 2048 + 600, 2048 + 700, 2048 + 900]


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.fixture
def arm() -> MujocoArm:
    a = MujocoArm(initial_ticks=[2048.0] * 6)
    for i in range(a.n_joints):
        a.command(i, 2048.0, True, 3000.0, math.inf)
    return a


def test_renderer_frames_are_images_of_the_scene(arm: MujocoArm) -> None:
    with SimRenderer(arm.model, (96, 96)) as r:
        assert set(r.camera_names) >= {"front", "wrist"}
        r.sync(arm)
        front, wrist = r.render("front"), r.render("wrist")
        assert front.shape == wrist.shape == (96, 96, 3) and front.dtype == np.uint8
        assert front.std() > 10 and wrist.std() > 10  # not a constant image
        assert len(np.unique(front.reshape(-1, 3), axis=0)) > 20
        assert _diff(front, wrist) > 10  # two different views
        arm.set_positions(MOVED)
        r.sync(arm)
        assert _diff(front, r.render("front")) > 1.0
        assert _diff(wrist, r.render("wrist")) > 5.0
        with pytest.raises(ValueError, match="no camera 'top'"):
            r.render("top")
    with pytest.raises(ValueError, match="off-screen buffer"):
        SimRenderer(arm.model, (4000, 4000))


def test_threaded_cameras_deliver_fresh_frames(arm: MujocoArm) -> None:
    cams = sim_cameras(arm, resolution=(96, 64), fps=30.0)
    front, wrist = cams["front"], cams["wrist"]
    assert isinstance(front, Camera) and isinstance(wrist, Camera)
    assert front.resolution == (96, 64) and front.fps == 30.0
    front.start()
    wrist.start()
    try:
        f0 = front.wait(-1, 5.0)
        w0 = wrist.wait(-1, 5.0)
        assert f0 is not None and w0 is not None
        assert f0.camera == "front" and w0.camera == "wrist"
        assert f0.image.shape == (64, 96, 3) and f0.image.dtype == np.uint8
        assert _diff(f0.image, w0.image) > 10

        # indices and capture times increase; frames arrive at about the configured rate
        frames = [f0]
        while len(frames) < 12:
            f = front.wait(frames[-1].index, 2.0)
            assert f is not None
            assert f.t_capture <= time.monotonic()
            frames.append(f)
        idx = [f.index for f in frames]
        tc = [f.t_capture for f in frames]
        assert all(b > a for a, b in zip(idx, idx[1:]))
        assert all(b > a for a, b in zip(tc, tc[1:]))
        period = (tc[-1] - tc[0]) / (idx[-1] - idx[0])
        assert 0.025 < period < 0.1

        # the picture follows the arm
        before = front.wait(frames[-1].index, 2.0)
        arm.set_positions(MOVED)
        time.sleep(0.05)
        after = front.wait(before.index + 1, 2.0)
        assert after is not None
        assert _diff(before.image, after.image) > 1.0
        assert wrist.latest() is not None
    finally:
        front.stop()
        wrist.stop()
    assert not front.rig.running
    assert front.wait(10**9, 0.5) is None  # stopped: waiting returns at once


def test_t_capture_is_stamped_at_capture_not_at_read(arm: MujocoArm) -> None:
    cam = SimCamera(arm, "wrist", fps=5.0)
    with cam:
        f = cam.wait(-1, 5.0)
        f = cam.wait(f.index, 5.0)  # a frame captured while we were waiting
        t_got = time.monotonic()
        assert t_got - 0.15 < f.t_capture <= t_got
        time.sleep(0.1)
        same = cam.latest()
        assert same is not None and same.index == f.index  # no new frame at 5 fps yet
        assert same.t_capture == f.t_capture  # reading later does not restamp it
        assert same.age >= 0.1


def test_the_rig_advances_the_simulation(arm: MujocoArm) -> None:
    arm.command(1, 2048.0, False, 3000.0, math.inf)  # shoulder_lift limp: the arm falls...
    arm.command(2, 2048.0, False, 3000.0, math.inf)
    start = arm.state(1)[0]
    cam = SimCamera(arm, "front", fps=30.0)  # ...while nobody but the camera advances time
    with cam:
        first = cam.wait(-1, 5.0)
        time.sleep(0.6)
        last = cam.latest()
    assert abs(arm.state(1)[0] - start) > 100.0
    assert _diff(first.image, last.image) > 1.0


def test_rig_rejects_unknown_views(arm: MujocoArm) -> None:
    with pytest.raises(ValueError, match="no camera 'top'"):
        SimCameraRig(arm, ("front", "top"))
    with pytest.raises(ValueError):
        SimCameraRig(arm, ("front",), fps=0)


def test_render_failure_reaches_the_reader(arm: MujocoArm, monkeypatch: pytest.MonkeyPatch) -> None:
    import hardware.sim.camera as simcam

    class Broken:
        def __init__(self, *a: object, **k: object) -> None:
            raise RuntimeError("no EGL display")

    monkeypatch.setattr(simcam, "SimRenderer", Broken)
    cam = SimCamera(arm, "front")
    with pytest.raises(CameraError, match="cannot render: no EGL display"):
        cam.start()
    assert not cam.rig.running
