"""The simulated world's camera process: renders the states the arm process sends, into shared memory.

``python -m hardware.sim.world_camera STATES_FD NOTES_FD``, started by ``SimWorld`` next to the arm
process (``hardware.sim.world_child``). Rendering holds the GIL for milliseconds per view (measured:
a render thread delays another thread's wake-up by up to ~4 ms), so it lives in a process of its own,
as a real camera is a device of its own: the arm process's servo replies never wait for a picture.

First messages on ``STATES_FD`` (a pipe's read end), from the parent: the config (task, seed, spec,
resolution, views, ring name and slots), then the arm process's model signature (checked against the
scene built here). Then one ``(gen, index, t_capture, sim_time, qpos,
qvel, mocap_pos, mocap_quat)`` per shutter from the arm process; when several are waiting, the newest is
rendered and the older ones dropped (a slow renderer skips frames, never queues them). Each rendered
view goes into the ``FrameRing`` and a note goes to the parent on ``NOTES_FD``: ``b"R"`` once ready,
``b"F"`` + view, gen, index per frame, ``b"E"`` + view, gen, 0 + text on failure (then it exits 1).
It leaves on EOF (the arm process is gone) or when its parent changes (the parent died).
"""

from __future__ import annotations

import os
import signal
import struct
import sys
import traceback
from typing import Any

NOTE = "<BIi"


def _note(conn: Any, kind: bytes, view: int, gen: int, index: int, text: str = "") -> bool:
    try:
        conn.send_bytes(kind + struct.pack(NOTE, view, gen, index) + text.encode(errors="replace"))
        return True
    except (OSError, ValueError):
        return False


def main(cfg: dict[str, Any], states: Any, notes: Any) -> int:
    import mujoco

    from hardware.sim.render import SimRenderer
    from hardware.sim.shm_frames import FrameRing
    from hardware.sim.tasks import get_task
    from hardware.sim.world_child import model_signature

    parent = os.getppid()
    views = cfg["views"]
    try:
        env = get_task(cfg["task"]).reset(cfg["seed"], cfg["spec"], offscreen_size=cfg["resolution"])
        signature = states.recv()  # the arm process's, once it is built (module doc)
        if tuple(model_signature(env.model)) != tuple(signature):
            raise RuntimeError("the scene rebuilt for the cameras differs from the arm process's")
        renderer = SimRenderer(env.model, cfg["resolution"])
        for v in views:
            renderer.camera_id(v)  # ValueError naming the scene's cameras
        ring = FrameRing.attach(cfg["shm_name"], views, cfg["resolution"], cfg["slots"])
    except (Exception, EOFError) as e:
        _note(notes, b"E", 0, 0, 0, f"the simulated cameras cannot start: {type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}")
        return 1
    data = renderer.data
    _note(notes, b"R", 0, 0, 0)
    try:
        while os.getppid() == parent:
            try:
                if not states.poll(0.5):
                    continue
                shot = states.recv()
                while states.poll(0):  # rendering fell behind: only the newest state matters
                    shot = states.recv()
            except (EOFError, OSError):
                break  # the arm process is gone
            gen, index, t_capture, sim_time, qpos, qvel, mocap_pos, mocap_quat = shot
            data.time = sim_time
            data.qpos[:] = qpos
            data.qvel[:] = qvel
            if env.model.nmocap:
                data.mocap_pos[:] = mocap_pos
                data.mocap_quat[:] = mocap_quat
            mujoco.mj_kinematics(env.model, data)
            mujoco.mj_camlight(env.model, data)
            for i, v in enumerate(views):
                try:
                    image = renderer.render(v)
                except Exception as e:
                    _note(notes, b"E", i, gen, 0, f"{type(e).__name__}: {e}")
                    return 1
                ring.write(i, image, t_capture, index)
                if not _note(notes, b"F", i, gen, index):
                    return 0  # the parent is gone
    finally:
        renderer.close()
        ring.close()
    return 0


def _cli(argv: list[str]) -> int:
    from multiprocessing.connection import Connection

    if len(argv) != 2 or not all(a.isdigit() for a in argv):
        print("usage: python -m hardware.sim.world_camera STATES_FD NOTES_FD (started by SimWorld)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when the world ends
    states = Connection(int(argv[0]), writable=False)
    notes = Connection(int(argv[1]), readable=False)
    try:
        cfg = states.recv()
    except (EOFError, OSError):
        return 1
    from hardware.sim.world_child import apply_cpu_settings

    apply_cpu_settings(cfg)
    return main(cfg, states, notes)


if __name__ == "__main__":
    raise SystemExit(_cli(sys.argv[1:]))
