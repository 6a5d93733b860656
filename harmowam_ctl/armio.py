"""The arm as the servo tick sees it: read joint state in radians, write joint targets in radians.

One control tick costs two bus transactions: a sync read of the span Present_Position..Present_Load
(Feetech) or Present_Current..Present_Position (Dynamixel) and one sync write of Goal_Position. Ticks
become radians through the calibration (``calibration.model``); ticks never leave this module and
``calibration``.

``activate()`` is the start-up rule of field note 11: Goal_Position is first set to where each joint is
now, and only then is torque enabled, so a stale goal left in a servo can never make the arm jump.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from calibration import ArmCalibration
from hardware.arms import ArmProfile
from hardware.bus import ServoFault
from hardware.errors import HardwareError
from hardware.tables import Family, load_register
from harmowam_ctl.types import JointState


class Converter(Protocol):
    def positions_to_radians(self, values: dict[int, int]) -> np.ndarray: ...

    def radians_to_goals(self, targets: np.ndarray) -> dict[int, int]: ...


# What the servos must hold exactly as the calibration file says, or positions mean other angles:
# the zero (homing offset) and, on Dynamixel, the direction (drive mode). Their own position limits may
# differ (the safety filter enforces the file's limits): a warning only.
MUST_MATCH = ("homing_offset", "drive_mode")


class CalibrationMismatch(HardwareError):
    """The servos do not hold the calibration the run was given: the arm is not activated."""


class ArmIO:
    def __init__(self, bus: Any, profile: ArmProfile, calibration: Converter) -> None:
        self.bus = bus
        self.profile = profile
        self.cal = calibration
        self.ids = list(profile.ids)
        names = {load_register(m.model) for m in profile.motors}
        if len({n for n, _ in names}) != 1:
            raise ValueError(f"{profile.name}: its servos report load in different registers")
        self.load_name = next(iter(names))[0]
        self.load_scale = np.array([load_register(m.model)[1] for m in profile.motors])
        self.span = ["Present_Position", self.load_name]
        if profile.family is Family.DYNAMIXEL:
            self.span.reverse()  # Present_Current (126) comes before Present_Position (132)
        self._index = {i: k for k, i in enumerate(self.ids)}

    async def read(self) -> JointState:
        return self._state(await self.bus.sync_read_span(self.span, self.ids))

    def _state(self, out: dict[str, Any]) -> JointState:
        pos = out["Present_Position"]
        load = out[self.load_name]
        positions = self.cal.positions_to_radians(pos.values)
        loads = np.array([load.values[i] for i in self.ids], dtype=float) / self.load_scale
        faults: dict[int, ServoFault] = {self._index[i]: f for i, f in pos.faults.items()}
        return JointState(t=pos.t, positions=positions, loads=loads, faults=faults)

    async def write(self, targets: np.ndarray) -> None:
        await self.bus.sync_write("Goal_Position", self.cal.radians_to_goals(np.asarray(targets, dtype=float)))

    async def torque(self, on: bool, ids: Sequence[int] | None = None) -> None:
        value = 1 if on else 0
        await self.bus.sync_write("Torque_Enable", {i: value for i in (ids or self.ids)})

    async def release_torque(self, tries: int = 3) -> list[int]:
        """Torque off, read back: a sync write has no reply, so a write lost on the wire would leave the
        arm powered without anyone knowing. Servos still on are written again (``tries`` in all); returns
        the ids that still report torque on (empty: released everywhere)."""
        left = list(self.ids)
        for _ in range(max(1, tries)):
            await self.torque(False, left)
            try:
                state = await self.torque_state()
            except HardwareError:
                continue  # unknown: write again
            left = [i for i in left if state.get(i, 1) != 0]
            if not left:
                return []
        return left

    async def torque_state(self) -> dict[int, int]:
        return (await self.bus.sync_read("Torque_Enable", self.ids)).values

    async def check_calibration(self) -> list[str]:
        """Compare the servos with the calibration (``calibration.verify``): raise ``CalibrationMismatch``
        naming each joint whose homing offset or drive mode differs; return the lesser differences
        (position limits, firmware) as warnings. Nothing to compare for a converter that is not an
        ``ArmCalibration`` (test fakes)."""
        if not isinstance(self.cal, ArmCalibration):
            return []
        from calibration.verify import ERROR, verify_calibration

        findings = await verify_calibration(self.bus, self.profile, self.cal)
        bad = [f for f in findings if f.severity == ERROR and f.field in MUST_MATCH]
        if bad:
            name = self.profile.name
            raise CalibrationMismatch(
                "the servos do not hold this calibration: " + "; ".join(
                    f"{f.joint}: {f.field} is {f.found} on the servo, {f.expected} in the file" for f in bad),
                [f"if the file is this arm's, write it again: harmowam calibrate --arm {name} --port ... --calibration ...",
                 f"to see every difference: harmowam check --arm {name} --port ... --calibration ...",
                 "or pass the calibration name this arm was calibrated under (--calibration)"],
            )
        return [str(f) for f in findings if f not in bad]

    async def activate(self) -> JointState:
        """Goal := present, then torque on (never a jump at start-up). Returns the state it started from."""
        out = await self.bus.sync_read_span(self.span, self.ids)
        await self.bus.sync_write("Goal_Position", out["Present_Position"].values)
        await self.torque(True)
        return self._state(out)
