"""Dynamixel Protocol 2.0 control-table rules over the wire (Koch: XL430 ids 1-2, XL330-M288 ids 3-6)."""

from __future__ import annotations

import pytest

from hardware.emulator import Emulator
from hardware.protocol import dynamixel as dxl

E = dxl.ResultError


def enc(v: int, size: int, signed: bool = False) -> bytes:
    return dxl.encode_value(v, size, signed)


def read_value(client, sid: int, addr: int, size: int, signed: bool = False) -> int:
    reply = client.one(dxl.read(sid, addr, size))
    assert reply.id == sid and reply.code == 0 and len(reply.params) == size, reply
    return dxl.decode_value(reply.params, signed)


def test_reference_ping_frame(koch: Emulator, dxl_client):
    dxl_client.send(bytes.fromhex("FF FF FD 00 01 03 00 01 19 4E"))
    reply = dxl.Decoder(status=True).feed(dxl_client.raw(14))
    assert [(p.id, p.code, p.params) for p in reply] == [(1, 0, bytes([0x24, 0x04, 46]))]  # 1060, fw 46


def test_ping_reports_model_and_firmware(koch: Emulator, dxl_client):
    for sid, model, fw in ((2, 1060, 46), (5, 1200, 52)):
        reply = dxl_client.one(dxl.ping(sid))
        assert dxl.decode_value(reply.params[:2]) == model and reply.params[2] == fw


def test_broadcast_ping_answers_in_id_order(koch: Emulator, dxl_client):
    replies = dxl_client.transact(dxl.ping(dxl.BROADCAST_ID), n=6)
    assert [r.id for r in replies] == [1, 2, 3, 4, 5, 6]


def test_eeprom_write_with_torque_on_is_an_access_error(koch: Emulator, dxl_client):
    assert dxl_client.one(dxl.write(3, 64, b"\x01")).code == 0
    reply = dxl_client.one(dxl.write(3, 20, enc(500, 4, True)))  # Homing_Offset
    assert reply.code == E.ACCESS
    assert koch.servo(3).get("Homing_Offset") == 0
    dxl_client.one(dxl.write(3, 64, b"\x00"))
    assert dxl_client.one(dxl.write(3, 20, enc(500, 4, True))).code == 0
    assert read_value(dxl_client, 3, 20, 4, True) == 500


def test_read_only_and_partial_and_out_of_range_writes_are_refused(koch: Emulator, dxl_client):
    assert dxl_client.one(dxl.write(4, 132, enc(1, 4))).code == E.ACCESS  # Present_Position
    assert dxl_client.one(dxl.write(4, 116, enc(1, 2))).code == E.DATA_LENGTH  # half of Goal_Position
    assert dxl_client.one(dxl.write(4, 11, b"\x02")).code == E.DATA_RANGE  # Operating_Mode 2 does not exist
    assert dxl_client.one(dxl.write(1, 11, b"\x05")).code == E.DATA_RANGE  # XL430 has no mode 5
    assert dxl_client.one(dxl.write(4, 14, b"\x00")).code == E.ACCESS  # undefined address
    assert koch.servo(4).get("Operating_Mode") == 3


def test_goal_outside_limits_in_position_mode_is_a_data_limit_error(koch: Emulator, dxl_client):
    dxl_client.one(dxl.write(5, 48, enc(3000, 4) + enc(1000, 4)))  # Max then Min_Position_Limit
    dxl_client.one(dxl.write(5, 64, b"\x01"))
    before = koch.servo(5).get("Goal_Position")
    assert dxl_client.one(dxl.write(5, 116, enc(3500, 4, True))).code == E.DATA_LIMIT
    assert koch.servo(5).get("Goal_Position") == before
    dxl_client.one(dxl.write(5, 64, b"\x00"))
    dxl_client.one(dxl.write(5, 11, b"\x04"))  # extended position: limits ignored
    dxl_client.one(dxl.write(5, 64, b"\x01"))
    assert dxl_client.one(dxl.write(5, 116, enc(6000, 4, True))).code == 0


def test_homing_offset_and_drive_mode_reverse(koch: Emulator, dxl_client, wait_for):
    servo = koch.servo(6)
    actual = round(servo.mech_position())
    assert read_value(dxl_client, 6, 132, 4, True) == actual
    dxl_client.one(dxl.write(6, 20, enc(-300, 4, True)))
    assert read_value(dxl_client, 6, 132, 4, True) == actual - 300
    dxl_client.one(dxl.write(6, 10, b"\x01"))  # reverse
    assert read_value(dxl_client, 6, 132, 4, True) == -actual - 300
    dxl_client.one(dxl.write(6, 11, b"\x04"))
    dxl_client.one(dxl.write(6, 64, b"\x01"))
    dxl_client.one(dxl.write(6, 116, enc(-actual - 300 + 200, 4, True)))  # +200 in the reversed frame
    assert wait_for(lambda: servo.get("Present_Position") == -actual - 100, timeout=2.0)
    assert servo.mech_position() == pytest.approx(actual - 200, abs=0.5)


def test_id_change_answers_under_the_old_id(koch: Emulator, dxl_client):
    servo = koch.servo(2)
    reply = dxl_client.one(dxl.write(2, 7, b"\x09"))
    assert (reply.id, reply.code) == (2, 0)
    assert dxl_client.silent(dxl.ping(2))
    assert dxl_client.one(dxl.ping(9)).id == 9 and koch.servo(9) is servo
    koch.power_cycle()  # Dynamixel EEPROM writes persist
    assert koch.servo(9) is servo


def test_baud_change_after_the_reply(koch: Emulator, dxl_client):
    assert dxl_client.one(dxl.write(1, 8, b"\x01")).id == 1  # 57600
    assert dxl_client.silent(dxl.ping(1))
    dxl_client.set_baud(57_600)
    assert dxl_client.one(dxl.ping(1)).id == 1


def test_sync_read_bulk_read_and_sync_write(koch: Emulator, dxl_client):
    dxl_client.send(dxl.sync_write(112, 4, {i: enc(10 * i, 4) for i in range(1, 7)}))
    replies = dxl_client.transact(dxl.sync_read(112, 4, [5, 1, 3]), n=3)
    assert [(r.id, dxl.decode_value(r.params)) for r in replies] == [(5, 50), (1, 10), (3, 30)]
    replies = dxl_client.transact(dxl.bulk_read([(2, 0, 2), (4, 112, 4), (6, 146, 1)]), n=3)
    assert [r.id for r in replies] == [2, 4, 6]
    assert dxl.decode_value(replies[0].params) == 1060
    assert dxl.decode_value(replies[1].params) == 40
    assert 20 <= replies[2].params[0] <= 60  # a temperature


def test_reg_write_action_and_action_without_reg_write(koch: Emulator, dxl_client):
    assert dxl_client.one(dxl.action(3)).code == E.INSTRUCTION
    assert dxl_client.one(dxl.reg_write(3, 112, enc(77, 4))).code == 0
    assert koch.servo(3).get("Registered_Instruction") == 1
    assert koch.servo(3).get("Profile_Velocity") == 0
    assert dxl_client.silent(dxl.action())
    assert koch.servo(3).get("Profile_Velocity") == 77 and koch.servo(3).get("Registered_Instruction") == 0


def test_reboot_restores_ram_defaults(koch: Emulator, dxl_client):
    dxl_client.one(dxl.write(4, 64, b"\x01"))
    dxl_client.one(dxl.write(4, 84, enc(1500, 2)))
    assert dxl_client.one(dxl.reboot(4)).code == 0
    assert koch.servo(4).get("Torque_Enable") == 0 and koch.servo(4).get("Position_P_Gain") == 400


def test_factory_reset_keeps_id_and_baud_with_option_2(koch: Emulator, dxl_client):
    dxl_client.one(dxl.write(3, 9, b"\x00"))  # Return_Delay_Time
    assert dxl_client.one(dxl.factory_reset(3, 0x02)).code == 0
    assert koch.servo(3).get("Return_Delay_Time") == 250 and koch.servo(3).get("ID") == 3


def test_factory_reset_all_goes_back_to_id_1_at_57600(koch: Emulator, dxl_client):
    servo = koch.servo(6)
    assert dxl_client.one(dxl.factory_reset(6, 0xFF)).id == 6
    assert (servo.get("ID"), servo.get("Baud_Rate")) == (1, 1)
    dxl_client.set_baud(57_600)
    assert dxl_client.one(dxl.ping(1)).params[:2] == dxl.encode_value(1200, 2)


def test_status_return_level(koch: Emulator, dxl_client):
    dxl_client.one(dxl.write(2, 68, b"\x01"))  # answered under level 2
    assert dxl_client.silent(dxl.write(2, 65, b"\x01"))
    assert koch.servo(2).get("LED") == 1
    assert read_value(dxl_client, 2, 65, 1) == 1
    dxl_client.silent(dxl.write(2, 68, b"\x00"))
    assert dxl_client.silent(dxl.read(2, 65, 1))
    assert dxl_client.one(dxl.ping(2)).id == 2


def test_velocity_mode_turns(koch: Emulator, dxl_client, wait_for):
    servo = koch.servo(3)
    start = servo.get("Present_Position")
    dxl_client.one(dxl.write(3, 11, b"\x01"))
    dxl_client.one(dxl.write(3, 64, b"\x01"))
    dxl_client.one(dxl.write(3, 104, enc(-100, 4, True)))  # -100 x 0.229 rpm ~ -1563 ticks/s
    assert wait_for(lambda: servo.get("Present_Velocity") == -100, timeout=1.0)
    assert servo.get("Present_Position") < start


def test_present_current_follows_the_effort_and_drive_mode(koch: Emulator, dxl_client, wait_for):
    servo = koch.servo(4)  # XL330: Present_Current in mA
    assert read_value(dxl_client, 4, 144, 2) == 50  # 5.0 V
    dxl_client.one(dxl.write(4, 108, enc(1, 4)))  # slow profile: ~244 ticks/s^2
    dxl_client.one(dxl.write(4, 112, enc(5, 4)))  # ~78 ticks/s
    dxl_client.one(dxl.write(4, 64, b"\x01"))
    koch.motion.move_by_hand(3, 300)
    assert read_value(dxl_client, 4, 126, 2, True) < -300
    assert wait_for(lambda: servo.get("Present_Velocity") < 0, timeout=1.0)
    assert servo.get("Moving") == 0  # ~78 ticks/s is below Moving_Threshold (10 x 0.229 rpm)
    koch.servo(1).set("Drive_Mode", 1)
    assert read_value(dxl_client, 1, 126, 2, True) == 0  # XL430: Present_Load, torque off
