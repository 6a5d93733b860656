"""Simulated SO-101: a MuJoCo scene, a ``MotionModel`` for the emulated servos, simulated cameras.

MuJoCo picks its OpenGL back-end when it is first imported; only EGL renders off-screen on these
machines (unset fails), so this package sets ``MUJOCO_GL=egl`` when it is unset. That works only if
``mujoco`` has not been imported yet: import ``hardware.sim`` (or set ``MUJOCO_GL``) before anything
that imports ``mujoco``.
"""

import os
import sys

# True when mujoco was imported before we could choose its back-end: rendering will likely fail.
MUJOCO_GL_SET_TOO_LATE = "mujoco" in sys.modules and "MUJOCO_GL" not in os.environ
os.environ.setdefault("MUJOCO_GL", "egl")
