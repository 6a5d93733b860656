"""The simulated arm for ``--sim``: a task's MuJoCo scene, its servos on an emulated bus, its cameras.

Everything the runtime touches goes through the same doors as a real arm: the servos answer on a
pseudo-terminal (``hardware.emulator.Emulator`` with the task's ``MujocoArm`` as motion model), the
cameras are ``Camera`` objects stamping frames at capture. Only the scripted policy looks behind the
curtain (``env``: the task's privileged object poses).

``mode``:

* ``"process"`` (default): the whole world (scene, emulator, physics, rendering) runs in its own
  process (``hardware.sim.world_process.SimWorld``), as a real arm and real cameras are outside the
  program: none of it takes this process's GIL or its event loop's time. Frames arrive through
  shared memory, stamped at capture. ``env`` is a mirror of the task built here whose arm state is
  fetched from the world on each read (a pipe round trip, ~0.1 ms): the scripted policy works
  unchanged, in a thread of this process.
* ``"inprocess"``: everything in this process (emulator and camera threads), as before the world
  process existed; for comparisons (``harmowam bench loop --sim-mode inprocess``) and debugging.

The emulated servos start with torque on, holding the task's start pose (as if a previous program
left them so): the runtime's start-up rule (goal := present before torque on) is exercised on every run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog

from hardware.sim.tasks import task_names

log = structlog.get_logger(__name__)

MODES = ("process", "inprocess")


@dataclass
class SimRig:
    task: str = "pick_place"
    seed: int = 0
    spec: str = "in_domain"
    arm: str = "so101"
    faults: str | None = None
    resolution: int = 96
    fps: float = 30.0
    views: tuple[str, ...] = ("front", "wrist")
    mode: str = "process"
    world_nice: int = 0  # process mode: niceness added to the world's processes
    camera_nice: int = 0  # process mode: more niceness for its camera (rendering) process
    world_cpus: tuple[int, ...] | None = None  # process mode: the world process's CPU affinity
    world: Any = field(default=None, init=False)  # hardware.sim.world_process.SimWorld (process mode)
    emulator: Any = field(default=None, init=False)  # hardware.emulator.Emulator (inprocess mode)
    rig: Any = field(default=None, init=False)  # hardware.sim.camera.SimCameraRig (inprocess mode)
    _env: Any = field(default=None, init=False, repr=False)

    def start(self) -> str:
        """Build the scene, start the emulated bus; return its port. Cameras start with ``cameras()``."""
        if self.arm not in ("so100", "so101"):
            raise ValueError(f"--sim simulates an SO-100/SO-101 (MuJoCo); {self.arm!r} has no simulated model")
        if self.task not in task_names():
            raise ValueError(f"unknown task {self.task!r}; tasks: {', '.join(task_names())}")
        if self.mode not in MODES:
            raise ValueError(f"sim mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.mode == "process":
            from hardware.sim.world_process import SimWorld

            self.world = SimWorld(
                self.task, self.seed, self.spec, self.arm, self.faults, resolution=self.resolution,
                fps=self.fps, views=self.views, nice=self.world_nice, camera_nice=self.camera_nice,
                cpus=self.world_cpus,
            )
            port = self.world.start()
            log.info("sim world started", pid=self.world.pid, port=port)
            return port
        return self._start_inprocess()

    def _start_inprocess(self) -> str:
        from hardware.arms import arm as arm_by_name
        from hardware.emulator import Emulator
        from hardware.sim.camera import SimCameraRig
        from hardware.sim.tasks import get_task

        self._env = get_task(self.task).reset(self.seed, self.spec, offscreen_size=(self.resolution, self.resolution))
        emu = Emulator(arm_by_name(self.arm), motion=self._env.arm, faults=self.faults, seed=self.seed)
        from hardware.sim.world_child import hold_start_pose

        hold_start_pose(emu, self._env)  # torque on at the task's start pose (not sagged)
        self.emulator = emu
        self.rig = SimCameraRig(
            self._env.arm, self.views, resolution=(self.resolution, self.resolution), fps=self.fps
        )
        return emu.start()

    @property
    def env(self) -> Any:
        """The task's ``TaskEnv`` (process mode: a mirror reading the world's state; built on first use)."""
        if self._env is None and self.world is not None:
            self._env = self.world.mirror_env()
        return self._env

    @property
    def cameras(self) -> dict[str, Any]:
        if self.world is not None:
            return dict(self.world.cameras)
        assert self.rig is not None, "start() first"
        return dict(self.rig.cameras)

    @property
    def instruction(self) -> str:
        if self.world is not None:
            return self.world.instruction
        assert self._env is not None, "start() first"
        return self._env.task.describe(self._env.variation)

    def success(self) -> bool | None:
        """Whether the task is achieved now; ``None`` when unknown (not started, or the world is gone)."""
        if self.world is not None:
            from hardware.sim.world_process import WorldProcessError

            try:
                return self.world.success()
            except WorldProcessError as e:
                log.warning("task success unknown", error=str(e).splitlines()[0])
                return None
        if self._env is None:
            return None
        with self._env.arm.lock:
            return bool(self._env.success())

    def stop(self) -> None:
        if self.world is not None:
            self.world.stop()
        if self.rig is not None:
            self.rig.stop()
        if self.emulator is not None:
            self.emulator.stop()

    def __enter__(self) -> SimRig:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
