"""`harmowam setup-motors`: give each motor of an arm its ID and the bus baud, one motor at a time.

A state machine, separate from its terminal UI (``ui_setup.py``): ``start()``, then ``step(answer)``
with what the user answered to the last ``Screen``, until a final screen; ``cancel()`` at any time.
Tests drive it directly against the emulator.

    CONNECT(joint) --Enter--> search --> checks --> write --> verify --> CONNECT(next) ... CONNECT_ALL
         ^                       |          |                   |                           | Enter
         +------ no / retry -- PROBLEM   CONFIRM (warnings) -- PROBLEM                   DONE | FAILED

Order: from the gripper down (LeRobot's order): a motor set to its ID never sits at the factory ID 1
that the next fresh motor answers at, and the shoulder_pan (ID 1) comes last.

Search: first a quick probe of the likely IDs (factory ID 1, the target ID, the arm's IDs) at every
baud the family supports, target and factory baud first; if nothing answers, every ID (0..253) at
every baud, with progress. A motor already at its target ID and baud is skipped: nothing is written,
so running the command again after a crash finishes the job.

Checks: the model against the arm profile; the supply against the motor's own voltage limits and its
voltage error bit (a lower-voltage variant on a higher supply, or the reverse); a follower motor fed
far below its maximum (a 12 V variant on a 7.4 V supply: it works, weakly); voltage limits and
firmware that differ from the motors already set up (same model). Errors stop the motor; warnings ask.

Writes (EEPROM): torque off; Feetech Lock = 0 (else the EEPROM write is lost at power-off); Baud_Rate;
then ID last; Feetech Lock = 1; then a ping and a read-back at the new ID and baud. Cancelling never
interrupts these writes once started (they finish, then the cancel takes effect): a motor is either
untouched, fully set, or (when the port fails mid-way) at its old ID with the new baud, which the next
run finds and finishes. ID last means "at the target ID" always implies "the rest was written".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from calibration.wizards.setup_screens import (  # noqa: F401  (re-exported: the wizard's vocabulary)
    UNDERPOWER_FRACTION,
    Answer,
    MotorInfo,
    MotorResult,
    Row,
    Screen,
    State,
    _Search,
    check_motor,
    fmt_fw,
)
from hardware.arms import ArmProfile, MotorSpec
from hardware.bus import ServoBus, ServoFault, open_bus
from hardware.bus.base import PROBE_ORDER
from hardware.bus.link import DEFAULT_LATENCY_S
from hardware.errors import CorruptResponseError, NoResponseError, PortBusyError, ServoError
from hardware.tables import Family

SCAN_CHUNK = 32  # ids per bus.scan call during the full scan (progress and cancel between chunks)
# Set-up is not time-critical: generous timeouts where a missed reply costs a wrong answer (identify,
# writes, read-back) or a slow full scan (the likely addresses); the bus default for the full scan.
ROBUST_LATENCY_S, ROBUST_RETRIES = 0.05, 3
LIKELY_LATENCY_S = 0.02

_SETUP_REGS = ("ID", "Baud_Rate", "Min_Voltage_Limit", "Max_Voltage_Limit")
Progress = Callable[[str, float], None]  # (what, fraction done 0..1)


class _Port:
    """At most one open bus on the port; switching baud reopens it (the bus API has no baud switch)."""

    def __init__(self, profile: ArmProfile, port: str, factory: Callable[..., ServoBus]) -> None:
        self.profile, self.port, self.factory = profile, port, factory
        self.bus: ServoBus | None = None

    async def at(self, baud: int, latency_s: float = ROBUST_LATENCY_S) -> ServoBus:
        if self.bus is None or self.bus.baud != baud:
            await self.close()
            bus = self.factory(self.profile, self.port, baud)
            await bus.open()
            self.bus = bus
        self.bus.latency_s, self.bus.retries = latency_s, ROBUST_RETRIES
        return self.bus

    async def close(self) -> None:
        bus, self.bus = self.bus, None
        if bus is not None:
            await bus.close()


class SetupMotorsWizard:
    def __init__(
        self,
        profile: ArmProfile,
        port: str,
        *,
        bus_factory: Callable[..., ServoBus] = open_bus,
        scan_bauds: Sequence[int] | None = None,
        on_progress: Progress | None = None,
    ) -> None:
        self.profile = profile
        self.family = profile.family
        self.port = port
        self._port = _Port(profile, port, bus_factory)
        self.order: tuple[MotorSpec, ...] = tuple(reversed(profile.motors))
        top = 253 if self.family is Family.FEETECH else 252
        self.all_ids = range(0, top + 1)
        self.bauds = self._baud_order(scan_bauds)
        self.on_progress = on_progress
        self.state = State.START
        self.index = 0  # the motor in ``order`` being set up
        self.results: dict[str, MotorResult] = {}
        self.pending: MotorInfo | None = None  # found and checked, waiting for CONFIRM
        self.log: list[str] = []  # one line per motor done, shown above each prompt
        self.cancel_note = ""  # what a cancel during EEPROM writes left (see _write_and_verify)
        self.refused_bauds: list[int] = []
        self._faults: dict[int, ServoFault] = {}  # error bits seen in reads, by id (see _span)

    def _baud_order(self, scan_bauds: Sequence[int] | None) -> tuple[int, ...]:
        models = {m.model.name: m.model for m in self.profile.motors}.values()
        supported = {b for m in models for b in m.baud_codes.values()}
        factory = [m.baud_codes[m.register("Baud_Rate").default] for m in models]
        order = [self.profile.baud, *factory, *PROBE_ORDER, *sorted(supported)]
        allowed = supported if scan_bauds is None else set(scan_bauds)
        return tuple(dict.fromkeys(b for b in order if b in allowed))

    # --- the machine ------------------------------------------------------------------------------

    @property
    def spec(self) -> MotorSpec:
        return self.order[self.index]

    async def start(self) -> Screen:
        """The first screen; opens the port first (a wrong path or permission fails here, clearly)."""
        await self._port.at(self.profile.baud)
        self.state = State.START
        n, baud = len(self.order), self.profile.baud
        return Screen(State.START, f"Set up the {n} motors of the {self.profile.name} on {self.port}", (
            f"Each motor gets its ID and {baud} baud, one at a time, from the {self.order[0].joint} down.",
            "You will connect ONE motor at a time to the adapter (unplug the others), with its power on.",
            "Motors already set up are detected and skipped: you can stop and run this again at any time.",
        ), (Answer.CONTINUE, Answer.CANCEL))

    async def step(self, answer: Answer) -> Screen:
        if answer is Answer.CANCEL:
            return await self.cancel()
        s = self.state
        if s is State.START and answer is Answer.CONTINUE:
            return self._connect_screen()
        if (s is State.CONNECT and answer is Answer.CONTINUE) or (s is State.PROBLEM and answer is Answer.RETRY):
            return await self._find_and_set()
        if s is State.CONFIRM and answer is Answer.YES:
            assert self.pending is not None
            return await self._write_and_verify(self.pending)
        if s is State.CONFIRM and answer is Answer.NO:
            self.pending = None
            return self._connect_screen(f"Not using that motor. Connect the right {self.spec.joint} motor.")
        if s in (State.CONNECT_ALL, State.FAILED) and answer in (Answer.CONTINUE, Answer.RETRY):
            return await self._final_check()
        raise ValueError(f"answer {answer.value!r} does not fit state {s.value!r}")

    async def cancel(self) -> Screen:
        """Stop now. EEPROM writes already started have finished (see ``_write_and_verify``)."""
        prior = self.state
        self.state = State.CANCELLED
        await self._port.close()
        done = [f"{j} (id {self.profile.motor(j).id})" for j in self.results]
        lines = [f"Motors set up so far: {', '.join(done) if done else 'none'}."]
        if self.cancel_note:
            lines.append(self.cancel_note)
        elif prior in (State.CONNECT, State.PROBLEM, State.CONFIRM) and self.spec.joint not in self.results:
            lines.append(f"Nothing was written to the {self.spec.joint} motor: it is as it was.")
        lines.append("Run the same command again to finish: motors already set up are detected and skipped.")
        return Screen(State.CANCELLED, "Set-up cancelled", tuple(lines))

    async def close(self) -> None:
        await self._port.close()

    # --- screens ----------------------------------------------------------------------------------

    def _connect_screen(self, note: str = "") -> Screen:
        self.state = State.CONNECT
        spec = self.spec
        lines = [*self.log, *([note] if note else [])]
        lines.append(
            f"Connect ONLY the {spec.joint} motor ({spec.model.name}, will get id {spec.id}) to the adapter, "
            f"unplug every other motor, and switch the power on. Then press Enter."
        )
        title = f"Motor {self.index + 1} of {len(self.order)}: {spec.joint}"
        return Screen(State.CONNECT, title, tuple(lines), (Answer.CONTINUE, Answer.CANCEL), spec.joint)

    def _problem(self, title: str, lines: Sequence[str]) -> Screen:
        self.state = State.PROBLEM
        return Screen(State.PROBLEM, title, (*lines, "Fix it, then retry."), (Answer.RETRY, Answer.CANCEL), self.spec.joint)

    def _next(self, line: str) -> Screen:
        self.log.append(line)
        self.index += 1
        if self.index < len(self.order):
            return self._connect_screen()
        self.state = State.CONNECT_ALL
        return Screen(State.CONNECT_ALL, "Every motor is set up: check the whole bus", (
            *self.log,
            f"Now connect all {len(self.order)} motors (chained, as in the assembled arm) and press Enter.",
        ), (Answer.CONTINUE, Answer.CANCEL))

    # --- one motor --------------------------------------------------------------------------------

    async def _find_and_set(self) -> Screen:
        spec, joint = self.spec, self.spec.joint
        search = await self._search(self._quick_plan(spec), "quick")
        if not search.found and not search.garbled:
            search = await self._search([(b, list(self.all_ids), DEFAULT_LATENCY_S) for b in self.bauds], "full")
        if search.garbled:
            where = ", ".join(f"id {i} at {b} baud" for i, b in search.garbled)
            return self._problem("Garbled replies: two motors at the same ID?", (
                f"Replies from {where} are unreadable: most likely two motors answer at the same ID "
                f"(two fresh motors are both at id 1).",
                f"Unplug every motor except the {joint} motor (also from the other motors' chain).",
                "If only one motor is connected, check its supply voltage matches the motor (a wrong-voltage "
                "motor garbles its replies).",
            ))
        if not search.found:
            ids = f"ids {self.all_ids.start}..{self.all_ids.stop - 1}"
            bauds = ", ".join(str(b) for b in self.bauds)
            return self._problem(f"No motor answers on {self.port}", (
                f"Nothing answered at {ids}, at {bauds} baud.",
                "Check the motor's power supply is on (its LED blinks at power-up), and the 3-pin cable goes "
                "from the adapter's servo socket to this motor.",
                *([f"The adapter refused {', '.join(map(str, self.refused_bauds))} baud."] if self.refused_bauds else []),
            ))
        if len(search.found) > 1:
            where = "; ".join(f"id {m.id} at {m.baud} baud ({m.model_name(self.family)})" for m in search.found)
            return self._problem(f"{len(search.found)} motors answer, one was expected", (
                f"Found: {where}.",
                f"Connect ONLY the {joint} motor: unplug the others from the adapter and from its chain.",
            ))
        info = search.found[0]
        errors, warnings = check_motor(self.profile, spec, info, list(self.results.values()))
        if errors:
            return self._problem(f"The {joint} motor cannot be used as it is", (self._describe(info), *errors))
        if warnings:
            self.state, self.pending = State.CONFIRM, info
            return Screen(State.CONFIRM, f"Check the {joint} motor", (
                self._describe(info), *(f"Warning: {w}" for w in warnings), f"Use this motor as the {joint}?",
            ), (Answer.YES, Answer.NO, Answer.CANCEL), joint)
        return await self._write_and_verify(info)

    def _describe(self, m: MotorInfo) -> str:
        return (f"Found a {m.model_name(self.family)} at id {m.id}, {m.baud} baud: firmware "
                f"{fmt_fw(m.firmware, self.family)}, supply {m.voltage_v:.1f} V (its limits {m.vmin_v:.1f}-{m.vmax_v:.1f} V).")

    def _quick_ids(self, spec: MotorSpec) -> list[int]:
        factory = spec.model.register("ID").default
        return list(dict.fromkeys([spec.id, factory, *self.profile.ids]))

    def _quick_plan(self, spec: MotorSpec) -> list[tuple[int, list[int], float]]:
        """(baud, ids, latency) passes: the likely IDs at the target and factory bauds with a generous
        timeout (a fresh, a finished or a left-over motor is nearly always there), then at the others."""
        factory_baud = spec.model.baud_codes[spec.model.register("Baud_Rate").default]
        likely = [b for b in dict.fromkeys((self.profile.baud, factory_baud)) if b in self.bauds]
        ids = self._quick_ids(spec)
        return [(b, ids, LIKELY_LATENCY_S if b in likely else DEFAULT_LATENCY_S) for b in self.bauds]

    async def _search(self, plan: Sequence[tuple[int, list[int], float]], kind: str) -> _Search:
        out = _Search()
        work = [(baud, ids[k : k + SCAN_CHUNK], lat) for baud, ids, lat in plan for k in range(0, len(ids), SCAN_CHUNK)]
        for n, (baud, chunk, latency) in enumerate(work):
            if baud in self.refused_bauds:
                continue
            try:
                bus = await self._port.at(baud, latency)
            except PortBusyError as err:
                if "baud" not in str(err) or baud == self.profile.baud:
                    raise
                self.refused_bauds.append(baud)
                continue
            if self.on_progress is not None:
                self.on_progress(f"{kind} scan at {baud} baud", n / len(work))
            before = {i: st.corrupt for i, st in bus.stats.per_servo.items()}
            found = await bus.scan(chunk)
            after = bus.stats.per_servo
            garbled = [i for i in chunk if i not in found and i in after and after[i].corrupt > before.get(i, 0)]
            await self._port.at(baud)  # robust settings for the reads
            for i in [*found, *garbled]:
                try:
                    out.found.append(await self._identify(bus, i))
                except CorruptResponseError:
                    out.garbled.append((i, baud))
                except NoResponseError:
                    pass  # answered the scan once, then not again: a loose cable shows up on retry
        if self.on_progress is not None:
            self.on_progress(f"{kind} scan", 1.0)
        return out

    async def _identify(self, bus: ServoBus, servo_id: int) -> MotorInfo:
        """Ping, then two reads of register spans (position..voltage, ID..voltage limits).

        Two motors at one ID garble these (their positions differ). Consecutive requests get replies
        of different sizes, so a reply that comes late is never taken for the next one's.
        """
        ping = await bus.ping(servo_id)
        table = bus.table
        volt = table["Present_Voltage" if self.family is Family.FEETECH else "Present_Input_Voltage"]
        live, live_at = await self._span(bus, servo_id, (table["Present_Position"], volt))
        setup, setup_at = await self._span(bus, servo_id, tuple(table[n] for n in _SETUP_REGS))

        def field(raw: bytes, start: int, name: str) -> int:
            r = table[name]
            return int.from_bytes(raw[r.address - start : r.address - start + r.size], "little")

        return MotorInfo(
            servo_id, bus.baud, ping.model_number, ping.firmware,
            voltage_v=int.from_bytes(live[volt.address - live_at :][: volt.size], "little") / 10,
            vmin_v=field(setup, setup_at, "Min_Voltage_Limit") / 10,
            vmax_v=field(setup, setup_at, "Max_Voltage_Limit") / 10,
            faults=ping.faults | self._faults.pop(servo_id, ServoFault.NONE),
            id_reg=field(setup, setup_at, "ID"),
            baud_code=field(setup, setup_at, "Baud_Rate"),
        )

    async def _span(self, bus: ServoBus, servo_id: int, regs: Sequence) -> tuple[bytes, int]:
        """The bytes from the first to the last of ``regs`` in one read; (bytes, start address)."""
        start = min(r.address for r in regs)
        size = max(r.address + r.size for r in regs) - start
        reading = await bus.read(servo_id, (start, size))
        if reading.faults:
            self._faults[servo_id] = self._faults.get(servo_id, ServoFault.NONE) | reading.faults
        return reading.value.to_bytes(size, "little"), start

    async def _write_and_verify(self, info: MotorInfo) -> Screen:
        spec, joint = self.spec, self.spec.joint
        self.pending = None
        if (info.id, info.baud) == (spec.id, self.profile.baud):
            self.results[joint] = MotorResult(joint, info, written=False)
            return self._next(f"{joint}: already at id {spec.id}, {info.baud} baud - nothing written.")
        done_line = f"{joint}: set to id {spec.id}, {self.profile.baud} baud (was id {info.id}, {info.baud} baud)."
        task = asyncio.ensure_future(self._write(spec, info))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.wait([task])  # finish the EEPROM writes: a half-written motor is worse
            if not task.cancelled() and task.exception() is None:
                self.results[joint] = MotorResult(joint, info, written=True)
                self.log.append(done_line)
                self.cancel_note = f"The {joint} motor's writes had started: they were finished first ({done_line})"
            else:
                self.cancel_note = f"Writing the {joint} motor failed while stopping: {task.exception()}"
            raise
        except ServoError as err:
            return self._problem(f"Setting the {joint} motor failed", (
                str(err), "Check the cable and power, then retry: the search finds the motor wherever the writes left it.",
            ))
        self.results[joint] = MotorResult(joint, info, written=True)
        return self._next(done_line)

    async def _write(self, spec: MotorSpec, info: MotorInfo) -> None:
        """Torque off, unlock, Baud_Rate, then ID last, lock; verify at the new ID and baud."""
        feetech = self.family is Family.FEETECH
        target = self.profile.baud
        bus = await self._port.at(info.baud)
        await bus.write(info.id, "Torque_Enable", 0)
        if feetech:
            await bus.write(info.id, "Lock", 0)  # EEPROM writes persist only while unlocked
        if info.baud != target:
            try:
                await bus.write(info.id, "Baud_Rate", spec.model.baud_code(target))
            except NoResponseError:
                pass  # it may switch before answering: the checks below tell
        bus = await self._port.at(target)
        if info.id != spec.id:
            try:
                await bus.write(info.id, "ID", spec.id)
            except NoResponseError:
                pass
        if feetech:
            await bus.write(spec.id, "Lock", 1)
        got = await self._identify(bus, spec.id)
        code = spec.model.baud_code(target)
        if (got.model_number, got.id_reg, got.baud_code) != (info.model_number, spec.id, code):
            raise ServoError(
                f"the {spec.joint} motor reads back id {got.id_reg}, baud code {got.baud_code} (model number "
                f"{got.model_number}) after the writes; expected id {spec.id}, baud code {code}"
            )

    # --- the whole bus ----------------------------------------------------------------------------

    async def _final_check(self) -> Screen:
        bus = await self._port.at(self.profile.baud)
        rows: list[Row] = []
        seen: dict[str, MotorInfo] = {}
        for spec in self.profile.motors:
            try:
                m = await self._identify(bus, spec.id)
            except CorruptResponseError:
                rows.append(Row(spec.joint, spec.id, "?", "?", None, "garbled replies: two motors at this id?"))
                continue
            except NoResponseError:
                rows.append(Row(spec.joint, spec.id, "-", "-", None, "missing: check its cable and power"))
                continue
            seen[spec.joint] = m
            status = self._bus_status(spec, m)
            rows.append(Row(spec.joint, spec.id, m.model_name(self.family), fmt_fw(m.firmware, self.family), m.voltage_v, status))
        strays = []
        others = [b for b in self.bauds if b != self.profile.baud]
        for baud in others:
            try:
                b = await self._port.at(baud, DEFAULT_LATENCY_S)
            except PortBusyError:
                continue
            for i in await b.scan(self._quick_ids(self.order[0])):
                strays.append(f"a motor answers at id {i}, {baud} baud: it is not set up (run setup-motors for it)")
        notes = self._firmware_notes(seen)
        bad = [r for r in rows if r.status != "ok"]
        table = tuple(rows)
        if bad or strays:
            self.state = State.FAILED
            lines = [*(f"{r.joint} (id {r.id}): {r.status}" for r in bad), *strays, *notes,
                     "Fix it (cables, power, the motor) and retry, or cancel and run setup-motors again."]
            return Screen(State.FAILED, "The bus check failed", tuple(lines), (Answer.RETRY, Answer.CANCEL), table=table)
        self.state = State.DONE
        await self._port.close()
        return Screen(State.DONE, f"All {len(rows)} motors answer at their ids, {self.profile.baud} baud, right models",
                      tuple(notes), table=table)

    def _bus_status(self, spec: MotorSpec, m: MotorInfo) -> str:
        if m.model_number != spec.model.model_number:
            return f"wrong model: {m.model_name(self.family)}, needs {spec.model.name}"
        if not m.vmin_v <= m.voltage_v <= m.vmax_v or ServoFault.VOLTAGE in m.faults:
            return f"voltage error: supply {m.voltage_v:.1f} V, its limits {m.vmin_v:.1f}-{m.vmax_v:.1f} V"
        return "ok"

    def _firmware_notes(self, seen: dict[str, MotorInfo]) -> list[str]:
        notes = []
        for number in {m.model_number for m in seen.values()}:
            fws = {fmt_fw(m.firmware, self.family) for m in seen.values() if m.model_number == number}
            if len(fws) > 1:
                per = ", ".join(f"{j} {fmt_fw(m.firmware, self.family)}" for j, m in seen.items() if m.model_number == number)
                notes.append(f"Warning: mixed firmware ({per})")
        return notes
