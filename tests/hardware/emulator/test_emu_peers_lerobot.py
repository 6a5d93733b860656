"""LeRobot 0.6.1 connects to the emulated arms exactly as it would to real ones."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hardware.emulator import Emulator

pytestmark = pytest.mark.peer

lerobot_motors = pytest.importorskip("lerobot.motors")
from lerobot.motors import Motor, MotorCalibration, MotorNormMode  # noqa: E402
from lerobot.motors.dynamixel import DynamixelMotorsBus  # noqa: E402
from lerobot.motors.feetech import FeetechMotorsBus  # noqa: E402

JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")


def so_motors() -> dict[str, Motor]:
    return {j: Motor(i + 1, "sts3215", MotorNormMode.RANGE_M100_100) for i, j in enumerate(JOINTS)}


def koch_motors() -> dict[str, Motor]:
    return {
        j: Motor(i + 1, "xl430-w250" if i < 2 else "xl330-m288", MotorNormMode.RANGE_M100_100)
        for i, j in enumerate(JOINTS)
    }


def test_feetech_bus_connect_sync_read_write(so101: Emulator, wait_for):
    bus = FeetechMotorsBus(so101.port, so_motors())
    bus.connect()  # pings every id, checks model numbers and firmware versions
    try:
        raw = bus.sync_read("Present_Position", normalize=False)
        assert raw == {j: so101.servo(i + 1).get("Present_Position") for i, j in enumerate(JOINTS)}
        bus.configure_motors()
        assert so101.servo(1).get("Return_Delay_Time") == 0 and so101.servo(6).get("Acceleration") == 254
        bus.enable_torque()
        goals = {j: raw[j] + (150 if i % 2 else -150) for i, j in enumerate(JOINTS)}
        bus.sync_write("Goal_Position", goals, normalize=False)
        assert wait_for(lambda: bus.sync_read("Present_Position", normalize=False) == goals, timeout=2.0)
        # on goal (rounded to a tick) can come a moment before the profile has stopped: then Moving drops
        assert wait_for(lambda: bus.sync_read("Moving", normalize=False) == dict.fromkeys(JOINTS, 0), timeout=1.0)
    finally:
        bus.disconnect()
    assert all(so101.servo(i).get("Torque_Enable") == 0 for i in range(1, 7))


def test_feetech_bus_setup_motor_changes_the_id_over_the_wire():
    with Emulator("so101", faults="dead=2+3+4+5+6") as emu:  # only the servo with id 1 is plugged in
        servo = emu.servo(1)
        bus = FeetechMotorsBus(emu.port, so_motors())
        bus.setup_motor("gripper", initial_baudrate=1_000_000)
        try:
            assert servo.get("ID") == 6 and emu.servo(6) is servo
            assert bus.ping("gripper") == 777
        finally:
            bus.port_handler.closePort()


def test_feetech_handshake_reports_a_missing_motor():
    with Emulator("so101", faults="dead=4") as emu:
        bus = FeetechMotorsBus(emu.port, so_motors())
        # id 4 is listed missing (a loaded machine can make LeRobot's own ping miss another id too)
        with pytest.raises(RuntimeError, match=r"Missing motor IDs:\s+(- \d+ .*\s+)*- 4 "):
            bus.connect()


def test_dynamixel_bus_connect_sync_read_write_calibration(koch: Emulator, wait_for):
    bus = DynamixelMotorsBus(koch.port, koch_motors())
    bus.connect()
    try:
        bus.configure_motors()
        assert koch.servo(3).get("Return_Delay_Time") == 0
        raw = bus.sync_read("Present_Position", normalize=False)
        assert raw == {j: koch.servo(i + 1).get("Present_Position") for i, j in enumerate(JOINTS)}
        calibration = {
            j: MotorCalibration(id=i + 1, drive_mode=0, homing_offset=2047 - raw[j], range_min=1047, range_max=3047)
            for i, j in enumerate(JOINTS)
        }
        bus.write_calibration(calibration)
        assert bus.is_calibrated
        centred = bus.sync_read("Present_Position", normalize=False)
        assert all(abs(v - 2047) <= 1 for v in centred.values())
        assert abs(bus.read("Present_Position", "elbow_flex")) < 0.2  # mid-range in -100..100
        for j in JOINTS:
            bus.write("Operating_Mode", j, 4)  # extended position, as LeRobot's Koch follower
        bus.enable_torque()
        bus.sync_write("Goal_Position", {"elbow_flex": 50.0, "wrist_flex": -50.0})  # no reply: poll
        goals = lambda: (koch.servo(3).get("Goal_Position"), koch.servo(4).get("Goal_Position"))  # noqa: E731
        assert wait_for(lambda: goals() == (2547, 1547))
        assert wait_for(lambda: koch.servo(3).get("Present_Position") == 2547, timeout=2.0)
        assert wait_for(lambda: koch.servo(4).get("Present_Position") == 1547, timeout=2.0)
    finally:
        bus.disconnect()
    assert koch.servo(3).get("Torque_Enable") == 0


def test_so101_follower_with_calibration_file(so101: Emulator, tmp_path: Path, wait_for):
    from lerobot.robots.so_follower import SO101Follower, SO101FollowerConfig

    calib = {
        j: {
            "id": i + 1,
            "drive_mode": 0,
            "homing_offset": 40 * i - 100,
            "range_min": 0 if j == "wrist_roll" else 900 + 10 * i,
            "range_max": 4095 if j == "wrist_roll" else 3100 - 10 * i,
        }
        for i, j in enumerate(JOINTS)
    }
    (tmp_path / "emu_arm.json").write_text(json.dumps(calib))
    robot = SO101Follower(SO101FollowerConfig(port=so101.port, id="emu_arm", calibration_dir=tmp_path))
    robot.connect(calibrate=False)
    try:
        assert robot.is_connected
        assert not robot.is_calibrated  # the servos still hold factory values
        robot.bus.write_calibration(robot.calibration)
        assert robot.is_calibrated
        assert so101.servo(2).get("Homing_Offset") == -60 and so101.servo(3).get("Min_Position_Limit") == 920
        assert so101.servo(6).get("Max_Torque_Limit") == 500  # written by configure() through Lock=0

        servos = [so101.servo(i) for i in range(1, 7)]
        # the new offsets moved the goal frame under the held positions: let the arm settle first
        def settled() -> bool:
            return all(s.get("Moving") == 0 and s.get("Present_Position") == s.get("Goal_Position") for s in servos)

        assert wait_for(settled, timeout=2.0)

        obs = robot.get_observation()
        assert set(obs) == {f"{j}.pos" for j in JOINTS}
        before = [s.get("Present_Position") for s in servos]
        action = {f"{j}.pos": 8.0 for j in JOINTS[:5]} | {"gripper.pos": 70.0}
        assert robot.send_action(action) == action
        # a sync write has no reply: wait until the emulator has applied it
        assert wait_for(lambda: all(s.get("Goal_Position") != b for s, b in zip(servos, before)), timeout=1.0)
        goals = [s.get("Goal_Position") for s in servos]
        gripper = servos[5]
        assert abs(goals[5] - before[5]) > 200
        trace = [before[5]]
        deadline = time.monotonic() + 2.0
        while trace[-1] != goals[5] and time.monotonic() < deadline:
            trace.append(gripper.get("Present_Position"))
            time.sleep(0.005)
        assert trace[-1] == goals[5]
        step = 1 if goals[5] > before[5] else -1
        assert all((b - a) * step >= 0 for a, b in zip(trace, trace[1:])), "moves monotonically toward the goal"
        assert len(set(trace)) > 4  # intermediate positions: it travels, it does not jump
        assert wait_for(lambda: [s.get("Present_Position") for s in servos] == goals, timeout=2.0)
        obs = robot.get_observation()
        assert obs["gripper.pos"] == pytest.approx(70.0, abs=0.1)
        assert obs["elbow_flex.pos"] == pytest.approx(8.0, abs=0.2)
    finally:
        robot.disconnect()
    assert not robot.is_connected
    assert all(so101.servo(i).get("Torque_Enable") == 0 for i in range(1, 7))
