"""The vendor SDKs (Feetech scservo_sdk, ROBOTIS dynamixel_sdk) drive the emulator over its pty."""

from __future__ import annotations

import time

import pytest

from hardware.emulator import Emulator

pytestmark = pytest.mark.peer

scs = pytest.importorskip("scservo_sdk")
dxl_sdk = pytest.importorskip("dynamixel_sdk")


@pytest.fixture
def scs_port(so101: Emulator):
    port = scs.PortHandler(so101.port)
    assert port.openPort() and port.setBaudRate(1_000_000)
    yield port
    port.closePort()


@pytest.fixture
def dxl_port(koch: Emulator):
    port = dxl_sdk.PortHandler(koch.port)
    assert port.openPort() and port.setBaudRate(1_000_000)
    yield port
    port.closePort()


def test_scservo_ping_read_write_and_motion(so101: Emulator, scs_port):
    ph = scs.PacketHandler(0)
    model, comm, err = ph.ping(scs_port, 3)
    assert (model, comm, err) == (777, scs.COMM_SUCCESS, 0)
    _, comm, _ = ph.ping(scs_port, 9)
    assert comm == scs.COMM_RX_TIMEOUT

    start, comm, err = ph.read2ByteTxRx(scs_port, 3, 56)
    assert comm == scs.COMM_SUCCESS and err == 0
    assert start == so101.servo(3).get("Present_Position")
    assert ph.write1ByteTxRx(scs_port, 3, 40, 1) == (scs.COMM_SUCCESS, 0)
    target = start + 800
    t0 = time.monotonic()
    assert ph.write2ByteTxRx(scs_port, 3, 42, target) == (scs.COMM_SUCCESS, 0)
    seen = [start]
    while time.monotonic() - t0 < 2.0 and seen[-1] != target:
        pos, comm, _ = ph.read2ByteTxRx(scs_port, 3, 56)
        assert comm == scs.COMM_SUCCESS
        seen.append(pos)
    elapsed = time.monotonic() - t0
    assert seen[-1] == target
    assert all(a <= b for a, b in zip(seen, seen[1:])), "moves monotonically toward the goal"
    # 800 ticks at <= 3070 ticks/s with a 25400 ticks/s^2 ramp: ~0.38 s; never faster than full speed
    assert 800 / 3070 <= elapsed < 1.5
    assert len(set(seen)) > 5  # intermediate positions were observed


def test_scservo_group_sync_read_and_write(so101: Emulator, scs_port):
    ph = scs.PacketHandler(0)
    writer = scs.GroupSyncWrite(scs_port, ph, 41, 1)  # Acceleration
    for sid in range(1, 7):
        assert writer.addParam(sid, [sid * 7])
    assert writer.txPacket() == scs.COMM_SUCCESS
    reader = scs.GroupSyncRead(scs_port, ph, 41, 1)
    for sid in range(1, 7):
        assert reader.addParam(sid)
    assert reader.txRxPacket() == scs.COMM_SUCCESS
    assert [reader.getData(sid, 41, 1) for sid in range(1, 7)] == [7, 14, 21, 28, 35, 42]
    positions = scs.GroupSyncRead(scs_port, ph, 56, 2)
    for sid in range(1, 7):
        positions.addParam(sid)
    assert positions.txRxPacket() == scs.COMM_SUCCESS
    assert [positions.getData(sid, 56, 2) for sid in range(1, 7)] == [
        so101.servo(sid).get("Present_Position") for sid in range(1, 7)
    ]


def test_dynamixel_sdk_ping_read_write_motion(koch: Emulator, dxl_port):
    ph = dxl_sdk.PacketHandler(2.0)
    assert ph.ping(dxl_port, 1) == (1060, dxl_sdk.COMM_SUCCESS, 0)
    assert ph.ping(dxl_port, 4) == (1200, dxl_sdk.COMM_SUCCESS, 0)
    start, comm, err = ph.read4ByteTxRx(dxl_port, 4, 132)
    assert comm == dxl_sdk.COMM_SUCCESS and err == 0
    assert ph.write1ByteTxRx(dxl_port, 4, 64, 1) == (dxl_sdk.COMM_SUCCESS, 0)
    assert ph.write4ByteTxRx(dxl_port, 4, 112, 200) == (dxl_sdk.COMM_SUCCESS, 0)  # 200 x 0.229 rpm
    target = start - 600
    t0 = time.monotonic()
    comm, err = ph.write4ByteTxRx(dxl_port, 4, 116, target)
    assert (comm, err) == (dxl_sdk.COMM_SUCCESS, 0)
    pos = start
    while time.monotonic() - t0 < 2.0 and pos != target:
        pos, comm, _ = ph.read4ByteTxRx(dxl_port, 4, 132)
    elapsed = time.monotonic() - t0
    assert pos == target
    assert 600 / (200 * 15.63) <= elapsed < 1.5  # Profile_Velocity caps the speed at ~3126 ticks/s
    # an EEPROM write with torque on is refused with an Access Error
    comm, err = ph.write4ByteTxRx(dxl_port, 4, 20, 100)
    assert comm == dxl_sdk.COMM_SUCCESS and err == 7


def test_dynamixel_sdk_group_sync_and_bulk(koch: Emulator, dxl_port):
    ph = dxl_sdk.PacketHandler(2.0)
    writer = dxl_sdk.GroupSyncWrite(dxl_port, ph, 108, 4)  # Profile_Acceleration
    for sid in range(1, 7):
        assert writer.addParam(sid, list((sid * 11).to_bytes(4, "little")))
    assert writer.txPacket() == dxl_sdk.COMM_SUCCESS
    reader = dxl_sdk.GroupSyncRead(dxl_port, ph, 108, 4)
    for sid in range(1, 7):
        assert reader.addParam(sid)
    assert reader.txRxPacket() == dxl_sdk.COMM_SUCCESS
    assert all(reader.isAvailable(sid, 108, 4) for sid in range(1, 7))
    assert [reader.getData(sid, 108, 4) for sid in range(1, 7)] == [11, 22, 33, 44, 55, 66]
    bulk = dxl_sdk.GroupBulkRead(dxl_port, ph)
    assert bulk.addParam(1, 0, 2) and bulk.addParam(3, 132, 4) and bulk.addParam(6, 146, 1)
    assert bulk.txRxPacket() == dxl_sdk.COMM_SUCCESS
    assert bulk.getData(1, 0, 2) == 1060
    assert bulk.getData(3, 132, 4) == koch.servo(3).get("Present_Position")
    assert 20 <= bulk.getData(6, 146, 1) <= 60


def test_dynamixel_sdk_broadcast_ping(koch: Emulator, dxl_port):
    ph = dxl_sdk.PacketHandler(2.0)
    found, comm = ph.broadcastPing(dxl_port)  # the SDK always waits out its ~0.8 s window
    assert comm == dxl_sdk.COMM_SUCCESS
    assert found == {1: [1060, 46], 2: [1060, 46], 3: [1200, 52], 4: [1200, 52], 5: [1200, 52], 6: [1200, 52]}
