"""The emulated SO-101 bus driving the MuJoCo arm (host-side register access, no wire)."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("mujoco")

from hardware.emulator.server import Emulator  # noqa: E402
from hardware.sim.arm import MujocoArm  # noqa: E402


def test_emulated_servos_move_the_simulated_arm() -> None:
    arm = MujocoArm(initial_ticks=[2048.0] * 6)
    emu = Emulator("so101", motion=arm)
    servos = emu.servos
    assert [s.get("Present_Position") for s in servos] == [2048] * 6
    for s in servos:
        s.set("Goal_Position", s.get("Present_Position"))
        s.set("Torque_Enable", 1)
    servos[0].set("Goal_Position", 2548)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and abs(servos[0].get("Present_Position") - 2548) > 5:
        time.sleep(0.05)
    assert abs(servos[0].get("Present_Position") - 2548) <= 5
    assert abs(arm.state(0)[0] - 2548) <= 5
    lift = servos[1].get("Present_Position")
    servos[1].set("Torque_Enable", 0)  # limp: the arm drops
    time.sleep(0.4)
    assert abs(servos[1].get("Present_Position") - lift) > 100
