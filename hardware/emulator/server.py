"""``Emulator``: an arm's servos behind a pseudo-terminal, served by one thread at real wire timing.

    with Emulator("so101") as emu:          # or emu.start() ... emu.stop()
        port = emu.port                       # /dev/pts/N: open it with pyserial, an SDK, LeRobot
        emu.servo(3).get("Present_Position")  # host-side inspection, no wire
        emu.motion.move_by_hand(2, 300)       # a hand moves joint 2 (index, raw ticks)

The thread blocks in ``select`` while idle. Incoming bytes are checked against the client's baud rate
(a servo hears only what is sent at its own baud), decoded with the protocol codec, applied to the
servos and answered; replies are booked on the wire model (``wire.py``) and written out when their
last byte would have left a real wire: the thread sleeps until ~0.3 ms before that and spins the rest.
"""

from __future__ import annotations

import os
import pty
from collections import deque
import random
import select
import threading
import time
import tty
from dataclasses import dataclass

import structlog

from hardware.arms import ArmProfile
from hardware.arms import arm as arm_by_name
from hardware.emulator.dynamixel import DynamixelProtocol, DynamixelServo
from hardware.emulator.faults import FaultDice, FaultSpec, parse_faults
from hardware.emulator.feetech import FeetechProtocol, FeetechServo
from hardware.emulator.motion import KinematicMotion, MotionModel
from hardware.emulator.servo import EmulatedServo
from hardware.emulator.wire import Wire, client_baud
from hardware.tables import Family

log = structlog.get_logger(__name__)

SPIN_S = 0.0003  # spin (instead of sleeping) for the last 0.3 ms before a reply is due
SELECT_MAX_FD = 1000  # above this, wait with poll (select cannot take the fd)
INITIAL_SPREAD_TICKS = 100.0  # joints start within +-100 ticks of mid-range (seeded)


def _selector(fds: list[int]):
    """``wait(timeout_s) -> ready fds``. ``select`` has microsecond timeouts but only takes fds below
    FD_SETSIZE (1024); past that, ``poll`` with its millisecond timeout rounded down (the reply loop
    then spins up to ~1 ms longer instead of waking late)."""
    if max(fds) < SELECT_MAX_FD:
        return lambda timeout: select.select(fds, [], [], timeout)[0]
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)

    def wait(timeout: float | None) -> list[int]:
        ms = None if timeout is None else int(timeout * 1000)
        return [fd for fd, _ in poller.poll(ms)]

    return wait


@dataclass(frozen=True, slots=True)
class EmulatorStats:
    """Counters since start: decoded requests, replies written, and what the faults and the wire did."""

    requests: int = 0
    replies: int = 0
    dropped: int = 0
    corrupted: int = 0
    late: int = 0
    wrong_baud: int = 0  # chunks of bytes sent at a baud rate no servo listens at
    checksum_errors: int = 0


class Emulator:
    """Emulated servo bus of one arm. See the module doc; ``stats`` is a fresh snapshot on each access."""

    def __init__(
        self,
        arm: ArmProfile | str,
        baud: int = 1_000_000,
        faults: FaultSpec | str | None = None,
        motion: MotionModel | None = None,
        seed: int = 0,
    ) -> None:
        self.arm = arm_by_name(arm) if isinstance(arm, str) else arm
        self.baud = int(baud)
        for spec in self.arm.motors:
            spec.model.baud_code(self.baud)  # ValueError naming the allowed rates
        self.faults = parse_faults(faults)
        self.seed = seed
        if motion is None:
            rng = random.Random(seed)
            start = [2048.0 + rng.uniform(-INITIAL_SPREAD_TICKS, INITIAL_SPREAD_TICKS) for _ in self.arm.motors]
            motion = KinematicMotion(start)
        if getattr(motion, "n_joints", len(self.arm.motors)) < len(self.arm.motors):
            raise ValueError(f"motion model has {motion.n_joints} joints, {self.arm.name} needs {len(self.arm.motors)}")
        self.motion = motion
        self._lock = threading.RLock()
        servo_cls = FeetechServo if self.arm.family is Family.FEETECH else DynamixelServo
        self.servos: list[EmulatedServo] = [
            servo_cls(spec, i, baud=self.baud, motion=motion, lock=self._lock, faults=self.faults)
            for i, spec in enumerate(self.arm.motors)
        ]
        self.protocol = FeetechProtocol() if self.arm.family is Family.FEETECH else DynamixelProtocol()
        self._dice = FaultDice(self.faults, seed)
        self._wire = Wire()
        self._counts = dict.fromkeys(("requests", "replies", "dropped", "corrupted", "late", "wrong_baud"), 0)
        self._master: int | None = None
        self._slave: int | None = None
        self._wake: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.port: str | None = None
        # seconds each of the last replies left after its due time (a diagnostic of pacing accuracy)
        self.send_lag_s: deque[float] = deque(maxlen=5000)
        # seconds from a request's bytes arriving to its replies booked (decoding + the motion model)
        self.handle_s: deque[float] = deque(maxlen=5000)

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> str:
        """Open the pty and start the server thread; return the client's port path."""
        if self._thread is not None:
            assert self.port is not None
            return self.port
        master, slave = pty.openpty()
        tty.setraw(slave)  # no echo, no line editing: a byte pipe like a USB serial adapter
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._wake = os.pipe()
        self.port = os.ttyname(slave)
        self._wire.clear()
        self.protocol.decoder.reset()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, name=f"emulator-{self.arm.name}", daemon=True)
        self._thread.start()  # no log line here: `python -m hardware.emulator` must print the port first
        return self.port

    def stop(self) -> None:
        """Stop the thread and close the pty. Safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        if self._wake is not None:
            os.write(self._wake[1], b"x")
        thread.join(timeout=5.0)
        for fd in (self._master, self._slave, *(self._wake or ())):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = self._wake = None

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- host-side access ---------------------------------------------------------------------------

    def servo(self, servo_id: int) -> EmulatedServo:
        """The servo that holds ``servo_id`` now (IDs can change over the wire)."""
        with self._lock:
            for s in self.servos:
                if s.id == servo_id:
                    return s
        raise KeyError(f"no emulated servo has id {servo_id} (ids now: {sorted(s.id for s in self.servos)})")

    def power_cycle(self) -> None:
        """Switch the arm's power off and on: every servo reloads its persisted EEPROM, torque off."""
        with self._lock:
            for s in self.servos:
                s.power_cycle()

    @property
    def io_thread_id(self) -> int | None:
        """OS thread id of the serving thread while it runs (``hardware.realtime``)."""
        t = self._thread
        return t.native_id if t is not None else None

    @property
    def stats(self) -> EmulatorStats:
        return EmulatorStats(**self._counts, checksum_errors=self.protocol.decoder.checksum_errors)

    def timing(self) -> dict[str, float | int | None]:
        """Where the emulator's own time goes (ms, over the last 5000 requests/replies): ``handle``
        (bytes in -> replies booked: decoding and the motion model, e.g. MuJoCo physics) and ``send_lag``
        (a reply written after its wire-model due time: the thread was not running when it should have)."""
        out: dict[str, float | int | None] = {}
        for name, values in (("handle", list(self.handle_s)), ("send_lag", list(self.send_lag_s))):
            v = sorted(values)
            out[f"{name}_n"] = len(v)
            for q in (50, 99):
                out[f"{name}_ms_p{q}"] = round(v[min(len(v) - 1, int(q / 100 * len(v)))] * 1e3, 3) if v else None
            out[f"{name}_ms_max"] = round(v[-1] * 1e3, 3) if v else None
        return out

    # --- the server thread --------------------------------------------------------------------------

    def _serve(self) -> None:
        assert self._master is not None and self._wake is not None
        master, wake = self._master, self._wake[0]
        wait = _selector([master, wake])
        while not self._stopping.is_set():
            due = self._wire.next_due
            timeout = None if due is None else max(0.0, due - time.monotonic() - SPIN_S)
            try:
                ready = wait(timeout)
            except (OSError, ValueError):
                log.exception("emulator wait failed", arm=self.arm.name)
                break
            if wake in ready:
                break
            if master in ready:
                try:
                    data = os.read(master, 4096)
                except (BlockingIOError, InterruptedError):
                    data = b""
                except OSError:  # pragma: no cover - the slave end is held open, so no EIO
                    data = b""
                if data:
                    arrived = time.monotonic()
                    try:
                        self._on_bytes(data, arrived)
                    except Exception:  # never let one bad request kill the bus
                        log.exception("emulator failed to handle a request", arm=self.arm.name)
                    self.handle_s.append(time.monotonic() - arrived)
            self._send_due(master)

    def _on_bytes(self, data: bytes, arrived: float) -> None:
        assert self._master is not None
        baud = client_baud(self._master)
        with self._lock:
            alive = [s for s in self.servos if not s.dead]
            if alive and not any(s.baud == baud for s in alive):
                self._counts["wrong_baud"] += 1  # the servos hear framing garbage and stay silent
                self.protocol.decoder.reset()
                return
            assert baud is not None or not alive
            for packet in self.protocol.decoder.feed(data):
                self._counts["requests"] += 1
                self._wire.request(arrived, self.protocol.frame_length(packet), baud or self.baud)
                listening = [s for s in alive if s.baud == baud]
                for reply in self.protocol.handle(packet, listening, arrived):
                    self._book(reply.frame, reply.delay_s, baud or self.baud)

    def _book(self, frame: bytes, delay_s: float, baud: int) -> None:
        if self._dice.drop():
            self._counts["dropped"] += 1
            return
        due = self._wire.reply(delay_s, len(frame), baud)
        corrupted = self._dice.corrupt(frame)
        if corrupted is not None:
            self._counts["corrupted"] += 1
            frame = corrupted
        late = self._dice.late_s()
        if late:
            self._counts["late"] += 1
        self._wire.send_at(due + late, frame)

    def _send_due(self, master: int) -> None:
        while True:
            due = self._wire.next_due
            if due is None or due - time.monotonic() > SPIN_S:
                return
            while time.monotonic() < due:
                pass
            out = self._wire.pop_due(time.monotonic())
            if out is None:  # pragma: no cover - the heap only grows from this thread
                return
            try:
                os.write(master, out.frame)
                self.send_lag_s.append(time.monotonic() - out.due)
                self._counts["replies"] += 1
            except (BlockingIOError, InterruptedError):
                self._counts["dropped"] += 1  # the client is not reading: the bus does not buffer
            except OSError:  # pragma: no cover
                return
