"""Feetech STS3215 as the emulator plays it: control-table rules and the SCS/STS instruction set.

Rules (``shared/reference/servo-protocols.md`` section 1):

* Writes to read-only fields are ignored, the servo still answers (no error bit: the protocol has none).
* EEPROM (addresses < 40) written while Lock (55) = 1 takes effect in RAM but is not persisted: a
  RESET (0x0A, treated as a reboot) or a power cycle reloads the persisted copy.
* Present_Position = (actual - Homing_Offset) mod 4096 (Phase bit 4 = 0), else actual - Homing_Offset;
  Goal_Position is in the same frame and is clamped to [Min, Max]_Position_Limit in mode 0 unless both
  limits are 0 (multi-turn). Goal_Velocity is taken in steps/s and Acceleration in 100 steps/s^2
  (0 = the model's maximum). Mode 1 turns at Goal_Velocity; modes 2 (PWM) and 3 (step) hold still.
* Torque_Enable 128 makes the current position read 2048 (writes and persists Homing_Offset).
  Enabling torque makes the servo hold where it is (Goal_Position := Present_Position).
* Status (65) and the ERR byte carry the live error bits; Unloading_Condition (19) selects which ones
  switch torque off.
* Response_Status_Level 0: only READ and PING (and SYNC_READ) get replies; broadcasts never do, except
  PING: a broadcast PING with several servos listening collides on the wire (see ``servo.collide``).
"""

from __future__ import annotations

from hardware.emulator.servo import UNLIMITED, EmulatedServo, Reply, collide
from hardware.protocol import feetech as ft
from hardware.protocol.common import Packet
from hardware.tables import Family

MAX_ACCEL_TICKS_S2 = 254 * 100.0  # "Acceleration 0 = max": the register's largest value
ACCEL_UNIT = 100.0  # ticks/s^2 per Acceleration unit (about 8.7 deg/s^2)
STALL_CURRENT_UNITS = 415  # about 2.7 A in 6.5 mA units
MAX_READ = ft.MAX_LENGTH - 2  # the longest data a status packet can carry


class FeetechServo(EmulatedServo):
    family = Family.FEETECH
    REG_TEMP_LIMIT = "Max_Temperature_Limit"

    # --- state ----------------------------------------------------------------------------------------

    def torque_on(self) -> bool:
        return self.mem.get("Torque_Enable") == 1

    def on_power_up(self) -> None:
        self.mem.set("Goal_Position", self._present_from_mech(self.mech_position()), clamp=True)

    def _present_from_mech(self, mech: float) -> int:
        raw = round(mech) - self.mem.get("Homing_Offset")
        if self.mem.get("Phase") & 0x10:  # multi-turn angle feedback
            return max(-32767, min(32767, raw))
        return raw % 4096

    def _mech_from_goal(self, goal: int) -> float:
        """Goal (present frame) -> mechanical ticks: the same linear error as the position loop sees."""
        mech = self.mech_position()
        return mech + (goal - self._present_from_mech(mech))

    def _clamp_goal(self, goal: int) -> int:
        lo, hi = self.mem.get("Min_Position_Limit"), self.mem.get("Max_Position_Limit")
        if self.mem.get("Operating_Mode") == 0 and not (lo == 0 and hi == 0):
            return max(lo, min(hi, goal))
        return goal

    def command_motion(self) -> None:
        speed_max = self.model.max_speed_ticks_s
        mode = self.mem.get("Operating_Mode")
        accel = self.mem.get("Acceleration")
        amax = accel * ACCEL_UNIT if accel else MAX_ACCEL_TICKS_S2
        mech = self.mech_position()
        on = self.torque_on()
        if mode == 0:
            v = abs(self.mem.get("Goal_Velocity"))
            vmax = min(v, speed_max) if v else speed_max
            goal = self._mech_from_goal(self.mem.get("Goal_Position"))
        elif mode == 1:
            v = self.mem.get("Goal_Velocity")
            vmax = min(abs(v), speed_max) or 1.0
            goal = mech + (UNLIMITED if v > 0 else -UNLIMITED) if v else mech
        else:
            vmax, goal = speed_max, mech
        self.motion.command(self.index, goal, on, vmax, amax)

    def update_present(self, pos: float, vel: float, load: float, now: float) -> None:
        m = self.mem
        m.set("Present_Position", self._present_from_mech(pos))
        m.set("Present_Velocity", round(vel), clamp=True)
        m.set("Present_Load", round(load * 1000), clamp=True)
        m.set("Present_Voltage", self.supply_reading(), clamp=True)
        m.set("Present_Temperature", round(self.temperature), clamp=True)
        m.set("Present_Current", round(abs(load) * STALL_CURRENT_UNITS), clamp=True)
        m.set("Moving", 1 if abs(vel) >= 1.0 else 0)

    def update_errors(self) -> None:
        bits = self.condition_bits()
        self.mem.set("Status", bits)
        if bits & self.mem.get("Unloading_Condition") and self.torque_on():
            self.mem.set("Torque_Enable", 0)
            self.command_motion()

    def status_error(self) -> int:
        return self.mem.get("Status") & 0x7F

    # --- writes ---------------------------------------------------------------------------------------

    def write(self, address: int, data: bytes, now: float) -> None:
        """A WRITE as the servo applies it: read-only bytes skipped, EEPROM persisted only when unlocked."""
        m = self.mem
        before = self._snapshot()
        persist = m.get("Lock") == 0
        touched: set[str] = set()
        for k, b in enumerate(data):
            a = address + k
            if a >= m.size:
                break
            reg = m.owner[a]
            if reg is not None and (not reg.writable or (reg.name == "ID" and b > ft.MAX_ID)):
                continue  # read-only, or an ID no servo can hold (254 is broadcast)
            m.ram[a] = b
            if persist and m.is_eeprom(a):
                m.persisted[a] = b
            if reg is not None:
                touched.add(reg.name)
        self.after_write(touched, before, now)

    def after_write(self, touched: set[str], before: dict[str, int], now: float) -> None:
        m = self.mem
        if "Torque_Enable" in touched:
            value = m.get("Torque_Enable")
            if value == 128:  # "set the current position as 2048"
                offset = (round(self.mech_position()) - 2048) % 4096
                offset = offset - 4096 if offset > 2047 else offset
                m.set("Homing_Offset", max(-2047, offset))
                reg = m.register("Homing_Offset")
                m.persist_range(reg.address, reg.size)
                m.set("Torque_Enable", before["Torque_Enable"])
            elif value == 1 and before["Torque_Enable"] != 1:
                m.set("Goal_Position", self._present_from_mech(self.mech_position()), clamp=True)
        if "Goal_Position" in touched:
            m.set("Goal_Position", self._clamp_goal(m.get("Goal_Position")), clamp=True)
        self.command_motion()
        self.refresh(now)


class FeetechProtocol:
    """Turns decoded instruction packets into servo actions and status replies."""

    family = Family.FEETECH

    def __init__(self) -> None:
        self.decoder = ft.Decoder(status=False)

    @staticmethod
    def frame_length(packet: Packet) -> int:
        return len(packet.params) + 6

    def handle(self, packet: Packet, servos: list[FeetechServo], now: float) -> list[Reply]:
        """Apply one instruction to the servos that hear it; return the replies in wire order."""
        inst, params = packet.code, packet.params
        if inst == ft.Instruction.SYNC_WRITE:
            self._sync_write(params, servos, now)
            return []
        if inst == ft.Instruction.SYNC_READ:
            return self._sync_read(packet, servos, now)
        broadcast = packet.id == ft.BROADCAST_ID
        targets = servos if broadcast else [s for s in servos if s.id == packet.id]
        replies: list[Reply] = []
        for servo in targets:
            servo.refresh(now)
            reply_id = servo.id  # an ID (or status level) written now answers under the old one
            answers = self._answers(servo, inst, broadcast)
            data = self._execute(servo, inst, params, now)
            if data is not None and answers:
                frame = ft.encode_status(reply_id, servo.status_error(), data)
                replies.append(Reply(frame, servo.return_delay_s, reply_id))
            if data is not None and inst == ft.Instruction.RESET:
                servo.power_cycle()  # after its answer
        return [collide(replies)] if replies else []

    @staticmethod
    def _answers(servo: FeetechServo, inst: int, broadcast: bool) -> bool:
        if inst == ft.Instruction.PING:
            return True
        if broadcast:
            return False
        return inst == ft.Instruction.READ or servo.mem.get("Response_Status_Level") != 0

    def _execute(self, servo: FeetechServo, inst: int, params: bytes, now: float) -> bytes | None:
        """Run the instruction; return the reply data (b"" for a bare status) or None for no reply."""
        if inst == ft.Instruction.PING:
            return b"" if not params else None
        if inst == ft.Instruction.READ:
            if len(params) != 2 or params[1] > MAX_READ:
                return None
            return servo.mem.read(params[0], params[1])
        if inst == ft.Instruction.WRITE:
            if not params:
                return None
            servo.write(params[0], params[1:], now)
            return b""
        if inst == ft.Instruction.REG_WRITE:
            if not params:
                return None
            servo.registered = (params[0], bytes(params[1:]))
            return b""
        if inst == ft.Instruction.ACTION:
            if servo.registered is not None:
                address, data = servo.registered
                servo.registered = None
                servo.write(address, data, now)
            return b""
        if inst == ft.Instruction.RESET:
            return b""
        return None  # unknown instruction: the servo stays silent

    @staticmethod
    def _sync_write(params: bytes, servos: list[FeetechServo], now: float) -> None:
        if len(params) < 2:
            return
        address, size = params[0], params[1]
        body = params[2:]
        if size == 0 or len(body) % (size + 1):
            return  # malformed: real servos would not find their slot either
        for k in range(0, len(body), size + 1):
            sid, data = body[k], body[k + 1 : k + 1 + size]
            for servo in servos:
                if servo.id == sid:
                    servo.refresh(now)
                    servo.write(address, data, now)

    @staticmethod
    def _sync_read(packet: Packet, servos: list[FeetechServo], now: float) -> list[Reply]:
        params = packet.params
        if packet.id != ft.BROADCAST_ID or len(params) < 3:
            return []
        address, size = params[0], params[1]
        if size > MAX_READ:
            return []
        replies: list[Reply] = []
        for sid in params[2:]:
            group = []
            for servo in servos:
                if servo.id == sid:
                    servo.refresh(now)
                    frame = ft.encode_status(sid, servo.status_error(), servo.mem.read(address, size))
                    group.append(Reply(frame, servo.return_delay_s, sid))
            if group:
                replies.append(collide(group))
        return replies
