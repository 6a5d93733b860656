"""The simulated arm for ``--sim``: a task's MuJoCo scene, its servos on an emulated bus, its cameras.

Everything the runtime touches goes through the same doors as a real arm: the servos answer on a
pseudo-terminal (``hardware.emulator.Emulator`` with the task's ``MujocoArm`` as motion model), the
cameras are ``Camera`` objects stamping frames at capture. Only the scripted policy looks behind the
curtain (``env``: the task's privileged object poses).

The emulated servos start with torque on, holding the task's start pose (as if a previous program
left them so): the runtime's start-up rule (goal := present before torque on) is exercised on every run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hardware.arms import arm as arm_by_name
from hardware.emulator import Emulator
from hardware.sim.camera import SimCameraRig
from hardware.sim.tasks import get_task, task_names
from hardware.sim.tasks.base import TaskEnv


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
    env: TaskEnv | None = field(default=None, init=False)
    emulator: Emulator | None = field(default=None, init=False)
    rig: SimCameraRig | None = field(default=None, init=False)

    def start(self) -> str:
        """Build the scene, start the emulated bus; return its port. Cameras start with ``cameras()``."""
        if self.arm not in ("so100", "so101"):
            raise ValueError(f"--sim simulates an SO-100/SO-101 (MuJoCo); {self.arm!r} has no simulated model")
        if self.task not in task_names():
            raise ValueError(f"unknown task {self.task!r}; tasks: {', '.join(task_names())}")
        self.env = get_task(self.task).reset(self.seed, self.spec, offscreen_size=(self.resolution, self.resolution))
        emu = Emulator(arm_by_name(self.arm), motion=self.env.arm, faults=self.faults, seed=self.seed)
        for s in emu.servos:
            s.set("Torque_Enable", 1)  # hold the start pose until the runtime takes over
        self.emulator = emu
        self.rig = SimCameraRig(
            self.env.arm, self.views, resolution=(self.resolution, self.resolution), fps=self.fps
        )
        return emu.start()

    @property
    def cameras(self) -> dict[str, object]:
        assert self.rig is not None, "start() first"
        return dict(self.rig.cameras)

    @property
    def instruction(self) -> str:
        assert self.env is not None
        return self.env.task.describe(self.env.variation)

    def success(self) -> bool | None:
        if self.env is None:
            return None
        with self.env.arm.lock:
            return bool(self.env.success())

    def stop(self) -> None:
        if self.rig is not None:
            self.rig.stop()
        if self.emulator is not None:
            self.emulator.stop()

    def __enter__(self) -> SimRig:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
