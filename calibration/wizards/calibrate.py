"""The calibration wizard as a state machine: ``CalibrateWizard(bus, profile, name)``.

No terminal here: a UI (``ui_calibrate.py``) or a test feeds ``Event``s to ``await handle(event)`` and
renders ``state``, ``message``, ``problems`` and ``rows()``. Every device action goes through the async
bus. The steps (``STEPS`` says the same as data):

=============  ================================================================  =====================
state          device action                                                     advanced by
=============  ================================================================  =====================
CONNECTING     every motor answers with its model; snapshot of the calibration    ``start()``
               registers (homing offset, limits, drive mode, Lock); torque off
MIDDLE         read positions (live table)                                       CONFIRM: the pose is
                                                                                 taken as mid-range
RANGES         read positions, min/max per joint, unwrapped                      SAMPLE; RESTART;
                                                                                 CONFIRM once every
                                                                                 joint moved
REVIEW         none (the result is shown)                                        CONFIRM
WRITING        Feetech: Lock 0, Homing_Offset, Min/Max_Position_Limit, Lock 1;    automatic
               Dynamixel: Drive_Mode, Homing_Offset, limits; then read back
SAVING         the file, atomically, old one backed up (``calibration.files``)    automatic
VERIFYING      positions in radians with the new calibration (live table)        CONFIRM -> DONE
=============  ================================================================  =====================

Nothing is written to EEPROM before WRITING: homing is computed, not written. The wizard knows how
each servo turns its mechanical position into ``Present_Position`` (``frames.py``), so it converts the
readings into the frame the new homing offset will give and records ranges there. Hence:

* CANCEL (Ctrl-C, q) before WRITING leaves every servo as it was, except torque, which is off.
* A failure or a cancellation *during* WRITING, a read-back that differs, or a file that cannot be
  saved restores the snapshot into the servos (and the file is not touched); the state is FAILED
  (CANCELLED for a cancellation) and ``message`` says what was restored.
* CANCEL in VERIFYING ends as DONE: the calibration was already saved.

Homing at mid-range gives a reading of 2048 there. A recorded range that leaves 0..4095 in that frame
(the pose was not mid-range, or the joint crossed the encoder's 4095 -> 0 wrap) is re-centred: the
homing offset moves so the range's middle reads 2048, never a corrupt range. Full-turn joints get
0..4095 (as LeRobot does). Dynamixel joints get the profile's drive mode (the Koch leader's elbow).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import structlog

from calibration.files import calibration_path, save_calibration
from calibration.model import MAX_TICK, ArmCalibration, CalibrationError, JointCalibration
from calibration.verify import ERROR, Finding, verify_calibration
from calibration.wizards.frames import Frame, RangeTracker, home, shifted, wrap_half
from hardware.arms import ArmProfile
from hardware.bus import ServoBus
from hardware.errors import HardwareError
from hardware.tables import Family

log = structlog.get_logger(__name__)

MIN_SPAN_TICKS = 64  # a joint that moved less than this (5.6 degrees) was not moved through its range
POSITION_CHECK_TICKS = 64  # after writing, readings may differ this much from the prediction (hands move)
FEETECH_MULTI_TURN = 0x10  # Phase bit 4: multi-turn angle feedback


class Step(str, Enum):
    CONNECTING = "connecting"
    MIDDLE = "middle"
    RANGES = "ranges"
    REVIEW = "review"
    WRITING = "writing"
    SAVING = "saving"
    VERIFYING = "verifying"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


TERMINAL = frozenset({Step.DONE, Step.CANCELLED, Step.FAILED})


class Event(str, Enum):
    CONFIRM = "confirm"  # the user pressed Enter
    SAMPLE = "sample"  # time to read the joints (the UI sends it periodically)
    RESTART = "restart"  # start the range recording again
    CANCEL = "cancel"  # Ctrl-C, q, Esc


STEPS: Mapping[Step, tuple[str, str]] = {
    Step.CONNECTING: ("check motors, snapshot calibration registers, torque off", "start()"),
    Step.MIDDLE: ("read positions", "CONFIRM"),
    Step.RANGES: ("read positions, track unwrapped min/max", "CONFIRM when every joint moved; RESTART"),
    Step.REVIEW: ("none", "CONFIRM"),
    Step.WRITING: ("write homing offsets, drive modes, limits (lock handled); read back", "automatic"),
    Step.SAVING: ("save the file atomically, old one backed up", "automatic"),
    Step.VERIFYING: ("read positions in radians", "CONFIRM"),
}


@dataclass(slots=True)
class JointRow:
    """What the UI shows for one joint."""

    joint: str
    id: int
    full_turn: bool
    raw: int | None = None  # the latest reading, as the servo reports it now
    present: int | None = None  # the same in the new frame (from MIDDLE on)
    lo: int | None = None
    hi: int | None = None
    rad: float | None = None  # VERIFYING


class _Mismatch(Exception):
    pass


class CalibrateWizard:
    def __init__(
        self,
        bus: ServoBus,
        profile: ArmProfile,
        name: str,
        *,
        root: Path | str | None = None,
        drive_modes: Mapping[str, int] | None = None,
        min_span: int = MIN_SPAN_TICKS,
        listener: Callable[[CalibrateWizard], None] | None = None,
    ) -> None:
        self.bus, self.profile, self.name, self.root = bus, profile, name, root
        self.path = calibration_path(profile, name, root)  # checks the name now
        self.family = profile.family
        dm = dict(drive_modes or {})
        self.drive_modes = {
            m.joint: (0 if self.family is Family.FEETECH else dm.get(m.joint, m.drive_mode)) for m in profile.motors
        }
        self.min_span = min_span
        self.listener = listener
        self.state = Step.CONNECTING
        self.message = "connecting to the arm"
        self.problems: list[str] = []  # why CONFIRM was refused, what to do
        self.home_notes: list[str] = []  # what the wizard adjusted at homing / at the ranges
        self.range_notes: list[str] = []
        self.device_notes: list[str] = []  # servos that could not be switched off
        self.alert = ""  # the last failed read while sampling
        self.progress = (0, 0)  # WRITING: registers written / to write
        self.snapshot: dict[int, dict[str, int]] = {}
        self.old: dict[int, Frame] = {}
        self.new: dict[int, Frame] = {}
        self.trackers: dict[int, RangeTracker] = {}
        self.raw: dict[int, int] = {}
        self.result: ArmCalibration | None = None
        self.findings: list[Finding] = []
        self.saved_path: Path | None = None
        self._lock = asyncio.Lock()

    # --- what the UI shows ----------------------------------------------------------------------

    @property
    def ids(self) -> list[int]:
        return [m.id for m in self.profile.motors]

    @property
    def notes(self) -> list[str]:
        return [*self.home_notes, *self.range_notes, *self.device_notes]

    def rows(self) -> list[JointRow]:
        out = []
        for m in self.profile.motors:
            row = JointRow(m.joint, m.id, m.full_turn, self.raw.get(m.id))
            if m.id in self.new and row.raw is not None:
                row.present = self.old[m.id].convert(row.raw, self.new[m.id])
            if self.result is not None:
                jc = self.result[m.joint]
                row.lo, row.hi = jc.range_min, jc.range_max
                if self.state is Step.VERIFYING and row.raw is not None:
                    row.present = row.raw
                    row.rad = jc.to_radians(row.raw)
            elif m.id in self.trackers:
                t = self.trackers[m.id]
                row.lo, row.hi = t.lo, t.hi
            out.append(row)
        return out

    def _set(self, state: Step, message: str) -> None:
        if state is not self.state:
            log.info("calibrate.state", arm=self.profile.name, name=self.name, state=state.value, was=self.state.value)
        self.state, self.message = state, message
        self._changed()

    def _changed(self) -> None:
        if self.listener is not None:
            self.listener(self)

    # --- driving it -----------------------------------------------------------------------------

    async def start(self) -> Step:
        """CONNECTING: check the motors, take the snapshot, switch torque off; then MIDDLE (or FAILED)."""
        async with self._lock:
            try:
                await self.bus.verify(self.profile)
                await self._torque_off()
                await self._take_snapshot()
            except HardwareError as e:
                await self._torque_off(quiet=True)
                self._set(Step.FAILED, f"could not start: {e}")
                return self.state
            except BaseException:
                await self._torque_off(quiet=True)
                self._set(Step.CANCELLED, "cancelled while connecting; nothing was written, torque is off")
                raise
            await self._sample()
            self._set(Step.MIDDLE, "Torque is off. Move every joint to the MIDDLE of its range, then press Enter.")
            return self.state

    async def handle(self, event: Event) -> Step:
        """Apply one event in the current state; return the state after it."""
        async with self._lock:
            if self.state in TERMINAL or self.state is Step.CONNECTING and event is not Event.CANCEL:
                return self.state
            try:
                if event is Event.CANCEL:
                    await self._cancel()
                elif event is Event.SAMPLE:
                    if self.state in (Step.MIDDLE, Step.RANGES, Step.VERIFYING):
                        await self._sample()
                elif event is Event.RESTART:
                    if self.state is Step.RANGES:
                        await self._start_ranges()
                elif event is Event.CONFIRM:
                    await self._confirm()
            except BaseException:
                if self.state not in TERMINAL and self.state not in (Step.WRITING, Step.SAVING):
                    await self._cancel()  # e.g. the UI task was cancelled: torque off, nothing written
                raise
            return self.state

    async def cancel(self) -> Step:
        return await self.handle(Event.CANCEL)

    async def _confirm(self) -> None:
        if self.state is Step.MIDDLE:
            if await self._sample():
                self._home()
                await self._start_ranges()
        elif self.state is Step.RANGES:
            await self._sample()
            self._finish_ranges()
        elif self.state is Step.REVIEW:
            await self._write_and_save()
        elif self.state is Step.VERIFYING:
            await self._torque_off(quiet=True)
            self._set(Step.DONE, f"Calibration saved to {self.saved_path}. Torque is off.")

    async def _cancel(self) -> None:
        await self._torque_off(quiet=True)
        if self.state is Step.VERIFYING:
            self._set(Step.DONE, f"Calibration saved to {self.saved_path}. Torque is off.")
        else:
            self._set(Step.CANCELLED, "Cancelled: nothing was written to the servos or the file. Torque is off.")

    # --- device actions -------------------------------------------------------------------------

    async def _torque_off(self, quiet: bool = False) -> None:
        failed = []
        for i in self.ids:
            try:
                await self.bus.write(i, "Torque_Enable", 0)
            except HardwareError as e:
                if not quiet:
                    raise
                failed.append(f"id {i}: {e.cause}")
        if failed:
            log.warning("calibrate.torque_off_failed", failed=failed)
            self.device_notes.append("could not switch torque off on " + "; ".join(failed))

    async def _take_snapshot(self) -> None:
        regs = ["Homing_Offset", "Min_Position_Limit", "Max_Position_Limit"]
        regs += ["Lock", "Phase"] if self.family is Family.FEETECH else ["Drive_Mode"]
        values = {r: (await self.bus.sync_read(r, self.ids)).values for r in regs}
        for m in self.profile.motors:
            snap = {r: values[r][m.id] for r in regs}
            self.snapshot[m.id] = snap
            if self.family is Family.FEETECH and snap["Phase"] & FEETECH_MULTI_TURN:
                raise HardwareError(
                    f"{self.profile.describe(m.id)} reports multi-turn positions (Phase bit 4 is set)",
                    ["clear it with the vendor's tool or `harmowam setup-motors`, then calibrate again"],
                )
            self.old[m.id] = Frame(self.family, snap["Homing_Offset"],
                                   snap.get("Drive_Mode", 0) & 1 if self.family is Family.DYNAMIXEL else 0)

    async def _sample(self) -> bool:
        try:
            reading = await self.bus.sync_read("Present_Position", self.ids)
        except HardwareError as e:
            self.alert = f"reading the joints failed: {e.cause}"
            self._changed()
            return False
        self.alert = ""
        self.raw = dict(reading.values)
        if self.state is Step.RANGES:
            for i, t in self.trackers.items():
                t.update(self.old[i].convert(self.raw[i], self.new[i]))
        self._changed()
        return True

    def _home(self) -> None:
        self.home_notes = []
        for m in self.profile.motors:
            actual = self.old[m.id].actual(self.raw[m.id])
            frame = home(self.family, actual, self.drive_modes[m.joint])
            self.new[m.id] = frame
            if frame.present(actual) != 2048:
                self.home_notes.append(f"{m.joint}: its mid pose needs homing offset -2048, one more than the servo "
                                  f"holds; offset {frame.homing_offset} used (mid reads {frame.present(actual)})")

    async def _start_ranges(self) -> None:
        if not await self._sample() and not self.raw:
            return
        self.trackers = {i: RangeTracker(self.old[i].convert(self.raw[i], self.new[i])) for i in self.ids}
        self.problems = []
        full = [m.joint for m in self.profile.motors if m.full_turn]
        self._set(Step.RANGES, "Move each joint slowly through its WHOLE range of motion, then press Enter"
                  + (f" ({', '.join(full)}: full turn, any motion)" if full else "") + ". r: start again.")

    def _finish_ranges(self) -> None:
        problems, joints = [], {}
        notes: list[str] = []
        for m in self.profile.motors:
            frame, t = self.new[m.id], self.trackers[m.id]
            if m.full_turn:
                lo, hi = 0, MAX_TICK
            elif t.span < self.min_span:
                problems.append(f"{m.joint} moved only {t.span} ticks: move it from one end of its range to the other")
                continue
            elif t.span >= MAX_TICK:
                problems.append(f"{m.joint} turned a full turn or more ({t.span} ticks): press r and record "
                                "its range again, end to end without going round")
                continue
            else:
                lo, hi = t.lo, t.hi
                if lo < 0 or hi > MAX_TICK:  # crosses the encoder's wrap in this frame: re-centre
                    s = (lo + hi) // 2 - 2048
                    frame, done = shifted(frame, s)
                    lo, hi = lo - done, hi - done
                    notes.append(f"{m.joint}: range crossed the encoder's 4095/0 wrap; homing offset re-centred "
                                 f"to {frame.homing_offset} so its middle reads {(lo + hi) // 2}")
            joints[m.joint] = (frame, lo, hi)
        if problems:
            self.problems = problems
            self._changed()
            return
        try:
            cal = ArmCalibration({
                j: JointCalibration(id=self.profile.motor(j).id, drive_mode=f.drive_mode, homing_offset=f.homing_offset,
                                    range_min=lo, range_max=hi, joint=j)
                for j, (f, lo, hi) in joints.items()
            }).for_profile(self.profile)
        except (CalibrationError, ValueError) as e:
            self.problems = [f"{e}: press r and record the ranges again"]
            self._changed()
            return
        for m in self.profile.motors:
            self.new[m.id] = joints[m.joint][0]
        self.problems, self.range_notes, self.result = [], notes, cal
        self._set(Step.REVIEW, f"Press Enter to write this calibration to the servos and save it as {self.path} "
                  "(q cancels: nothing written).")

    async def _write_and_save(self) -> None:
        assert self.result is not None
        self._set(Step.WRITING, "Writing the calibration to the servos' EEPROM...")
        try:
            await self._write_eeprom(self.result)
        except BaseException as e:
            cancelled = not isinstance(e, Exception)
            restored = await self._restore()
            why = "cancelled" if cancelled else f"failed: {e}"
            self._set(Step.CANCELLED if cancelled else Step.FAILED,
                      f"Writing the calibration {why}. {restored} The file was not touched. Torque is off.")
            if cancelled:
                raise
            return
        self._set(Step.SAVING, f"Saving {self.path}...")
        try:
            self.saved_path = save_calibration(self.result, self.profile, self.name, self.root)
        except (OSError, CalibrationError) as e:
            restored = await self._restore()
            self._set(Step.FAILED, f"Could not save {self.path}: {e}. {restored} Fix the folder's permissions "
                      "or free space (or set HF_LEROBOT_CALIBRATION), then calibrate again.")
            return
        self._set(Step.VERIFYING, "Saved. Move the joints and check the angles; press Enter to finish.")
        await self._sample()

    async def _write_eeprom(self, cal: ArmCalibration) -> None:
        feetech = self.family is Family.FEETECH
        per_joint = 5 if feetech else 4
        self.progress = (0, per_joint * len(self.ids))
        await self._torque_off()
        before = await self.bus.sync_read("Present_Position", self.ids)
        for m in self.profile.motors:
            jc = cal[m.joint]
            writes: list[tuple[str, int]] = [("Homing_Offset", jc.homing_offset),
                                             ("Min_Position_Limit", jc.range_min), ("Max_Position_Limit", jc.range_max)]
            if feetech:
                writes = [("Lock", 0), *writes, ("Lock", 1)]
            else:
                writes = [("Drive_Mode", (self.snapshot[m.id]["Drive_Mode"] & ~1) | jc.drive_mode), *writes]
            for reg, value in writes:
                await self.bus.write(m.id, reg, value)
                self.progress = (self.progress[0] + 1, self.progress[1])
                self._changed()
        self.findings = await verify_calibration(self.bus, self.profile, cal)
        findings = [f for f in self.findings if f.severity == ERROR]
        if findings:
            raise _Mismatch("the servos do not hold what was written: " + "; ".join(map(str, findings)))
        after = await self.bus.sync_read("Present_Position", self.ids)
        for m in self.profile.motors:
            expected = self.old[m.id].convert(before.values[m.id], self.new[m.id])
            if abs(wrap_half(after.values[m.id] - expected)) > POSITION_CHECK_TICKS:
                raise _Mismatch(f"{m.joint} reads {after.values[m.id]} after the new homing offset, "
                                f"expected about {expected}: the servo applies offsets differently than this "
                                "program assumes (firmware?)")

    async def _restore(self) -> str:
        """Write the snapshot back (best effort); torque off. A sentence saying what happened."""
        failed = []
        for m in self.profile.motors:
            snap = self.snapshot.get(m.id)
            if snap is None:
                continue
            regs = ["Homing_Offset", "Min_Position_Limit", "Max_Position_Limit"]
            if self.family is Family.FEETECH:
                writes = [("Lock", 0), *((r, snap[r]) for r in regs), ("Lock", snap["Lock"])]
            else:
                writes = [("Torque_Enable", 0), ("Drive_Mode", snap["Drive_Mode"]), *((r, snap[r]) for r in regs)]
            try:
                for reg, value in writes:
                    await self.bus.write(m.id, reg, value)
            except HardwareError as e:
                failed.append(f"{m.joint} ({e.cause})")
        await self._torque_off(quiet=True)
        if failed:
            return ("The previous calibration could NOT be restored on: " + ", ".join(failed)
                    + ". Check the cable and power, then calibrate again.")
        return "The servos were set back to their previous calibration."
