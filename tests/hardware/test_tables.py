"""Control tables (hardware.tables) against LeRobot 0.6.1's tables and shared/reference/servo-protocols.md."""

from __future__ import annotations

import inspect
import re

import pytest
from lerobot.motors.dynamixel import tables as lr_dxl
from lerobot.motors.feetech import tables as lr_ft

from hardware.protocol import dynamixel as dx
from hardware.protocol import feetech as ft
from hardware.tables import (
    MODELS,
    MODELS_BY_NUMBER,
    STS3215,
    XL330_M077,
    XL330_M288,
    XL430_W250,
    Area,
    Family,
    model,
)

X_MODELS = [XL330_M077, XL330_M288, XL430_W250]
ALL_MODELS = [STS3215, *X_MODELS]
_ids = [m.name for m in ALL_MODELS]

# LeRobot spells one name with a trailing space ("Acceleration_Multiplier "): compare stripped names
LR_FEETECH = {name.strip(): spec for name, spec in lr_ft.STS_SMS_SERIES_CONTROL_TABLE.items()}
LR_DXL = dict(lr_dxl.X_SERIES_CONTROL_TABLE)


def lerobot_table(m):
    return LR_FEETECH if m.family is Family.FEETECH else LR_DXL


def test_models_registry():
    assert set(MODELS) == {"sts3215", "xl330-m077", "xl330-m288", "xl430-w250"}
    assert all(MODELS[name].name == name for name in MODELS)
    assert model("sts3215") is STS3215
    assert MODELS_BY_NUMBER[(Family.FEETECH, 777)] is STS3215
    assert MODELS_BY_NUMBER[(Family.DYNAMIXEL, 1190)] is XL330_M077
    assert MODELS_BY_NUMBER[(Family.DYNAMIXEL, 1200)] is XL330_M288
    assert MODELS_BY_NUMBER[(Family.DYNAMIXEL, 1060)] is XL430_W250
    assert [m.family for m in ALL_MODELS] == [Family.FEETECH] + [Family.DYNAMIXEL] * 3


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(KeyError) as err:
        model("sts3250")
    message = str(err.value)
    assert "sts3250" in message
    for name in MODELS:
        assert name in message


def test_unknown_register_names_model_and_register():
    with pytest.raises(KeyError, match=r"sts3215.*'Goal_Speed'"):
        STS3215.register("Goal_Speed")


# --- LeRobot's control tables --------------------------------------------------------------------


@pytest.mark.parametrize("m", ALL_MODELS, ids=_ids)
def test_every_shared_register_has_lerobots_address_and_size(m):
    theirs = lerobot_table(m)
    shared = set(m.registers) & set(theirs)
    assert len(shared) >= 50
    for name in sorted(shared):
        reg = m.register(name)
        assert (reg.address, reg.size) == theirs[name], name


def test_register_name_sets_differ_from_lerobot_only_where_known():
    assert set(LR_FEETECH) - set(STS3215.registers) == {"Moving_Velocity"}  # LeRobot's alias of address 80
    assert set(STS3215.registers) - set(LR_FEETECH) == set()
    for m in X_MODELS:
        assert set(LR_DXL) - set(m.registers) == set()
        assert set(m.registers) - set(LR_DXL) == {"Startup_Configuration"}  # §2.8 addr 60


def test_feetech_sign_bits_equal_lerobot_encodings_table():
    encodings = lr_ft.STS_SMS_SERIES_ENCODINGS_TABLE
    for name, sign_bit in encodings.items():
        if name in STS3215.registers:
            assert STS3215.register(name).sign_bit == sign_bit, name
    ours = {n for n, r in STS3215.registers.items() if r.sign_bit is not None}
    # beyond LeRobot: Goal_Time's PWM sign bit 10 (reference §1.2) and Present_Current (FTServo forks read it
    # with scs_tohost(x, 15); LeRobot never decodes it). Anything else new must be added here deliberately.
    assert ours - set(encodings) == {"Goal_Time", "Present_Current"}
    assert STS3215.register("Goal_Time").sign_bit == 10
    assert all(r.signed is False for r in STS3215.registers.values())


def test_feetech_sign_bits_match_reference_section_1_2():
    expected = {"Goal_Position": 15, "Present_Position": 15, "Goal_Velocity": 15, "Present_Velocity": 15,
                "Present_Load": 10, "Homing_Offset": 11}
    for name, sign_bit in expected.items():
        assert STS3215.register(name).sign_bit == sign_bit


@pytest.mark.parametrize("m", X_MODELS, ids=[m.name for m in X_MODELS])
def test_dynamixel_signed_fields_equal_lerobot_encodings_table(m):
    encodings = lr_dxl.X_SERIES_ENCODINGS_TABLE
    ours = {n for n, r in m.registers.items() if r.signed}
    for name, size in encodings.items():
        assert m.register(name).signed, name
        assert m.register(name).size == size
    # the trajectory registers are signed too (e-Manual); LeRobot never reads them
    assert ours - set(encodings) == {"Velocity_Trajectory", "Position_Trajectory"}
    assert all(r.sign_bit is None for r in m.registers.values())


@pytest.mark.parametrize("m", ALL_MODELS, ids=_ids)
def test_model_number_and_resolution_equal_lerobot(m):
    lr = lr_ft if m.family is Family.FEETECH else lr_dxl
    assert m.model_number == lr.MODEL_NUMBER_TABLE[m.name]
    assert m.resolution == lr.MODEL_RESOLUTION[m.name] == 4096
    reg = m.register("Model_Number")
    assert reg.default == m.model_number and not reg.writable
    assert (reg.address, reg.size) == ((3, 2) if m.family is Family.FEETECH else (0, 2))


def test_model_numbers_match_reference():
    assert (STS3215.model_number, XL330_M077.model_number, XL330_M288.model_number, XL430_W250.model_number) == (
        777, 1190, 1200, 1060
    )


def test_feetech_read_only_registers_follow_lerobots_comments():
    source = inspect.getsource(lr_ft)
    block = source.split("STS_SMS_SERIES_CONTROL_TABLE = {", 1)[1].split("}", 1)[0]
    read_only = set(re.findall(r'"(\w+)\s*":[^\n]*#\s*read-only', block))
    assert len(read_only) == 12
    for name in read_only:
        assert STS3215.register(name).writable is False, name


@pytest.mark.parametrize("m", X_MODELS, ids=[m.name for m in X_MODELS])
def test_dynamixel_read_only_registers(m):
    read_only = {n for n, r in m.registers.items() if not r.writable}
    assert read_only == {
        "Model_Number", "Model_Information", "Firmware_Version", "Registered_Instruction", "Hardware_Error_Status",
        "Realtime_Tick", "Moving", "Moving_Status", "Present_PWM", "Present_Current", "Present_Velocity",
        "Present_Position", "Velocity_Trajectory", "Position_Trajectory", "Present_Input_Voltage",
        "Present_Temperature",
    }


# --- layout: no overlaps, inside the memory, the right area ----------------------------------------


@pytest.mark.parametrize("m", ALL_MODELS, ids=_ids)
def test_registers_do_not_overlap_and_fit_in_memory(m):
    regs = sorted(m.registers.values(), key=lambda r: r.address)
    for reg in regs:
        assert reg.size in (1, 2, 4), reg.name
        assert 0 <= reg.address and reg.address + reg.size <= m.memory_size, reg.name
    for a, b in zip(regs, regs[1:]):
        assert a.address + a.size <= b.address, f"{a.name} overlaps {b.name}"


@pytest.mark.parametrize("m", ALL_MODELS, ids=_ids)
def test_table_keys_are_register_names(m):
    assert all(name == reg.name for name, reg in m.registers.items())


def test_memory_sizes():
    assert STS3215.memory_size <= 256  # a Feetech READ carries a one-byte address
    assert STS3215.memory_size > max(r.address + r.size - 1 for r in STS3215.registers.values())
    assert {m.memory_size for m in X_MODELS} == {228}  # XL330 indirect data ends at 227


@pytest.mark.parametrize("m", ALL_MODELS, ids=_ids)
def test_areas_split_at_the_reference_boundary(m):
    boundary = 40 if m.family is Family.FEETECH else 64  # §1.7 EPROM 0-39 / §2.8 RAM from Torque_Enable
    for reg in m.registers.values():
        assert reg.area is (Area.EEPROM if reg.address < boundary else Area.RAM), reg.name


@pytest.mark.parametrize("m", ALL_MODELS, ids=_ids)
def test_every_default_is_encodable_in_its_register(m):
    for reg in m.registers.values():
        if m.family is Family.FEETECH:
            raw = ft.encode_value(reg.default, reg.size, reg.sign_bit)
            assert ft.decode_value(raw, reg.sign_bit) == reg.default
        else:
            raw = dx.encode_value(reg.default, reg.size, reg.signed)
            assert dx.decode_value(raw, reg.signed) == reg.default


def test_defaults_from_the_reference():
    sts = {n: r.default for n, r in STS3215.registers.items()}
    assert {k: sts[k] for k in ("ID", "Baud_Rate", "Response_Status_Level", "Max_Position_Limit", "Max_Torque_Limit",
                                "Protection_Current", "Torque_Enable", "Lock", "Homing_Offset")} == {
        "ID": 1, "Baud_Rate": 0, "Response_Status_Level": 1, "Max_Position_Limit": 4095, "Max_Torque_Limit": 1000,
        "Protection_Current": 511, "Torque_Enable": 0, "Lock": 1, "Homing_Offset": 0,
    }
    common = {"ID": 1, "Baud_Rate": 1, "Return_Delay_Time": 250, "Operating_Mode": 3, "Secondary_ID": 255,
              "Protocol_Type": 2, "Homing_Offset": 0, "Moving_Threshold": 10, "PWM_Limit": 885,
              "Max_Position_Limit": 4095, "Min_Position_Limit": 0, "Torque_Enable": 0, "Status_Return_Level": 2,
              "Bus_Watchdog": 0}
    xl330 = {"Temperature_Limit": 70, "Max_Voltage_Limit": 70, "Min_Voltage_Limit": 35, "Current_Limit": 1750,
             "Velocity_Limit": 445, "Shutdown": 53, "Velocity_I_Gain": 1600, "Velocity_P_Gain": 180,
             "Position_D_Gain": 0, "Position_I_Gain": 0, "Position_P_Gain": 400}
    xl430 = {"Temperature_Limit": 72, "Max_Voltage_Limit": 140, "Min_Voltage_Limit": 60, "Velocity_Limit": 265,
             "Shutdown": 52, "Velocity_I_Gain": 1000, "Velocity_P_Gain": 100, "Position_D_Gain": 4000,
             "Position_I_Gain": 0, "Position_P_Gain": 640}
    for m, specific in ((XL330_M077, xl330), (XL330_M288, xl330), (XL430_W250, xl430)):
        for name, value in {**common, **specific}.items():
            assert m.register(name).default == value, (m.name, name)


# --- baud codes -----------------------------------------------------------------------------------


def test_feetech_baud_codes_follow_feetech_and_agree_with_lerobot_where_lerobot_is_right():
    lr = {code: baud for baud, code in lr_ft.STS_SMS_SERIES_BAUDRATE_TABLE.items()}
    assert dict(STS3215.baud_codes) == {0: 1_000_000, 1: 500_000, 2: 250_000, 3: 128_000, 4: 115_200,
                                        5: 76_800, 6: 57_600, 7: 38_400}
    for code in range(5):
        assert STS3215.baud_codes[code] == lr[code]
    # §1.8 CONFLICT: LeRobot's codes 5-7 are off by one entry; ours are the vendor's
    assert [lr[c] for c in (5, 6, 7)] == [57_600, 38_400, 19_200]


def test_dynamixel_baud_codes_equal_lerobot():
    lr = {code: baud for baud, code in lr_dxl.X_SERIES_BAUDRATE_TABLE.items()}
    assert dict(XL330_M077.baud_codes) == dict(XL330_M288.baud_codes) == lr
    assert dict(XL430_W250.baud_codes) == {**lr, 7: 4_500_000}


@pytest.mark.parametrize(
    ("m", "baud", "code"),
    [(STS3215, 1_000_000, 0), (STS3215, 115_200, 4), (STS3215, 57_600, 6), (XL330_M288, 1_000_000, 3),
     (XL330_M077, 57_600, 1), (XL430_W250, 4_500_000, 7), (XL430_W250, 9_600, 0)],
)
def test_baud_code_lookup(m, baud, code):
    assert m.baud_code(baud) == code
    assert m.baud_codes[code] == baud


@pytest.mark.parametrize(("m", "baud"), [(STS3215, 9_600), (STS3215, 19_200), (XL330_M288, 4_500_000), (XL430_W250, 250_000)])
def test_unsupported_baud_message_names_model_baud_and_choices(m, baud):
    with pytest.raises(ValueError) as err:
        m.baud_code(baud)
    message = str(err.value)
    assert message.startswith(f"{m.name} does not support {baud} baud")
    allowed = message.split("allowed:", 1)[1]
    assert [int(v) for v in re.findall(r"\d+", allowed)] == list(m.baud_codes.values())
