"""Dynamixel X series (XL330, XL430) as the emulator plays it: control-table rules and Protocol 2.0.

Rules (``shared/reference/servo-protocols.md`` section 2, ROBOTIS e-Manual):

* A WRITE must cover whole registers (else Data Length Error 0x05); a read-only or undefined byte is an
  Access Error 0x07; EEPROM (< 64) while Torque_Enable = 1 is an Access Error; a value outside the
  register's range is a Data Range Error 0x04; a Goal_Position outside [Min, Max]_Position_Limit in
  mode 3 is a Data Limit Error 0x06. A refused write changes nothing. EEPROM writes always persist.
* Present_Position = actual + Homing_Offset, with Drive_Mode bit 0 reversing the actual direction
  (actual -> -actual; the offset's sign is not reversed). Goal_Position is in the same frame; mode 3
  uses the position limits, modes 4 and 5 ignore them, mode 1 turns at Goal_Velocity, modes 0 and 16
  hold still. Profile_Velocity (0.229 rpm) and Profile_Acceleration (214.577 rev/min^2), 0 = unlimited.
* Enabling torque makes the servo hold where it is (Goal_Position := Present_Position).
* Hardware_Error_Status (70) latches the error bits seen (0 voltage, 2 overheat); a bit also set in
  Shutdown (63) cuts torque, and torque cannot come back (Result Fail) until REBOOT. While any bit is
  latched every status packet has the Alert bit (0x80).
* Status_Return_Level (68): 0 ping only, 1 ping and reads, 2 all. Broadcasts get no status, except
  PING (every servo answers, in ID order) and the SYNC/BULK reads (each listed servo, in list order).
* CLEAR (0x10) and the fast sync/bulk reads are not emulated: Instruction Error 0x02.
"""

from __future__ import annotations

from hardware.emulator.servo import UNLIMITED, EmulatedServo, Reply, collide
from hardware.protocol import dynamixel as dxl
from hardware.protocol.common import Packet
from hardware.tables import Family

E = dxl.ResultError
TICKS_PER_VEL_UNIT = 0.229 * 4096 / 60  # 0.229 rpm in ticks/s
TICKS_PER_ACC_UNIT = 214.577 * 4096 / 3600  # 214.577 rev/min^2 in ticks/s^2
MAX_ACCEL_TICKS_S2 = 100_000.0  # what "Profile_Acceleration 0 = infinite" amounts to
XL330_STALL_MA = 1500
_MODES = {"xl430-w250": (1, 3, 4, 16)}


def _u16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "little")
_DEFAULT_MODES = (0, 1, 3, 4, 5, 16)


class DynamixelServo(EmulatedServo):
    family = Family.DYNAMIXEL
    REG_TEMP_LIMIT = "Temperature_Limit"

    def torque_on(self) -> bool:
        return self.mem.get("Torque_Enable") == 1

    def on_power_up(self) -> None:
        self.shutdown = False
        self.mem.set("Goal_Position", self._present_from_mech(self.mech_position()), clamp=True)

    def _direction(self) -> int:
        return -1 if self.mem.get("Drive_Mode") & 1 else 1

    def _present_from_mech(self, mech: float) -> int:
        return self._direction() * round(mech) + self.mem.get("Homing_Offset")

    def _mech_from_goal(self, goal: int) -> float:
        return float(self._direction() * (goal - self.mem.get("Homing_Offset")))

    def command_motion(self) -> None:
        m = self.mem
        speed_max = self.model.max_speed_ticks_s
        pv, pa = m.get("Profile_Velocity"), m.get("Profile_Acceleration")
        vmax = min(pv * TICKS_PER_VEL_UNIT, speed_max) if pv else speed_max
        amax = pa * TICKS_PER_ACC_UNIT if pa else MAX_ACCEL_TICKS_S2
        mode = m.get("Operating_Mode")
        mech = self.mech_position()
        if mode in (3, 4, 5):
            goal = self._mech_from_goal(m.get("Goal_Position"))
        elif mode == 1:
            v = m.get("Goal_Velocity") * self._direction()
            vmax = min(abs(v) * TICKS_PER_VEL_UNIT, speed_max) or 1.0
            goal = mech + (UNLIMITED if v > 0 else -UNLIMITED) if v else mech
        else:
            goal = mech
        self.motion.command(self.index, goal, self.torque_on(), vmax, amax)

    def update_present(self, pos: float, vel: float, load: float, now: float) -> None:
        m, d = self.mem, self._direction()
        m.set("Present_Position", self._present_from_mech(pos), clamp=True)
        velocity = round(d * vel / TICKS_PER_VEL_UNIT)
        m.set("Present_Velocity", velocity, clamp=True)
        if self.model.name.startswith("xl330"):
            m.set("Present_Current", round(d * load * XL330_STALL_MA), clamp=True)
        else:  # XL430: Present_Load in 0.1 %
            m.set("Present_Current", round(d * load * 1000), clamp=True)
        m.set("Present_PWM", round(d * load * 885), clamp=True)
        m.set("Present_Input_Voltage", self.supply_reading(), clamp=True)
        m.set("Present_Temperature", round(self.temperature), clamp=True)
        moving = abs(velocity) > m.get("Moving_Threshold")
        m.set("Moving", int(moving))
        m.set("Moving_Status", 0 if moving else 1)  # bit 0: in position
        m.set("Realtime_Tick", int(now * 1000) % 32768)

    def update_errors(self) -> None:
        m = self.mem
        latched = m.get("Hardware_Error_Status") | self.condition_bits()
        m.set("Hardware_Error_Status", latched)
        if latched & m.get("Shutdown"):
            self.shutdown = True
            if self.torque_on():
                m.set("Torque_Enable", 0)
                self.command_motion()

    def status_error(self, result: int = 0) -> int:
        return result | (dxl.ALERT if self.mem.get("Hardware_Error_Status") else 0)

    # --- writes ---------------------------------------------------------------------------------------

    def check_write(self, address: int, data: bytes) -> tuple[int, dict[str, int]]:
        """(result error, new values by register name) for a WRITE; nothing is changed here."""
        m = self.mem
        end = address + len(data)
        if not data or end > m.size:
            return E.ACCESS if data else E.DATA_LENGTH, {}
        if any(m.owner[a] is None for a in range(address, end)):
            return E.ACCESS, {}
        regs = m.registers_in(address, len(data))
        if regs[0].address != address or regs[-1].address + regs[-1].size != end:
            return E.DATA_LENGTH, {}
        if any(not r.writable for r in regs):
            return E.ACCESS, {}
        if self.torque_on() and any(m.is_eeprom(r.address) for r in regs):
            return E.ACCESS, {}
        values = {r.name: m.decode_bytes(r, data[r.address - address : r.address - address + r.size]) for r in regs}
        return self._check_values(values), values

    def _check_values(self, values: dict[str, int]) -> int:
        m = self.mem
        allowed = {
            "ID": range(0, dxl.MAX_ID + 1),
            "Baud_Rate": self.model.baud_codes,
            "Operating_Mode": _MODES.get(self.model.name, _DEFAULT_MODES),
            "Torque_Enable": (0, 1),
            "LED": (0, 1),
            "Status_Return_Level": (0, 1, 2),
            "Return_Delay_Time": range(0, 255),
        }
        for name, value in values.items():
            if name in allowed and value not in allowed[name]:
                return E.DATA_RANGE
        if values.get("Torque_Enable") == 1 and self.shutdown:
            return E.RESULT_FAIL
        goal = values.get("Goal_Position")
        mode = values.get("Operating_Mode", m.get("Operating_Mode"))
        if goal is not None and mode == 3:
            if not m.get("Min_Position_Limit") <= goal <= m.get("Max_Position_Limit"):
                return E.DATA_LIMIT
        return E.NONE

    def write(self, address: int, data: bytes, now: float) -> int:
        """Apply a WRITE all-or-nothing; return the result error for the status packet."""
        result, values = self.check_write(address, data)
        if result:
            return result
        before = self._snapshot()
        self.mem.ram[address : address + len(data)] = data
        self.mem.persist_range(address, len(data))
        self.after_write(set(values), before, now)
        return E.NONE

    def _snapshot(self) -> dict[str, int]:
        return {"Torque_Enable": self.mem.get("Torque_Enable"), "Operating_Mode": self.mem.get("Operating_Mode")}

    def after_write(self, touched: set[str], before: dict[str, int], now: float) -> None:
        m = self.mem
        if "Torque_Enable" in touched and m.get("Torque_Enable") == 1 and before["Torque_Enable"] != 1:
            m.set("Goal_Position", self._present_from_mech(self.mech_position()), clamp=True)
        if "Operating_Mode" in touched and m.get("Operating_Mode") != before["Operating_Mode"]:
            for name in ("Profile_Velocity", "Profile_Acceleration"):
                m.set(name, 0)
            m.set("Goal_PWM", m.get("PWM_Limit"))
            m.set("Goal_Current", m.get("Current_Limit"), clamp=True)
        self.command_motion()
        self.refresh(now)

    def reboot(self) -> None:
        self.power_cycle()


class DynamixelProtocol:
    """Turns decoded Protocol 2.0 instruction packets into servo actions and status replies."""

    family = Family.DYNAMIXEL
    MAX_READ = 1000

    def __init__(self) -> None:
        self.decoder = dxl.Decoder(status=False)

    @staticmethod
    def frame_length(packet: Packet) -> int:
        return 10 + len(dxl.stuff(bytes((packet.code,)) + packet.params)) - 1

    def handle(self, packet: Packet, servos: list[DynamixelServo], now: float) -> list[Reply]:
        inst, params = packet.code, packet.params
        I = dxl.Instruction
        if inst == I.SYNC_WRITE:
            self._sync_write(params, servos, now)
            return []
        if inst == I.BULK_WRITE:
            self._bulk_write(params, servos, now)
            return []
        if inst in (I.SYNC_READ, I.BULK_READ):
            if packet.id != dxl.BROADCAST_ID:
                return []
            return self._multi_read(self._read_list(inst, params), servos, now)
        if packet.id == dxl.BROADCAST_ID:
            if inst == I.PING:  # every servo answers, in ID order
                return [r for sid in sorted({s.id for s in servos}) for r in self._unicast(packet, sid, servos, now)]
            for servo in servos:
                servo.refresh(now)
                result, _ = self._execute(servo, inst, params, now)
                restart = inst in (I.REBOOT, I.FACTORY_RESET) and result == E.NONE
                if restart and not (inst == I.FACTORY_RESET and params[0] == 0xFF):  # ignored when broadcast
                    self._restart(servo, inst, params)
            return []
        return self._unicast(packet, packet.id, servos, now)

    def _unicast(self, packet: Packet, sid: int, servos: list[DynamixelServo], now: float) -> list[Reply]:
        replies = []
        for servo in [s for s in servos if s.id == sid]:
            servo.refresh(now)
            level = servo.mem.get("Status_Return_Level")  # the level before this instruction governs
            result, data = self._execute(servo, packet.code, packet.params, now)
            wanted = {dxl.Instruction.PING: 0, dxl.Instruction.READ: 1}.get(packet.code, 2)
            if level >= wanted:
                frame = dxl.encode_status(sid, servo.status_error(result), data)
                replies.append(Reply(frame, servo.return_delay_s, sid))
            if packet.code in (dxl.Instruction.REBOOT, dxl.Instruction.FACTORY_RESET) and result == 0:
                self._restart(servo, packet.code, packet.params)
        return [collide(replies)] if replies else []

    @staticmethod
    def _restart(servo: DynamixelServo, inst: int, params: bytes) -> None:
        if inst == dxl.Instruction.FACTORY_RESET:
            keep = {0xFF: (), 0x01: ("ID",), 0x02: ("ID", "Baud_Rate")}[params[0]]
            servo.mem.factory_reset(keep=keep)
        servo.reboot()

    def _execute(self, servo: DynamixelServo, inst: int, params: bytes, now: float) -> tuple[int, bytes]:
        """(result error, reply data)."""
        I = dxl.Instruction
        m = servo.mem
        if inst == I.PING:
            return E.NONE, dxl.encode_value(m.get("Model_Number"), 2) + bytes((m.get("Firmware_Version"),))
        if inst == I.READ:
            if len(params) != 4:
                return E.DATA_LENGTH, b""
            address, size = int.from_bytes(params[:2], "little"), int.from_bytes(params[2:], "little")
            if size > self.MAX_READ or address + size > m.size:
                return E.ACCESS, b""
            return E.NONE, m.read(address, size)
        if inst == I.WRITE:
            if len(params) < 3:
                return E.DATA_LENGTH, b""
            return servo.write(int.from_bytes(params[:2], "little"), params[2:], now), b""
        if inst == I.REG_WRITE:
            if len(params) < 3:
                return E.DATA_LENGTH, b""
            address, data = int.from_bytes(params[:2], "little"), params[2:]
            result, _ = servo.check_write(address, data)
            if result == E.NONE:
                servo.registered = (address, bytes(data))
                m.set("Registered_Instruction", 1)
            return result, b""
        if inst == I.ACTION:
            if servo.registered is None:
                return E.INSTRUCTION, b""
            address, data = servo.registered
            servo.registered = None
            m.set("Registered_Instruction", 0)
            return servo.write(address, data, now), b""
        if inst == I.REBOOT:
            return E.NONE, b""
        if inst == I.FACTORY_RESET:
            if len(params) != 1 or params[0] not in (0x01, 0x02, 0xFF):
                return E.DATA_RANGE, b""
            return E.NONE, b""
        return E.INSTRUCTION, b""

    @staticmethod
    def _read_list(inst: int, params: bytes) -> list[tuple[int, int, int]]:
        """(id, address, size) in the order the servos must answer."""
        if inst == dxl.Instruction.SYNC_READ:
            if len(params) < 5:
                return []
            address, size = int.from_bytes(params[:2], "little"), int.from_bytes(params[2:4], "little")
            return [(sid, address, size) for sid in params[4:]]
        if len(params) % 5:
            return []
        return [(params[k], _u16(params, k + 1), _u16(params, k + 3)) for k in range(0, len(params), 5)]

    def _multi_read(self, wanted: list[tuple[int, int, int]], servos: list[DynamixelServo], now: float) -> list[Reply]:
        replies = []
        for sid, address, size in wanted:
            group = []
            for servo in servos:
                if servo.id != sid or servo.mem.get("Status_Return_Level") < 1:
                    continue
                servo.refresh(now)
                if size > self.MAX_READ or address + size > servo.mem.size:
                    frame = dxl.encode_status(sid, servo.status_error(E.ACCESS))
                else:
                    frame = dxl.encode_status(sid, servo.status_error(), servo.mem.read(address, size))
                group.append(Reply(frame, servo.return_delay_s, sid))
            if group:
                replies.append(collide(group))
        return replies

    @staticmethod
    def _sync_write(params: bytes, servos: list[DynamixelServo], now: float) -> None:
        if len(params) < 4:
            return
        address, size = int.from_bytes(params[:2], "little"), int.from_bytes(params[2:4], "little")
        body = params[4:]
        if size == 0 or len(body) % (size + 1):
            return
        for k in range(0, len(body), size + 1):
            for servo in (s for s in servos if s.id == body[k]):
                servo.refresh(now)
                servo.write(address, body[k + 1 : k + 1 + size], now)

    @staticmethod
    def _bulk_write(params: bytes, servos: list[DynamixelServo], now: float) -> None:
        k = 0
        while k + 5 <= len(params):
            sid, address, size = params[k], _u16(params, k + 1), _u16(params, k + 3)
            data = params[k + 5 : k + 5 + size]
            if len(data) != size:
                return
            for servo in (s for s in servos if s.id == sid):
                servo.refresh(now)
                servo.write(address, data, now)
            k += 5 + size
