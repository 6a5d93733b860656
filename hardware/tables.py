"""Servo control tables as data: address, size, memory area, access, encoding and factory default.

Names follow LeRobot's control tables so that both projects talk about the same registers (a test
checks every shared name has the same address and size). Facts: ``shared/reference/servo-protocols.md``.

Encodings: Feetech signed fields are sign-magnitude with ``sign_bit``; Dynamixel signed fields are
two's complement (``signed=True``). Raw ticks live here and in ``hardware``/``calibration`` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Mapping


class Family(str, Enum):
    FEETECH = "feetech"
    DYNAMIXEL = "dynamixel"


class Area(str, Enum):
    EEPROM = "eeprom"  # non-volatile; write rules apply (Feetech Lock, Dynamixel torque off)
    RAM = "ram"


@dataclass(frozen=True, slots=True)
class Register:
    name: str
    address: int
    size: int
    area: Area
    writable: bool = True
    default: int = 0
    sign_bit: int | None = None  # Feetech sign-magnitude
    signed: bool = False  # Dynamixel two's complement


@dataclass(frozen=True)
class ServoModel:
    name: str  # LeRobot's model name, e.g. "sts3215"
    family: Family
    model_number: int
    resolution: int
    registers: Mapping[str, Register]
    baud_codes: Mapping[int, int]  # code -> baud
    memory_size: int
    firmware: tuple[int, int] = (3, 10)  # (major, minor) for Feetech; (version, 0) for Dynamixel
    # nominal no-load speed and supply, used by the emulator's motion model and by sanity checks
    max_speed_ticks_s: float = 3000.0
    nominal_voltage: float = 12.0
    voltage_range: tuple[float, float] = (4.0, 14.0)
    extra: Mapping[str, float] = field(default_factory=dict)

    def register(self, name: str) -> Register:
        try:
            return self.registers[name]
        except KeyError:
            raise KeyError(f"{self.name} has no register named {name!r}") from None

    def baud_code(self, baud: int) -> int:
        for code, value in self.baud_codes.items():
            if value == baud:
                return code
        allowed = ", ".join(str(v) for v in self.baud_codes.values())
        raise ValueError(f"{self.name} does not support {baud} baud (allowed: {allowed})")


def _table(*rows: Register) -> Mapping[str, Register]:
    return MappingProxyType({r.name: r for r in rows})


E, R = Area.EEPROM, Area.RAM

# --- Feetech STS/SMS series (STS3215) ---------------------------------------------------------------
# Defaults: factory values from the STS memory-table descriptions; Return_Delay_Time 250 = 500 us.
_STS_REGISTERS = _table(
    Register("Firmware_Major_Version", 0, 1, E, writable=False, default=3),
    Register("Firmware_Minor_Version", 1, 1, E, writable=False, default=10),
    Register("Model_Number", 3, 2, E, writable=False, default=777),
    Register("ID", 5, 1, E, default=1),
    Register("Baud_Rate", 6, 1, E, default=0),
    Register("Return_Delay_Time", 7, 1, E, default=250),
    Register("Response_Status_Level", 8, 1, E, default=1),
    Register("Min_Position_Limit", 9, 2, E, default=0),
    Register("Max_Position_Limit", 11, 2, E, default=4095),
    Register("Max_Temperature_Limit", 13, 1, E, default=70),
    Register("Max_Voltage_Limit", 14, 1, E, default=140),
    Register("Min_Voltage_Limit", 15, 1, E, default=40),
    Register("Max_Torque_Limit", 16, 2, E, default=1000),
    Register("Phase", 18, 1, E, default=12),
    Register("Unloading_Condition", 19, 1, E, default=44),
    Register("LED_Alarm_Condition", 20, 1, E, default=47),
    Register("P_Coefficient", 21, 1, E, default=32),
    Register("D_Coefficient", 22, 1, E, default=32),
    Register("I_Coefficient", 23, 1, E, default=0),
    Register("Minimum_Startup_Force", 24, 2, E, default=16),
    Register("CW_Dead_Zone", 26, 1, E, default=1),
    Register("CCW_Dead_Zone", 27, 1, E, default=1),
    Register("Protection_Current", 28, 2, E, default=511),
    Register("Angular_Resolution", 30, 1, E, default=1),
    Register("Homing_Offset", 31, 2, E, default=0, sign_bit=11),
    Register("Operating_Mode", 33, 1, E, default=0),
    Register("Protective_Torque", 34, 1, E, default=20),
    Register("Protection_Time", 35, 1, E, default=200),
    Register("Overload_Torque", 36, 1, E, default=80),
    Register("Velocity_closed_loop_P_proportional_coefficient", 37, 1, E, default=10),
    Register("Over_Current_Protection_Time", 38, 1, E, default=200),
    Register("Velocity_closed_loop_I_integral_coefficient", 39, 1, E, default=200),
    Register("Torque_Enable", 40, 1, R, default=0),
    Register("Acceleration", 41, 1, R, default=0),
    Register("Goal_Position", 42, 2, R, default=0, sign_bit=15),
    Register("Goal_Time", 44, 2, R, default=0, sign_bit=10),
    Register("Goal_Velocity", 46, 2, R, default=0, sign_bit=15),
    Register("Torque_Limit", 48, 2, R, default=1000),
    Register("Lock", 55, 1, R, default=1),
    Register("Present_Position", 56, 2, R, writable=False, sign_bit=15),
    Register("Present_Velocity", 58, 2, R, writable=False, sign_bit=15),
    Register("Present_Load", 60, 2, R, writable=False, sign_bit=10),
    Register("Present_Voltage", 62, 1, R, writable=False),
    Register("Present_Temperature", 63, 1, R, writable=False),
    Register("Status", 65, 1, R, writable=False),
    Register("Moving", 66, 1, R, writable=False),
    Register("Present_Current", 69, 2, R, writable=False, sign_bit=15),
    Register("Goal_Position_2", 71, 2, R, writable=False),
    Register("Moving_Velocity_Threshold", 80, 1, R, default=50),
    Register("DTs", 81, 1, R, default=1),
    Register("Velocity_Unit_factor", 82, 1, R, default=1),
    Register("Hts", 83, 1, R, default=0),
    Register("Maximum_Velocity_Limit", 84, 1, R, default=254),
    Register("Maximum_Acceleration", 85, 1, R, default=254),
    Register("Acceleration_Multiplier", 86, 1, R, default=0),
)

# Feetech's own baud codes (LeRobot's codes 5-7 differ; only code 0 matters in practice).
_STS_BAUDS = MappingProxyType(
    {0: 1_000_000, 1: 500_000, 2: 250_000, 3: 128_000, 4: 115_200, 5: 76_800, 6: 57_600, 7: 38_400}
)

STS3215 = ServoModel(
    name="sts3215",
    family=Family.FEETECH,
    model_number=777,
    resolution=4096,
    registers=_STS_REGISTERS,
    baud_codes=_STS_BAUDS,
    memory_size=128,
    firmware=(3, 10),
    # 0.222 s / 60 deg at 12 V -> about 270 deg/s = 3070 steps/s
    max_speed_ticks_s=3070.0,
    nominal_voltage=12.0,
    voltage_range=(4.0, 14.0),
)


# --- Dynamixel X series (XL330, XL430) ------------------------------------------------------------


def _x_registers(model_number: int, *, xl330: bool) -> Mapping[str, Register]:
    return _table(
        Register("Model_Number", 0, 2, E, writable=False, default=model_number),
        Register("Model_Information", 2, 4, E, writable=False),
        Register("Firmware_Version", 6, 1, E, writable=False, default=52 if xl330 else 46),
        Register("ID", 7, 1, E, default=1),
        Register("Baud_Rate", 8, 1, E, default=1),
        Register("Return_Delay_Time", 9, 1, E, default=250),
        Register("Drive_Mode", 10, 1, E, default=0),
        Register("Operating_Mode", 11, 1, E, default=3),
        Register("Secondary_ID", 12, 1, E, default=255),
        Register("Protocol_Type", 13, 1, E, default=2),
        Register("Homing_Offset", 20, 4, E, default=0, signed=True),
        Register("Moving_Threshold", 24, 4, E, default=10),
        Register("Temperature_Limit", 31, 1, E, default=70 if xl330 else 72),
        Register("Max_Voltage_Limit", 32, 2, E, default=70 if xl330 else 140),
        Register("Min_Voltage_Limit", 34, 2, E, default=35 if xl330 else 60),
        Register("PWM_Limit", 36, 2, E, default=885),
        Register("Current_Limit", 38, 2, E, default=1750 if xl330 else 0),
        Register("Acceleration_Limit", 40, 4, E, default=32767),
        Register("Velocity_Limit", 44, 4, E, default=445 if xl330 else 265),
        Register("Max_Position_Limit", 48, 4, E, default=4095),
        Register("Min_Position_Limit", 52, 4, E, default=0),
        Register("Startup_Configuration", 60, 1, E, default=0),
        Register("Shutdown", 63, 1, E, default=53 if xl330 else 52),
        Register("Torque_Enable", 64, 1, R, default=0),
        Register("LED", 65, 1, R, default=0),
        Register("Status_Return_Level", 68, 1, R, default=2),
        Register("Registered_Instruction", 69, 1, R, writable=False),
        Register("Hardware_Error_Status", 70, 1, R, writable=False),
        Register("Velocity_I_Gain", 76, 2, R, default=1600 if xl330 else 1000),
        Register("Velocity_P_Gain", 78, 2, R, default=180 if xl330 else 100),
        Register("Position_D_Gain", 80, 2, R, default=0 if xl330 else 4000),
        Register("Position_I_Gain", 82, 2, R, default=0),
        Register("Position_P_Gain", 84, 2, R, default=400 if xl330 else 640),
        Register("Feedforward_2nd_Gain", 88, 2, R, default=0),
        Register("Feedforward_1st_Gain", 90, 2, R, default=0),
        Register("Bus_Watchdog", 98, 1, R, default=0),
        Register("Goal_PWM", 100, 2, R, default=885, signed=True),
        Register("Goal_Current", 102, 2, R, default=1750 if xl330 else 0, signed=True),
        Register("Goal_Velocity", 104, 4, R, default=0, signed=True),
        Register("Profile_Acceleration", 108, 4, R, default=0),
        Register("Profile_Velocity", 112, 4, R, default=0),
        Register("Goal_Position", 116, 4, R, default=0, signed=True),
        Register("Realtime_Tick", 120, 2, R, writable=False),
        Register("Moving", 122, 1, R, writable=False),
        Register("Moving_Status", 123, 1, R, writable=False),
        Register("Present_PWM", 124, 2, R, writable=False, signed=True),
        Register("Present_Current", 126, 2, R, writable=False, signed=True),
        Register("Present_Velocity", 128, 4, R, writable=False, signed=True),
        Register("Present_Position", 132, 4, R, writable=False, signed=True),
        Register("Velocity_Trajectory", 136, 4, R, writable=False, signed=True),
        Register("Position_Trajectory", 140, 4, R, writable=False, signed=True),
        Register("Present_Input_Voltage", 144, 2, R, writable=False),
        Register("Present_Temperature", 146, 1, R, writable=False),
    )


_XL330_BAUDS = MappingProxyType(
    {0: 9_600, 1: 57_600, 2: 115_200, 3: 1_000_000, 4: 2_000_000, 5: 3_000_000, 6: 4_000_000}
)
_XL430_BAUDS = MappingProxyType({**_XL330_BAUDS, 7: 4_500_000})

# No-load speeds: XL330-M077 383 rpm, XL330-M288 103 rpm (5 V); XL430-W250 57 rpm (11.1 V). 1 rpm = 68.3 ticks/s.
XL330_M077 = ServoModel(
    "xl330-m077", Family.DYNAMIXEL, 1190, 4096, _x_registers(1190, xl330=True), _XL330_BAUDS, 228,
    firmware=(52, 0), max_speed_ticks_s=383 * 68.27, nominal_voltage=5.0, voltage_range=(3.5, 7.0),
)
XL330_M288 = ServoModel(
    "xl330-m288", Family.DYNAMIXEL, 1200, 4096, _x_registers(1200, xl330=True), _XL330_BAUDS, 228,
    firmware=(52, 0), max_speed_ticks_s=103 * 68.27, nominal_voltage=5.0, voltage_range=(3.5, 7.0),
)
XL430_W250 = ServoModel(
    "xl430-w250", Family.DYNAMIXEL, 1060, 4096, _x_registers(1060, xl330=False), _XL430_BAUDS, 228,
    firmware=(46, 0), max_speed_ticks_s=57 * 68.27, nominal_voltage=11.1, voltage_range=(6.0, 14.0),
)

MODELS: Mapping[str, ServoModel] = MappingProxyType(
    {m.name: m for m in (STS3215, XL330_M077, XL330_M288, XL430_W250)}
)
MODELS_BY_NUMBER: Mapping[tuple[Family, int], ServoModel] = MappingProxyType(
    {(m.family, m.model_number): m for m in MODELS.values()}
)


def model(name: str) -> ServoModel:
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown servo model {name!r} (known: {', '.join(MODELS)})") from None


def load_register(m: ServoModel) -> tuple[str, float]:
    """The register that says how hard ``m`` works, and the reading that means full effort (load 1.0).

    STS3215: Present_Load in 0.1 % of full torque (sign in bit 10). XL330: Present_Current in mA, 1750 =
    its default current limit. XL430: address 126 holds Present_Load in 0.1 % (the table names it
    Present_Current for both models).
    """
    if m.family is Family.FEETECH:
        return "Present_Load", 1000.0
    if m.name.startswith("xl330"):
        return "Present_Current", 1750.0
    return "Present_Current", 1000.0
