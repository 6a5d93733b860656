"""Everything that touches a device: servo protocols and buses, arm profiles, cameras, the servo-bus
emulator and the simulated arm behind it.

MuJoCo chooses its OpenGL back-end when it is first imported, and only EGL renders off-screen on a
machine without a display; setting ``MUJOCO_GL=egl`` here (when unset) covers every import path that
goes through this package before ``mujoco`` itself (see ``hardware.sim``).
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
