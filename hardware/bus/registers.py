"""Resolving a register argument (a table name or ``(address, size)``) once, with its value range."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass

from hardware.tables import Area, Register


@dataclass(frozen=True, slots=True)
class Reg:
    name: str
    address: int
    size: int
    writable: bool
    eeprom: bool
    sign_bit: int | None  # Feetech sign-magnitude
    signed: bool  # Dynamixel two's complement
    lo: int
    hi: int

    def check(self, value: int) -> int:
        """The value as an int within range, else ValueError naming the register and its range."""
        try:
            value = operator.index(value)
        except TypeError:
            raise TypeError(f"{self.name} takes an integer, not {type(value).__name__}") from None
        if not self.lo <= value <= self.hi:
            raise ValueError(f"{value} is out of range for {self.name}: allowed {self.lo}..{self.hi}")
        return value


def _range(size: int, sign_bit: int | None, signed: bool) -> tuple[int, int]:
    if sign_bit is not None:
        magnitude = min((1 << sign_bit) - 1, (1 << (8 * size)) - 1)
        return -magnitude, magnitude
    if signed:
        return -(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1
    return 0, (1 << (8 * size)) - 1


def _from_table(r: Register) -> Reg:
    lo, hi = _range(r.size, r.sign_bit, r.signed)
    return Reg(r.name, r.address, r.size, r.writable, r.area is Area.EEPROM, r.sign_bit, r.signed, lo, hi)


class RegisterCache:
    """Looks registers up in a family's table; remembers what it resolved (the hot path is a dict hit)."""

    def __init__(self, table: Mapping[str, Register], family: str, max_size: int) -> None:
        self._table = table
        self._family = family
        self._max_size = max_size
        self._by_place = {(r.address, r.size): r for r in table.values()}
        self._cache: dict[object, Reg] = {}

    def __call__(self, register: str | tuple[int, int]) -> Reg:
        try:
            return self._cache[register]
        except KeyError:
            pass
        except TypeError:  # unhashable, e.g. a list
            raise TypeError(f"register must be a name or an (address, size) tuple, not {register!r}") from None
        reg = self._resolve(register)
        self._cache[register] = reg
        return reg

    def _resolve(self, register: str | tuple[int, int]) -> Reg:
        if isinstance(register, str):
            try:
                return _from_table(self._table[register])
            except KeyError:
                raise KeyError(f"the {self._family} register table has no register named {register!r}") from None
        if not (isinstance(register, tuple) and len(register) == 2):
            raise TypeError(f"register must be a name or an (address, size) tuple, not {register!r}")
        address, size = (operator.index(v) for v in register)
        if not 0 <= address <= 0xFFFF or not 1 <= size <= self._max_size:
            raise ValueError(f"register ({address}, {size}) is outside the control table (size 1..{self._max_size})")
        known = self._by_place.get((address, size))
        if known is not None:  # the same bytes as a named register: same encoding
            return _from_table(known)
        lo, hi = _range(size, None, False)
        return Reg(f"({address}, {size})", address, size, True, False, None, False, lo, hi)
