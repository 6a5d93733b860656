"""The async servo bus both families share: one worker thread per port, typed errors, stats.

Every public coroutine hands one job to the bus's worker thread (``worker.py``) and awaits it; the
event loop never touches the port. Methods named ``_w_*`` run on that thread only, and talk to the
port through the bus's ``Link`` (``link.py``: timeouts, retries, timestamps, counters).

Timestamps (``Reading.t`` and friends, time.monotonic): when the request finished on the wire
(write() returned + request bytes x 10 bit-times), never later than the first reply's arrival. The
servos sample while processing the request, so this is within a return-delay time (0.5 ms factory,
0 as LeRobot configures) of the true sampling instant. A sync read that needed a retry keeps the
first try's time for all values (the oldest instant).
"""

from __future__ import annotations

import time

from collections.abc import Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any, ClassVar

from hardware.arms import ArmProfile, arms_with_models
from hardware.errors import (
    CorruptResponseError,
    MissingMotorsError,
    ModelMismatchError,
    NoResponseError,
    NoServosFoundError,
    ServoError,
)
from hardware.tables import MODELS_BY_NUMBER, Family, Register
from hardware.bus.link import DEFAULT_LATENCY_S, FACTORY_RETURN_DELAY_S, Link
from hardware.bus.logs import log
from hardware.bus.registers import Reg, RegisterCache
from hardware.bus.types import BusStats, PingReply, Reading, ServoFault, SyncReading
from hardware.bus.worker import Handoff, Worker

# Bauds tried when nothing answers, most likely first; each family keeps those its servos support.
PROBE_ORDER = (1_000_000, 57_600, 115_200, 500_000, 250_000, 2_000_000, 3_000_000, 4_000_000,
               4_500_000, 128_000, 76_800, 38_400, 9_600)


class ServoBus:
    """Base of FeetechBus and DynamixelBus; see ``hardware.bus`` for the public API."""

    family: ClassVar[Family]
    codec: ClassVar[ModuleType]  # hardware.protocol.feetech or .dynamixel
    table: ClassVar[Mapping[str, Register]]
    bauds: ClassVar[tuple[int, ...]]  # what the family's servos can be set to
    max_register_size: ClassVar[int] = 128  # bytes a raw (address, size) read may ask for

    def __init__(
        self,
        port: str,
        baud: int = 1_000_000,
        *,
        retries: int = 2,
        latency_s: float | None = None,
        profile: ArmProfile | None = None,
        return_delay_s: float = FACTORY_RETURN_DELAY_S,
        handoff: Handoff = "direct",
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, not {retries}")
        if profile is not None:
            self._check_family(profile)
        self.port = port
        self.profile = profile
        self._reg = RegisterCache(self.table, self.family.value, self.max_register_size)
        self._worker = Worker(f"{self.family.value}-bus", handoff)
        self._faults: dict[int, ServoFault] = {}
        self.link = Link(
            port, baud, self.codec, self._new_decoder(),
            retries=retries,
            latency_s=DEFAULT_LATENCY_S if latency_s is None else latency_s,
            return_delay_s=return_delay_s,
            reply_max_length=self._reply_max_length,
            is_garbled_request=self._is_garbled_request,
            describe=self.describe,
        )

    # --- settings, kept by the link -------------------------------------------------------------

    @property
    def baud(self) -> int:
        return self.link.baud

    @property
    def retries(self) -> int:
        return self.link.retries

    @retries.setter
    def retries(self, value: int) -> None:
        self.link.retries = value

    @property
    def latency_s(self) -> float:
        """Margin added to every timeout for USB and scheduling latency."""
        return self.link.latency_s

    @latency_s.setter
    def latency_s(self, value: float) -> None:
        self.link.latency_s = value

    @property
    def return_delay_s(self) -> float:
        """The servos' reply delay the timeouts assume (factory 500 us)."""
        return self.link.return_delay_s

    @return_delay_s.setter
    def return_delay_s(self, value: float) -> None:
        self.link.return_delay_s = value

    @property
    def adapter_latency_s(self) -> float:
        """The FTDI latency timer, read at open (0 for other adapters)."""
        return self.link.adapter_latency_s

    # --- family hooks ---------------------------------------------------------------------------

    def _new_decoder(self) -> Any:
        raise NotImplementedError

    def _reply_max_length(self, data_size: int) -> int:
        """The decoder's LEN bound for a status packet with ``data_size`` data bytes."""
        raise NotImplementedError

    def _is_garbled_request(self, code: int) -> bool:
        """The servo says it received a corrupted request (worth retrying)."""
        return False

    def _status(self, servo_id: int, code: int, what: str, reg: Reg | None, write: bool = False) -> ServoFault:
        """Decode a status packet's ERR byte: raise on a refusal, return (and record) the faults."""
        raise NotImplementedError

    def _decode(self, reg: Reg, data: bytes) -> int:
        raise NotImplementedError

    def _encode(self, reg: Reg, value: int) -> bytes:
        raise NotImplementedError

    def _w_ping(self, servo_id: int, *, probe: bool = False) -> PingReply:
        raise NotImplementedError

    def _w_scan_one(self, servo_id: int) -> int:
        """Model number of ``servo_id`` (one try); NoResponseError when silent."""
        raise NotImplementedError

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._worker.running

    @property
    def io_thread_id(self) -> int | None:
        """OS thread id of the bus's I/O thread while open (``hardware.realtime`` raises its priority)."""
        return self._worker.native_id

    async def open(self) -> None:
        """Validate and open the port (typed PortError subclasses), start the worker thread."""
        if self._worker.running:
            return
        self._worker.start()
        try:
            await self._worker.submit(self.link.open)
        except BaseException:
            self._worker.stop()
            raise

    async def close(self) -> None:
        """Close the port after the jobs already queued; safe to call twice."""
        if not self._worker.running:
            return
        done = self._worker.submit(self.link.close)
        self._worker.stop()
        await done

    async def __aenter__(self) -> ServoBus:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- observations ---------------------------------------------------------------------------

    @property
    def stats(self) -> BusStats:
        return self.link.stats.copy()

    @property
    def faults(self) -> dict[int, ServoFault]:
        return dict(self._faults)

    def describe(self, servo_id: int, profile: ArmProfile | None = None) -> str:
        profile = profile or self.profile
        return profile.describe(servo_id) if profile is not None else f"id {servo_id}"

    # --- public operations ----------------------------------------------------------------------

    async def ping(self, servo_id: int) -> PingReply:
        return await self._worker.submit(self._w_ping, self._check_id(servo_id))

    async def scan(self, ids: Iterable[int] = range(0, 253)) -> dict[int, int]:
        """id -> model number of every servo that answers (one try per id, no retries)."""
        return await self._worker.submit(self._w_scan, [self._check_id(i) for i in ids])

    async def read(self, servo_id: int, register: str | tuple[int, int]) -> Reading:
        return await self._worker.submit(self._w_read, self._check_id(servo_id), self._reg(register))

    async def write(self, servo_id: int, register: str | tuple[int, int], value: int) -> None:
        reg = self._reg(register)
        data = self._encode(reg, self._writable(reg).check(value))
        await self._worker.submit(self._w_write, self._check_id(servo_id, broadcast=True), reg, data)

    async def sync_read(self, register: str | tuple[int, int], ids: Iterable[int]) -> SyncReading:
        id_list = self._check_sync_ids(ids, "sync_read")
        return await self._worker.submit(self._w_sync_read, self._reg(register), id_list)

    async def sync_read_span(self, registers: Sequence[str], ids: Iterable[int]) -> dict[str, SyncReading]:
        """Several registers of several servos in ONE sync read of the bytes spanning them all (e.g.
        Present_Position and Present_Load in one transaction per control tick); each decoded as its
        table entry. The span may hold registers not asked for; it must fit ``max_register_size``."""
        id_list = self._check_sync_ids(ids, "sync_read_span")
        regs = [self._reg(r) for r in registers]
        if not regs:
            raise ValueError("sync_read_span needs at least one register")
        start = min(r.address for r in regs)
        size = max(r.address + r.size for r in regs) - start
        if size > self.max_register_size:
            names = ", ".join(r.name for r in regs)
            raise ValueError(f"{names} span {size} bytes; one sync read takes at most {self.max_register_size}")
        return await self._worker.submit(self._w_sync_read_span, regs, start, size, id_list)

    async def sync_write(self, register: str | tuple[int, int], values: Mapping[int, int]) -> None:
        """One SYNC_WRITE; returns once the bytes are handed to the port (servos do not answer it)."""
        reg = self._writable(self._reg(register))
        encode, check, top = self._encode, reg.check, self.codec.MAX_ID
        data = {}
        for i, v in values.items():
            if type(i) is not int or not 0 <= i <= top:
                self._check_id(i)  # raises, naming the id
            data[i] = encode(reg, check(v))
        if not data:
            return
        request = self.codec.sync_write(reg.address, reg.size, data)
        if self._worker.idle:
            # Fast path: the I/O thread is idle, so the port is free; a SYNC_WRITE has no reply, and one
            # non-blocking write of a few dozen bytes costs microseconds, so the loop thread hands it to
            # the kernel itself and saves the round trip through the I/O thread on every control cycle.
            sent = self.link.try_send(request)
            if sent < len(request):
                await self._worker.submit(self.link.send, request[sent:])
            return
        await self._worker.submit(self._w_sync_write, reg, request)

    async def verify(self, profile: ArmProfile | None = None) -> dict[int, int]:
        """Check every motor of ``profile`` answers with its model; id -> model number."""
        profile = profile or self.profile
        if profile is None:
            raise ValueError("verify needs an arm profile (pass it here or to the bus)")
        self._check_family(profile)
        return await self._worker.submit(self._w_verify, profile)

    def _check_family(self, profile: ArmProfile) -> None:
        if profile.family != self.family:
            arm_family, bus_family = profile.family.value, self.family.value
            raise ValueError(f"profile {profile.name} is a {arm_family} arm, this is a {bus_family} bus")

    def _check_sync_ids(self, ids: Iterable[int], op: str) -> tuple[int, ...]:
        id_list = tuple(ids)
        if len(set(id_list)) != len(id_list) or not id_list:
            raise ValueError(f"{op} needs distinct servo ids, got {list(id_list)}")
        for i in id_list:
            self._check_id(i)
        return id_list

    def _check_id(self, servo_id: int, *, broadcast: bool = False) -> int:
        top = self.codec.BROADCAST_ID if broadcast else self.codec.MAX_ID
        if isinstance(servo_id, bool) or not isinstance(servo_id, int) or not 0 <= servo_id <= top:
            raise ValueError(f"servo id {servo_id!r} is outside 0..{top}")
        return servo_id

    @staticmethod
    def _writable(reg: Reg) -> Reg:
        if not reg.writable:
            raise ValueError(f"{reg.name} is read-only")
        return reg

    # --- worker side: operations ----------------------------------------------------------------

    def _w_read(self, servo_id: int, reg: Reg) -> Reading:
        what = f"a read of {reg.name}"
        request = self.codec.read(servo_id, reg.address, reg.size)
        got, t = self.link.transact(what, lambda _ids: request, (servo_id,), reg.size)
        packet = got[servo_id]
        fault = self._status(servo_id, packet.code, what, reg)
        return Reading(self._decode(reg, packet.params), t, fault)

    def _w_write(self, servo_id: int, reg: Reg, data: bytes) -> None:
        what = f"a write of {reg.name}"
        request = self.codec.write(servo_id, reg.address, data)
        expect = () if servo_id == self.codec.BROADCAST_ID else (servo_id,)
        got, _ = self.link.transact(what, lambda _ids: request, expect, 0)
        for i, packet in got.items():
            self._status(i, packet.code, what, reg, write=True)

    def _w_sync_read(self, reg: Reg, ids: tuple[int, ...]) -> SyncReading:
        what = f"a sync read of {reg.name}"
        address, size, build = reg.address, reg.size, self.codec.sync_read
        got, t = self.link.transact(what, lambda pending: build(address, size, pending), ids, size)
        decode = self._decode
        values = {i: decode(reg, got[i].params) for i in ids}
        return SyncReading(values, t, self._sync_faults(got, ids, what, reg))

    def _w_sync_read_span(self, regs: list[Reg], start: int, size: int, ids: tuple[int, ...]) -> dict[str, SyncReading]:
        what = "a sync read of " + " + ".join(r.name for r in regs)
        build = self.codec.sync_read
        got, t = self.link.transact(what, lambda pending: build(start, size, pending), ids, size)
        faults = self._sync_faults(got, ids, what, regs[0])
        out: dict[str, SyncReading] = {}
        for reg in regs:
            lo = reg.address - start
            values = {i: self._decode(reg, got[i].params[lo : lo + reg.size]) for i in ids}
            out[reg.name] = SyncReading(values, t, faults)
        return out

    def _sync_faults(self, got: Mapping[int, Any], ids: tuple[int, ...], what: str, reg: Reg) -> dict[int, ServoFault]:
        """The error bits of a sync read's replies, by id (only ids with a bit set)."""
        faults: dict[int, ServoFault] = {}
        seen, healthy = self._faults, ServoFault.NONE
        for i in ids:
            code = got[i].code
            if code or seen.get(i) is not healthy:  # else: no error bits now or before
                fault = self._status(i, code, what, reg)
                if fault:
                    faults[i] = fault
        return faults

    def _w_sync_write(self, reg: Reg, request: bytes) -> None:
        self.link.transact(f"a sync write of {reg.name}", lambda _ids: request, (), 0)

    def _w_scan(self, ids: list[int]) -> dict[int, int]:
        found: dict[int, int] = {}
        # A reply that comes after its own short timeout shows up during the next id's try: keep it
        # (the link files replies from other ids here, and skips the input flush meanwhile).
        self.link.flush_input()
        self.link.strays = strays = {}
        try:
            for i in ids:
                for _ in range(2):  # a second try only when the first reply came back garbled
                    try:
                        found[i] = self._w_scan_one(i)
                    except CorruptResponseError:
                        continue
                    except NoResponseError:
                        pass
                    break
        finally:
            self.link.strays = None
        for i, packet in strays.items():
            if i in ids and i not in found:  # the scan replies carry the model number first
                found[i] = packet.params[0] | packet.params[1] << 8
        return dict(sorted(found.items()))

    def _w_verify(self, profile: ArmProfile) -> dict[int, int]:
        found: dict[int, int] = {}
        missing = []
        for motor in profile.motors:
            try:
                found[motor.id] = self._w_ping(motor.id).model_number
            except NoResponseError:
                missing.append(motor.id)
        # A silent servo is asked again twice, a little later, before it counts as missing: one lost reply
        # (a loaded machine, a noisy cable) must not stop the arm from connecting; a really missing motor
        # costs two more timeouts.
        for _ in range(2):
            if not missing or not found:
                break
            time.sleep(0.02)
            still = []
            for i in missing:
                try:
                    found[i] = self._w_ping(i).model_number
                except NoResponseError:
                    still.append(i)
            missing = still
        if not found:
            raise NoServosFoundError(self.port, self.baud, self._w_probe_bauds(profile.ids))
        if missing:
            raise MissingMotorsError(
                self.port, [self.describe(i, profile) for i in missing], [self.describe(i, profile) for i in found]
            )
        for motor in profile.motors:
            number = found[motor.id]
            expected = motor.model
            if number != expected.model_number:
                other = MODELS_BY_NUMBER.get((self.family, number))
                what = f"{other.name} (model number {number})" if other else f"model number {number}"
                likely = [a.name for a in arms_with_models(self.family, found) if a is not profile]
                raise ModelMismatchError(
                    self.describe(motor.id, profile), f"{expected.name} (model number {expected.model_number})", what,
                    likely,
                )
        return found

    def _w_probe_bauds(self, ids: Sequence[int]) -> int | None:
        """The first other baud at which one of ``ids`` answers a ping; the bus baud is restored."""
        original = self.baud
        try:
            for baud in PROBE_ORDER:
                if baud == original or baud not in self.bauds:
                    continue
                try:
                    self.link.set_baud(baud)
                except ValueError:  # this adapter cannot do it: its servos cannot be heard there either
                    continue
                for i in ids:
                    try:
                        self._w_ping(i, probe=True)
                        log("info", "servos_answer_at_other_baud", port=self.port, baud=baud, asked=original)
                        return baud
                    except ServoError:
                        continue
            return None
        finally:
            self.link.set_baud(original)

    # --- worker side: faults ---------------------------------------------------------------------

    def _record_fault(self, servo_id: int, fault: ServoFault) -> ServoFault:
        """Remember the latest error bits of ``servo_id``; log when they change (not a first healthy reply)."""
        previous = self._faults.get(servo_id)
        if previous == fault:
            return fault
        self._faults[servo_id] = fault
        if fault:
            log("warning", "servo_fault", port=self.port, servo=self.describe(servo_id), faults=fault.name)
        elif previous:
            log("info", "servo_fault_cleared", port=self.port, servo=self.describe(servo_id))
        return fault
