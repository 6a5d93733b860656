"""sync_read_span: several registers of several servos in one transaction, each decoded as its table says."""

from __future__ import annotations

import pytest

from hardware.bus import DynamixelBus, FeetechBus
from hardware.emulator import Emulator

IDS = [1, 2, 3, 4, 5, 6]


async def test_feetech_span_matches_single_reads(so_bus: FeetechBus, so101_emu: Emulator) -> None:
    so101_emu.motion.move_by_hand(1, -1000.0)  # id 2, far from 2048
    before = so_bus.stats.transactions
    out = await so_bus.sync_read_span(["Present_Position", "Present_Load"], IDS)
    assert so_bus.stats.transactions == before + 1  # one transaction for both registers
    assert set(out) == {"Present_Position", "Present_Load"}
    pos = (await so_bus.sync_read("Present_Position", IDS)).values
    for i in IDS:
        assert abs(out["Present_Position"].values[i] - pos[i]) <= 2
    assert out["Present_Position"].values[2] == pytest.approx(so101_emu.servo(2).get("Present_Position"), abs=2)
    assert out["Present_Position"].values[2] < 1300
    load = (await so_bus.sync_read("Present_Load", IDS)).values
    assert out["Present_Load"].values == load  # torque off: loads are 0 both ways; same decoding
    assert out["Present_Position"].t == out["Present_Load"].t


async def test_dynamixel_span_decodes_signed_registers(koch_bus: DynamixelBus, koch_emu: Emulator) -> None:
    koch_emu.motion.move_by_hand(0, -2048.0 - 300.0)  # below zero: two's complement in a 4-byte register
    out = await koch_bus.sync_read_span(["Present_Current", "Present_Position"], IDS)
    pos = (await koch_bus.sync_read("Present_Position", IDS)).values
    assert out["Present_Position"].values[1] < 0
    assert out["Present_Position"].values[1] == pytest.approx(koch_emu.servo(1).get("Present_Position"), abs=2)
    for i in IDS:
        assert abs(out["Present_Position"].values[i] - pos[i]) <= 2


async def test_span_bad_input(so_bus: FeetechBus) -> None:
    with pytest.raises(ValueError, match="distinct"):
        await so_bus.sync_read_span(["Present_Position"], [1, 1])
    with pytest.raises(ValueError, match="at least one"):
        await so_bus.sync_read_span([], IDS)
    with pytest.raises(KeyError, match="no register named"):
        await so_bus.sync_read_span(["Nope"], IDS)


async def test_span_too_wide(koch_bus: DynamixelBus) -> None:
    with pytest.raises(ValueError, match="span 129 bytes"):  # ID (7) .. Present_Position (132..135)
        await koch_bus.sync_read_span(["ID", "Present_Position"], IDS)
