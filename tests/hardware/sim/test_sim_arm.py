"""MujocoArm: the MuJoCo SO-101 behind the emulator's MotionModel protocol."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("hardware.sim.scene")

from hardware.emulator.motion import MotionModel  # noqa: E402
from hardware.sim.arm import RAD_PER_TICK, REST_TICKS, JointMapping, MujocoArm, rad_to_ticks, ticks_to_rad  # noqa: E402

PAN, LIFT, ELBOW, WRIST_FLEX, ROLL, GRIPPER = range(6)
MID = [2048.0] * 6  # joint angles 0: the middle of each range, arm stretched forward
DT = 1.0 / 30.0


class Clock:
    """Drives an arm on a simulated clock at 30 Hz, recording the joints' state."""

    def __init__(self, arm: MujocoArm) -> None:
        self.arm = arm
        self.t = arm.time

    def run(self, seconds: float) -> list[tuple[float, tuple[float, ...], tuple[float, ...], tuple[float, ...]]]:
        out = []
        for _ in range(int(round(seconds / DT))):
            self.t += DT
            self.arm.advance_to(self.t)
            s = self.arm.snapshot()
            out.append((self.t, s.positions_ticks, s.velocities_ticks_s, s.loads))
        return out


def holding_arm() -> tuple[MujocoArm, Clock]:
    """All joints at 2048 (joint angles 0), torque on, settled."""
    arm = MujocoArm(t0=0.0, initial_ticks=MID)
    for i in range(arm.n_joints):
        arm.command(i, 2048.0, True, 3000.0, math.inf)
    clock = Clock(arm)
    clock.run(0.5)
    return arm, clock


def test_is_a_motion_model() -> None:
    arm = MujocoArm(t0=0.0, initial_ticks=MID)
    assert isinstance(arm, MotionModel)
    assert arm.n_joints == 6
    assert arm.joint_names[0] == "shoulder_pan" and arm.joint_names[5] == "gripper"


def test_starts_limp_in_the_rest_pose() -> None:
    arm = MujocoArm(t0=0.0)
    assert [arm.state(i)[0] for i in range(6)] == pytest.approx(list(REST_TICKS), abs=1e-6)
    Clock(arm).run(1.0)
    assert [arm.state(i)[0] for i in range(6)] == pytest.approx(list(REST_TICKS), abs=10.0)
    assert all(arm.state(i)[2] == 0.0 for i in range(6))  # torque off: no load


def test_ticks_radians_mapping_round_trips() -> None:
    assert ticks_to_rad(2048.0) == 0.0
    assert ticks_to_rad(2048.0 + 1024.0) == pytest.approx(math.pi / 2)
    assert rad_to_ticks(-math.pi) == pytest.approx(0.0)
    for mp in (JointMapping(), JointMapping(zero_ticks=1000.0), JointMapping(zero_ticks=3000.5, direction=-1)):
        for ticks in (0.0, 1.5, 812.0, 2048.0, 3301.25, 4095.0):
            assert mp.to_ticks(mp.to_rad(ticks)) == pytest.approx(ticks, abs=1e-9)
        for rad in (-2.5, -0.1, 0.0, 0.7, 3.0):
            assert mp.to_rad(mp.to_ticks(rad)) == pytest.approx(rad, abs=1e-12)
    assert JointMapping(zero_ticks=1000.0).to_rad(1000.0) == 0.0
    assert JointMapping(direction=-1).to_rad(2048.0 + 100) == pytest.approx(-100 * RAD_PER_TICK)
    with pytest.raises(ValueError):
        JointMapping(direction=2)


def test_state_uses_the_mapping_both_ways() -> None:
    maps = [JointMapping()] * 4 + [JointMapping(zero_ticks=1500.0, direction=-1), JointMapping(zero_ticks=2100.0)]
    arm = MujocoArm(t0=0.0, mappings=maps)
    ticks = [2148.0, 1948.0, 2300.0, 2000.0, 1400.0, 2200.0]
    arm.set_positions(ticks)
    for i, want in enumerate(ticks):
        assert arm.state(i)[0] == pytest.approx(want, abs=1e-6)
    qpos = arm.data.qpos[list(arm.scene.qpos_adr)]
    assert qpos[0] == pytest.approx(100 * RAD_PER_TICK)
    assert qpos[4] == pytest.approx(+100 * RAD_PER_TICK)  # reversed joint: 1400 is 100 ticks below its zero
    assert qpos[5] == pytest.approx(100 * RAD_PER_TICK)


def test_follows_goal_at_bounded_speed_and_stops_there() -> None:
    arm, clock = holding_arm()
    vmax, amax = 600.0, 3000.0
    arm.command(PAN, 2048.0 + 600.0, True, vmax, amax)
    trace = clock.run(2.0)
    pos = np.array([p[PAN] for _, p, _, _ in trace])
    vel = np.array([v[PAN] for _, _, v, _ in trace])
    fd = np.diff(pos) / DT
    # bounded speed: the servo's setpoint never exceeds the limit (next test); the joint tracks it with
    # a PD loop that overshoots the speed a little when the profile stops accelerating
    assert np.abs(vel).max() <= vmax * 1.15
    assert np.abs(fd).max() <= vmax * 1.15
    # it does move at about that speed (600 ticks at 600 t/s with ramps: ~1.2 s), not a jump
    assert pos[int(0.5 / DT)] < 2048 + 350
    assert pos[int(0.5 / DT)] > 2048 + 100
    assert np.all(np.diff(pos) > -2.0)  # toward the target, no oscillation back
    # and stops on the goal
    assert pos[-1] == pytest.approx(2648.0, abs=8.0)
    assert abs(vel[-1]) < 5.0
    assert arm.setpoint(PAN) == 2648.0
    assert abs(pos[-10] - pos[-1]) < 2.0


def test_profile_limits_the_setpoint_speed_of_every_joint() -> None:
    arm, clock = holding_arm()
    goals = [2400.0, 2200.0, 1800.0, 2300.0, 2700.0, 2400.0]
    for i, g in enumerate(goals):
        arm.command(i, g, True, 400.0, 2000.0)
    sps, times = [], []
    for _ in range(45):
        clock.run(DT)
        sps.append([arm.setpoint(i) for i in range(6)])
        times.append(arm.data.time)  # sim time: a 1/30 s call runs 16 or 17 physics steps
    sp = np.array(sps)
    speed = np.abs(np.diff(sp, axis=0)) / np.diff(times)[:, None]
    assert speed.max() <= 400.0 + 1e-6
    assert speed.max() >= 399.0
    clock.run(1.5)
    for i, g in enumerate(goals):
        assert arm.setpoint(i) == g
        assert arm.state(i)[0] == pytest.approx(g, abs=40.0)  # gravity sag of a P-only servo on lift/elbow


def test_torque_off_sags_under_gravity() -> None:
    arm, clock = holding_arm()
    held = arm.state(LIFT)[0]
    assert held == pytest.approx(2048.0, abs=40.0)  # holds against gravity (small P-servo sag)
    clock.run(0.5)
    assert arm.state(LIFT)[0] == pytest.approx(held, abs=3.0)
    arm.command(LIFT, 2048.0, False, 3000.0, math.inf)
    arm.command(ELBOW, 2048.0, False, 3000.0, math.inf)
    trace = clock.run(1.0)
    assert abs(trace[-1][1][LIFT] - held) > 150.0  # the arm dropped
    assert trace[-1][3][LIFT] == 0.0  # no load without torque
    # torque back on: the servo lifts it back from where it lies, at the profile's speed
    arm.command(LIFT, 2048.0, True, 1000.0, 5000.0)
    arm.command(ELBOW, 2048.0, True, 1000.0, 5000.0)
    clock.run(1.5)
    assert arm.state(LIFT)[0] == pytest.approx(2048.0, abs=40.0)


def test_move_by_hand_with_torque_off_and_on() -> None:
    arm, clock = holding_arm()
    arm.command(PAN, 2048.0, False, 3000.0, math.inf)  # pan's axis is vertical: gravity does not turn it
    before = arm.state(PAN)[0]
    arm.move_by_hand(PAN, 300.0)
    assert arm.state(PAN)[0] == pytest.approx(before + 300.0, abs=1e-6)
    clock.run(0.5)
    assert arm.state(PAN)[0] == pytest.approx(2348.0, abs=5.0)  # limp joint stays where the hand left it
    here = arm.state(PAN)[0]
    arm.command(PAN, here, True, 3000.0, math.inf)  # torque on where it is: it holds there
    clock.run(0.3)
    assert arm.state(PAN)[0] == pytest.approx(here, abs=3.0)
    arm.move_by_hand(PAN, -200.0)  # torque on: a hand pushes it, the servo pulls it back
    assert arm.state(PAN)[0] == pytest.approx(here - 200.0, abs=5.0)
    clock.run(1.0)
    assert arm.state(PAN)[0] == pytest.approx(here, abs=5.0)


def test_load_rises_against_a_joint_limit() -> None:
    arm, clock = holding_arm()
    clock.run(0.3)
    assert abs(arm.state(GRIPPER)[2]) < 0.2
    # the gripper closes past its mechanical stop (-0.1745 rad = 2048 - 114 ticks): it stalls there
    arm.command(GRIPPER, 1700.0, True, 3000.0, math.inf)
    clock.run(1.0)
    pos, _, load = arm.state(GRIPPER)
    assert pos == pytest.approx(2048 - 0.17453 / RAD_PER_TICK, abs=5.0)
    assert load < -0.9
    # back inside the range: the load goes away
    arm.command(GRIPPER, 2300.0, True, 3000.0, math.inf)
    clock.run(1.0)
    assert abs(arm.state(GRIPPER)[2]) < 0.2


def test_load_rises_against_an_obstacle() -> None:
    arm, clock = holding_arm()
    assert abs(arm.state(LIFT)[2]) < 0.4
    # shoulder_lift drives the gripper into the table (well inside the joint's range)
    arm.command(LIFT, 2048.0 + 800.0, True, 1000.0, 5000.0)
    clock.run(1.5)
    pos, _, load = arm.state(LIFT)
    assert pos < 2048.0 + 650.0  # blocked short of the goal
    assert load > 0.9
    assert any(
        "table" in {arm.model.geom(c.geom1).name, arm.model.geom(c.geom2).name} for c in arm.data.contact[: arm.data.ncon]
    )


def test_advance_caps_the_catch_up_after_a_long_pause() -> None:
    arm = MujocoArm(t0=100.0)
    sim0 = arm.data.time
    t0 = time.perf_counter()
    arm.advance_to(100.0 + 3600.0)  # an hour without a call
    assert time.perf_counter() - t0 < 2.0
    assert arm.data.time - sim0 == pytest.approx(0.5, abs=0.003)
    assert arm.time == 100.0 + 3600.0
    arm.advance_to(50.0)  # earlier times are ignored
    assert arm.time == 100.0 + 3600.0
    # a normal call simulates what elapsed, carrying the sub-step remainder
    sim1, t = arm.data.time, arm.time
    arm.advance_to(t + 0.1005)
    assert arm.data.time - sim1 == pytest.approx(0.1, abs=1e-9)
    arm.advance_to(t + 0.1015)  # 0.5 ms left over + 1 ms: not yet a whole 2 ms step
    assert arm.data.time - sim1 == pytest.approx(0.1, abs=1e-9)
    arm.advance_to(t + 0.1025)  # now it is
    assert arm.data.time - sim1 == pytest.approx(0.102, abs=1e-9)


def test_thread_safe_under_concurrent_use() -> None:
    arm = MujocoArm(initial_ticks=MID)
    for i in range(6):
        arm.command(i, 2048.0, True, 3000.0, math.inf)
    errors: list[BaseException] = []
    stop = time.monotonic() + 0.5

    def driver() -> None:
        try:
            k = 0
            while time.monotonic() < stop:
                arm.command(k % 6, 2048.0 + 100 * math.sin(k), True, 2000.0, 20000.0)
                arm.advance_to(time.monotonic())
                k += 1
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def reader() -> None:
        try:
            while time.monotonic() < stop:
                s = arm.snapshot()
                assert len(s.positions_ticks) == 6 and all(np.isfinite(s.positions_ticks))
                arm.state(3)
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=driver), threading.Thread(target=reader), threading.Thread(target=reader)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(5.0)
    assert not errors
    assert np.all(np.isfinite(arm.data.qpos))
