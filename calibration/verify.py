"""Do the servos hold what a calibration file says? And are they healthy?

``await verify_calibration(bus, profile, cal)`` compares what the servos of ``profile`` hold against
``cal`` and returns a list of ``Finding`` (empty: all is well). It never prints and never writes:

* ``id``: a motor of the profile does not answer (cable, power, ID);
* ``model``: it answers with another model number than the profile's; when every motor answers with
  the models of another arm profile, an ``arm`` finding (first) names that arm (``--arm koch`` on a
  Koch leader: ``koch-leader``);
* ``firmware``: servos of one model disagree on firmware (LeRobot refuses such a bus);
* ``homing_offset``, ``range_min``, ``range_max``: the Homing_Offset and Min/Max_Position_Limit
  registers differ from the file (another arm's file, or servos calibrated since);
* ``drive_mode``: Dynamixel Drive_Mode bit 0 differs from the file; on Feetech (no such register) a
  file with ``drive_mode = 1`` is a warning (LeRobot writes 0 there).

``await servo_health(bus, profile)`` reads voltage, temperature and error bits of every answering
servo -> ``(rows, findings)``: ``voltage`` outside the servo's own Min/Max_Voltage_Limit or its
voltage error bit, ``temperature`` at or above its limit (a warning within 10 C of it), ``faults``
for other error bits. ``survey(bus, profile)`` (ping every motor) is shared by both.

Bus errors other than a silent motor (a port that vanished...) propagate as ``HardwareError``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from calibration.model import ArmCalibration
from hardware.arms import ArmProfile, arms_with_models
from hardware.bus import ServoBus, ServoFault
from hardware.errors import NoResponseError, ServoError
from hardware.tables import MODELS_BY_NUMBER, Family

ERROR, WARNING = "error", "warning"
TEMP_WARN_MARGIN_C = 10

_REGS = {
    Family.FEETECH: {"voltage": "Present_Voltage", "vmin": "Min_Voltage_Limit", "vmax": "Max_Voltage_Limit",
                     "temp": "Present_Temperature", "tmax": "Max_Temperature_Limit"},
    Family.DYNAMIXEL: {"voltage": "Present_Input_Voltage", "vmin": "Min_Voltage_Limit",
                       "vmax": "Max_Voltage_Limit", "temp": "Present_Temperature", "tmax": "Temperature_Limit"},
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One difference: ``joint`` (name), ``field``, what was ``expected`` and what was ``found``."""

    joint: str
    field: str
    expected: Any
    found: Any
    severity: str = ERROR
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.joint}: {self.field} should be {self.expected}, the servo has {self.found}"
        return f"{text} ({self.hint})" if self.hint else text

    def as_dict(self) -> dict[str, Any]:
        return {"joint": self.joint, "field": self.field, "expected": self.expected, "found": self.found,
                "severity": self.severity, "hint": self.hint}


@dataclass(frozen=True, slots=True)
class ServoInfo:
    id: int
    joint: str
    model_number: int | None  # None: silent
    firmware: tuple[int, int] | None


def model_name(family: Family, number: int | None) -> str:
    if number is None:
        return "-"
    m = MODELS_BY_NUMBER.get((family, number))
    return m.name if m else f"unknown ({number})"


async def survey(bus: ServoBus, profile: ArmProfile) -> dict[int, ServoInfo]:
    """Ping every motor of ``profile`` (with the bus's retries): id -> model and firmware (None: silent)."""
    out: dict[int, ServoInfo] = {}
    for m in profile.motors:
        try:
            reply = await bus.ping(m.id)
        except NoResponseError:
            out[m.id] = ServoInfo(m.id, m.joint, None, None)
        else:
            out[m.id] = ServoInfo(m.id, m.joint, reply.model_number, reply.firmware)
    return out


def _fw(fw: tuple[int, int], family: Family) -> str:
    return f"{fw[0]}.{fw[1]}" if family is Family.FEETECH else str(fw[0])


def identity_findings(profile: ArmProfile, servos: dict[int, ServoInfo]) -> list[Finding]:
    """``id``, ``model`` and ``firmware`` findings from a ``survey``."""
    found: list[Finding] = []
    for m in profile.motors:
        info = servos[m.id]
        if info.model_number is None:
            found.append(Finding(m.joint, "id", m.id, "no reply",
                                 hint=f"motor id {m.id} is silent: check its power, its cable and its ID "
                                 f"(harmowam setup-motors --arm {profile.name} ...)"))
        elif info.model_number != m.model.model_number:
            found.append(Finding(m.joint, "model", m.model_name, model_name(profile.family, info.model_number),
                                 hint=f"id {m.id} is another servo model: is this the right --arm, and is "
                                 "the right motor at this joint?"))
    plugged = _plugged_arm(profile, servos)
    if plugged is not None and any(f.field == "model" for f in found):
        found.insert(0, plugged)
    by_model: dict[int, list[ServoInfo]] = {}
    for info in servos.values():
        if info.model_number is not None and info.firmware is not None:
            by_model.setdefault(info.model_number, []).append(info)
    for infos in by_model.values():
        common, _ = Counter(i.firmware for i in infos).most_common(1)[0]
        for info in infos:
            if info.firmware != common:
                found.append(Finding(info.joint, "firmware", _fw(common, profile.family),
                                     _fw(info.firmware, profile.family),
                                     hint="servos of one model should run the same firmware: update it "
                                     "with the vendor's tool"))
    return found


def _plugged_arm(profile: ArmProfile, servos: dict[int, ServoInfo]) -> Finding | None:
    """An ``arm`` finding when the servos' model numbers are another arm profile's (which one is plugged in)."""
    models = {i: s.model_number for i, s in servos.items() if s.model_number is not None}
    others = [a for a in arms_with_models(profile.family, models) if a is not profile]
    if not others:
        return None
    names = " or ".join(a.name for a in others)
    kinds = ", ".join(sorted({f"{m.model_name} x{sum(n.model_name == m.model_name for n in others[0].motors)}"
                              for m in others[0].motors}))
    return Finding("all joints", "arm", profile.name, names,
                   hint=f"the servos ({kinds}) are a {names}'s: name that arm (--arm {others[0].name}) and use its "
                   f"calibration file, or calibrate it: harmowam calibrate --arm {others[0].name} --port ... --calibration ...")


async def verify_calibration(
    bus: ServoBus, profile: ArmProfile, cal: ArmCalibration, servos: dict[int, ServoInfo] | None = None
) -> list[Finding]:
    """Compare the servos with ``cal`` (see the module doc); ``servos``: a ``survey`` already made."""
    cal.for_profile(profile)
    servos = servos if servos is not None else await survey(bus, profile)
    found = identity_findings(profile, servos)
    ok = [m.id for m in profile.motors
          if servos[m.id].model_number == m.model.model_number]
    if not ok:
        return found
    fields = {"homing_offset": "Homing_Offset", "range_min": "Min_Position_Limit", "range_max": "Max_Position_Limit"}
    if profile.family is Family.DYNAMIXEL:
        fields["drive_mode"] = "Drive_Mode"
    held = {f: (await bus.sync_read(reg, ok)).values for f, reg in fields.items()}
    for m in profile.motors:
        if m.id not in ok:
            continue
        jc = cal[m.joint]
        for f in fields:
            value = held[f][m.id]
            if f == "drive_mode":
                value &= 1
            expected = getattr(jc, f)
            if value != expected:
                found.append(Finding(m.joint, f, expected, value, hint=_why(f, profile)))
        if profile.family is Family.FEETECH and jc.drive_mode:
            found.append(Finding(m.joint, "drive_mode", 0, "no register", WARNING,
                                 "Feetech servos cannot invert a joint; LeRobot writes drive_mode 0"))
    return found


def _why(field: str, profile: ArmProfile) -> str:
    what = {"homing_offset": "the servo's zero differs", "range_min": "its lower limit differs",
            "range_max": "its upper limit differs", "drive_mode": "its direction differs"}[field]
    return (f"{what} from the file: is this the calibration of this arm (--calibration)? If so, recalibrate: "
            f"harmowam calibrate --arm {profile.name} ...")


async def servo_health(
    bus: ServoBus, profile: ArmProfile, servos: dict[int, ServoInfo] | None = None
) -> tuple[list[dict[str, Any]], list[Finding]]:
    """Voltage, temperature and error bits of every answering servo (see the module doc)."""
    servos = servos if servos is not None else await survey(bus, profile)
    regs = _REGS[profile.family]
    rows: list[dict[str, Any]] = []
    found: list[Finding] = []
    for m in profile.motors:
        info = servos[m.id]
        row: dict[str, Any] = {"id": m.id, "joint": m.joint, "model": model_name(profile.family, info.model_number),
                               "firmware": _fw(info.firmware, profile.family) if info.firmware else "-",
                               "voltage_v": None, "temperature_c": None, "faults": ""}
        rows.append(row)
        if info.model_number is None:
            continue
        try:
            volt = await bus.read(m.id, regs["voltage"])
            vmin = (await bus.read(m.id, regs["vmin"])).value
            vmax = (await bus.read(m.id, regs["vmax"])).value
            temp = await bus.read(m.id, regs["temp"])
            tmax = (await bus.read(m.id, regs["tmax"])).value
        except ServoError as e:
            found.append(Finding(m.joint, "health", "readable", "read failed", hint=e.cause))
            continue
        faults = volt.faults | temp.faults
        row.update(voltage_v=volt.value / 10, temperature_c=temp.value,
                   faults=str(faults.name) if faults else "")
        if not vmin <= volt.value <= vmax or ServoFault.VOLTAGE in faults:
            found.append(Finding(m.joint, "voltage", f"{vmin / 10:.1f}..{vmax / 10:.1f} V", f"{volt.value / 10:.1f} V",
                                 hint="wrong power supply for these servos? (leaders often take 5 V, "
                                 "followers 7.4 V or 12 V)"))
        if temp.value >= tmax or ServoFault.OVERHEAT in faults:
            found.append(Finding(m.joint, "temperature", f"below {tmax} C", f"{temp.value} C",
                                 hint="let the servo cool down with torque off; check the joint is not stalled"))
        elif temp.value >= tmax - TEMP_WARN_MARGIN_C:
            found.append(Finding(m.joint, "temperature", f"below {tmax - TEMP_WARN_MARGIN_C} C",
                                 f"{temp.value} C", WARNING, "close to its limit"))
        other = faults & ~(ServoFault.VOLTAGE | ServoFault.OVERHEAT | ServoFault.ALERT)
        if other:
            found.append(Finding(m.joint, "faults", "none", str(other.name),
                                 hint="an overload or sensor error: power-cycle the arm and check the joint moves freely"))
    return rows, found
