"""``insert``: put the peg into the hole of a square fixture (four walls on the table, radial clearance
a few millimetres). The pick-and-place expert steers the peg's bottom centre over the hole, then
lowers it slowly (an ``interaction`` phase, like the paper's height cue for insertion) until it rests
on the table inside the fixture.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from hardware.sim.tasks.base import Task, TaskEnv
from hardware.sim.tasks.pick_place import PickPlaceExpert
from hardware.sim.variations import SceneVariation, VariationError, VariationSpec, add_prop

MIN_WALL_M = 0.006
MAX_TILT_RAD = math.radians(15.0)


def hole_half_width(variation: SceneVariation) -> float:
    return variation.objects["peg"].half_width + variation.targets["hole"].clearance


def _nearest(base: float, near: float, step: float) -> float:
    """``base + k * step`` closest to ``near``."""
    return base + step * round((near - base) / step)


class InsertTask(Task):
    name = "insert"
    instruction = "Insert the peg into the hole."
    template = "Insert the {peg} into the hole."
    nouns = {"peg": {"cylinder": "peg", "box": "square peg"}}
    time_limit_s = 16.0
    corridors = (("peg", "hole"),)
    objects = {"peg": ("cylinder", "box")}
    targets = {"hole": ("box",)}

    def check_extra(self, spec: VariationSpec, where: str) -> None:
        peg, hole = spec.objects["peg"], spec.targets["hole"]
        if hole.clearance is None:
            raise VariationError(f"{where}: targets.hole.clearance: required (radial gap around the peg, metres)")
        if hole.size[0] < peg.size[1] + hole.clearance[1] + MIN_WALL_M:
            raise VariationError(
                f"{where}: targets.hole.size[0]: the fixture's half-width must leave {MIN_WALL_M} m of wall around "
                f"the largest peg ({peg.size[1]} + clearance {hole.clearance[1]})"
            )
        wall = hole.height[1] if hole.height is not None else 2 * hole.size[1]
        peg_h = peg.height[0] if peg.height is not None else 2 * peg.size[0]
        if peg_h < wall + 0.02:
            raise VariationError(f"{where}: objects.peg.height[0]: must be at least the wall height + 0.02 m (the fingers stay above the walls)")

    def build(self, spec: mujoco.MjSpec, variation: SceneVariation) -> None:
        add_prop(spec, variation.objects["peg"], free=True)
        h = variation.targets["hole"]
        inner = hole_half_width(variation)
        t = h.half_width - inner
        body = spec.worldbody.add_body()
        body.name = "hole"
        body.pos = [h.xy[0], h.xy[1], 0.0]
        body.quat = [math.cos(h.yaw / 2), 0.0, 0.0, math.sin(h.yaw / 2)]
        walls = [
            ([t / 2, h.half_width, h.height / 2], [inner + t / 2, 0.0]),
            ([t / 2, h.half_width, h.height / 2], [-inner - t / 2, 0.0]),
            ([inner, t / 2, h.height / 2], [0.0, inner + t / 2]),
            ([inner, t / 2, h.height / 2], [0.0, -inner - t / 2]),
        ]
        for i, (size, xy) in enumerate(walls):
            g = body.add_geom()
            g.name = f"hole_wall{i}"
            g.type = mujoco.mjtGeom.mjGEOM_BOX
            g.size = size
            g.pos = [xy[0], xy[1], h.height / 2]
            g.rgba = list(h.rgba)
            g.contype = g.conaffinity = 3
            g.friction = [0.6, 0.01, 0.001]

    def peg_bottom(self, env: TaskEnv) -> np.ndarray:
        p = env.prop("peg")
        return env.pos("peg") - env.xmat("peg")[:, 2] * (p.height / 2)

    def success(self, env: TaskEnv) -> bool:
        h = env.prop("hole")
        b = self.peg_bottom(env)
        inside = np.linalg.norm(b[:2] - np.asarray(h.xy)) < hole_half_width(env.variation)
        deep = b[2] < 0.5 * h.height
        still = env.speed("peg") < 0.05 and not env.in_gripper("peg")
        return bool(inside and deep and still and env.tilt("peg") < MAX_TILT_RAD)

    def expert(self, env: TaskEnv, **kw: object) -> PickPlaceExpert:
        h = env.prop("hole")
        goal = np.array([*h.xy, 0.0])
        return PickPlaceExpert(
            env,
            "peg",
            lambda: goal,
            clear_z=h.height + 0.012,
            release_z=0.002,
            lower_speed=0.025,
            interaction=True,
            align_tol=0.0015,
            ref=lambda: self.peg_bottom(env),
            place_yaw=None if env.prop("peg").shape != "box" else (lambda y: _nearest(h.yaw, y, math.pi / 2)),
            **kw,
        )
