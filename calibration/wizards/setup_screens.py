"""What ``harmowam setup-motors`` shows and decides, without any bus: its states, the answers a user
can give, the screens, what a motor says about itself, and ``check_motor`` (pure: model, supply voltage,
voltage variants and firmware against the motors already set up). The wizard is ``setup_motors.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from hardware.arms import ArmProfile, MotorSpec, Role
from hardware.bus import ServoFault
from hardware.tables import MODELS_BY_NUMBER, Family

UNDERPOWER_FRACTION = 0.7  # a follower motor fed below 70 % of its maximum voltage gets a warning


class State(str, Enum):
    START = "start"
    CONNECT = "connect"  # waiting for the user to connect one motor
    PROBLEM = "problem"  # something to fix, then retry
    CONFIRM = "confirm"  # warnings: continue with this motor?
    CONNECT_ALL = "connect_all"  # waiting for the user to chain every motor
    DONE = "done"
    FAILED = "failed"  # final verification failed (retry possible)
    CANCELLED = "cancelled"


class Answer(str, Enum):
    CONTINUE = "continue"
    RETRY = "retry"
    YES = "yes"
    NO = "no"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class MotorInfo:
    """What one motor says about itself."""

    id: int
    baud: int
    model_number: int
    firmware: tuple[int, int] = (0, 0)
    voltage_v: float = 0.0
    vmin_v: float = 0.0
    vmax_v: float = 0.0
    faults: ServoFault = ServoFault.NONE
    id_reg: int = -1  # the ID and Baud_Rate registers as read (the read-back after writing)
    baud_code: int = -1

    def model_name(self, family: Family) -> str:
        m = MODELS_BY_NUMBER.get((family, self.model_number))
        return m.name if m else f"model number {self.model_number}"


@dataclass(frozen=True, slots=True)
class MotorResult:
    joint: str
    info: MotorInfo  # as read before any write
    written: bool  # False: it was already at its ID and baud


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the bus table."""

    joint: str
    id: int
    model: str
    firmware: str
    voltage_v: float | None
    status: str  # "ok" or what is wrong


@dataclass(frozen=True, slots=True)
class Screen:
    state: State
    title: str
    lines: tuple[str, ...] = ()
    answers: tuple[Answer, ...] = ()  # what the user may answer (empty: final)
    joint: str | None = None
    table: tuple[Row, ...] = ()

    @property
    def final(self) -> bool:
        return not self.answers


@dataclass(slots=True)
class _Search:
    found: list[MotorInfo] = field(default_factory=list)
    garbled: list[tuple[int, int]] = field(default_factory=list)  # (id, baud) with unreadable replies


def fmt_fw(fw: tuple[int, int], family: Family) -> str:
    return f"{fw[0]}.{fw[1]}" if family is Family.FEETECH else str(fw[0])


def check_motor(
    profile: ArmProfile, spec: MotorSpec, info: MotorInfo, done: Sequence[MotorResult]
) -> tuple[list[str], list[str]]:
    """(errors, warnings) about ``info`` as the motor for ``spec``; pure, for tests and the wizard."""
    fam, joint = profile.family, spec.joint
    if info.model_number != spec.model.model_number:
        return [
            f"this motor is a {info.model_name(fam)}, but the {profile.name} {joint} needs a {spec.model.name} "
            f"(model number {spec.model.model_number}): connect the right motor for {joint}"
        ], []
    errors, warnings = [], []
    v, lo, hi = info.voltage_v, info.vmin_v, info.vmax_v
    if v > hi:
        errors.append(
            f"the supply ({v:.1f} V) is above this motor's maximum ({hi:.1f} V): it is a lower-voltage variant "
            f"(e.g. a 7.4 V STS3215 on a 12 V supply). Switch the power off now, then fit a motor rated for "
            f"this supply or use the supply this motor is rated for"
        )
    elif v < lo:
        errors.append(
            f"the supply ({v:.1f} V) is below this motor's minimum ({lo:.1f} V): check the power supply is on "
            f"and rated for this motor (e.g. a 12 V motor on a 5 V supply)"
        )
    elif ServoFault.VOLTAGE in info.faults:
        errors.append(f"the motor reports an input voltage error (supply {v:.1f} V, its limits {lo:.1f}-{hi:.1f} V)")
    elif profile.role is Role.FOLLOWER and v < UNDERPOWER_FRACTION * hi:
        warnings.append(
            f"the supply ({v:.1f} V) is far below this motor's maximum ({hi:.1f} V): it may be a variant for a "
            f"higher voltage (e.g. a 12 V STS3215 on a 7.4 V arm); it will work, with less torque"
        )
    same = [r for r in done if r.info.model_number == info.model_number]
    other_v = [r for r in same if (r.info.vmin_v, r.info.vmax_v) != (lo, hi)]
    if other_v:
        r = other_v[0]
        warnings.append(
            f"its voltage limits ({lo:.1f}-{hi:.1f} V) differ from the {r.joint} motor's "
            f"({r.info.vmin_v:.1f}-{r.info.vmax_v:.1f} V): a different voltage variant in the same arm?"
        )
    other_fw = sorted({fmt_fw(r.info.firmware, fam) for r in same if r.info.firmware != info.firmware})
    if other_fw:
        joints = ", ".join(r.joint for r in same if r.info.firmware != info.firmware)
        warnings.append(
            f"its firmware {fmt_fw(info.firmware, fam)} differs from {' / '.join(other_fw)} on {joints}: "
            f"mixed firmware on one bus garbles replies for some clients (LeRobot refuses it); update it "
            f"with the vendor's tool (Feetech FD, ROBOTIS Dynamixel Wizard) or continue"
        )
    return errors, warnings
