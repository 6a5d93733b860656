"""DynamixelBus: XL330 / XL430 servos (Koch v1.1) over Dynamixel Protocol 2.0."""

from __future__ import annotations

from hardware.errors import ServoError, ServoRefusedError
from hardware.protocol import dynamixel
from hardware.protocol.dynamixel import ALERT, ResultError
from hardware.tables import XL330_M288, XL430_W250, Family
from hardware.bus.base import ServoBus
from hardware.bus.link import tracking_decoder
from hardware.bus.registers import Reg
from hardware.bus.types import PingReply, ServoFault

HARDWARE_ERROR_STATUS = 70
# Hardware_Error_Status (70) bit -> fault
_HW_BITS = (
    (0x01, ServoFault.VOLTAGE),
    (0x04, ServoFault.OVERHEAT),
    (0x08, ServoFault.ENCODER),
    (0x10, ServoFault.ELECTRICAL_SHOCK),
    (0x20, ServoFault.OVERLOAD),
)

# result error -> (reason, what to do)
_REFUSALS = {
    ResultError.RESULT_FAIL: ("Result Fail", "check torque and operating mode, then try again"),
    ResultError.INSTRUCTION: ("Instruction Error", "check the servo speaks Protocol 2.0 (Protocol_Type 2)"),
    ResultError.DATA_RANGE: (
        "Data Range Error (value outside the register's range)",
        "check the value against the register's limits; after a Bus_Watchdog stop, write Bus_Watchdog = 0 first",
    ),
    ResultError.DATA_LENGTH: (
        "Data Length Error",
        "the request had the wrong size for this register (a bug: report it)",
    ),
    ResultError.DATA_LIMIT: (
        "Data Limit Error (value beyond a limit register)",
        "check the value against the servo's limit registers (position, velocity, current limits)",
    ),
    ResultError.ACCESS: (
        "Access Error (read-only or undefined address)",
        "check the register name and address in the X-series control table",
    ),
}
_EEPROM_ACCESS = (
    "Access Error (EEPROM is locked while torque is on)",
    "disable torque before writing EEPROM: write Torque_Enable = 0 first",
)


def hardware_faults(status: int) -> ServoFault:
    """Decode Hardware_Error_Status (70) into fault flags."""
    fault = ServoFault.NONE
    for bit, flag in _HW_BITS:
        if status & bit:
            fault |= flag
    return fault


class DynamixelBus(ServoBus):
    family = Family.DYNAMIXEL
    codec = dynamixel
    table = XL330_M288.registers  # X-series addresses; XL430 shares every one LeRobot uses
    bauds = tuple(XL430_W250.baud_codes.values())

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.hardware_error_status: dict[int, int] = {}  # raw register 70, read once per alert

    def _new_decoder(self) -> dynamixel.Decoder:
        return tracking_decoder(dynamixel.Decoder, id_offset=4)

    def _reply_max_length(self, data_size: int) -> int:
        # 0x55, ERR, data, CRC; byte stuffing may add one FD per 3 bytes of 0x55..data
        return data_size + 4 + (data_size + 2) // 3

    def _is_garbled_request(self, code: int) -> bool:
        return (code & 0x7F) == ResultError.CRC

    def _status(self, servo_id: int, code: int, what: str, reg: Reg | None, write: bool = False) -> ServoFault:
        result = code & 0x7F
        if result:
            reason, fix = _REFUSALS.get(result, (f"result error {result}", "check the servo's e-Manual"))
            if result == ResultError.ACCESS and write and reg is not None and reg.eeprom:
                reason, fix = _EEPROM_ACCESS
            raise ServoRefusedError(self.describe(servo_id), what, reason, fix)
        if not code & ALERT:
            self.hardware_error_status.pop(servo_id, None)
            return self._record_fault(servo_id, ServoFault.NONE)
        fault = self._faults.get(servo_id, ServoFault.NONE)
        if ServoFault.ALERT in fault:
            return fault  # still the alert decoded when it was raised
        fault = ServoFault.ALERT
        try:
            status = self._w_read_hardware_error(servo_id)
        except ServoError:
            pass  # keep ALERT alone; the next replies with the alert bit do not read again
        else:
            self.hardware_error_status[servo_id] = status
            fault |= hardware_faults(status)
        return self._record_fault(servo_id, fault)

    def _w_read_hardware_error(self, servo_id: int) -> int:
        request = dynamixel.read(servo_id, HARDWARE_ERROR_STATUS, 1)
        got, _ = self.link.transact("a read of Hardware_Error_Status", lambda _ids: request, (servo_id,), 1)
        return got[servo_id].params[0]

    def _decode(self, reg: Reg, data: bytes) -> int:
        return dynamixel.decode_value(data, reg.signed)

    def _encode(self, reg: Reg, value: int) -> bytes:
        return dynamixel.encode_value(value, reg.size, reg.signed)

    def _w_ping(self, servo_id: int, *, probe: bool = False) -> PingReply:
        request = dynamixel.ping(servo_id)
        got, t = self.link.transact("a ping", lambda _ids: request, (servo_id,), 3, probe=probe)
        packet = got[servo_id]
        fault = self._status(servo_id, packet.code, "a ping", None)
        data = packet.params
        return PingReply(servo_id, data[0] | data[1] << 8, (data[2], 0), t, fault)

    def _w_scan_one(self, servo_id: int) -> int:
        return self._w_ping(servo_id, probe=True).model_number
