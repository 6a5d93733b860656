"""ping / scan / read / write / sync_read / sync_write against the emulated SO-101 and Koch arms."""

from __future__ import annotations

import time

import pytest

from hardware import arms
from hardware.bus import DynamixelBus, FeetechBus, PingReply, Reading, ServoFault, SyncReading, open_bus
from hardware.emulator import Emulator
from hardware.errors import ServoRefusedError

IDS = [1, 2, 3, 4, 5, 6]


def test_open_bus_picks_the_family() -> None:
    assert type(open_bus(arms.SO101, "/dev/x")) is FeetechBus
    assert type(open_bus(arms.KOCH, "/dev/x")) is DynamixelBus
    bus = open_bus(arms.KOCH_LEADER, "/dev/x", 57_600, retries=0)
    assert (bus.baud, bus.retries, bus.profile) == (57_600, 0, arms.KOCH_LEADER)
    with pytest.raises(ValueError, match="dynamixel arm"):
        FeetechBus("/dev/x", profile=arms.KOCH)


# --- Feetech (SO-101) -------------------------------------------------------------------------------


async def test_feetech_ping_and_scan(so_bus: FeetechBus) -> None:
    reply = await so_bus.ping(3)
    assert isinstance(reply, PingReply)
    assert (reply.id, reply.model_number, reply.firmware, reply.faults) == (3, 777, (3, 10), ServoFault.NONE)
    assert await so_bus.scan(range(0, 12)) == {i: 777 for i in IDS}


async def test_feetech_read_write(so_bus: FeetechBus, so101_emu: Emulator) -> None:
    reading = await so_bus.read(2, "Present_Position")
    assert isinstance(reading, Reading)
    assert abs(reading.value - so101_emu.servo(2).get("Present_Position")) <= 2
    await so_bus.write(2, "Torque_Enable", 1)
    assert so101_emu.servo(2).get("Torque_Enable") == 1
    await so_bus.write(2, "Acceleration", 254)
    assert (await so_bus.read(2, "Acceleration")).value == 254
    # (address, size) works too and keeps the named register's encoding
    assert (await so_bus.read(2, (41, 1))).value == 254


async def test_raw_registers_and_broadcast_write(so_bus: FeetechBus, so101_emu: Emulator) -> None:
    assert (await so_bus.read(1, (64, 1))).value == 0  # no table name: raw unsigned bytes
    firmware = await so_bus.read(1, (0, 2))
    assert firmware.value == 3 | 10 << 8  # major, minor as one little-endian number
    with pytest.raises(ValueError, match="outside the control table"):
        await so_bus.read(1, (56, 0))
    await so_bus.write(0xFE, "Torque_Enable", 1)  # broadcast: nobody answers, nothing to wait for
    assert (await so_bus.sync_read("Torque_Enable", IDS)).values == {i: 1 for i in IDS}
    assert [so101_emu.servo(i).get("Torque_Enable") for i in IDS] == [1] * 6
    transactions = so_bus.stats.transactions
    await so_bus.sync_write("Goal_Position", {})  # nothing to send
    assert so_bus.stats.transactions == transactions


async def test_feetech_negative_homing_offset_round_trip(so_bus: FeetechBus, so101_emu: Emulator) -> None:
    await so_bus.write(1, "Homing_Offset", -1000)
    assert so101_emu.servo(1).get("Homing_Offset") == -1000
    assert so101_emu.servo(1).mem.ram[31:33] == bytes([0xE8, 0x0B])  # sign-magnitude, sign bit 11
    assert (await so_bus.read(1, "Homing_Offset")).value == -1000
    assert (await so_bus.read(1, (31, 2))).value == -1000
    await so_bus.write(1, "Homing_Offset", 2047)
    assert (await so_bus.read(1, "Homing_Offset")).value == 2047


async def test_feetech_value_range_errors_name_register_and_range(so_bus: FeetechBus) -> None:
    with pytest.raises(ValueError, match=r"Homing_Offset: allowed -2047\.\.2047"):
        await so_bus.write(1, "Homing_Offset", -2048)
    with pytest.raises(ValueError, match=r"Torque_Enable: allowed 0\.\.255"):
        await so_bus.write(1, "Torque_Enable", 256)
    with pytest.raises(ValueError, match=r"Goal_Position: allowed -32767\.\.32767"):
        await so_bus.sync_write("Goal_Position", {1: 2048, 2: 40_000})
    with pytest.raises(ValueError, match="read-only"):
        await so_bus.write(1, "Present_Position", 5)
    with pytest.raises(KeyError, match="No_Such_Register"):
        await so_bus.read(1, "No_Such_Register")
    with pytest.raises(ValueError, match="servo id"):
        await so_bus.read(300, "Present_Position")
    with pytest.raises(ValueError, match="distinct"):
        await so_bus.sync_read("Present_Position", [1, 1])
    assert so_bus.stats.transactions == 0  # nothing was sent


async def test_feetech_sync_read_write(so_bus: FeetechBus, so101_emu: Emulator) -> None:
    await so_bus.sync_write("Goal_Position", {i: 1000 + 100 * i for i in IDS})
    got = await so_bus.sync_read("Goal_Position", IDS)
    assert isinstance(got, SyncReading)
    assert got.values == {i: 1000 + 100 * i for i in IDS}
    assert got.faults == {}
    assert [so101_emu.servo(i).get("Goal_Position") for i in IDS] == [1000 + 100 * i for i in IDS]
    present = await so_bus.sync_read("Present_Position", [6, 2, 4])
    assert list(present.values) == [6, 2, 4]
    for i, value in present.values.items():
        assert abs(value - so101_emu.servo(i).get("Present_Position")) <= 2


async def test_timestamps_are_monotonic_and_within_the_call(so_bus: FeetechBus) -> None:
    stamps = []
    for call in (
        lambda: so_bus.read(1, "Present_Position"),
        lambda: so_bus.sync_read("Present_Position", IDS),
        lambda: so_bus.ping(4),
        lambda: so_bus.sync_read("Present_Load", IDS),
    ):
        before = time.monotonic()
        result = await call()
        after = time.monotonic()
        assert before <= result.t <= after
        stamps.append(result.t)
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


async def test_concurrent_callers_are_serialised(so_bus: FeetechBus) -> None:
    import asyncio

    await so_bus.sync_write("Goal_Position", {i: 2000 + i for i in IDS})
    results = await asyncio.gather(*(so_bus.read(i, "Goal_Position") for i in IDS for _ in range(5)))
    assert [r.value for r in results] == [2000 + i for i in IDS for _ in range(5)]
    assert so_bus.stats.transactions == 31


async def test_close_is_idempotent_and_closed_bus_refuses(so101_emu: Emulator) -> None:
    bus = FeetechBus(so101_emu.port)
    await bus.open()
    await bus.open()  # no-op
    assert bus.is_open
    await bus.close()
    await bus.close()
    assert not bus.is_open
    with pytest.raises(RuntimeError, match="not open"):
        await bus.read(1, "Present_Position")
    async with bus:  # reopens
        assert (await bus.ping(1)).model_number == 777


async def test_executor_handoff_gives_the_same_results(so101_emu: Emulator) -> None:
    async with FeetechBus(so101_emu.port, handoff="executor") as bus:
        await bus.sync_write("Goal_Position", {i: 1500 for i in IDS})
        assert (await bus.sync_read("Goal_Position", IDS)).values == {i: 1500 for i in IDS}
    with pytest.raises(ValueError, match="handoff"):
        FeetechBus(so101_emu.port, handoff="pool")  # type: ignore[arg-type]


# --- Dynamixel (Koch) -------------------------------------------------------------------------------


async def test_dynamixel_ping_and_scan(koch_bus: DynamixelBus) -> None:
    reply = await koch_bus.ping(1)
    assert (reply.id, reply.model_number, reply.firmware) == (1, 1060, (46, 0))
    assert (await koch_bus.ping(5)).model_number == 1200
    assert await koch_bus.scan(range(0, 10)) == {1: 1060, 2: 1060, 3: 1200, 4: 1200, 5: 1200, 6: 1200}


async def test_dynamixel_read_write_sync(koch_bus: DynamixelBus, koch_emu: Emulator) -> None:
    await koch_bus.write(3, "Homing_Offset", -1000)  # torque off: EEPROM writable
    assert koch_emu.servo(3).get("Homing_Offset") == -1000
    assert (await koch_bus.read(3, "Homing_Offset")).value == -1000
    await koch_bus.sync_write("Goal_Position", {i: 2000 + 10 * i for i in IDS})
    got = await koch_bus.sync_read("Goal_Position", IDS)
    assert got.values == {i: 2000 + 10 * i for i in IDS}
    present = await koch_bus.sync_read("Present_Position", IDS)
    for i, value in present.values.items():
        assert abs(value - koch_emu.servo(i).get("Present_Position")) <= 2


async def test_dynamixel_byte_stuffed_values_round_trip(koch_bus: DynamixelBus) -> None:
    # -131073 is FF FF FD FF on the wire: both the request and the reply carry a stuffed FD
    await koch_bus.write(2, "Homing_Offset", -131073)
    assert (await koch_bus.read(2, "Homing_Offset")).value == -131073
    assert (await koch_bus.sync_read("Homing_Offset", [1, 2])).values == {1: 0, 2: -131073}
    assert koch_bus.stats.corrupt_replies == 0  # a stuffed reply is not mistaken for a garbled one


async def test_dynamixel_range_errors(koch_bus: DynamixelBus) -> None:
    with pytest.raises(ValueError, match=r"Goal_Position: allowed -2147483648\.\.2147483647"):
        await koch_bus.write(1, "Goal_Position", 2**31)
    with pytest.raises(ValueError, match=r"Profile_Velocity: allowed 0\.\.4294967295"):
        await koch_bus.sync_write("Profile_Velocity", {1: -1})


async def test_dynamixel_eeprom_write_with_torque_on_is_refused(koch_bus: DynamixelBus, koch_emu: Emulator) -> None:
    await koch_bus.write(4, "Torque_Enable", 1)
    with pytest.raises(ServoRefusedError) as info:
        await koch_bus.write(4, "Homing_Offset", 10)
    message = str(info.value)
    assert "id 4 (wrist_flex)" in message and "disable torque before writing EEPROM" in message
    assert koch_emu.servo(4).get("Homing_Offset") == 0
    await koch_bus.write(4, "Torque_Enable", 0)
    await koch_bus.write(4, "Homing_Offset", 10)
    assert (await koch_bus.read(4, "Homing_Offset")).value == 10
