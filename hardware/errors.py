"""Typed hardware errors. Each names what failed and tells the user what to check next.

``str(err)`` is the whole message a CLI prints: first the cause, then ``-> fix`` lines.
"""

from __future__ import annotations

from collections.abc import Iterable


class HardwareError(Exception):
    """Base of every error raised by ``hardware``. ``cause`` is one line; ``fixes`` are next steps."""

    def __init__(self, cause: str, fixes: Iterable[str] = ()) -> None:
        self.cause = cause
        self.fixes = tuple(fixes)
        super().__init__(self._format())

    def _format(self) -> str:
        return "\n".join([self.cause, *(f"  -> {f}" for f in self.fixes)])


# --- the port -------------------------------------------------------------------------------------

FIND_PORT_HINT = "run `harmowam find-port` (unplug and replug the USB cable) to find the arm's port"


class PortError(HardwareError):
    """The serial port itself cannot be used."""


class PortNotFoundError(PortError):
    def __init__(self, port: str, candidates: Iterable[str] = ()) -> None:
        cands = list(candidates)
        fixes = [f"ports that exist now: {', '.join(cands)}" if cands else "no serial ports are present: is the USB cable plugged in?"]
        fixes.append(FIND_PORT_HINT)
        super().__init__(f"serial port {port} does not exist", fixes)
        self.port = port


class PortPermissionError(PortError):
    def __init__(self, port: str) -> None:
        super().__init__(
            f"no permission to open serial port {port}",
            [
                "add yourself to the dialout group: `sudo usermod -aG dialout $USER`, then log out and in again",
                f"or, for this session only: `sudo chmod 666 {port}`",
            ],
        )
        self.port = port


class NotASerialPortError(PortError):
    def __init__(self, port: str, what: str) -> None:
        super().__init__(
            f"{port} is {what}, not a serial port (a tty device)",
            ["pass the device path of the arm's USB serial adapter, e.g. /dev/ttyACM0 or /dev/ttyUSB0", FIND_PORT_HINT],
        )
        self.port = port


class PortBusyError(PortError):
    def __init__(self, port: str, detail: str = "") -> None:
        super().__init__(
            f"serial port {port} could not be opened{': ' + detail if detail else ''}",
            ["close any other program using the arm (another harmowam, lerobot, a serial monitor)", "unplug and replug the USB cable"],
        )
        self.port = port


# --- the servos -----------------------------------------------------------------------------------

POWER_CABLE_ID_BAUD = (
    "check the servo power supply is switched on (the servo LEDs blink at power-up)",
    "check the 3-pin cable from the adapter to this servo and between servos",
    "check the servo ID and the bus baud rate (`harmowam setup-motors` sets both)",
)


class ServoError(HardwareError):
    """A transaction with one or more servos failed."""


class NoResponseError(ServoError):
    """A servo did not answer within its timeout, after every retry."""

    def __init__(self, what: str, servo: str, port: str, baud: int, timeout_s: float, tries: int) -> None:
        super().__init__(
            f"{servo} did not answer {what} on {port} at {baud} baud "
            f"({tries} tr{'y' if tries == 1 else 'ies'}, {timeout_s * 1e3:.1f} ms each)",
            POWER_CABLE_ID_BAUD,
        )
        self.servo = servo


class NoServosFoundError(ServoError):
    def __init__(self, port: str, baud: int, other_baud: int | None = None) -> None:
        if other_baud is not None:
            fixes = [
                f"servos answer on {port} at {other_baud} baud, not {baud}: pass --baud {other_baud}, "
                f"or run `harmowam setup-motors` to set every servo to {baud}"
            ]
        else:
            fixes = [
                "check the servo power supply is switched on and the cable is in the adapter's servo socket",
                "check the port is the servo adapter and not another device",
                FIND_PORT_HINT,
            ]
        super().__init__(f"no servo answered on {port} at {baud} baud", fixes)
        self.other_baud = other_baud


class CorruptResponseError(ServoError):
    def __init__(self, what: str, servo: str, port: str, tries: int) -> None:
        super().__init__(
            f"{servo} sent corrupt replies to {what} on {port} ({tries} tries)",
            [
                "check the servo voltage matches the supply (a 7.4 V servo on 12 V, or the reverse, garbles replies)",
                "check the servo firmware is the same on every motor (`harmowam check`)",
                "reseat the cables: a loose connector corrupts bytes while joints move",
            ],
        )
        self.servo = servo


class MissingMotorsError(ServoError):
    def __init__(self, port: str, missing: Iterable[str], found: Iterable[str]) -> None:
        miss, fnd = list(missing), list(found)
        super().__init__(
            f"motors missing on {port}: {', '.join(miss)} (found: {', '.join(fnd) or 'none'})",
            [*POWER_CABLE_ID_BAUD[:2], "a motor not set up yet still has ID 1: run `harmowam setup-motors`"],
        )
        self.missing = tuple(miss)


class ModelMismatchError(ServoError):
    """``likely``: the arm profiles whose servo models the bus holds (the arm that is plugged in)."""

    def __init__(self, servo: str, expected: str, found: str, likely: Iterable[str] = ()) -> None:
        self.likely = tuple(likely)
        plugged = ([f"these servos are a {' or '.join(self.likely)}'s: name that arm (--arm {self.likely[0]}; "
                    f"a leader: --leader-arm {self.likely[0]} in run/teleop/record), and use its calibration"]
                   if self.likely else [])
        super().__init__(
            f"{servo} is a {found}, but this arm profile expects a {expected}",
            [*plugged, "check --arm names the arm that is plugged in", "check the motor at this position is the right part"],
        )
        self.servo = servo


class ServoRefusedError(ServoError):
    """A servo answered but refused the instruction (Dynamixel result error in the status packet)."""

    def __init__(self, servo: str, what: str, reason: str, fix: str) -> None:
        super().__init__(f"{servo} refused {what}: {reason}", [fix])
        self.servo = servo
        self.reason = reason
