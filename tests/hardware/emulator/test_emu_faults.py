"""Fault SPEC parsing and every fault kind, observed from the client side of the wire."""

from __future__ import annotations

import time

import pytest

from hardware.emulator import Emulator, FaultSpec, parse_faults
from hardware.protocol import dynamixel as dxl
from hardware.protocol import feetech as ft

# --- parsing ----------------------------------------------------------------------------------------


def test_parse_full_spec_and_round_trip():
    spec = parse_faults("corrupt=0.1, drop=0.05,late=0.2:35,dead=3+4,overheat=2,voltage=all,model=5:1060,seed=7")
    assert spec == FaultSpec(
        corrupt=0.1, drop=0.05, late=0.2, late_ms=35, dead={3, 4}, overheat={2}, voltage="all", model={5: 1060}, seed=7
    )
    assert parse_faults(spec.to_spec()) == spec
    assert parse_faults("late=0.5").late_ms == 20
    assert parse_faults("voltage=1+6").voltage == {1, 6}
    assert parse_faults(None) == FaultSpec() == parse_faults("")
    assert parse_faults(spec) is spec


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("bogus=1", ["bogus", "corrupt", "drop", "late", "dead", "overheat", "voltage", "model", "seed"]),
        ("drop=2", ["drop", "[0, 1]"]),
        ("corrupt=x", ["corrupt", "RATE"]),
        ("late=0.1:abc", ["late", "MS"]),
        ("dead=1+x", ["dead", "ID"]),
        ("dead=300", ["dead", "0..253"]),
        ("voltage=some", ["voltage", "all"]),
        ("model=3", ["model", "ID:NUMBER"]),
        ("model=3:70000", ["model", "65535"]),
        ("seed=1.5", ["seed", "integer"]),
        ("drop", ["drop", "RATE"]),
        ("drop=0.1,drop=0.2", ["drop", "twice"]),
    ],
)
def test_bad_specs_name_the_key_and_what_is_allowed(spec, names):
    with pytest.raises(ValueError) as info:
        parse_faults(spec)
    for name in names:
        assert name in str(info.value)


# --- on the wire --------------------------------------------------------------------------------------


def test_drop_all(make_client):
    with Emulator("so101", faults="drop=1") as emu:
        client = make_client(emu.port)
        for sid in (1, 2, 3):
            assert client.silent(ft.ping(sid), wait=0.02)
        assert emu.stats.dropped == 3 and emu.stats.replies == 0 and emu.stats.requests == 3


def test_drop_some_is_seeded(make_client, wait_for):
    def pattern(seed: int) -> list[bool]:
        # which requests got a reply, read from the emulator's own counters (not from client timeouts,
        # which a loaded machine can miss)
        with Emulator("so101", faults=f"drop=0.5,seed={seed}") as emu:
            client = make_client(emu.port)
            answered = []
            for k in range(24):
                dropped = emu.stats.dropped
                client.transact(ft.ping(1), timeout=0.02)
                assert wait_for(lambda: emu.stats.requests == k + 1, timeout=2.0)
                answered.append(emu.stats.dropped == dropped)
            return answered

    a, b = pattern(3), pattern(3)
    assert a == b
    assert 3 <= sum(a) <= 21


def test_corrupt_all(make_client):
    with Emulator("koch", faults="corrupt=1") as emu:
        client = make_client(emu.port, family="dynamixel")
        for sid in (1, 4):
            client.send(dxl.ping(sid))
            raw = client.raw(14)
            assert len(raw) == 14 and raw != dxl.encode_status(sid, 0, raw[8:11])
            assert dxl.Decoder(status=True).feed(raw) == []  # a flipped byte: never a valid frame
        assert emu.stats.corrupted == 2


def test_late_replies(make_client):
    with Emulator("so101", faults="late=1:30") as emu:
        client = make_client(emu.port)
        t0 = time.monotonic()
        client.send(ft.ping(2))
        assert client.raw(6, timeout=0.5) == ft.encode_status(2, 0)
        assert time.monotonic() - t0 >= 0.030
        assert emu.stats.late == 1


def test_dead_servo_never_answers(make_client):
    with Emulator("so101", faults="dead=3") as emu:
        client = make_client(emu.port)
        assert client.silent(ft.ping(3))
        assert client.one(ft.ping(4)).id == 4
        replies = client.transact(ft.sync_read(56, 2, [2, 3, 4]), n=3, timeout=0.05)
        assert [r.id for r in replies] == [2, 4]


def test_model_number_fault(make_client):
    with Emulator("koch", faults="model=2:1190") as emu:
        client = make_client(emu.port, family="dynamixel")
        assert dxl.decode_value(client.one(dxl.ping(2)).params[:2]) == 1190
        assert dxl.decode_value(client.one(dxl.ping(1)).params[:2]) == 1060
    with Emulator("so101", faults="model=6:2825") as emu:
        client = make_client(emu.port)
        assert ft.decode_value(client.one(ft.read(6, 3, 2)).params) == 2825


def test_voltage_fault_feetech(make_client):
    with Emulator("so101", faults="voltage=2") as emu:
        client = make_client(emu.port)
        reply = client.one(ft.read(2, 62, 1))
        assert reply.code & ft.StatusError.VOLTAGE
        assert reply.params[0] < emu.servo(2).get("Min_Voltage_Limit")
        assert client.one(ft.read(1, 62, 1)).params[0] == 120  # 12.0 V, no error
        assert emu.servo(2).get("Status") & 0x01


def test_voltage_fault_dynamixel_sets_hardware_error_and_alert(make_client):
    with Emulator("koch", faults="voltage=all") as emu:
        client = make_client(emu.port, family="dynamixel")
        reply = client.one(dxl.read(4, 70, 1))
        assert reply.code & dxl.ALERT and reply.params[0] & 0x01
        volts = emu.servo(4).get("Present_Input_Voltage")
        assert volts < emu.servo(4).get("Min_Voltage_Limit")
        # XL330 Shutdown (53) includes the voltage bit: torque cannot be enabled
        reply = client.one(dxl.write(4, 64, b"\x01"))
        assert reply.code == dxl.ALERT | dxl.ResultError.RESULT_FAIL
        assert emu.servo(4).get("Torque_Enable") == 0


def test_overheat_feetech_unloads_torque(make_client, wait_for):
    with Emulator("so101", faults="overheat=2") as emu:
        client = make_client(emu.port)
        servo = emu.servo(2)
        client.one(ft.write(2, 40, b"\x01"))
        t0 = time.monotonic()
        assert wait_for(lambda: servo.get("Status") & ft.StatusError.OVERHEAT, timeout=3.0)
        assert time.monotonic() - t0 < 2.5
        assert servo.get("Present_Temperature") > servo.get("Max_Temperature_Limit")
        assert servo.get("Torque_Enable") == 0  # Unloading_Condition 44 includes overheat
        reply = client.one(ft.ping(2))
        assert reply.code & ft.StatusError.OVERHEAT
        assert client.one(ft.ping(1)).code == 0


def test_overheat_feetech_keeps_torque_when_unloading_disabled(make_client, wait_for):
    with Emulator("so101", faults="overheat=3") as emu:
        client = make_client(emu.port)
        servo = emu.servo(3)
        servo.set("Unloading_Condition", 0)
        client.one(ft.write(3, 40, b"\x01"))
        assert wait_for(lambda: servo.get("Status") & ft.StatusError.OVERHEAT, timeout=3.0)
        assert servo.get("Torque_Enable") == 1


def test_overheat_dynamixel_shuts_down_until_reboot(make_client, wait_for):
    with Emulator("koch", faults="overheat=5") as emu:
        client = make_client(emu.port, family="dynamixel")
        servo = emu.servo(5)
        client.one(dxl.write(5, 64, b"\x01"))
        assert wait_for(lambda: servo.get("Hardware_Error_Status") & 0x04, timeout=3.0)
        assert servo.get("Torque_Enable") == 0
        reply = client.one(dxl.write(5, 64, b"\x01"))
        assert reply.code == dxl.ALERT | dxl.ResultError.RESULT_FAIL
        servo.temperature = 35.0  # let it cool (a host-side shortcut instead of waiting minutes)
        assert client.one(dxl.ping(5)).code & dxl.ALERT  # still latched
        client.one(dxl.reboot(5))
        assert client.one(dxl.ping(5)).code == 0
        assert client.one(dxl.write(5, 64, b"\x01")).code == 0
