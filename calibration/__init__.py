"""Calibration: servo ticks <-> joint radians (``calibration.model``) and LeRobot-compatible calibration
files (``calibration.files``). Raw ticks live here and in ``hardware`` only."""

from __future__ import annotations

from calibration.files import (
    BadFieldType,
    CalibrationFileError,
    CalibrationNotFound,
    CorruptCalibrationFile,
    EmptyCalibrationFile,
    InvalidCalibrationName,
    MalformedJointEntry,
    MissingJoint,
    TruncatedCalibrationFile,
    UnknownJoint,
    ValueOutOfRange,
    WrongMotorId,
    calibration_path,
    calibration_root,
    candidate_paths,
    find_calibration,
    load_calibration,
    read_calibration_file,
    save_calibration,
)
from calibration.model import (
    RAD_PER_TICK,
    TICKS_PER_TURN,
    ArmCalibration,
    CalibrationError,
    InvalidCalibration,
    JointCalibration,
    ProfileMismatch,
    lerobot_degrees_to_radians,
    radians_to_lerobot_degrees,
)

__all__ = [
    "RAD_PER_TICK", "TICKS_PER_TURN", "ArmCalibration", "BadFieldType", "CalibrationError",
    "CalibrationFileError", "CalibrationNotFound", "CorruptCalibrationFile", "EmptyCalibrationFile",
    "InvalidCalibration", "InvalidCalibrationName", "JointCalibration", "MalformedJointEntry", "MissingJoint",
    "ProfileMismatch", "TruncatedCalibrationFile", "UnknownJoint", "ValueOutOfRange", "WrongMotorId",
    "calibration_path", "calibration_root", "candidate_paths", "find_calibration", "lerobot_degrees_to_radians",
    "load_calibration", "radians_to_lerobot_degrees", "read_calibration_file", "save_calibration",
]
