"""The task interface and the per-episode simulation (``TaskEnv``).

A ``Task`` knows its objects and targets (names and allowed shapes), builds them into the scene from a
``SceneVariation``, checks success from the physics state, has a time limit, an English instruction
and a scripted expert. ``task.reset(seed, spec)`` samples a variation from the spec with that seed,
compiles the scene (the arm, the variation's table/floor/lights/distractors, the task's objects) and
returns a ``TaskEnv`` with the arm at its start pose, servos on.

``TaskEnv.step(targets)`` is one control step at ``CONTROL_HZ``: the 6 joint targets (radians, the
MJCF convention: 0 = middle of the range, as ``hardware.arms``) become servo goals in ticks through
the arm's ``JointMapping`` and go to ``MujocoArm.command`` with the speed and acceleration limits
LeRobot configures on the STS3215 (Acceleration 254), then the simulation advances 1/30 s. So what an
expert or a policy commands is exactly what the emulated servos would receive as Goal_Position.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import mujoco
import numpy as np

from hardware.sim.arm import STS3215_MAX_SPEED_TICKS_S, MujocoArm
from hardware.sim.ik import ArmIK
from hardware.sim.scene import Extra, Scene, load_scene
from hardware.sim.variations import (
    Prop,
    SceneVariation,
    VariationError,
    VariationSpec,
    load_variations,
    sample_variation,
)

if TYPE_CHECKING:
    from hardware.sim.tasks.expert import Expert

CONTROL_HZ = 30.0
SERVO_MAX_SPEED = STS3215_MAX_SPEED_TICKS_S
SERVO_MAX_ACCEL = 254 * 100.0  # LeRobot writes Acceleration = 254; the emulator's 100 ticks/s^2 per unit
GRIPPER_BODIES = ("gripper", "moving_jaw_so101_v1")
# A top-down grasp is reachable between these distances from the base axis (stack-facts: up to
# ~0.25-0.30 m; measured with hardware.sim.ik: x <= 0.26 at |y| = 0.15, near the base the wrist runs
# out of range above ~5 cm).
REACH_MIN_M = 0.11
SHAPE_NOUNS = {"box": "block", "cylinder": "cylinder", "sphere": "ball", "capsule": "capsule"}
REACH_MAX_M = 0.27


class Task(ABC):
    """One manipulation task (module doc). Subclasses set the class attributes and implement
    ``build``, ``success`` and ``expert``."""

    name: ClassVar[str]
    instruction: ClassVar[str]  # English, goes into datasets as the task string (in-domain objects)
    # the same with ``{object}`` placeholders, filled by ``describe`` with what the scene holds
    template: ClassVar[str] = ""
    nouns: ClassVar[dict[str, dict[str, str]]] = {}  # object -> shape -> noun (default: SHAPE_NOUNS)
    time_limit_s: ClassVar[float]
    objects: ClassVar[dict[str, tuple[str, ...]]]  # movable objects: name -> allowed shapes
    targets: ClassVar[dict[str, tuple[str, ...]]] = {}  # static targets: name -> allowed shapes
    footprint_pad: ClassVar[dict[str, float]] = {}  # extra free radius around a prop when sampling
    corridors: ClassVar[tuple[tuple[str, str], ...]] = ()  # object -> target paths kept free of distractors

    # --- variations --------------------------------------------------------------------------------

    def spec(self, name_or_path: str = "in_domain") -> VariationSpec:
        return load_variations(name_or_path, self.name)

    def check_spec(self, spec: VariationSpec, where: str = "spec") -> None:
        """Raise ``VariationError`` naming the field when ``spec`` does not fit this task."""
        pairs = (("objects", spec.objects, self.objects), ("targets", spec.targets, self.targets))
        for kind, have, want in pairs:
            for name in have:
                if name not in want:
                    listed = ", ".join(want) or "none"
                    raise VariationError(f"{where}: {kind}.{name}: task {self.name} has no such {kind[:-1]} ({kind}: {listed})")
        for kind, have, want in pairs:
            for name in want:
                if name not in have:
                    raise VariationError(f"{where}: {kind}.{name}: required by task {self.name}")
            for name, o in have.items():
                for i, shape in enumerate(o.shape):
                    if shape not in want[name]:
                        raise VariationError(
                            f"{where}: {kind}.{name}.shape[{i}]: {shape!r} is not usable in {self.name} (allowed: {', '.join(want[name])})"
                        )
                self._check_region(f"{where}: {kind}.{name}.region", o.region.x, o.region.y)
        self.check_extra(spec, where)

    def _check_region(self, where: str, xs: tuple[float, float], ys: tuple[float, float]) -> None:
        corners = [(x, y) for x in xs for y in ys]
        far = max(math.hypot(x, y) for x, y in corners)
        if far > REACH_MAX_M:
            raise VariationError(f"{where}: a corner is {far:.3f} m from the base, beyond the top-down reach ({REACH_MAX_M} m)")
        near = math.hypot(min(max(0.0, xs[0]), xs[1]), min(max(0.0, ys[0]), ys[1]))
        if near < REACH_MIN_M:
            raise VariationError(f"{where}: comes within {near:.3f} m of the base (minimum {REACH_MIN_M} m)")

    def check_extra(self, spec: VariationSpec, where: str) -> None:
        """Task-specific checks (sizes that must fit together...)."""

    def sample(self, spec: VariationSpec | str, seed: int) -> SceneVariation:
        """A concrete scene from a spec (a shipped name, a YAML path or a ``VariationSpec``) and a seed."""
        name = spec if isinstance(spec, str) else (spec.description or "spec")
        if isinstance(spec, str):
            s = self.spec(spec)
        else:
            s = spec
            self.check_spec(s, name)
        order = (*self.objects, *self.targets)
        return sample_variation(
            s, seed, order=order, spec_name=name, footprint_pad=self.footprint_pad, corridors=self.corridors
        )

    def describe(self, variation: SceneVariation) -> str:
        """The instruction for this scene: an object of another shape gets its own noun ("ball")."""
        if not self.template:
            return self.instruction
        words = {
            name: self.nouns.get(name, {}).get(p.shape, SHAPE_NOUNS[p.shape])
            for name, p in (*variation.objects.items(), *variation.targets.items())
        }
        return self.template.format(**words)

    # --- scene ---------------------------------------------------------------------------------------

    def extras(self, variation: SceneVariation) -> list[Extra]:
        return [variation.apply, lambda spec: self.build(spec, variation)]

    @abstractmethod
    def build(self, spec: mujoco.MjSpec, variation: SceneVariation) -> None:
        """Add the task's objects and targets to the scene."""

    def reset(self, seed: int, spec: VariationSpec | str | SceneVariation = "in_domain", **env_kw: object) -> TaskEnv:
        """A new episode: ``spec`` sampled with ``seed`` (a ``SceneVariation`` is used as it is).
        ``env_kw`` go to ``TaskEnv`` (``cameras=False`` when nothing renders, ``visual``...)."""
        variation = spec if isinstance(spec, SceneVariation) else self.sample(spec, seed)
        return TaskEnv(self, variation, **env_kw)

    # --- episode -------------------------------------------------------------------------------------

    @abstractmethod
    def success(self, env: TaskEnv) -> bool:
        """Whether the task is achieved in the current physics state."""

    @abstractmethod
    def expert(self, env: TaskEnv, **kw: object) -> Expert:
        """A scripted expert for this episode."""


class TaskEnv:
    """One episode of a task: the compiled scene, the servo-level arm, the objects (module doc).

    ``home``: the arm's start pose (radians, 6 joints; default ``HOME_RAD`` plus the variation's jitter),
    set at rest with torque on. ``visual``/``offscreen_size``/``cameras``: as ``load_scene``.
    """

    def __init__(
        self,
        task: Task,
        variation: SceneVariation,
        *,
        home: Sequence[float] | None = None,
        visual: str = "hull",
        offscreen_size: tuple[int, int] = (640, 480),
        cameras: bool = True,
        fps: float = CONTROL_HZ,
    ) -> None:
        self.task = task
        self.variation = variation
        self.fps = float(fps)
        self.scene: Scene = load_scene(
            extra=task.extras(variation), visual=visual, offscreen_size=offscreen_size, cameras=cameras
        )
        self.model, self.data = self.scene.model, self.scene.data
        q0 = np.asarray(HOME_RAD if home is None else home, dtype=float) + np.asarray(variation.home_offset_rad)
        self.arm = MujocoArm(self.scene, t0=0.0)
        self.arm.set_positions([mp.to_ticks(x) for mp, x in zip(self.arm.mappings, q0, strict=True)])
        self.steps = 0
        self.last_targets = q0.copy()
        self._send(q0)
        self.kp = self.model.actuator_gainprm[list(self.scene.actuator_ids), 0].copy()
        self.ik = ArmIK(self.model)
        self._gripper_bodies = {self.model.body(b).id for b in GRIPPER_BODIES}

    # --- control -------------------------------------------------------------------------------------

    def _send(self, targets: np.ndarray) -> None:
        for i, (mp, x) in enumerate(zip(self.arm.mappings, targets, strict=True)):
            self.arm.command(i, mp.to_ticks(float(x)), True, SERVO_MAX_SPEED, SERVO_MAX_ACCEL)

    def step(self, targets: Sequence[float]) -> None:
        """Send 6 joint targets (radians) to the servos and advance one control period."""
        q = np.asarray(targets, dtype=float)
        if q.shape != (6,) or not np.all(np.isfinite(q)):
            raise ValueError(f"need 6 finite joint targets (radians), got {targets!r}")
        self._send(q)
        self.last_targets = q.copy()
        self.steps += 1
        self.arm.advance_to(self.steps / self.fps)

    def goal_ticks(self, targets: Sequence[float]) -> np.ndarray:
        return np.array([mp.to_ticks(float(x)) for mp, x in zip(self.arm.mappings, targets, strict=True)])

    @property
    def time(self) -> float:
        return self.steps / self.fps

    @property
    def max_steps(self) -> int:
        return int(round(self.task.time_limit_s * self.fps))

    @property
    def timed_out(self) -> bool:
        return self.steps >= self.max_steps

    # --- state ---------------------------------------------------------------------------------------

    def joint_positions(self) -> np.ndarray:
        """Measured joint angles (radians, 6)."""
        return self.data.qpos[list(self.scene.qpos_adr)].copy()

    def prop(self, name: str) -> Prop:
        v = self.variation
        return v.objects[name] if name in v.objects else v.targets[name]

    def pos(self, name: str) -> np.ndarray:
        return self.data.xpos[self.model.body(name).id].copy()

    def xmat(self, name: str) -> np.ndarray:
        return self.data.xmat[self.model.body(name).id].reshape(3, 3).copy()

    def speed(self, name: str) -> float:
        """Linear speed (m/s) of a free body."""
        j = self.model.joint(name)
        return float(np.linalg.norm(self.data.qvel[j.dofadr[0] : j.dofadr[0] + 3]))

    def tilt(self, name: str) -> float:
        """How far (radians) a body is tipped from how it rests: its z axis from the vertical (for a
        capsule, lying, its axis from the horizontal)."""
        z = self.xmat(name)[2, 2]
        if self.prop(name).shape == "capsule":
            return float(math.asin(min(1.0, abs(z))))
        return float(math.acos(min(1.0, abs(z))))

    def touching(self, name: str, other: str | set[int]) -> bool:
        """Whether body ``name`` has a contact with body ``other`` (a name or a set of body ids)."""
        a = self.model.body(name).id
        bs = {self.model.body(other).id} if isinstance(other, str) else other
        for c in self.data.contact[: self.data.ncon]:
            b1, b2 = self.model.geom_bodyid[c.geom1], self.model.geom_bodyid[c.geom2]
            if (b1 == a and b2 in bs) or (b2 == a and b1 in bs):
                return True
        return False

    def in_gripper(self, name: str) -> bool:
        """Whether the gripper (either jaw) touches body ``name``."""
        return self.touching(name, self._gripper_bodies)

    def success(self) -> bool:
        return self.task.success(self)


# Start pose: jaws open, fingers pointing down (tilted ~13 degrees outward), their tips ~9 cm above the
# table at x ~ 0.21 m, y = 0.
HOME_RAD = (0.0, -0.45, 0.35, 1.45, 0.0, 1.0)
