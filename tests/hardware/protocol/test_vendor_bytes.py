"""Our builders against what the vendor SDKs (and LeRobot on top of them) actually put on the wire.

Each SDK is handed a ``FakePort``: a stand-in for its PortHandler that records every ``writePort()``
and serves scripted reply bytes (our own ``encode_status`` frames) from ``readPort()``; with no script
the SDK sees a timeout. The methods it provides are the ones ``scservo_sdk/protocol_packet_handler.py``
and ``dynamixel_sdk/protocol2_packet_handler.py`` call: ``clearPort``, ``writePort``, ``readPort``,
``setPacketTimeout``, ``setPacketTimeoutMillis``, ``isPacketTimeout``, ``getBaudRate`` and the
``is_using`` / ``is_open`` attributes.

Known vendor defect (dynamixel_sdk 3.8.4, Python): ``txPacket`` calls ``addStuffing(txpacket)`` and
ignores its return value; when stuffing lengthens the packet, ``addStuffing`` builds a new list, so the
SDK transmits the *unstuffed* frame (old LEN, CRC over unstuffed bytes). Our builder follows the protocol
(§2.4). Byte-for-byte comparisons therefore use ``StuffingDxlHandler``, the stock handler with only that
return value honoured; the stock behaviour is pinned separately, together with the check that our
instruction decoder still reads those unstuffed frames (what an emulator receives from LeRobot).
"""

from __future__ import annotations

import itertools

import dynamixel_sdk as dxl
import pytest
import scservo_sdk as scs
from lerobot.motors import Motor, MotorNormMode
from lerobot.motors.dynamixel import DynamixelMotorsBus
from lerobot.motors.encoding_utils import (
    decode_sign_magnitude,
    decode_twos_complement,
    encode_sign_magnitude,
    encode_twos_complement,
)
from lerobot.motors.feetech import FeetechMotorsBus

from hardware.protocol import dynamixel as dx
from hardware.protocol import feetech as ft
from hardware.protocol.common import Packet


class FakePort:
    """PortHandler stand-in for both SDKs: records TX, serves scripted RX, times out when RX is empty."""

    def __init__(self, rx: bytes = b"") -> None:
        self.is_open = True
        self.is_using = False
        self.port_name = "fake"
        self.baudrate = 1_000_000
        self.written: list[bytes] = []
        self.rx = bytearray(rx)

    def clearPort(self) -> None:
        pass

    def writePort(self, packet) -> int:
        self.written.append(bytes(packet))
        return len(packet)

    def readPort(self, length: int) -> bytes:
        out = bytes(self.rx[:length])
        del self.rx[:length]
        return out

    def setPacketTimeout(self, packet_length) -> None:
        pass

    def setPacketTimeoutMillis(self, msec) -> None:
        pass

    def isPacketTimeout(self) -> bool:
        return not self.rx

    def getBaudRate(self) -> int:
        return self.baudrate

    def closePort(self) -> None:
        self.is_open = False


class StuffingDxlHandler(dxl.Protocol2PacketHandler):
    """The stock handler, except that the list built by ``addStuffing`` is what gets transmitted."""

    def addStuffing(self, packet):
        out = super().addStuffing(packet)
        packet[:] = out
        return packet


@pytest.fixture
def sph():
    return scs.PacketHandler(0)  # protocol_end 0: STS/SMS little-endian


@pytest.fixture
def dph():
    return StuffingDxlHandler()


def only_write(port: FakePort) -> bytes:
    assert len(port.written) == 1, port.written
    return port.written[0]


FEETECH_IDS = [0, 1, 2, 6, 17, 100, 0x7F, 0x80, 200, 252, 253]
FEETECH_ADDRS = [0, 3, 5, 31, 40, 42, 46, 56, 60, 69, 85, 127, 255]
DXL_IDS = [0, 1, 2, 6, 100, 0xFB, 0xFC]
DXL_ADDRS = [0, 7, 20, 64, 116, 132, 146, 0xFD, 0x1FF, 0xFFFF]


# ==================================================================================================
# Feetech: scservo_sdk (feetech-servo-sdk), PacketHandler(0)
# ==================================================================================================


@pytest.mark.parametrize("sid", FEETECH_IDS)
def test_feetech_ping_frame_then_model_read(sph, sid):
    port = FakePort(ft.encode_status(sid, 0) + ft.encode_status(sid, 0, ft.encode_value(777, 2)))
    model, result, error = sph.ping(port, sid)
    assert (model, result, error) == (777, scs.COMM_SUCCESS, 0)
    # FTServo's ping is PING then READ(3, 2) for the model number
    assert port.written == [ft.ping(sid), ft.read(sid, 3, 2)]


def test_feetech_ping_timeout_sends_only_the_ping(sph):
    port = FakePort()
    assert sph.ping(port, 1)[1] == scs.COMM_RX_TIMEOUT
    assert only_write(port) == ft.ping(1)


@pytest.mark.parametrize(("sid", "addr"), list(itertools.product(FEETECH_IDS, FEETECH_ADDRS[::3])))
def test_feetech_read_frames(sph, sid, addr):
    port = FakePort()
    sph.read1ByteTxRx(port, sid, addr)
    sph.read2ByteTxRx(port, sid, addr)
    sph.read4ByteTxRx(port, sid, addr)
    assert port.written == [ft.read(sid, addr, 1), ft.read(sid, addr, 2), ft.read(sid, addr, 4)]


@pytest.mark.parametrize("raw", [0, 1, 0x7F, 0x80, 0xFF, 2048, 4095, 0x8001, 0xFFFF])
def test_feetech_sdk_reads_our_status_frames(sph, raw):
    port = FakePort(ft.encode_status(1, 0, ft.encode_value(raw, 2)))
    value, result, error = sph.read2ByteTxRx(port, 1, 56)
    assert (value, result, error) == (raw, scs.COMM_SUCCESS, 0)
    port = FakePort(ft.encode_status(3, 0, bytes([raw & 0xFF])))
    assert sph.read1ByteTxRx(port, 3, 40)[:2] == (raw & 0xFF, scs.COMM_SUCCESS)


@pytest.mark.parametrize("error", [0x01, 0x02, 0x04, 0x08, 0x20, 0x7F])
def test_feetech_sdk_reports_our_error_byte(sph, error):
    port = FakePort(ft.encode_status(5, error))
    assert sph.write1ByteTxRx(port, 5, 40, 1) == (scs.COMM_SUCCESS, error)


FEETECH_VALUES = [0, 1, 0xFF, 0x100, 2048, 4095, 0x7FFF, 0x8000, 0xFFFF, 0xFDFF, 0xFFFD]


@pytest.mark.parametrize("sid", FEETECH_IDS)
@pytest.mark.parametrize("value", FEETECH_VALUES)
def test_feetech_write_frames(sph, sid, value):
    addr = 42
    port = FakePort()
    sph.write1ByteTxRx(port, sid, 40, value & 0xFF)
    sph.write2ByteTxRx(port, sid, addr, value)
    sph.write4ByteTxRx(port, sid, 60, value * 0x10001)
    sph.regWriteTxRx(port, sid, addr, 2, [value & 0xFF, value >> 8])
    assert port.written == [
        ft.write(sid, 40, ft.encode_value(value & 0xFF, 1)),
        ft.write(sid, addr, ft.encode_value(value, 2)),
        ft.write(sid, 60, ft.encode_value(value * 0x10001, 4)),
        ft.reg_write(sid, addr, ft.encode_value(value, 2)),
    ]


@pytest.mark.parametrize(
    ("register", "sign_bit", "value"),
    [
        ("Goal_Position", 15, -1),
        ("Goal_Position", 15, -2048),
        ("Goal_Position", 15, -32767),
        ("Goal_Velocity", 15, -500),
        ("Homing_Offset", 11, -1),
        ("Homing_Offset", 11, -2047),
        ("Goal_Time", 10, -1023),
        ("Goal_Position", 15, 32767),
    ],
)
def test_feetech_negative_sign_magnitude_write_matches_sdk(sph, register, sign_bit, value):
    from hardware.tables import STS3215

    reg = STS3215.register(register)
    assert reg.sign_bit == sign_bit
    port = FakePort()
    # what LeRobot does (encode_sign_magnitude) and what FTServo does (SCS_TOSCS), then write2ByteTxRx
    sph.write2ByteTxRx(port, 1, reg.address, encode_sign_magnitude(value, sign_bit))
    sph.write2ByteTxRx(port, 1, reg.address, scs.SCS_TOSCS(value, sign_bit))
    ours = ft.write(1, reg.address, ft.encode_value(value, reg.size, reg.sign_bit))
    assert port.written == [ours, ours]


@pytest.mark.parametrize("sid", [1, 0xFE])
def test_feetech_action_frame(sph, sid):
    port = FakePort()
    sph.action(port, sid)
    assert only_write(port) == ft.action(sid)


@pytest.mark.parametrize(
    ("addr", "size", "ids"),
    [(56, 2, [1, 2, 3, 4, 5, 6]), (56, 4, [1]), (0, 1, [253]), (60, 8, [6, 5, 4, 3, 2, 1]), (3, 2, list(range(1, 41)))],
)
def test_feetech_group_sync_read(sph, addr, size, ids):
    port = FakePort()
    group = scs.GroupSyncRead(port, sph, addr, size)
    for sid in ids:
        assert group.addParam(sid)
    group.txPacket()
    assert only_write(port) == ft.sync_read(addr, size, ids)


def test_feetech_group_sync_read_parses_our_replies(sph):
    ids = [1, 2, 3, 4, 5, 6]
    values = {sid: encode_sign_magnitude((-1) ** sid * 300 * sid, 15) for sid in ids}
    port = FakePort(b"".join(ft.encode_status(sid, 0, ft.encode_value(values[sid], 2)) for sid in ids))
    group = scs.GroupSyncRead(port, sph, 56, 2)
    for sid in ids:
        group.addParam(sid)
    assert group.txRxPacket() == scs.COMM_SUCCESS
    for sid in ids:
        raw = group.getData(sid, 56, 2)
        assert raw == values[sid]
        assert ft.decode_value(raw.to_bytes(2, "little"), 15) == (-1) ** sid * 300 * sid


@pytest.mark.parametrize(
    ("addr", "size", "data"),
    [
        (42, 2, {1: 2048, 2: 1024}),
        (42, 2, {sid: 0xFFFF - sid for sid in range(1, 7)}),
        (40, 1, {1: 1, 6: 0, 253: 0xFF}),
        (42, 4, {3: 0x12345678, 4: 0xFFFFFFFF}),
    ],
)
def test_feetech_group_sync_write(sph, addr, size, data):
    port = FakePort()
    group = scs.GroupSyncWrite(port, sph, addr, size)
    for sid, value in data.items():
        assert group.addParam(sid, list(value.to_bytes(size, "little")))
    group.txPacket()
    assert only_write(port) == ft.sync_write(addr, size, {s: ft.encode_value(v, size) for s, v in data.items()})


# ==================================================================================================
# Dynamixel: dynamixel_sdk Protocol2PacketHandler
# ==================================================================================================


def test_dxl_crc_equals_sdk_update_crc():
    sdk = dxl.Protocol2PacketHandler()
    blobs = [bytes([b]) for b in range(256)]
    blobs += [bytes((i * 37 + j * 11) & 0xFF for j in range(n)) for i, n in enumerate(range(2, 300, 7))]
    for blob in blobs:
        assert dx.crc16(blob) == sdk.updateCRC(0, list(blob), len(blob))


def test_dxl_stuff_equals_sdk_add_stuffing_exhaustively():
    """Every payload of 1..6 bytes over {FF, FD, 00, 01} (5460 payloads): INST..params as the SDK sees them."""
    sdk = dxl.Protocol2PacketHandler()
    for n in range(1, 7):
        for payload in itertools.product((0xFF, 0xFD, 0x00, 0x01), repeat=n):
            length = n + 2
            packet = [0xFF, 0xFF, 0xFD, 0x00, 0x01, length & 0xFF, length >> 8, *payload, 0, 0]
            out = sdk.addStuffing(packet)
            sdk_len = out[5] | (out[6] << 8)
            assert bytes(out[7 : 7 + sdk_len - 2]) == dx.stuff(bytes(payload)), payload


@pytest.mark.parametrize("sid", DXL_IDS)
def test_dxl_ping_frame_and_model(dph, sid):
    port = FakePort(dx.encode_status(sid, 0, dx.encode_value(1200, 2) + bytes([52])))
    assert dph.ping(port, sid) == (1200, dxl.COMM_SUCCESS, 0)
    assert only_write(port) == dx.ping(sid)


@pytest.mark.parametrize(("sid", "addr"), list(itertools.product(DXL_IDS, DXL_ADDRS)))
def test_dxl_read_frames(dph, sid, addr):
    port = FakePort()
    dph.read1ByteTxRx(port, sid, addr)
    dph.read2ByteTxRx(port, sid, addr)
    dph.read4ByteTxRx(port, sid, addr)
    assert port.written == [dx.read(sid, addr, 1), dx.read(sid, addr, 2), dx.read(sid, addr, 4)]


DXL_SIGNED_VALUES = [0, 1, -1, 512, -512, 2047, -2048, 2**31 - 1, -(2**31), -131073, 0x00FDFFFF, -0x02020001]


@pytest.mark.parametrize("value", DXL_SIGNED_VALUES)
def test_dxl_sdk_reads_our_status_frames_including_stuffed_ones(dph, value):
    raw = dx.encode_value(value, 4, signed=True)
    port = FakePort(dx.encode_status(7, 0, raw))
    got, result, error = dph.read4ByteTxRx(port, 7, 132)
    assert (result, error) == (dxl.COMM_SUCCESS, 0)
    assert decode_twos_complement(got, 4) == value


@pytest.mark.parametrize("sid", DXL_IDS)
@pytest.mark.parametrize("value", DXL_SIGNED_VALUES)
def test_dxl_write_frames(dph, sid, value):
    """LeRobot encodes with encode_twos_complement and hands the SDK an unsigned int."""
    port = FakePort()
    dph.write1ByteTxRx(port, sid, 64, value & 0xFF)
    dph.write2ByteTxRx(port, sid, 100, value & 0xFFFF)
    dph.write4ByteTxRx(port, sid, 116, encode_twos_complement(value, 4))
    dph.regWriteTxRx(port, sid, 116, 4, list(encode_twos_complement(value, 4).to_bytes(4, "little")))
    assert port.written == [
        dx.write(sid, 64, dx.encode_value(value & 0xFF, 1)),
        dx.write(sid, 100, dx.encode_value(value & 0xFFFF, 2)),
        dx.write(sid, 116, dx.encode_value(value, 4, signed=True)),
        dx.reg_write(sid, 116, dx.encode_value(value, 4, signed=True)),
    ]


@pytest.mark.parametrize(
    "data",
    [h for h in (b"\xff\xff\xfd\x00", b"\x00\xff\xff\xfd", b"\xff\xff\xfd\xff", b"\xff\xff\xff\xfd")],
)
def test_dxl_stock_sdk_sends_header_patterns_unstuffed_and_we_still_decode_them(data):
    """Pins the vendor defect described in the module docstring, and what it means for an emulator."""
    stock = dxl.Protocol2PacketHandler()
    port = FakePort()
    stock.writeTxRx(port, 1, 116, 4, list(data))
    wire = only_write(port)
    unstuffed = dx.HEADER + bytes([1, 9, 0, 3, 116, 0]) + data
    unstuffed += dx.crc16(unstuffed).to_bytes(2, "little")
    assert wire in (unstuffed, dx.write(1, 116, data))
    # whichever the SDK sends, the emulator's decoder must recover the same parameters
    assert dx.Decoder(status=False).feed(wire) == [Packet(1, dx.Instruction.WRITE, bytes([116, 0]) + data, 0)]


def test_dxl_stock_sdk_matches_us_when_nothing_needs_stuffing():
    stock, port = dxl.Protocol2PacketHandler(), FakePort()
    stock.write4ByteTxRx(port, 1, 116, 512)
    stock.write2ByteTxRx(port, 2, 0x00FE, 0xFDFF)  # FE 00 FF FD: no FF FF FD anywhere
    assert port.written == [dx.write(1, 116, dx.encode_value(512, 4)), dx.write(2, 0x00FE, b"\xff\xfd")]


def test_dxl_stuffing_across_the_address_data_boundary(dph):
    port = FakePort()
    dph.write2ByteTxRx(port, 2, 0xFFFE, 0xFDFF)  # FE FF | FF FD -> the pattern starts in the address
    dph.write1ByteTxRx(port, 2, 0xFFFF, 0xFD)  # FF FF | FD
    assert port.written == [dx.write(2, 0xFFFE, b"\xff\xfd"), dx.write(2, 0xFFFF, b"\xfd")]
    assert port.written[1].endswith(b"\xff\xff\xfd\xfd" + port.written[1][-2:])


@pytest.mark.parametrize("sid", DXL_IDS)
def test_dxl_reboot_action_factory_reset_clear_frames(dph, sid):
    port = FakePort()
    dph.reboot(port, sid)
    dph.action(port, sid)
    dph.factoryReset(port, sid, 0x01)
    dph.factoryReset(port, sid, 0xFF)
    dph.clearMultiTurn(port, sid)
    assert port.written == [
        dx.reboot(sid),
        dx.action(sid),
        dx.factory_reset(sid, 0x01),
        dx.factory_reset(sid, 0xFF),
        dx.encode_instruction(sid, dx.Instruction.CLEAR, bytes([0x01, 0x44, 0x58, 0x4C, 0x22])),
    ]


def test_dxl_broadcast_action(dph):
    port = FakePort()
    dph.action(port, dxl.BROADCAST_ID)
    assert only_write(port) == dx.action()


@pytest.mark.parametrize(
    ("addr", "size", "ids"),
    [(132, 4, [1, 2, 3, 4, 5, 6]), (132, 4, [1, 2]), (126, 10, [6, 1]), (0xFD, 2, [0xFF // 2, 0xFC]), (64, 1, list(range(0, 60)))],
)
def test_dxl_group_sync_read(dph, addr, size, ids):
    port = FakePort()
    group = dxl.GroupSyncRead(port, dph, addr, size)
    for sid in ids:
        assert group.addParam(sid)
    group.txPacket()
    assert only_write(port) == dx.sync_read(addr, size, ids)


def test_dxl_group_sync_read_parses_our_replies(dph):
    ids = [1, 2, 3, 4, 5, 6]
    values = {sid: [-131073, 2048, -1, 0x00FDFFFF, -(2**31), 7][sid - 1] for sid in ids}
    port = FakePort(b"".join(dx.encode_status(s, 0, dx.encode_value(v, 4, True)) for s, v in values.items()))
    group = dxl.GroupSyncRead(port, dph, 132, 4)
    for sid in ids:
        group.addParam(sid)
    assert group.txRxPacket() == dxl.COMM_SUCCESS
    for sid in ids:
        assert decode_twos_complement(group.getData(sid, 132, 4), 4) == values[sid]


@pytest.mark.parametrize(
    ("addr", "size", "data"),
    [
        (116, 4, {1: 150, 2: 170}),
        (116, 4, {sid: encode_twos_complement(-1000 * sid, 4) for sid in range(1, 7)}),
        (116, 4, {1: encode_twos_complement(-131073, 4), 2: 0x00FDFFFF}),  # stuffing inside the data
        (64, 1, {1: 1, 2: 0, 0xFC: 1}),
        (102, 2, {3: 0xFFFF, 4: 0xFDFF}),
    ],
)
def test_dxl_group_sync_write(dph, addr, size, data):
    port = FakePort()
    group = dxl.GroupSyncWrite(port, dph, addr, size)
    for sid, value in data.items():
        assert group.addParam(sid, list(value.to_bytes(size, "little")))
    group.txPacket()
    assert only_write(port) == dx.sync_write(addr, size, {s: dx.encode_value(v, size) for s, v in data.items()})


@pytest.mark.parametrize(
    "requests",
    [
        [(1, 144, 2), (2, 146, 1)],
        [(1, 132, 4), (2, 128, 4), (3, 126, 2), (4, 0, 2), (5, 64, 1), (6, 116, 4)],
        [(0xFC, 0xFFFF, 0xFF), (0, 0xFD, 0xFD)],
    ],
)
def test_dxl_group_bulk_read(dph, requests):
    port = FakePort()
    group = dxl.GroupBulkRead(port, dph)
    for sid, addr, size in requests:
        assert group.addParam(sid, addr, size)
    group.txPacket()
    assert only_write(port) == dx.bulk_read(requests)


# ==================================================================================================
# Value encodings against LeRobot's encoding_utils and Python's int.to_bytes
# ==================================================================================================


@pytest.mark.parametrize("sign_bit", [10, 11, 15])
def test_feetech_encode_value_equals_lerobot_sign_magnitude_over_the_whole_range(sign_bit):
    top = (1 << sign_bit) - 1
    for value in range(-top, top + 1):
        ours = ft.encode_value(value, 2, sign_bit)
        assert ours == encode_sign_magnitude(value, sign_bit).to_bytes(2, "little")
        assert ours == scs.SCS_TOSCS(value, sign_bit).to_bytes(2, "little")
        if value < 0 and value != -0x4000:  # -0x4000 is C0 00 in both representations (16-bit field)
            assert ours != value.to_bytes(2, "little", signed=True)
    for value in (top + 1, -top - 1):
        with pytest.raises(ValueError):
            ft.encode_value(value, 2, sign_bit)
        with pytest.raises(ValueError):
            encode_sign_magnitude(value, sign_bit)


@pytest.mark.parametrize("sign_bit", [10, 11, 15])
def test_feetech_decode_value_equals_lerobot_and_ftservo_on_every_encodable_raw_value(sign_bit):
    # raw values with bits above the sign bit never come from encode_value; the three decoders
    # disagree there (see the report), so the comparison stops at 2 << sign_bit.
    for raw in range(min(2 << sign_bit, 1 << 16)):
        ours = ft.decode_value(raw.to_bytes(2, "little"), sign_bit)
        assert ours == decode_sign_magnitude(raw, sign_bit) == scs.SCS_TOHOST(raw, sign_bit)


@pytest.mark.parametrize("size", [1, 2, 4])
def test_dynamixel_encode_value_equals_lerobot_twos_complement(size):
    bits = 8 * size
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    samples = {lo, lo + 1, -131073, -2048, -256, -255, -1, 0, 1, 255, 256, 2047, hi - 1, hi}
    samples |= set(range(-300, 300))
    for value in sorted(v for v in samples if lo <= v <= hi):
        ours = dx.encode_value(value, size, signed=True)
        assert ours == encode_twos_complement(value, size).to_bytes(size, "little")
        assert ours == value.to_bytes(size, "little", signed=True)
        raw = int.from_bytes(ours, "little")
        assert dx.decode_value(ours, signed=True) == decode_twos_complement(raw, size) == value


# ==================================================================================================
# LeRobot's buses (0.6.1) over the fake port: the exact bytes LeRobot would send and how it reads ours
# ==================================================================================================


def _lerobot_bus(cls, model: str) -> tuple:
    motors = {f"m{i}": Motor(i, model, MotorNormMode.RANGE_M100_100) for i in (1, 2)}
    bus = cls("fake", motors)
    port = FakePort()
    bus.port_handler = port
    bus.sync_reader.port = port
    bus.sync_writer.port = port
    return bus, port


def test_lerobot_feetech_bus_writes_and_reads_like_us():
    bus, port = _lerobot_bus(FeetechMotorsBus, "sts3215")
    bus.sync_write("Goal_Position", {"m1": -100, "m2": 2048}, normalize=False)
    assert port.written[-1] == ft.sync_write(42, 2, {1: ft.encode_value(-100, 2, 15), 2: ft.encode_value(2048, 2, 15)})

    port.rx += ft.encode_status(1, 0)
    bus.write("Homing_Offset", "m1", -2047, normalize=False)
    assert port.written[-1] == ft.write(1, 31, ft.encode_value(-2047, 2, 11))

    port.rx += ft.encode_status(1, 0, ft.encode_value(-300, 2, 15)) + ft.encode_status(2, 0, ft.encode_value(4095, 2, 15))
    assert bus.sync_read("Present_Position", normalize=False) == {"m1": -300, "m2": 4095}
    assert port.written[-1] == ft.sync_read(56, 2, [1, 2])

    port.rx += ft.encode_status(2, 0, ft.encode_value(-1000, 2, 10))
    assert bus.read("Present_Load", "m2", normalize=False) == -1000
    assert port.written[-1] == ft.read(2, 60, 2)


def test_lerobot_dynamixel_bus_writes_and_reads_like_us():
    bus, port = _lerobot_bus(DynamixelMotorsBus, "xl330-m288")
    bus.sync_write("Goal_Position", {"m1": -5, "m2": 2048}, normalize=False)
    assert port.written[-1] == dx.sync_write(116, 4, {1: dx.encode_value(-5, 4, True), 2: dx.encode_value(2048, 4, True)})

    port.rx += dx.encode_status(1, 0)
    bus.write("Homing_Offset", "m1", -1024, normalize=False)
    assert port.written[-1] == dx.write(1, 20, dx.encode_value(-1024, 4, True))

    # -131073 is FF FF FD FF on the wire: our status frame is stuffed and LeRobot still reads it
    port.rx += dx.encode_status(1, 0, dx.encode_value(-131073, 4, True)) + dx.encode_status(2, 0, dx.encode_value(7, 4, True))
    assert bus.sync_read("Present_Position", normalize=False) == {"m1": -131073, "m2": 7}
    assert port.written[-1] == dx.sync_read(132, 4, [1, 2])
