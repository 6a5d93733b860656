"""Fault injection: the ``--faults`` SPEC, parsed into ``FaultSpec``, and the per-reply dice.

SPEC is comma-separated ``key=value``::

    corrupt=RATE          probability that a reply gets one byte flipped
    drop=RATE             probability that a reply is not sent
    late=RATE[:MS]        probability that a reply comes MS ms late (default 20 ms)
    dead=ID[+ID..]        servos that never answer (as if unplugged: they hear nothing either)
    overheat=ID[+ID..]    temperature climbs past Max_Temperature_Limit within ~1 s of torque-on time
    voltage=ID[+ID..]|all input voltage reads below Min_Voltage_Limit, voltage error bit set
    model=ID:NUMBER[+ID:NUMBER..]  that servo reports another model number
    supply=VOLTS          the supply voltage every servo reads (default: each model's nominal voltage)
    vlimits=ID:MIN-MAX[+..]  that servo's factory voltage limits in volts (another voltage variant,
                          e.g. ``vlimits=6:4.0-8.4`` for a lower-voltage motor on a 12 V arm)
    firmware=ID:VERSION[+..] that servo's firmware: MAJOR.MINOR (Feetech) or VERSION (Dynamixel)
    seed=N                seed of the fault dice (default: the emulator's seed)

RATE is a number in [0, 1]. Example: ``drop=0.05,late=0.01:50,dead=4,voltage=all``.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ALLOWED_KEYS = ("corrupt", "drop", "late", "dead", "overheat", "voltage", "model", "supply", "vlimits", "firmware", "seed")

_SYNTAX = {
    "corrupt": "RATE (a number in [0, 1])",
    "drop": "RATE (a number in [0, 1])",
    "late": "RATE[:MS] (RATE in [0, 1], MS >= 0 milliseconds)",
    "dead": "ID[+ID..] (servo ids 0..253)",
    "overheat": "ID[+ID..] (servo ids 0..253)",
    "voltage": "ID[+ID..] or all",
    "model": "ID:NUMBER[+ID:NUMBER..] (model number 0..65535)",
    "supply": "VOLTS (0 < VOLTS <= 25)",
    "vlimits": "ID:MIN-MAX[+ID:MIN-MAX..] (volts, 0 <= MIN < MAX <= 25)",
    "firmware": "ID:VERSION[+ID:VERSION..] (MAJOR.MINOR or VERSION, each 0..255)",
    "seed": "N (an integer)",
}


class FaultSpec(BaseModel):
    """What goes wrong on the emulated bus. All fields default to 'nothing'."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    corrupt: float = Field(0.0, ge=0.0, le=1.0)
    drop: float = Field(0.0, ge=0.0, le=1.0)
    late: float = Field(0.0, ge=0.0, le=1.0)
    late_ms: float = Field(20.0, ge=0.0, le=10_000.0)
    dead: frozenset[int] = frozenset()
    overheat: frozenset[int] = frozenset()
    voltage: frozenset[int] | Literal["all"] = frozenset()
    model: dict[int, int] = Field(default_factory=dict)
    supply: float | None = Field(None, gt=0.0, le=25.0)
    vlimits: dict[int, tuple[float, float]] = Field(default_factory=dict)
    firmware: dict[int, tuple[int, int]] = Field(default_factory=dict)
    seed: int | None = None

    def voltage_fault(self, servo_id: int) -> bool:
        return self.voltage == "all" or servo_id in self.voltage

    @property
    def any(self) -> bool:
        return self != FaultSpec()

    def to_spec(self) -> str:
        """The SPEC string that parses back to this spec ('' for no faults)."""
        parts: list[str] = []
        if self.corrupt:
            parts.append(f"corrupt={self.corrupt!r}")
        if self.drop:
            parts.append(f"drop={self.drop!r}")
        if self.late:
            parts.append(f"late={self.late!r}:{self.late_ms!r}")
        for key in ("dead", "overheat"):
            ids = getattr(self, key)
            if ids:
                parts.append(f"{key}={'+'.join(str(i) for i in sorted(ids))}")
        if self.voltage == "all":
            parts.append("voltage=all")
        elif self.voltage:
            parts.append("voltage=" + "+".join(str(i) for i in sorted(self.voltage)))
        if self.model:
            parts.append("model=" + "+".join(f"{i}:{n}" for i, n in sorted(self.model.items())))
        if self.supply is not None:
            parts.append(f"supply={self.supply!r}")
        if self.vlimits:
            parts.append("vlimits=" + "+".join(f"{i}:{lo!r}-{hi!r}" for i, (lo, hi) in sorted(self.vlimits.items())))
        if self.firmware:
            parts.append("firmware=" + "+".join(f"{i}:{a}.{b}" for i, (a, b) in sorted(self.firmware.items())))
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        return ",".join(parts)


def _bad(key: str, value: str, why: str = "") -> ValueError:
    extra = f": {why}" if why else ""
    return ValueError(f"fault spec: bad value {value!r} for {key!r}{extra}; expected {key}={_SYNTAX[key]}")


def _rate(key: str, text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        raise _bad(key, text) from None
    if not 0.0 <= rate <= 1.0:
        raise _bad(key, text, "RATE must be in [0, 1]")
    return rate


def _id(key: str, text: str, whole: str) -> int:
    try:
        servo_id = int(text)
    except ValueError:
        raise _bad(key, whole) from None
    if not 0 <= servo_id <= 253:
        raise _bad(key, whole, f"id {servo_id} is outside 0..253")
    return servo_id


def _ids(key: str, text: str) -> frozenset[int]:
    if not text:
        raise _bad(key, text)
    return frozenset(_id(key, part, text) for part in text.split("+"))


def _per_id(key: str, text: str) -> dict[int, tuple[float, float]] | dict[int, tuple[int, int]]:
    """``ID:MIN-MAX`` (vlimits, volts) or ``ID:MAJOR.MINOR`` (firmware) items joined by '+'."""
    out: dict = {}
    for part in text.split("+"):
        sid, colon, rest = part.partition(":")
        if not colon:
            raise _bad(key, text)
        try:
            if key == "vlimits":
                lo_text, dash, hi_text = rest.partition("-")
                lo, hi = float(lo_text), float(hi_text)
                if not dash or not 0.0 <= lo < hi <= 25.0:
                    raise _bad(key, text, "MIN-MAX must satisfy 0 <= MIN < MAX <= 25")
                item: tuple = (lo, hi)
            else:
                major, _, minor = rest.partition(".")
                item = (int(major), int(minor or 0))
                if not all(0 <= v <= 255 for v in item):
                    raise _bad(key, text, "each version number must be in 0..255")
        except ValueError as exc:
            if str(exc).startswith("fault spec"):
                raise
            raise _bad(key, text) from None
        out[_id(key, sid, text)] = item
    return out


def parse_faults(spec: str | FaultSpec | None) -> FaultSpec:
    """Parse a SPEC string (see the module doc). Raises ValueError naming the key and what is allowed."""
    if spec is None:
        return FaultSpec()
    if isinstance(spec, FaultSpec):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"fault spec must be a string like 'drop=0.1,dead=3', not {type(spec).__name__}")
    fields: dict[str, object] = {}
    for item in (p.strip() for p in spec.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        if key not in ALLOWED_KEYS:
            raise ValueError(f"fault spec: unknown key {key!r} in {item!r}; allowed keys: {', '.join(ALLOWED_KEYS)}")
        if not sep:
            raise ValueError(f"fault spec: {key!r} needs a value; expected {key}={_SYNTAX[key]}")
        if key in fields or (key == "late" and "late_ms" in fields):
            raise ValueError(f"fault spec: {key!r} given twice")
        if key in ("corrupt", "drop"):
            fields[key] = _rate(key, value)
        elif key == "late":
            rate, _, ms = value.partition(":")
            fields["late"] = _rate(key, rate)
            if ms:
                try:
                    late_ms = float(ms)
                except ValueError:
                    raise _bad(key, value) from None
                if not 0.0 <= late_ms <= 10_000.0:
                    raise _bad(key, value, "MS must be in 0..10000")
                fields["late_ms"] = late_ms
        elif key in ("dead", "overheat"):
            fields[key] = _ids(key, value)
        elif key == "voltage":
            fields[key] = "all" if value.lower() == "all" else _ids(key, value)
        elif key == "model":
            models: dict[int, int] = {}
            for part in value.split("+"):
                sid, colon, number = part.partition(":")
                if not colon:
                    raise _bad(key, value)
                try:
                    num = int(number)
                except ValueError:
                    raise _bad(key, value) from None
                if not 0 <= num <= 0xFFFF:
                    raise _bad(key, value, f"model number {num} is outside 0..65535")
                models[_id(key, sid, value)] = num
            fields[key] = models
        elif key == "supply":
            try:
                volts = float(value)
            except ValueError:
                raise _bad(key, value) from None
            if not 0.0 < volts <= 25.0:
                raise _bad(key, value, "VOLTS must be in (0, 25]")
            fields[key] = volts
        elif key in ("vlimits", "firmware"):
            fields[key] = _per_id(key, value)
        elif key == "seed":
            try:
                fields[key] = int(value)
            except ValueError:
                raise _bad(key, value) from None
    try:
        return FaultSpec(**fields)  # type: ignore[arg-type]
    except ValidationError as exc:  # pragma: no cover - the checks above keep values in range
        raise ValueError(f"fault spec: {exc}") from None


class FaultDice:
    """Random decisions for one reply: drop it, corrupt it, make it late. Deterministic given the seed."""

    def __init__(self, spec: FaultSpec, seed: int) -> None:
        self.spec = spec
        self._rng = random.Random(spec.seed if spec.seed is not None else seed)

    def drop(self) -> bool:
        return self.spec.drop > 0 and self._rng.random() < self.spec.drop

    def late_s(self) -> float:
        if self.spec.late > 0 and self._rng.random() < self.spec.late:
            return self.spec.late_ms / 1000.0
        return 0.0

    def corrupt(self, frame: bytes) -> bytes | None:
        """The frame with one byte flipped, or None when this reply stays intact."""
        if not (self.spec.corrupt > 0 and self._rng.random() < self.spec.corrupt):
            return None
        out = bytearray(frame)
        i = self._rng.randrange(len(out))
        out[i] ^= self._rng.randrange(1, 256)
        return bytes(out)
