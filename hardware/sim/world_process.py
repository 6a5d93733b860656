"""``SimWorld``: a simulated task (MuJoCo arm, emulated servo bus, cameras) in processes of its own.

    world = SimWorld(task="pick_place", seed=0)
    port = world.start()            # the emulated bus's pty, served by the world's arm process
    cams = world.cameras            # Camera objects: frames come through shared memory
    world.success(); world.instruction
    world.stop()                    # always: the processes end, the shared memory is removed

Like a real arm and real cameras, the world runs outside the controller's process, so its physics,
rendering and servo replies never take the controller's GIL. Two processes (``python -m``, each in its
own process group, so Ctrl-C in the terminal reaches only the runtime, whose safe stop needs the arm):

* the arm process (``hardware.sim.world_child``): scene, physics, the emulated servos on a pty; while
  the cameras are on, a shutter thread sends the state at ``fps``, stamped at the copy;
* the camera process (``hardware.sim.world_camera``): renders each state's views into a ``FrameRing``
  (one shared-memory segment this side creates, owns and unlinks) and sends a 10-byte note per frame.
  Rendering holds the GIL for milliseconds per view, so it has a process of its own: the servo replies
  never wait for a picture.

A reader thread here copies the frame of each note into the camera's ``FrameSlot`` (``t_capture`` is the
arm process's ``time.monotonic()`` at the shutter: the same clock here). Requests (success, the arm's
state for a mirror, the shutter on/off) go to the arm process over a socket, one at a time.

When a world process dies (a crash, a kill), the cameras' ``wait`` raises ``CameraError`` saying so,
calls raise ``WorldProcessError`` and (the arm process) the pty closes, so the bus reports the port
gone: the runtime's watchdogs stop or fault; nothing waits forever. Both leave by themselves when this
process dies (EOF on their pipes, or a new parent pid): no orphans. ``stop`` is idempotent and also
runs at interpreter exit; should this process be killed, Python's resource tracker removes the segment.

``mirror_env()``: a ``TaskEnv`` of the same task, seed and spec built here (the same model, checked)
whose ``arm.copy_state_into`` fetches the world's live state: what ``--policy scripted`` reads.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from hardware.camera import CameraError, Frame, FrameSlot
from hardware.errors import HardwareError
from hardware.sim.shm_frames import FrameRing

DEFAULT_VIEWS = ("front", "wrist")
_REPO_ROOT = Path(__file__).resolve().parents[2]


class WorldProcessError(HardwareError):
    """The simulated world's process failed to start, answer or stay alive."""


_FIXES = (
    "it serves the simulated arm and cameras: start the run again",
    "if it keeps failing, `harmowam bench sim` checks that MuJoCo renders here (MUJOCO_GL=egl)",
)


class SimWorld:
    """See the module doc. ``nice``: niceness added to both world processes, ``camera_nice`` more for the
    camera process; ``cpus``: their CPU affinity (``os.sched_setaffinity``)."""

    def __init__(
        self,
        task: str = "pick_place",
        seed: int = 0,
        spec: str = "in_domain",
        arm: str = "so101",
        faults: str | None = None,
        *,
        resolution: int = 96,
        fps: float = 30.0,
        views: Sequence[str] = DEFAULT_VIEWS,
        nice: int = 0,
        camera_nice: int = 0,
        cpus: Sequence[int] | None = None,
        start_timeout_s: float = 60.0,
        call_timeout_s: float = 15.0,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, not {fps!r}")
        self.cfg: dict[str, Any] = {
            "task": task, "seed": int(seed), "spec": spec, "arm": arm, "faults": faults,
            "resolution": (int(resolution), int(resolution)), "fps": float(fps), "views": tuple(views),
            "nice": int(nice), "camera_nice": int(camera_nice), "cpus": tuple(cpus) if cpus else None,
        }
        self.start_timeout_s = start_timeout_s
        self.call_timeout_s = call_timeout_s
        self.info: dict[str, Any] = {}
        self.cameras: dict[str, WorldCamera] = {v: WorldCamera(self, v) for v in self.cfg["views"]}
        self._slots = {v: FrameSlot() for v in self.cfg["views"]}
        self._ring: FrameRing | None = None
        self._proc: Any = None  # the arm process (physics + emulated bus)
        self._cam_proc: Any = None  # the camera process (rendering)
        self._ctrl: Any = None
        self._notes: Any = None
        self._reader: threading.Thread | None = None
        self._call_lock = threading.Lock()
        self._cam_lock = threading.Lock()
        self._users = 0
        self._gen = 0
        self._rid = 0
        self._stopping = False
        self._mirror: Any = None
        self._finalizer: weakref.finalize | None = None
        self._h: _Handles | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> str:
        """Start the arm and camera processes; returns the emulated bus's port once both are ready."""
        if self._proc is not None:
            return self.port
        h = self._h = _Handles()
        self._finalizer = weakref.finalize(self, h.close)
        h.ring = self._ring = FrameRing.create(self.cfg["views"], self.cfg["resolution"])
        self.cfg["shm_name"], self.cfg["slots"] = self._ring.name, self._ring.slots
        mine, theirs = socket.socketpair()
        states_r, states_w = os.pipe()
        notes_r, notes_w = os.pipe()
        self._ctrl = h.ctrl = Connection(mine.detach())
        self._notes = h.notes = Connection(notes_r, writable=False)
        states = Connection(states_w, readable=False)  # ours: only to hand the camera process its config
        try:
            # both build their scene at the same time; the camera process then waits for the arm
            # process's model signature (its check that both built the same world)
            self._proc = h.proc = _spawn("hardware.sim.world_child", (theirs.fileno(), states_w))
            cam_cfg = dict(self.cfg, nice=self.cfg["nice"] + self.cfg["camera_nice"])
            self._cam_proc = h.cam_proc = _spawn("hardware.sim.world_camera", (states_r, notes_w))
            for conn, msg in ((self._ctrl, self.cfg), (states, cam_cfg)):
                with contextlib.suppress(OSError):  # a child that died at once is reported below
                    conn.send(msg)
            try:
                first = self._ctrl.recv() if self._ctrl.poll(self.start_timeout_s) else None
            except (EOFError, OSError):
                first = ("gone", None)
            if first is None or first[0] != "ready":
                why = (f"did not get ready within {self.start_timeout_s:.0f} s" if first is None
                       else f"could not build the world: {first[1]}" if first[0] == "error" else "exited while starting")
                raise WorldProcessError(f"the simulated world's arm process {why} (exit code {self.exitcode})", _FIXES)
            self.info = first[1]
            with contextlib.suppress(OSError):
                states.send(self.info["signature"])
        except BaseException:
            self.stop()
            raise
        finally:
            theirs.close()  # the children's ends: EOF reaches each side when the other goes away
            states.close()
            for fd in (states_r, notes_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
        try:
            note = self._notes.recv_bytes() if self._notes.poll(self.start_timeout_s) else None
        except (EOFError, OSError):
            note = b"Xgone"
        if note is None or note[:1] != b"R":
            why = (f"did not get ready within {self.start_timeout_s:.0f} s" if note is None
                   else note[10:].decode(errors="replace") if note[:1] == b"E" else "exited while starting")
            self.stop()
            raise WorldProcessError(f"the simulated world's camera process: {why}", _FIXES)
        h.reader = threading.Thread(target=self._read_notes, name="sim-world-frames", daemon=True)
        h.reader.start()
        return self.port

    def stop(self, timeout_s: float = 3.0) -> int | None:
        """Ask the child to leave (then SIGTERM, then SIGKILL); remove the shared memory. Returns the
        child's exit code. Safe to call twice, from any thread."""
        self._stopping = True
        if self._finalizer is not None:
            self._finalizer.detach()
        if self._h is not None:
            self._h.close(timeout_s)
        for s in self._slots.values():
            s.close()
        return self.exitcode

    def __enter__(self) -> SimWorld:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what the world says -----------------------------------------------------------------------------

    @property
    def port(self) -> str:
        return self.info["port"]

    @property
    def instruction(self) -> str:
        return self.info["instruction"]

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def camera_pid(self) -> int | None:
        return None if self._cam_proc is None else self._cam_proc.pid

    @property
    def alive(self) -> bool:
        """Both processes run."""
        return all(p is not None and p.poll() is None for p in (self._proc, self._cam_proc))

    @property
    def exitcode(self) -> int | None:
        """The child's exit code (negative: killed by that signal), ``None`` while it runs."""
        return None if self._proc is None else self._proc.poll()

    @property
    def shm_name(self) -> str | None:
        return self.cfg.get("shm_name")

    def success(self) -> bool:
        return bool(self.call("success"))

    def arm_state(self) -> tuple[Any, ...]:
        """``(t, sim_time, qpos, qvel, mocap_pos, mocap_quat)`` of the world's arm now."""
        return self.call("state")

    def stats(self) -> dict[str, Any]:
        return self.call("stats")

    def call(self, op: str, *args: Any, timeout_s: float | None = None) -> Any:
        """One request to the world process (module doc); ``WorldProcessError`` when it cannot answer."""
        timeout = self.call_timeout_s if timeout_s is None else timeout_s
        with self._call_lock:
            if self._proc is None or self._stopping:
                raise WorldProcessError("the simulated world is not running (start() it; it was stopped)")
            self._rid += 1
            rid = self._rid
            deadline = time.monotonic() + timeout
            try:
                self._ctrl.send((rid, op, args))
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise WorldProcessError(f"the simulated world did not answer {op!r} within {timeout:g} s", _FIXES)
                    if not self._ctrl.poll(min(left, 0.5)):
                        if self._proc.poll() is not None:  # the arm process answers requests
                            raise WorldProcessError(self._gone(), _FIXES)
                        continue
                    reply = self._ctrl.recv()
                    if reply[0] == rid:
                        break  # else: a late answer to a call that timed out
            except (EOFError, OSError, ValueError):
                raise WorldProcessError(self._gone(), _FIXES) from None
        if reply[1] == "ok":
            return reply[2]
        raise WorldProcessError(f"the simulated world failed {op!r}: {reply[2]}")

    def _gone(self) -> str:
        parts = []
        for name, p in (("arm", self._proc), ("camera", self._cam_proc)):
            if p is None:
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=0.5)
            code = p.poll()
            parts.append(f"its {name} process (pid {p.pid}) " + ("runs" if code is None else f"exited with code {code}"))
        return "the simulated world stopped: " + "; ".join(parts)

    def mirror_env(self) -> Any:
        """A ``TaskEnv`` of this world's task built here, reading the world's live state (module doc)."""
        if self._mirror is None:
            from hardware.sim.tasks import get_task
            from hardware.sim.world_child import model_signature

            c = self.cfg
            env = get_task(c["task"]).reset(c["seed"], c["spec"], offscreen_size=c["resolution"])
            if tuple(model_signature(env.model)) != tuple(self.info["signature"]):
                raise WorldProcessError(
                    f"the scene rebuilt here for {c['task']!r} (seed {c['seed']}, spec {c['spec']!r}) differs from the "
                    "world process's: the task's variation sampling is not deterministic",
                    ["run the scripted policy with the simulator in this process (SimRig(mode='inprocess'))"],
                )
            env.arm = RemoteArm(self, env.arm)
            self._mirror = env
        return self._mirror

    # --- cameras -----------------------------------------------------------------------------------------

    def _acquire(self, first_frame_timeout_s: float = 10.0) -> None:
        if not self.alive:
            raise CameraError(self._gone() if self._proc is not None else "the simulated world is not started", _FIXES)
        with self._cam_lock:
            self._users += 1
            if self._users == 1:
                self._gen += 1
                for s in self._slots.values():
                    s.reset()
                try:
                    self.call("cameras_on", self._gen)
                except BaseException:
                    self._users -= 1
                    raise
        try:
            first = self._slots[self.cfg["views"][0]].wait(-1, first_frame_timeout_s)
        except BaseException:
            self._release()
            raise
        if first is None:
            self._release()
            raise CameraError(f"the simulated world delivered no frame within {first_frame_timeout_s:g} s", _FIXES)

    def _release(self) -> None:
        with self._cam_lock:
            self._users = max(0, self._users - 1)
            if self._users:
                return
            for s in self._slots.values():
                s.close()
            if self.alive and not self._stopping:
                with contextlib.suppress(WorldProcessError):
                    self.call("cameras_off")

    def _read_notes(self) -> None:
        views, ring = self.cfg["views"], self._ring
        assert ring is not None
        while True:
            try:
                note = self._notes.recv_bytes()
            except (EOFError, OSError, ValueError):
                break
            view, gen, index = struct.unpack_from("<BIi", note, 1)
            if gen != self._gen or view >= len(views):
                continue  # a frame of an earlier start of the cameras
            slot = self._slots[views[view]]
            if note[:1] == b"E":
                slot.fail(CameraError(f"the simulated camera {views[view]!r} stopped: {note[10:].decode(errors='replace')}"))
                continue
            frame = ring.read(view, index % ring.slots)
            last = slot.latest()
            if frame is not None and (last is None or frame.index > last.index):
                slot.put(frame)
        if not self._stopping:
            err = CameraError(self._gone() + ": the simulated cameras deliver no more frames", _FIXES)
            for s in self._slots.values():
                s.fail(err)


class WorldCamera:
    """One view of a ``SimWorld``, as a ``hardware.camera.Camera``. Starting the first camera starts the
    world's rendering; stopping the last one stops it."""

    def __init__(self, world: SimWorld, view: str) -> None:
        self.world, self.view, self.name = world, view, view
        self._started = False
        self._lock = threading.Lock()

    @property
    def fps(self) -> float:
        return self.world.cfg["fps"]

    @property
    def resolution(self) -> tuple[int, int]:
        return self.world.cfg["resolution"]

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self.world._acquire()
            self._started = True

    def stop(self) -> None:
        with self._lock:
            if not self._started:
                return
            self._started = False
            self.world._release()

    def latest(self) -> Frame | None:
        return self.world._slots[self.view].latest()

    def wait(self, after_index: int = -1, timeout: float | None = None) -> Frame | None:
        return self.world._slots[self.view].wait(after_index, timeout)

    def __enter__(self) -> WorldCamera:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RemoteArm:
    """What a mirror ``TaskEnv`` has for an arm: the local model and mappings, the world's state.
    Reading only: it has no ``command``/``advance_to`` (the world's servos are driven over the bus)."""

    def __init__(self, world: SimWorld, local: Any) -> None:
        self._world = world
        self.scene, self.model, self.mappings = local.scene, local.model, local.mappings
        self.joint_names, self.n_joints = local.joint_names, local.n_joints
        self.lock = threading.RLock()  # nothing shared here to guard; for code that takes arm.lock

    def copy_state_into(self, dst: Any) -> float:
        """As ``MujocoArm.copy_state_into``, from the world process (a pipe round trip)."""
        t, sim_time, qpos, qvel, mocap_pos, mocap_quat = self._world.arm_state()
        dst.time = sim_time
        dst.qpos[:] = qpos
        dst.qvel[:] = qvel
        if len(mocap_pos):
            dst.mocap_pos[:] = mocap_pos
            dst.mocap_quat[:] = mocap_quat
        return t


def _spawn(module: str, fds: tuple[int, int]) -> subprocess.Popen[bytes]:
    """``python -m module FD FD`` with those two fds inherited, in its own process group: Ctrl-C in the
    terminal is the runtime's to handle (a safe stop needs the arm to go on answering)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen([sys.executable, "-m", module, *map(str, fds)], pass_fds=fds,
                            stdin=subprocess.DEVNULL, env=env, process_group=0)


def _end(proc: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    """Wait for ``proc`` to leave; SIGTERM, then SIGKILL, if it does not."""
    if proc is None:
        return
    for wait_s, then in ((timeout_s, proc.terminate), (2.0, proc.kill), (2.0, None)):
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            if then is not None:
                then()


class _Handles:
    """What ``stop`` (or, if it was never called, the interpreter's exit) must close, in order: ask the
    child to leave and wait (then SIGTERM, SIGKILL), let the frame reader see EOF and end, close the
    pipes, unmap and unlink the ring (the reader must be done with it first)."""

    def __init__(self) -> None:
        self.proc: Any = None
        self.cam_proc: Any = None
        self.ring: FrameRing | None = None
        self.ctrl: Any = None
        self.notes: Any = None
        self.reader: threading.Thread | None = None
        self._lock = threading.Lock()

    def close(self, timeout_s: float = 3.0) -> None:
        with self._lock:
            proc, self.proc = self.proc, None
            cam, self.cam_proc = self.cam_proc, None
            try:
                if proc is not None and proc.poll() is None:
                    with contextlib.suppress(OSError, ValueError):
                        self.ctrl.send((0, "stop", ()))
                _end(proc, timeout_s)  # the camera process follows: EOF on its states pipe
                _end(cam, timeout_s)
            finally:
                reader, self.reader = self.reader, None
                if reader is not None and reader is not threading.current_thread():
                    reader.join(timeout=2.0)  # EOF on the notes pipe once the child is gone
                for c in (self.ctrl, self.notes):
                    if c is not None:
                        with contextlib.suppress(OSError):
                            c.close()
                ring, self.ring = self.ring, None
                if ring is not None:
                    ring.close()
