"""FeetechBus: STS3215 servos (SO-100 / SO-101) over the Feetech SCS/STS protocol."""

from __future__ import annotations

from hardware.protocol import feetech
from hardware.tables import STS3215, Family
from hardware.bus.base import ServoBus
from hardware.bus.link import tracking_decoder
from hardware.bus.registers import Reg
from hardware.bus.types import PingReply, ServoFault

# ERR byte -> fault flags (bit 4 and above are reserved; the decoder already rejects ERR > 0x7F)
_FAULTS = tuple(ServoFault(code & 0x2F) for code in range(256))


class FeetechBus(ServoBus):
    family = Family.FEETECH
    codec = feetech
    table = STS3215.registers
    bauds = tuple(STS3215.baud_codes.values())

    def _new_decoder(self) -> feetech.Decoder:
        return tracking_decoder(feetech.Decoder, id_offset=2)

    def _reply_max_length(self, data_size: int) -> int:
        return data_size + 2

    def _status(self, servo_id: int, code: int, what: str, reg: Reg | None, write: bool = False) -> ServoFault:
        return self._record_fault(servo_id, _FAULTS[code])

    def _decode(self, reg: Reg, data: bytes) -> int:
        return feetech.decode_value(data, reg.sign_bit)

    def _encode(self, reg: Reg, value: int) -> bytes:
        return feetech.encode_value(value, reg.size, reg.sign_bit)

    def _w_ping(self, servo_id: int, *, probe: bool = False) -> PingReply:
        """PING, then one READ of addresses 0..4: firmware major, minor, (END), model number."""
        ping = feetech.ping(servo_id)
        got, t = self.link.transact("a ping", lambda _ids: ping, (servo_id,), 0, probe=probe)
        self._status(servo_id, got[servo_id].code, "a ping", None)
        read = feetech.read(servo_id, 0, 5)
        got, _ = self.link.transact(
            "a read of the model number", lambda _ids: read, (servo_id,), 5, probe=probe
        )
        packet = got[servo_id]
        fault = self._status(servo_id, packet.code, "a ping", None)
        data = packet.params
        return PingReply(servo_id, data[3] | data[4] << 8, (data[0], data[1]), t, fault)

    def _w_scan_one(self, servo_id: int) -> int:
        read = feetech.read(servo_id, 3, 2)
        got, _ = self.link.transact(
            "a read of the model number", lambda _ids: read, (servo_id,), 2, probe=True
        )
        packet = got[servo_id]
        self._status(servo_id, packet.code, "a scan", None)
        return packet.params[0] | packet.params[1] << 8
