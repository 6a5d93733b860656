"""The simulated world in its own process (``SimWorld``) and its shared-memory frame ring."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from calibration import ArmCalibration
from hardware.arms import arm as arm_by_name
from hardware.bus import open_bus
from hardware.camera import Camera, CameraError
from hardware.errors import HardwareError
from hardware.sim.shm_frames import FrameRing
from hardware.sim.world_process import SimWorld, WorldProcessError

sys.path.insert(0, str(Path(__file__).parents[2]))  # tests are not packages (--import-mode=importlib)
from proc_helpers import gone  # noqa: E402

REPO = Path(__file__).resolve().parents[3]


def _shm_exists(name: str) -> bool:
    return os.path.exists(f"/dev/shm/{name}")


@pytest.fixture(scope="module")
def world():
    w = SimWorld(task="pick_place", seed=3)
    w.start()
    for c in w.cameras.values():
        c.start()
    yield w
    w.stop()


# --- the frame ring -----------------------------------------------------------------------------------


def test_ring_round_trip_between_mappings_and_unlink():
    ring = FrameRing.create(["a", "b"], (8, 6), slots=3)
    other = FrameRing.attach(ring.name, ["a", "b"], (8, 6), slots=3)
    try:
        assert ring.newest(0) is None and ring.read(1, 0) is None  # empty
        img = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
        for i in range(5):
            other.write(1, img + i, 100.0 + i, i)
        f = ring.newest(1)
        assert f is not None and f.index == 4 and f.t_capture == 104.0 and f.camera == "b"
        assert np.array_equal(f.image, img + 4)
        assert ring.read(1, 3 % 3).index == 3 and ring.newest(0) is None
        f.image[:] = 0  # a copy: the ring is untouched
        assert np.array_equal(ring.newest(1).image, img + 4)
    finally:
        other.close()
        ring.close()
    assert not _shm_exists(ring.name)
    ring.close()  # twice is fine


def test_ring_reader_refuses_a_slot_being_written():
    ring = FrameRing.create(["a"], (4, 4), slots=2)
    try:
        ring.write(0, np.full((4, 4, 3), 7, np.uint8), 1.0, 0)
        assert ring.read(0, 0) is not None
        ring._hdr[0][0] += 1  # the writer is in the middle of slot 0 (odd sequence)
        assert ring.read(0, 0) is None
    finally:
        ring.close()


# --- the world ------------------------------------------------------------------------------------------


def test_frames_arrive_stamped_at_capture_and_show_the_world(world):
    from hardware.sim.render import SimRenderer

    front, wrist = world.cameras["front"], world.cameras["wrist"]
    assert isinstance(front, Camera) and front.resolution == (96, 96) and front.fps == 30.0
    frames = []
    f = front.wait(-1, 5.0)
    for _ in range(4):
        f = front.wait(f.index, 5.0)
        assert f is not None
        frames.append((f, time.monotonic()))
    idx = [f.index for f, _ in frames]
    ts = np.array([f.t_capture for f, _ in frames])
    assert idx == sorted(idx) and len(set(idx)) == 4
    assert np.all(np.diff(ts) > 0.015) and np.all(np.diff(ts) < 1.0)  # ~1/30 s apart (a loaded machine)
    for f, seen in frames:  # the child's monotonic clock is ours: stamped shortly before we saw it
        assert 0.0 <= seen - f.t_capture < 0.5
    img = frames[-1][0].image
    assert img.shape == (96, 96, 3) and img.dtype == np.uint8 and img.std() > 5
    w = wrist.wait(-1, 5.0)
    assert w is not None and np.abs(w.image.astype(int) - img.astype(int)).mean() > 5  # another view

    # the same scene rendered here from the world's state looks the same (the arm holds still)
    env = world.mirror_env()
    with SimRenderer(env.model, (96, 96)) as r:
        env.arm.copy_state_into(r.data)
        r.sync_from(r.data)
        mine = r.render("front")
    now = front.wait(front.latest().index, 5.0).image
    assert np.abs(mine.astype(int) - now.astype(int)).mean() < 3.0


def test_bus_answers_with_the_worlds_joint_positions(world):
    profile = arm_by_name("so101")

    async def read():
        from harmowam_ctl.armio import ArmIO

        bus = open_bus(profile, world.port)
        await bus.open()
        try:
            await bus.verify(profile)
            return await ArmIO(bus, profile, ArmCalibration.simulated(profile)).read()
        finally:
            await bus.close()

    state = asyncio.run(read())
    env = world.mirror_env()
    import mujoco

    d = mujoco.MjData(env.model)
    t = env.arm.copy_state_into(d)
    assert abs(t - time.monotonic()) < 1.0
    q = d.qpos[list(env.scene.qpos_adr)]
    np.testing.assert_allclose(state.positions, q, atol=0.01)


def test_instruction_success_and_stats(world):
    from hardware.sim.tasks import get_task

    task = get_task("pick_place")
    assert world.instruction == task.describe(task.sample("in_domain", 3))
    assert world.success() is False
    s = world.stats()
    assert s["pid"] == world.pid and s["shots"] > 0
    assert set(s["timing"]) >= {"handle_ms_p50", "handle_ms_p99", "send_lag_ms_p99", "handle_n"}
    with pytest.raises(WorldProcessError, match="unknown request"):
        world.call("fly")
    assert world.success() is False  # still answering after a bad request


def test_scripted_policy_reads_the_world_through_the_mirror(world):
    from policies.interface import Observation
    from policies.scripted import ScriptedPolicy

    env = world.mirror_env()
    assert world.mirror_env() is env  # built once
    p = ScriptedPolicy(env)
    assert abs(p.snapshot_t - time.monotonic()) < 1.0  # the world's arm time, not the mirror's t=0
    present = p.previous.copy()
    obs = Observation(t=time.monotonic(), state=present, state_t=time.monotonic(), images={}, image_t={})
    chunk = p.act(p.predict(obs), obs)
    assert chunk.actions.shape == (2, 6) and np.all(np.isfinite(chunk.actions))
    np.testing.assert_allclose(chunk.actions[0], present)

    # the expert on a local copy of the same scene in the same state plans the same first step
    import mujoco

    from hardware.sim.tasks import get_task

    local = get_task("pick_place").reset(3, "in_domain", offscreen_size=(96, 96))
    with local.arm.lock:
        env.arm.copy_state_into(local.data)
        mujoco.mj_forward(local.model, local.data)
    ref = ScriptedPolicy(local)
    ref_chunk = ref.act(ref.predict(obs), obs)
    np.testing.assert_allclose(ref.previous, chunk.actions[1], atol=0.02)  # the arm holds still meanwhile
    assert np.abs(ref_chunk.actions[1] - present).max() > 0.05  # a real step, not a copy of the present


def test_sigint_does_not_stop_the_world(world):
    for pid in (world.pid, world.camera_pid):
        os.kill(pid, signal.SIGINT)  # Ctrl-C: the runtime's safe stop needs the arm to go on
        assert os.getpgid(pid) != os.getpgid(0)  # and the terminal's Ctrl-C does not reach them
    time.sleep(0.3)
    assert world.alive and world.success() is False
    f = world.cameras["front"].latest()
    assert world.cameras["front"].wait(f.index, 2.0) is not None


def test_stop_ends_the_process_and_removes_the_shared_memory():
    w = SimWorld(views=("front",))
    w.start()
    pids, name = (w.pid, w.camera_pid), w.shm_name
    assert _shm_exists(name)
    w.cameras["front"].start()
    assert w.cameras["front"].wait(-1, 5.0) is not None
    assert w.stop() == 0
    assert all(gone(p, 1.0) for p in pids) and not _shm_exists(name)
    assert w.stop() == 0  # twice is fine
    with pytest.raises(WorldProcessError, match="not running"):
        w.success()


def test_a_world_that_cannot_be_built_says_why_and_leaves_nothing():
    w = SimWorld(task="no_such_task")
    with pytest.raises(WorldProcessError, match="no_such_task") as e:
        w.start()
    assert "could not build the world" in str(e.value)
    assert not w.alive and not _shm_exists(w.shm_name)
    assert gone(w.camera_pid, 1.0)


def test_a_crashed_camera_process_fails_the_cameras_not_the_bus():
    w = SimWorld(views=("front",))
    w.start()
    cam = w.cameras["front"]
    try:
        cam.start()
        first = cam.wait(-1, 5.0)
        os.kill(w.camera_pid, signal.SIGKILL)
        with pytest.raises(CameraError, match=r"camera process \(pid \d+\) exited with code -9"):
            cam.wait(first.index + 1000, 5.0)
        assert w.success() is False  # the arm process still answers: the runtime can stop the arm safely
    finally:
        cam.stop()
        w.stop()
    assert not _shm_exists(w.shm_name)


def test_a_crashed_world_gives_clear_errors_never_a_hang():
    profile = arm_by_name("so101")
    w = SimWorld(views=("front",))
    w.start()
    cam = w.cameras["front"]
    try:
        cam.start()
        first = cam.wait(-1, 5.0)

        async def bus_after_crash():
            bus = open_bus(profile, w.port)
            await bus.open()
            try:
                await bus.sync_read("Present_Position", profile.ids)
                os.kill(w.pid, signal.SIGKILL)
                assert gone(w.pid, 3.0)
                t0 = time.monotonic()
                with pytest.raises(HardwareError):
                    await bus.sync_read("Present_Position", profile.ids)
                return time.monotonic() - t0
            finally:
                await bus.close()

        took = asyncio.run(bus_after_crash())
        assert took < 1.0
        t0 = time.monotonic()
        with pytest.raises(CameraError, match="exited with code -9"):
            cam.wait(first.index + 1000, 5.0)
        assert time.monotonic() - t0 < 2.0
        with pytest.raises(WorldProcessError, match="exited with code -9"):
            w.success()
    finally:
        cam.stop()
        w.stop()
    assert not _shm_exists(w.shm_name)


def test_the_world_ends_with_its_parent():
    code = textwrap.dedent("""
        import os, sys
        from hardware.sim.world_process import SimWorld
        w = SimWorld(views=("front",))
        w.start()
        print(w.pid, w.camera_pid, w.shm_name, flush=True)
        sys.stdin.readline()
        os.kill(os.getpid(), 9)
    """)
    parent = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              cwd=REPO, text=True)
    try:
        pid_text, cam_text, name = parent.stdout.readline().split()
        pids = int(pid_text), int(cam_text)
        assert not gone(pids[0], 0.1) and not gone(pids[1], 0.1)
        parent.stdin.write("\n")
        parent.stdin.flush()
        assert parent.wait(10) == -9
        assert all(gone(p, 3.0) for p in pids), "a world process outlived its parent"
        deadline = time.monotonic() + 5.0  # the parent's resource tracker removes the segment
        while _shm_exists(name) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _shm_exists(name)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
