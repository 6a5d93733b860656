"""The simulated world's arm process: the task's physics and its servos, for ``SimWorld``.

``python -m hardware.sim.world_child CTRL_FD STATES_FD``, started by ``SimWorld``: builds the task's
scene, serves its servos on a pty (``Emulator`` with the task's ``MujocoArm`` as motion model, torque
on, holding the start pose), and while the cameras are on, a shutter thread advances the physics to
now at ``fps`` and sends a copy of the state, stamped ``t_capture = time.monotonic()`` right after the
copy, to the camera process (``hardware.sim.world_camera``) on ``STATES_FD``. Rendering is not done
here: it holds the GIL for milliseconds, and the servo replies must not wait for it.

``CTRL_FD`` is a socket to the parent: first the config, then ``("ready", info)`` or ``("error", text)``
from here; then ``(id, op, args)`` requests answered with ``(id, "ok", value)`` or ``(id, "error", text)``:

* ``cameras_on`` (args: the start number the parent gives its frames) / ``cameras_off``: the shutter;
* ``state``: the arm's time and ``qpos``/``qvel``/``mocap`` (a mirror copies them: the scripted policy);
* ``success``: the task's success check now; ``stats``: emulator counters, shutters taken;
* ``stop``: leave.

It leaves on ``stop``, SIGTERM, EOF on ``ctrl`` or a new parent pid (the parent died), and then stops
the shutter and the emulator (closing the pty). SIGINT is ignored (and it runs in its own process
group): Ctrl-C belongs to the runtime, which answers it with a safe stop that needs this arm.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

import numpy as np

POLL_S = 0.2
SERVO_RT_PRIORITY = 60  # above the runtime's threads (harmowam_ctl.app.RT_*): the "servos" answer first


class _World:
    def __init__(self, cfg: dict[str, Any], states: Any) -> None:
        import mujoco

        from hardware.arms import arm as arm_by_name
        from hardware.emulator import Emulator
        from hardware.sim.tasks import get_task

        self.cfg = cfg
        self.env = get_task(cfg["task"]).reset(cfg["seed"], cfg["spec"], offscreen_size=tuple(cfg["resolution"]))
        self.emulator = Emulator(arm_by_name(cfg["arm"]), motion=self.env.arm, faults=cfg["faults"], seed=cfg["seed"])
        hold_start_pose(self.emulator, self.env)
        self.states = states
        self._scratch = mujoco.MjData(self.env.model)  # for ``state`` requests (main thread)
        self._shot = mujoco.MjData(self.env.model)  # for the shutter thread
        self._shutter: threading.Thread | None = None
        self._shutter_stop = threading.Event()
        self.shots = 0
        self.port = self.emulator.start()
        # The emulated servos stand for hardware, which the host's scheduler does not delay: real-time
        # priority for their thread when the system allows it (hardware.realtime; else normal priority).
        from hardware.realtime import set_realtime

        tid = self.emulator.io_thread_id  # the serving thread (never this one: tid 0 would mean it)
        self.realtime = tid is not None and set_realtime(SERVO_RT_PRIORITY, tid) is None

    def info(self) -> dict[str, Any]:
        return {"port": self.port, "pid": os.getpid(), "instruction": self.env.task.describe(self.env.variation),
                "signature": model_signature(self.env.model)}

    def handle(self, op: str, args: tuple[Any, ...]) -> Any:
        if op == "state":
            t = self.env.arm.copy_state_into(self._scratch)
            d = self._scratch
            return (t, float(d.time), d.qpos.copy(), d.qvel.copy(), d.mocap_pos.copy(), d.mocap_quat.copy())
        if op == "success":
            with self.env.arm.lock:
                return bool(self.env.success())
        if op == "cameras_on":
            self._stop_shutter()
            self._shutter_stop.clear()
            self._shutter = threading.Thread(target=self._shoot, args=(int(args[0]),), name="shutter", daemon=True)
            self._shutter.start()
            return None
        if op == "cameras_off":
            self._stop_shutter()
            return None
        if op == "stats":
            return {"emulator": self.emulator.stats, "timing": self.emulator.timing(), "shots": self.shots, "pid": os.getpid(),
                    "realtime": self.realtime}
        raise ValueError(f"unknown request {op!r}")

    def _shoot(self, gen: int) -> None:
        arm, d = self.env.arm, self._shot
        period = 1.0 / float(self.cfg["fps"])
        index = 0
        next_t = time.monotonic()
        while not self._shutter_stop.is_set():
            arm.advance_to(time.monotonic())  # the world moves even when nobody reads the servos
            arm.copy_state_into(d)
            t_capture = time.monotonic()
            try:
                self.states.send((gen, index, t_capture, float(d.time), d.qpos.copy(), d.qvel.copy(),
                                  d.mocap_pos.copy(), d.mocap_quat.copy()))
            except (OSError, ValueError):
                return  # the camera process is gone: the parent sees its notes end
            index += 1
            self.shots += 1
            next_t += period
            now = time.monotonic()
            if next_t < now - period:  # fell behind by more than a frame: drop, don't burst
                next_t = now
            self._shutter_stop.wait(max(0.0, next_t - now))

    def _stop_shutter(self) -> None:
        self._shutter_stop.set()
        t, self._shutter = self._shutter, None
        if t is not None:
            t.join(timeout=2.0)

    def close(self) -> None:
        try:
            self._stop_shutter()
        finally:
            self.emulator.stop()
            try:
                self.states.close()
            except OSError:
                pass


def hold_start_pose(emulator: Any, env: Any) -> None:
    """Torque on, holding the task's start pose (where its demonstrations start), with the arm's clock
    at now. Enabling torque makes a servo bring its model up to the wall clock first, so the first
    enable ran up to 0.5 s of physics with the other joints still limp: the arm sagged by 0.17-0.22 rad
    (shoulder_lift, elbow_flex) before holding, a start the policies never saw. So: enable, put the arm
    back at the start pose at rest, and make that the goal."""
    for s in emulator.servos:
        s.set("Torque_Enable", 1)
    env.arm.advance_to(time.monotonic())  # the catch-up happens here (if not already), not in the first bus reply
    ticks = [mp.to_ticks(float(x)) for mp, x in zip(env.arm.mappings, env.last_targets, strict=True)]
    env.arm.set_positions(ticks)
    for s, t in zip(emulator.servos, ticks, strict=True):
        s.set("Goal_Position", int(round(t)))


def model_signature(m: Any) -> tuple[Any, ...]:
    """What must match between the world's model and a copy built from the same task, seed and spec."""
    return (m.nq, m.nv, m.nbody, m.ngeom, m.nmocap, round(float(np.abs(m.body_pos).sum()), 9),
            round(float(np.abs(m.geom_size).sum()), 9))


def main(cfg: dict[str, Any], ctrl: Any, states: Any) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    parent = os.getppid()
    try:
        world = _World(cfg, states)
    except BaseException as e:  # the parent shows this text to the user
        ctrl.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}"))
        return 1
    try:
        ctrl.send(("ready", world.info()))
        gc.freeze()  # what exists now is never scanned again: shorter collector pauses on the reply path
        while not stop.is_set() and os.getppid() == parent:
            try:
                if not ctrl.poll(POLL_S):
                    continue
                rid, op, args = ctrl.recv()
            except (EOFError, OSError):
                break  # the parent is gone
            if op == "stop":
                break
            try:
                reply = (rid, "ok", world.handle(op, args))
            except Exception as e:
                reply = (rid, "error", f"{type(e).__name__}: {e}")
            try:
                ctrl.send(reply)
            except (OSError, ValueError):
                break
    finally:
        world.close()
    return 0


def apply_cpu_settings(cfg: dict[str, Any]) -> None:
    """A world process's ``nice`` (added to its niceness) and ``cpus`` (its CPU affinity) from its config
    (the arm process here, the camera process in ``world_camera``)."""
    if cfg.get("nice"):
        os.nice(int(cfg["nice"]))
    if cfg.get("cpus"):
        os.sched_setaffinity(0, set(cfg["cpus"]))


def _cli(argv: list[str]) -> int:
    from multiprocessing.connection import Connection

    if len(argv) != 2 or not all(a.isdigit() for a in argv):
        print("usage: python -m hardware.sim.world_child CTRL_FD STATES_FD (started by SimWorld)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # module doc: the parent decides when the world ends
    sys.setswitchinterval(0.0005)  # the emulator's reply thread gets the GIL back within 0.5 ms
    ctrl = Connection(int(argv[0]))
    states = Connection(int(argv[1]), readable=False)
    try:
        cfg = ctrl.recv()
    except (EOFError, OSError):
        return 1
    apply_cpu_settings(cfg)
    return main(cfg, ctrl, states)


if __name__ == "__main__":
    raise SystemExit(_cli(sys.argv[1:]))
