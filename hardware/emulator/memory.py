"""One servo's control table as bytes: the live copy every instruction sees and the persisted EEPROM.

``ram`` holds every address (EEPROM fields included: that is the value in effect now). ``persisted``
is what survives a power cycle: the EEPROM area as the flash holds it. Whether a write reaches the
persisted copy is the servo's business (Feetech Lock, Dynamixel torque rule); this module only stores.
Values are encoded with the family's codec (Feetech sign-magnitude, Dynamixel two's complement).
"""

from __future__ import annotations

from collections.abc import Mapping

from hardware.protocol import dynamixel as dxl
from hardware.protocol import feetech as ft
from hardware.tables import Area, Family, Register, ServoModel


def value_range(reg: Register, family: Family) -> tuple[int, int]:
    """The integer range a register can hold on the wire."""
    bits = 8 * reg.size
    if family is Family.FEETECH and reg.sign_bit is not None:
        mag = (1 << reg.sign_bit) - 1
        return -mag, mag
    if family is Family.DYNAMIXEL and reg.signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def encode(reg: Register, family: Family, value: int) -> bytes:
    if family is Family.FEETECH:
        return ft.encode_value(int(value), reg.size, reg.sign_bit)
    return dxl.encode_value(int(value), reg.size, reg.signed)


def decode(reg: Register, family: Family, data: bytes | bytearray) -> int:
    if family is Family.FEETECH:
        return ft.decode_value(data, reg.sign_bit)
    return dxl.decode_value(data, reg.signed)


class Memory:
    """Control-table bytes of one servo, addressed by number or by register name."""

    def __init__(self, model: ServoModel, overrides: Mapping[str, int] | None = None) -> None:
        self.model = model
        self.family = model.family
        self.size = model.memory_size
        # first RAM address: everything below is EEPROM
        self.eeprom_end = min(r.address for r in model.registers.values() if r.area is Area.RAM)
        self.owner: list[Register | None] = [None] * self.size
        for reg in model.registers.values():
            for a in range(reg.address, reg.address + reg.size):
                self.owner[a] = reg
        # name -> (address, size, sign bit, two's complement, min, max): the hot path of get/set
        self._fast = {
            r.name: (
                r.address,
                r.size,
                r.sign_bit if self.family is Family.FEETECH else None,
                r.signed and self.family is Family.DYNAMIXEL,
                *value_range(r, self.family),
            )
            for r in model.registers.values()
        }
        self._sticky: dict[str, int] = {}  # values even a factory reset restores (set_override)
        self.ram = bytearray(self.size)
        self.persisted = bytearray(self.eeprom_end)
        self.factory_reset()
        for name, value in (overrides or {}).items():  # the state it was set up in (ID, baud...)
            self.set(name, value)
        self.persisted[:] = self.ram[: self.eeprom_end]

    # --- whole-table operations -------------------------------------------------------------------

    def factory_reset(self, keep: tuple[str, ...] = ()) -> None:
        """Every register to its factory default (except ``keep``), EEPROM persisted too."""
        kept = {name: self.get(name) for name in keep}
        self.ram[:] = bytes(self.size)
        for reg in self.model.registers.values():
            self.set(reg.name, reg.default)
        for name, value in {**self._sticky, **kept}.items():
            self.set(name, value)
        self.persisted[:] = self.ram[: self.eeprom_end]

    def power_up(self) -> None:
        """What a power cycle leaves: EEPROM from the persisted copy, RAM at its defaults."""
        self.ram[: self.eeprom_end] = self.persisted
        for reg in self.model.registers.values():
            if reg.area is Area.RAM:
                self.set(reg.name, reg.default)

    def set_override(self, name: str, value: int) -> None:
        """A value that even a factory reset restores (e.g. a fault's model number)."""
        self._sticky[name] = value
        self.set(name, value)
        self.persist_range(self.model.register(name).address, self.model.register(name).size)

    # --- registers by name ------------------------------------------------------------------------

    def register(self, name: str) -> Register:
        return self.model.register(name)

    def get(self, name: str) -> int:
        try:
            address, size, sign_bit, signed, _, _ = self._fast[name]
        except KeyError:
            self.model.register(name)  # raises the KeyError naming the model
            raise
        raw = int.from_bytes(self.ram[address : address + size], "little", signed=signed)
        if sign_bit is not None and raw & (1 << sign_bit):
            return -(raw & ((1 << sign_bit) - 1))
        return raw

    def set(self, name: str, value: int, *, clamp: bool = False) -> None:
        """Store a value in the live copy. ``clamp`` saturates instead of raising when out of range."""
        try:
            address, size, sign_bit, signed, lo, hi = self._fast[name]
        except KeyError:
            self.model.register(name)
            raise
        value = int(value)
        if not lo <= value <= hi:
            if not clamp:
                encode(self.model.register(name), self.family, value)  # raises the codec's ValueError
            value = max(lo, min(hi, value))
        if sign_bit is not None and value < 0:
            value = -value | (1 << sign_bit)
        self.ram[address : address + size] = value.to_bytes(size, "little", signed=signed)

    def decode_bytes(self, reg: Register, data: bytes | bytearray) -> int:
        return decode(reg, self.family, data)

    def persist_range(self, address: int, size: int) -> None:
        end = min(address + size, self.eeprom_end)
        if address < end:
            self.persisted[address:end] = self.ram[address:end]

    # --- raw bytes --------------------------------------------------------------------------------

    def read(self, address: int, size: int) -> bytes:
        """Bytes from the live copy; addresses past the table read as zero."""
        out = bytes(self.ram[address : address + size])
        return out + bytes(max(0, size - len(out)))

    def registers_in(self, address: int, size: int) -> list[Register]:
        """Registers that have at least one byte in [address, address + size)."""
        seen: list[Register] = []
        for a in range(max(0, address), min(self.size, address + size)):
            reg = self.owner[a]
            if reg is not None and (not seen or seen[-1] is not reg):
                seen.append(reg)
        return seen

    def is_eeprom(self, address: int) -> bool:
        return address < self.eeprom_end
