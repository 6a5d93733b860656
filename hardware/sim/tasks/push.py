"""``push``: push the block into the target zone (a flat disc drawn on the table, no collision).

``PushExpert``: fingers closed (they make the pusher), turned so the flat side of the fingers faces the
push direction; go above a point behind the block, lower to just above the table, push along the line
from the block to the zone centre (re-aimed every step at the block's measured position: an
``interaction`` phase), back off, lift.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from hardware.sim.tasks.base import Task, TaskEnv
from hardware.sim.tasks.expert import DEFAULT_WINDOW, Expert, Move
from hardware.sim.variations import SceneVariation, add_prop

PUSH_GAP_M = 0.022  # between the pads while pushing (at most the block's width - 6 mm)
PUSHER_HALF_M = 0.0095  # half-thickness of the closed fingers across the jaw axis (hull, + margin)
REPLAN_M = 0.012  # the block this far off the line: lift and push again from behind it
MAX_ATTEMPTS = 3
LOOKAHEAD_M = 0.01


class PushExpert(Expert):
    """See the module doc. Each push attempt fixes a line from the block to the zone centre; the
    pusher follows a carrot ``LOOKAHEAD_M`` ahead along it, straight. Blocks can drift off the line
    (steering by following the block sideways or dragging it back made the drift worse here: the block
    sticks to the fingers and turns), so when the block strays more
    than ``REPLAN_M`` from the line the fingers back off, lift, go behind the block on a new line and
    push again (at most ``MAX_ATTEMPTS``)."""

    def __init__(self, env: TaskEnv, obj: str, zone: str, *, window: int = DEFAULT_WINDOW) -> None:
        super().__init__(env, point=np.zeros(3), window=window)
        g = self.geom
        # jaws slightly open: the block's face rests on both fingers, a wide two-point pusher that keeps
        # the block from turning (closed fingers touch it at one point and it spins off the line)
        self.obj, self.p = obj, env.prop(obj)
        gap = max(0.0, min(PUSH_GAP_M, 2 * self.p.half_width - 0.006))
        self.set_point(np.array([g.pad_center_x, 0.0, g.fixed_face_z + gap / 2]))
        self.goal = np.array([*env.prop(zone).xy])
        self.radius = env.prop(zone).half_width
        self.push_z = (g.tip_x - g.pad_center_x) + 0.003
        self.hover = 0.05
        self.gap_angle = g.angle_for_gap(gap)
        self.attempts = 0
        self._u = self._n = np.zeros(2)
        self._back = np.zeros(2)
        self._dmin = np.inf
        self._aim()
        self.phases = self._attempt()

    def _block(self) -> np.ndarray:
        return self.env.pos(self.obj)[:2]

    def _aim(self) -> None:
        d = self.goal - self._block()
        self._u = d / max(float(np.linalg.norm(d)), 1e-6)
        self._n = np.array([-self._u[1], self._u[0]])
        self._line0 = self._block().copy()

    def _reach(self, v: np.ndarray) -> float:
        """Centre-to-surface distance of the block along ``-v``."""
        if self.p.shape != "box":
            return self.p.half_width
        r = self.env.xmat(self.obj)
        a = math.atan2(v[1], v[0]) - math.atan2(r[1, 0], r[0, 0])
        return self.p.half_width * (abs(math.cos(a)) + abs(math.sin(a)))

    def _yaw(self) -> float:
        """Jaw axis across the push direction, the wrist roll nearest 0."""
        base = math.atan2(self._u[1], self._u[0]) + math.pi / 2
        pref = self.preferred_yaw(self._block())
        return min((base, base + math.pi, base - math.pi), key=lambda a: abs((a - pref + math.pi) % (2 * math.pi) - math.pi))

    def _attempt(self) -> list[Move]:
        self.attempts += 1

        def behind() -> np.ndarray:
            return self._block() - self._u * (self._reach(self._u) + PUSHER_HALF_M + 0.02)

        def push_target() -> np.ndarray:
            # a carrot LOOKAHEAD_M ahead along the line, up to where the pusher is when the block sits on
            # the zone centre. Straight: following the block sideways makes it drift more (it sticks to
            # the fingers and they drag it along)
            final = self.goal @ self._u - (self._reach(self._u) + PUSHER_HALF_M - 0.003)
            along = min(self.p_cmd[:2] @ self._u + LOOKAHEAD_M, final)
            across = self._line0 @ self._n
            return np.array([*(along * self._u + across * self._n), self.push_z])

        def err() -> np.ndarray:
            d = self.goal - self._block()
            return np.array([d[0], d[1], 0.0])

        def stop() -> bool:  # in the zone (well inside, or inside and no longer closing in), or astray
            d = float(np.linalg.norm(self.goal - self._block()))
            self._dmin = min(self._dmin, d)
            if d < 0.4 * self.radius or (d < 0.7 * self.radius and d > self._dmin + 0.002):
                return True
            return self.attempts < MAX_ATTEMPTS and abs((self._block() - self.goal) @ self._n) > REPLAN_M

        def mark() -> None:
            self._back = self.p_cmd[:2] - self._u * 0.03

        def after() -> None:
            d = float(np.linalg.norm(self.goal - self._block()))
            if d > 0.6 * self.radius and self.attempts < MAX_ATTEMPTS:
                self._aim()
                self._dmin = np.inf
                self.phases.extend(self._attempt())

        first = self.attempts == 1
        return [
            Move("approach" if first else "reapproach", lambda: np.array([*behind(), self.hover]), speed=0.25,
                 gripper=self.gap_angle, tol=0.006, yaw=self._yaw),
            Move("lower", lambda: np.array([*behind(), self.push_z]), speed=0.06, tol=0.003),
            Move("push", push_target, speed=0.04, tol=0.008, error=err, settle_max=10, timeout_s=8.0,
                 interaction=True, until=stop),
            Move("back_off", lambda: np.array([*self._back, self.push_z]), speed=0.06, tol=0.006, on_enter=mark),
            Move("retreat", lambda: np.array([*self._back, self.hover]), speed=0.12, tol=0.01, on_enter=after),
        ]


class PushTask(Task):
    name = "push"
    instruction = "Push the block into the target zone."
    template = "Push the {block} into the target zone."
    time_limit_s = 15.0
    corridors = (("block", "zone"),)
    objects = {"block": ("box", "cylinder")}
    targets = {"zone": ("cylinder",)}
    footprint_pad = {"block": 0.03}  # room behind the block for the fingers

    def build(self, spec: mujoco.MjSpec, variation: SceneVariation) -> None:
        add_prop(spec, variation.objects["block"], free=True)
        z = variation.targets["zone"]
        body = add_prop(spec, z, free=False)
        body.pos = [z.xy[0], z.xy[1], -z.height / 2 + 0.0005]  # a disc flush with the table top
        for g in body.geoms:
            g.contype = g.conaffinity = 0

    def success(self, env: TaskEnv) -> bool:
        z = env.prop("zone")
        b = env.prop("block")
        pos = env.pos("block")
        inside = np.linalg.norm(pos[:2] - np.asarray(z.xy)) < z.half_width
        on_table = abs(pos[2] - b.z) < 0.004
        return bool(inside and on_table and env.speed("block") < 0.05 and not env.in_gripper("block"))

    def expert(self, env: TaskEnv, **kw: object) -> PushExpert:
        return PushExpert(env, "block", "zone", **kw)
