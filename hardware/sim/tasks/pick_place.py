"""``pick_place``: put the cube on the plate. Also the pick-and-place expert shared with ``stack`` and
``insert``.

``PickPlaceExpert``: approach above the object (jaws open, turned to close across it), descend, close,
lift, carry the object over its goal (steering the object's measured reference point, not the
gripper, so a grasp that is off-centre still places accurately), lower, open, retreat. The object's
reference point is its centre by default (``insert`` uses the peg's bottom).
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

from hardware.sim.tasks.base import Task, TaskEnv
from hardware.sim.tasks.expert import DEFAULT_WINDOW, Expert, Grip, Move
from hardware.sim.variations import SceneVariation, add_prop

ALL_SHAPES = ("box", "cylinder", "sphere", "capsule")
RESTING_TOL_M = 0.006
SETTLED_SPEED = 0.05  # m/s


class PickPlaceExpert(Expert):
    """Pick ``obj`` and put its reference point at ``goal()`` (module doc).

    ``clear_z``: the lowest the object's bottom may be while carried (world z). ``release_z``: extra
    height above the goal at which the jaws open. ``lower_speed``/``interaction``: the final lowering
    (slow and labelled ``interaction`` for an insertion). ``align_tol``: how exactly the reference
    point must be over the goal before lowering. ``place_yaw(grasp_yaw)``: the jaw direction to
    carry and place with (e.g. to line a square peg up with its hole), default the grasp's.
    """

    def __init__(
        self,
        env: TaskEnv,
        obj: str,
        goal: Callable[[], np.ndarray],
        *,
        clear_z: float = 0.03,
        release_z: float = 0.003,
        lower_speed: float = 0.05,
        interaction: bool = False,
        align_tol: float = 0.003,
        ref: Callable[[], np.ndarray] | None = None,
        place_yaw: Callable[[float], float] | None = None,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        p = env.prop(obj)
        self.obj = obj
        super().__init__(env, point=np.zeros(3), window=window)
        self.set_point(self.grasp_point(p.half_width))
        self.goal = goal
        self.ref = ref or (lambda: env.pos(obj))
        gz = self.grasp_height(obj)
        bottom = env.pos(obj)[2] - p.z
        self.lift_z = max(gz + 0.04, clear_z + (gz - bottom))
        self.hover_z = gz + 0.05
        yaw = self.grasp_yaw(obj)
        open_a, closed_a = self.open_angle(p.half_width), self.closed_angle(p.half_width)
        self._held = np.zeros(3)  # the reference point in the site frame, measured once lifted
        self._xy = np.zeros(2)

        def above() -> np.ndarray:
            return np.array([*env.pos(obj)[:2], self.hover_z])

        def at() -> np.ndarray:
            return np.array([*env.pos(obj)[:2], gz])

        def hold_xy() -> None:
            self._xy = self.p_cmd[:2].copy()

        def held() -> None:
            pos, rot = self.measured_site()
            self._held = rot.T @ (self.ref() - pos)

        def over_goal() -> np.ndarray:
            return self.point_for(self.goal(), z=self.lift_z)

        def down() -> np.ndarray:
            return self.point_for(self.goal() + np.array([0.0, 0.0, release_z]))

        def err_xy() -> np.ndarray:
            e = self.goal() - self.ref()
            return np.array([e[0], e[1], 0.0])

        def err_down() -> np.ndarray:
            return self.goal() + np.array([0.0, 0.0, release_z]) - self.ref()

        self.phases = [
            Move("approach", above, speed=0.25, gripper=open_a, tol=0.006, yaw=lambda: yaw),
            Move("descend", at, speed=0.06, tol=0.002, settle_max=15),
            Grip("close", closed_a, steps=12),
            Move("lift", lambda: np.array([*self._xy, self.lift_z]), speed=0.12, tol=0.01, on_enter=hold_xy),
            Move("carry", over_goal, speed=0.2, tol=align_tol, error=err_xy, settle_max=25, on_enter=held,
                 yaw=None if place_yaw is None else (lambda: place_yaw(yaw))),
            Move("lower", down, speed=lower_speed, tol=0.002, error=err_down, settle_max=20, interaction=interaction),
            Grip("release", open_a, steps=10),
            Move("retreat", lambda: np.array([*self._xy, self.lift_z + 0.01]), speed=0.12, tol=0.01, on_enter=hold_xy),
        ]


    def point_for(self, ref_goal: np.ndarray, z: float | None = None) -> np.ndarray:
        """Where to command the point so that the held object's reference point is at ``ref_goal``
        (only its x, y when the point's height ``z`` is given), with the orientation the arm will have
        there (the grasp is taken as rigid: the outward tilt when high moves the object with it)."""
        p = np.asarray(ref_goal, dtype=float).copy()
        for _ in range(3):
            q = ref_goal - self.rotation(p) @ (self._held - self.point)
            p = q if z is None else np.array([q[0], q[1], z])
        return p


def resting_on(env: TaskEnv, obj: str, surface_z: float) -> bool:
    """``obj`` lies on a surface at ``surface_z`` (its centre where resting puts it), still, released."""
    p = env.prop(obj)
    z_ok = abs(env.pos(obj)[2] - (surface_z + p.z)) < RESTING_TOL_M
    return bool(z_ok and env.speed(obj) < SETTLED_SPEED and not env.in_gripper(obj))


class PickPlaceTask(Task):
    name = "pick_place"
    instruction = "Pick up the cube and place it on the plate."
    template = "Pick up the {cube} and place it on the plate."
    nouns = {"cube": {"box": "cube"}}
    time_limit_s = 15.0
    corridors = (("cube", "plate"),)
    objects = {"cube": ALL_SHAPES}
    targets = {"plate": ("cylinder", "box")}

    def build(self, spec: mujoco.MjSpec, variation: SceneVariation) -> None:
        add_prop(spec, variation.objects["cube"], free=True)
        add_prop(spec, variation.targets["plate"], free=False)

    def success(self, env: TaskEnv) -> bool:
        plate = env.prop("plate")
        d = np.linalg.norm(env.pos("cube")[:2] - np.asarray(plate.xy))
        return bool(d < plate.half_width - 0.005 and resting_on(env, "cube", plate.top))

    def expert(self, env: TaskEnv, **kw: object) -> PickPlaceExpert:
        plate = env.prop("plate")
        cube = env.prop("cube")
        goal = np.array([*plate.xy, plate.top + cube.z])
        return PickPlaceExpert(env, "cube", lambda: goal, **kw)
