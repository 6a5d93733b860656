"""Servo-bus emulator: SO-100/SO-101 (Feetech STS3215) and Koch (Dynamixel XL330/XL430) arms on a pty.

Real protocols on the wire, control tables with their access rules, a pluggable motion model, fault
injection and replies paced at real wire time. See ``server.py`` for the ``Emulator``, ``motion.py``
for the ``MotionModel`` protocol, ``faults.py`` for the fault SPEC syntax.
"""

from hardware.emulator.cli import main
from hardware.emulator.faults import FaultSpec, parse_faults
from hardware.emulator.motion import KinematicMotion, MotionModel
from hardware.emulator.process import EmulatorProcess
from hardware.emulator.server import Emulator, EmulatorStats
from hardware.emulator.servo import EmulatedServo

__all__ = [
    "EmulatedServo",
    "Emulator",
    "EmulatorProcess",
    "EmulatorStats",
    "FaultSpec",
    "KinematicMotion",
    "MotionModel",
    "main",
    "parse_faults",
]
