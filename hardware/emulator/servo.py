"""What every emulated servo shares: memory, identity, the joint it drives, thermal and supply model.

Family rules (access, side effects of writes, how present values are encoded, which errors drop
torque) live in ``feetech.py`` and ``dynamixel.py``. Everything here runs under the emulator's lock;
the public ``get``/``set`` take it themselves, so tests and tools may call them from any thread.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from hardware.arms import MotorSpec
from hardware.emulator.faults import FaultSpec
from hardware.emulator.memory import Memory
from hardware.emulator.motion import MotionModel
from hardware.tables import Area, Family

AMBIENT_C = 30.0
THERMAL_TAU_S = 60.0  # first-order time constant toward AMBIENT + LOAD_HEATING_C * |load|
LOAD_HEATING_C = 25.0
OVERHEAT_RATE_C_S = 30.0  # the overheat fault's climb while torque is on (30 -> 70 C in ~1.3 s)
UNLIMITED = 1e9  # ticks: a goal this far away means "keep turning" (velocity mode)


@dataclass(frozen=True, slots=True)
class Reply:
    """A status frame to put on the wire ``delay_s`` after the wire is free (the Return_Delay_Time)."""

    frame: bytes
    delay_s: float
    servo_id: int


def collide(replies: list[Reply]) -> Reply:
    """Several servos talking at once on one wire: the bytes wired-AND together (garbage, as a real bus).

    The replies are taken as starting together; the shorter ones leave the line idle-high (0xFF).
    """
    if len(replies) == 1:
        return replies[0]
    n = max(len(r.frame) for r in replies)
    out = bytearray(b"\xff" * n)
    for r in replies:
        for i, b in enumerate(r.frame):
            out[i] &= b
    return Reply(bytes(out), max(r.delay_s for r in replies), -1)


class EmulatedServo:
    """One servo on the emulated bus. ``get``/``set`` inspect and poke registers by name (no wire)."""

    family: Family
    # register names that differ between families
    REG_TEMP_LIMIT = ""
    REG_MIN_VOLTAGE = "Min_Voltage_Limit"
    REG_MAX_VOLTAGE = "Max_Voltage_Limit"

    def __init__(
        self,
        spec: MotorSpec,
        index: int,
        *,
        baud: int,
        motion: MotionModel,
        lock: threading.RLock,
        faults: FaultSpec,
    ) -> None:
        self.spec = spec
        self.model = spec.model
        self.index = index
        self.motion = motion
        self._lock = lock
        overrides = {"ID": spec.id, "Baud_Rate": self.model.baud_code(baud)}
        self.mem = Memory(self.model, overrides)
        if spec.id in faults.model:
            self.mem.set_override("Model_Number", faults.model[spec.id])
        if spec.id in faults.vlimits:  # another voltage variant: its factory limits
            lo, hi = faults.vlimits[spec.id]
            self.mem.set_override(self.REG_MIN_VOLTAGE, round(lo * 10))
            self.mem.set_override(self.REG_MAX_VOLTAGE, round(hi * 10))
        if spec.id in faults.firmware:
            major, minor = faults.firmware[spec.id]
            if self.family is Family.FEETECH:
                self.mem.set_override("Firmware_Major_Version", major)
                self.mem.set_override("Firmware_Minor_Version", minor)
            else:
                self.mem.set_override("Firmware_Version", major)
        self.supply_v = faults.supply  # None: the model's nominal voltage
        self.dead = spec.id in faults.dead
        self.overheat_fault = spec.id in faults.overheat
        self.voltage_fault = faults.voltage_fault(spec.id)
        self.temperature = AMBIENT_C
        self._t_thermal: float | None = None
        self.registered: tuple[int, bytes] | None = None  # REG_WRITE buffer
        self.power_cycle()

    # --- identity -----------------------------------------------------------------------------------

    @property
    def id(self) -> int:
        return self.mem.get("ID")

    @property
    def baud(self) -> int | None:
        """The baud rate this servo listens at (None: its Baud_Rate code is invalid: it hears nothing)."""
        return self.model.baud_codes.get(self.mem.get("Baud_Rate"))

    @property
    def return_delay_s(self) -> float:
        return self.mem.get("Return_Delay_Time") * 2e-6

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.id} {self.model.name} joint={self.spec.joint}>"

    # --- host-side access (no wire) --------------------------------------------------------------------

    def get(self, name: str) -> int:
        """A register's decoded value now (present values are brought up to date first)."""
        with self._lock:
            self.refresh(time.monotonic())
            return self.mem.get(name)

    def set(self, name: str, value: int) -> None:
        """Poke a register as a factory tool would: no access rules, EEPROM persisted, side effects run.

        Present values (position, load, temperature...) are recomputed on every refresh, so poking them
        has no lasting effect; move a joint with the motion model instead.
        """
        with self._lock:
            now = time.monotonic()
            self.refresh(now)
            reg = self.mem.register(name)
            before = self._snapshot()
            self.mem.set(name, value)
            if reg.area is Area.EEPROM:
                self.mem.persist_range(reg.address, reg.size)
            self.after_write({reg.name}, before, now)

    def power_cycle(self) -> None:
        """Power off and on: EEPROM from its persisted copy, RAM defaults, torque off, errors cleared."""
        with self._lock:
            self.mem.power_up()
            self.registered = None
            self.on_power_up()
            self.command_motion()

    # --- the model ------------------------------------------------------------------------------------

    def refresh(self, now: float) -> None:
        """Bring present values, temperature and error state up to ``now``."""
        self.motion.advance_to(now)
        pos, vel, load = self.motion.state(self.index)
        self._update_thermal(now, load)
        self.update_present(pos, vel, load, now)
        self.update_errors()

    def _update_thermal(self, now: float, load: float) -> None:
        last, self._t_thermal = self._t_thermal, now
        if last is None or now <= last:
            return
        dt = now - last
        if self.overheat_fault and self.torque_on():
            self.temperature = min(150.0, self.temperature + OVERHEAT_RATE_C_S * dt)
        else:
            target = AMBIENT_C + LOAD_HEATING_C * abs(load)
            self.temperature += (target - self.temperature) * (1.0 - math.exp(-dt / THERMAL_TAU_S))

    def supply_reading(self) -> int:
        """Input voltage in 0.1 V: the supply (the ``supply`` fault, else the model's nominal voltage), or
        below the minimum under a voltage fault."""
        if self.voltage_fault:
            return max(0, self.mem.get(self.REG_MIN_VOLTAGE) - 5)
        return round((self.supply_v or self.model.nominal_voltage) * 10)

    def condition_bits(self) -> int:
        """Error conditions now, as bits 0 (input voltage) and 2 (overheat) -- shared by both families."""
        bits = 0
        volts = self.supply_reading()
        if not self.mem.get(self.REG_MIN_VOLTAGE) <= volts <= self.mem.get(self.REG_MAX_VOLTAGE):
            bits |= 0x01
        if round(self.temperature) > self.mem.get(self.REG_TEMP_LIMIT):  # what the register reads
            bits |= 0x04
        return bits

    # --- for the family subclasses --------------------------------------------------------------------

    def _snapshot(self) -> dict[str, int]:
        return {"Torque_Enable": self.mem.get("Torque_Enable")}

    def torque_on(self) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def on_power_up(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def update_present(self, pos: float, vel: float, load: float, now: float) -> None:  # pragma: no cover
        raise NotImplementedError

    def update_errors(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def after_write(self, touched: set[str], before: dict[str, int], now: float) -> None:  # pragma: no cover
        raise NotImplementedError

    def command_motion(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def status_error(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def mech_position(self) -> float:
        """The joint's mechanical position in ticks as of the last refresh (``get`` refreshes)."""
        return self.motion.state(self.index)[0]
