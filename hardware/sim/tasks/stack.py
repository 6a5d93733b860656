"""``stack``: put one block on top of the other (the pick-and-place expert, the goal on the base block)."""

from __future__ import annotations

import math

import mujoco
import numpy as np

from hardware.sim.tasks.base import Task, TaskEnv
from hardware.sim.tasks.pick_place import PickPlaceExpert, resting_on
from hardware.sim.variations import SceneVariation, VariationError, VariationSpec, add_prop

STACKABLE = ("box", "cylinder")
MAX_TILT_RAD = math.radians(15.0)


class StackTask(Task):
    name = "stack"
    instruction = "Stack the block on top of the other block."
    template = "Stack the {block} on top of the {base_block}."
    nouns = {"base_block": {"box": "other block", "cylinder": "other cylinder"}}
    time_limit_s = 15.0
    corridors = (("block", "base_block"),)
    objects = {"block": STACKABLE, "base_block": STACKABLE}

    def check_extra(self, spec: VariationSpec, where: str) -> None:
        b = spec.objects["base_block"]
        top = b.height[1] if b.height is not None else 2 * b.size[1]
        if top > 0.035:
            raise VariationError(f"{where}: objects.base.height: at most 0.035 m (the carried block must clear it)")

    def build(self, spec: mujoco.MjSpec, variation: SceneVariation) -> None:
        add_prop(spec, variation.objects["block"], free=True)
        add_prop(spec, variation.objects["base_block"], free=True)

    def success(self, env: TaskEnv) -> bool:
        block, base = env.prop("block"), env.prop("base_block")
        bp = env.pos("base_block")
        d = np.linalg.norm(env.pos("block")[:2] - bp[:2])
        base_ok = abs(bp[2] - base.z) < 0.004 and env.tilt("base_block") < MAX_TILT_RAD
        on = resting_on(env, "block", bp[2] + base.height / 2) and env.tilt("block") < MAX_TILT_RAD
        return bool(d < 0.7 * min(block.half_width, base.half_width) and base_ok and on)

    def expert(self, env: TaskEnv, **kw: object) -> PickPlaceExpert:
        block, base = env.prop("block"), env.prop("base_block")

        def goal() -> np.ndarray:
            bp = env.pos("base_block")
            return np.array([bp[0], bp[1], bp[2] + base.height / 2 + block.z])

        return PickPlaceExpert(env, "block", goal, clear_z=base.top + 0.012, **kw)
