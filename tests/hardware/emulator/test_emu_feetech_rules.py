"""Feetech control-table rules over the wire, with a raw pyserial client speaking the project codec."""

from __future__ import annotations

import time

import pytest

from hardware.emulator import Emulator
from hardware.protocol import feetech as ft


def u16(v: int) -> bytes:
    return ft.encode_value(v, 2)


def read_value(client, sid: int, addr: int, size: int, sign_bit: int | None = None) -> int:
    reply = client.one(ft.read(sid, addr, size))
    assert reply.id == sid and len(reply.params) == size
    return ft.decode_value(reply.params, sign_bit)


def test_ping_and_identity(so101: Emulator, ft_client):
    reply = ft_client.one(ft.ping(1))
    assert (reply.id, reply.code, reply.params) == (1, 0, b"")
    assert read_value(ft_client, 4, 3, 2) == 777
    assert read_value(ft_client, 4, 0, 1) == 3 and read_value(ft_client, 4, 1, 1) == 10
    assert read_value(ft_client, 6, 5, 1) == 6  # ID register
    assert read_value(ft_client, 6, 6, 1) == 0  # Baud_Rate code of 1 Mbps
    assert ft_client.silent(ft.ping(42))


def test_reference_frames_from_the_protocol_notes(so101: Emulator, ft_client):
    # the verified PING frame and its reply (servo-protocols.md 1.6)
    ft_client.send(bytes.fromhex("FF FF 01 02 01 FB"))
    assert ft_client.raw(6) == bytes.fromhex("FF FF 01 02 00 FC")


def test_read_only_write_is_ignored_but_answered(so101: Emulator, ft_client):
    before = so101.servo(2).get("Present_Position")
    reply = ft_client.one(ft.write(2, 56, u16((before + 500) % 4096)))
    assert reply.code == 0
    assert abs(so101.servo(2).get("Present_Position") - before) <= 1
    reply = ft_client.one(ft.write(2, 3, u16(1234)))  # Model_Number
    assert reply.code == 0 and read_value(ft_client, 2, 3, 2) == 777


def test_eeprom_write_while_locked_is_live_but_not_persisted(so101: Emulator, ft_client):
    assert so101.servo(3).get("Lock") == 1
    ft_client.one(ft.write(3, 26, bytes([7])))  # CW_Dead_Zone (EEPROM)
    assert read_value(ft_client, 3, 26, 1) == 7  # in effect now
    ft_client.one(ft.reset(3))  # reboot: the persisted copy comes back
    assert read_value(ft_client, 3, 26, 1) == 1

    ft_client.one(ft.write(3, 55, bytes([0])))  # unlock
    ft_client.one(ft.write(3, 26, bytes([9])))
    ft_client.one(ft.reset(3))
    assert read_value(ft_client, 3, 26, 1) == 9
    so101.power_cycle()
    assert so101.servo(3).get("CW_Dead_Zone") == 9
    assert so101.servo(3).get("Lock") == 1  # RAM back to its default


def test_id_change_takes_effect_after_the_reply(so101: Emulator, ft_client):
    servo = so101.servo(6)
    ft_client.one(ft.write(6, 55, bytes([0])))
    reply = ft_client.one(ft.write(6, 5, bytes([20])))
    assert reply.id == 6  # answered under the old ID
    assert ft_client.silent(ft.ping(6))
    assert ft_client.one(ft.ping(20)).id == 20
    assert so101.servo(20) is servo
    with pytest.raises(KeyError):
        so101.servo(6)
    so101.power_cycle()  # unlocked: persisted
    assert so101.servo(20) is servo


def test_id_change_while_locked_is_lost_at_power_cycle(so101: Emulator, ft_client):
    ft_client.one(ft.write(5, 5, bytes([30])))
    assert ft_client.one(ft.ping(30)).id == 30
    so101.power_cycle()
    assert ft_client.one(ft.ping(5)).id == 5


def test_baud_change_takes_effect_after_the_reply(so101: Emulator, ft_client):
    reply = ft_client.one(ft.write(1, 6, bytes([4])))  # 115200
    assert reply.id == 1
    assert ft_client.silent(ft.ping(1))
    assert ft_client.one(ft.ping(2)).id == 2  # the others still listen at 1 Mbps
    ft_client.set_baud(115_200)
    assert ft_client.one(ft.ping(1)).id == 1
    assert ft_client.silent(ft.ping(2))
    assert so101.stats.wrong_baud == 0  # servo 1 heard it


def test_goal_is_clamped_to_the_position_limits(so101: Emulator, ft_client, wait_for):
    s = 4
    ft_client.one(ft.write(s, 55, bytes([0])))
    ft_client.one(ft.write(s, 9, u16(1500) + u16(2500)))  # Min and Max_Position_Limit at once
    ft_client.one(ft.write(s, 40, bytes([1])))
    ft_client.one(ft.write(s, 42, u16(3900)))
    assert read_value(ft_client, s, 42, 2, 15) == 2500
    assert wait_for(lambda: so101.servo(s).get("Present_Position") == 2500, timeout=2.0)
    ft_client.one(ft.write(s, 42, u16(100)))
    assert read_value(ft_client, s, 42, 2, 15) == 1500
    # both limits 0: multi-turn, no clamping
    ft_client.one(ft.write(s, 40, bytes([0])))
    ft_client.one(ft.write(s, 9, u16(0) + u16(0)))
    ft_client.one(ft.write(s, 40, bytes([1])))
    ft_client.one(ft.write(s, 42, u16(4000)))
    assert read_value(ft_client, s, 42, 2, 15) == 4000


def test_homing_offset_shifts_present_and_goal_frame(so101: Emulator, ft_client, wait_for):
    servo = so101.servo(2)
    actual = round(servo.mech_position())
    ft_client.one(ft.write(2, 55, bytes([0])))
    ft_client.one(ft.write(2, 31, ft.encode_value(-100, 2, 11)))
    assert read_value(ft_client, 2, 31, 2, 11) == -100
    assert read_value(ft_client, 2, 56, 2, 15) == (actual + 100) % 4096
    ft_client.one(ft.write(2, 40, bytes([1])))
    ft_client.one(ft.write(2, 42, u16(2600)))  # in the offset frame
    assert wait_for(lambda: servo.get("Present_Position") == 2600, timeout=2.0)
    assert servo.mech_position() == pytest.approx(2500, abs=0.5)  # actual = present + offset


def test_torque_128_sets_the_current_position_as_2048(so101: Emulator, ft_client):
    servo = so101.servo(1)
    so101.motion.move_by_hand(0, 700)
    ft_client.one(ft.write(1, 55, bytes([0])))
    ft_client.one(ft.write(1, 40, bytes([128])))
    assert read_value(ft_client, 1, 56, 2, 15) == 2048
    offset = servo.get("Homing_Offset")
    assert offset == round(servo.mech_position()) - 2048
    so101.power_cycle()
    assert servo.get("Homing_Offset") == offset  # written to EEPROM


def test_torque_on_holds_where_it_is_and_goal_moves_at_plausible_speed(so101: Emulator, ft_client, wait_for):
    servo = so101.servo(3)
    start = servo.get("Present_Position")
    ft_client.one(ft.write(3, 42, u16(300)))  # torque off: stored, no motion
    ft_client.one(ft.write(3, 40, bytes([1])))
    assert read_value(ft_client, 3, 42, 2, 15) == start  # torque on: hold here
    time.sleep(0.05)
    assert abs(servo.get("Present_Position") - start) <= 1
    target = start + 1000
    ft_client.one(ft.write(3, 46, u16(1000)))  # Goal_Velocity 1000 steps/s
    t0 = time.monotonic()
    ft_client.one(ft.write(3, 42, u16(target)))
    assert wait_for(lambda: servo.get("Moving") == 1, timeout=0.5)
    assert wait_for(lambda: servo.get("Present_Position") == target, timeout=3.0)
    elapsed = time.monotonic() - t0
    assert 0.95 <= elapsed < 2.5  # 1000 ticks at 1000 steps/s plus ramps, with slack for a loaded machine
    assert wait_for(lambda: servo.get("Moving") == 0, timeout=0.5)


def test_torque_off_joint_follows_the_hand(so101: Emulator, ft_client):
    before = read_value(ft_client, 5, 56, 2, 15)
    so101.motion.move_by_hand(4, -250)
    assert read_value(ft_client, 5, 56, 2, 15) == before - 250


def test_response_status_level_zero_answers_reads_only(so101: Emulator, ft_client):
    ft_client.one(ft.write(2, 8, bytes([0])))
    assert ft_client.silent(ft.write(2, 41, bytes([10])))
    assert so101.servo(2).get("Acceleration") == 10  # applied all the same
    assert read_value(ft_client, 2, 41, 1) == 10
    assert ft_client.one(ft.ping(2)).id == 2


def test_reg_write_waits_for_action(so101: Emulator, ft_client):
    ft_client.one(ft.reg_write(1, 41, bytes([33])))
    ft_client.one(ft.reg_write(2, 41, bytes([44])))
    assert so101.servo(1).get("Acceleration") == 0
    assert ft_client.silent(ft.action())  # broadcast: no reply
    assert so101.servo(1).get("Acceleration") == 33 and so101.servo(2).get("Acceleration") == 44


def test_sync_read_and_sync_write(so101: Emulator, ft_client):
    ft_client.send(ft.sync_write(41, 1, {i: bytes([i * 10]) for i in range(1, 7)}))
    replies = ft_client.transact(ft.sync_read(41, 1, [6, 2, 4]), n=3)
    assert [(r.id, r.params[0]) for r in replies] == [(6, 60), (2, 20), (4, 40)]


def test_broadcast_ping_with_six_servos_collides(so101: Emulator, ft_client):
    ft_client.send(ft.ping(ft.BROADCAST_ID))
    raw = ft_client.raw(6)
    assert len(raw) == 6  # one frame's worth of wired-AND garbage
    assert ft.Decoder(status=True).feed(raw) == []


def test_broadcast_ping_with_one_servo_answers(make_client):
    with Emulator("so101", faults="dead=1+2+3+4+5") as emu:
        client = make_client(emu.port)
        client.send(ft.ping(ft.BROADCAST_ID))
        assert client.raw(6) == ft.encode_status(6, 0)


def test_host_side_get_and_set(so101: Emulator, ft_client):
    servo = so101.servo(3)
    present = servo.get("Present_Position")
    servo.set("Homing_Offset", -100)  # a poke: no wire, no lock rule, persisted
    assert servo.get("Homing_Offset") == -100
    assert read_value(ft_client, 3, 56, 2, 15) == (present + 100) % 4096
    so101.power_cycle()
    assert servo.get("Homing_Offset") == -100
    with pytest.raises(KeyError, match="Goal_Speed"):
        servo.get("Goal_Speed")
    with pytest.raises(ValueError):
        servo.set("Homing_Offset", 5000)  # does not fit the field


def test_present_load_current_voltage_temperature(so101: Emulator, ft_client, wait_for):
    servo = so101.servo(2)
    assert servo.get("Present_Load") == 0 and servo.get("Present_Current") == 0  # torque off: no effort
    assert servo.get("Present_Voltage") == 120  # STS3215 nominal 12.0 V
    assert 29 <= servo.get("Present_Temperature") <= 31
    ft_client.one(ft.write(2, 41, b"\x01"))  # Acceleration 100 ticks/s^2
    ft_client.one(ft.write(2, 46, u16(50)))  # Goal_Velocity 50 steps/s: a slow return
    ft_client.one(ft.write(2, 40, b"\x01"))
    so101.motion.move_by_hand(1, 400)  # push the joint away: the servo pulls back toward its goal
    load = read_value(ft_client, 2, 60, 2, 10)
    assert -1000 <= load < -300
    assert servo.get("Present_Current") > 100
    assert wait_for(lambda: servo.get("Moving") == 1, timeout=1.0)  # once it has picked up speed
    so101.motion.move_by_hand(1, -800)
    assert read_value(ft_client, 2, 60, 2, 10) > 300


def test_stats_count_requests_and_replies(so101: Emulator, ft_client):
    ft_client.one(ft.ping(1))
    ft_client.transact(ft.sync_read(56, 2, range(1, 7)), n=6)
    ft_client.silent(ft.sync_write(41, 1, {1: b"\x05"}))
    stats = so101.stats
    assert (stats.requests, stats.replies, stats.dropped, stats.wrong_baud) == (3, 7, 0, 0)
