"""The worker-thread side of a bus: one serial port, and transactions with timeouts and retries.

A try (``exchange``): flush stale input, write the request, then wait with select() on the port's
file descriptor and read what arrived until every expected status packet is decoded, as many bytes
as the replies have arrived (some garbled), or the deadline passes. The deadline (``timeout``) is
the wire time of request and replies at 10 bit-times a byte, each reply's return delay, and a
latency margin (plus the FTDI latency timer). The decoder is bounded to the exact expected LEN, so a
corrupt LEN never makes it wait for bytes that will not come. Replies from ids not asked, or of
another length, are ignored.

``transact`` repeats the try for the ids still missing, at most ``retries`` more times, counts what
happened in ``stats``, and raises NoResponseError / CorruptResponseError naming the motors.

A reply that misses its deadline may still arrive during a later request, where it looks exactly
like the new reply. The link remembers such ids for ``DEBT_S`` and drops a reply from one of them
that arrives sooner than any reply to the current request physically could (request and reply
bytes on the wire), counting it in ``stats.stale_replies``. A stale reply that arrives later than
that cannot be told from a fresh one.

Timestamps: ``t`` is when the request finished on the wire, estimated as "write() returned +
request bytes x 10 bit-times", and never later than the first accepted reply's arrival.
"""

from __future__ import annotations

import os
import select
import termios
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import serial

from hardware.errors import CorruptResponseError, NoResponseError, ServoError
from hardware.protocol.common import Packet
from hardware.bus.port import PortDisconnectedError, ftdi_latency_ms, open_serial
from hardware.bus.types import BusStats

DEFAULT_LATENCY_S = 0.004  # USB round trip and OS scheduling on top of the wire time
FACTORY_RETURN_DELAY_S = 500e-6  # Return_Delay_Time 250 x 2 us
DEBT_S = 0.1  # how long a reply that missed its deadline may still turn up


class Link:
    def __init__(
        self,
        port: str,
        baud: int,
        codec: ModuleType,
        decoder: Any,
        *,
        retries: int,
        latency_s: float,
        return_delay_s: float,
        reply_max_length: Callable[[int], int],
        is_garbled_request: Callable[[int], bool],
        describe: Callable[[int], str],
    ) -> None:
        self.port = port
        self.baud = baud
        self.byte_s = 10.0 / baud
        self.codec = codec
        self.decoder = decoder  # from ``tracking_decoder``
        self.retries = retries
        self.latency_s = latency_s
        self.return_delay_s = return_delay_s
        self.adapter_latency_s = 0.0  # the FTDI latency timer, read at open
        self.reply_max_length = reply_max_length
        self.is_garbled_request = is_garbled_request
        self.describe = describe
        self.stats = BusStats()
        self.strays: dict[int, Packet] | None = None  # while scanning: replies from other ids
        # id -> (replies it may still send after their try timed out, until when)
        self.debts: dict[int, tuple[int, float]] = {}
        self._serial: Any = None
        self._fd = -1

    # --- the port ---------------------------------------------------------------------------------

    def open(self) -> None:
        self._serial = open_serial(self.port, self.baud)
        self._fd = self._serial.fileno()
        self.adapter_latency_s = (ftdi_latency_ms(self.port) or 0) / 1000.0

    def close(self) -> None:
        if self._serial is not None:
            self._serial.close()
        self._serial = None
        self._fd = -1

    def flush_input(self) -> None:
        """Drop whatever the port received and nobody read."""
        try:
            termios.tcflush(self._fd, termios.TCIFLUSH)
        except (OSError, termios.error) as exc:
            raise PortDisconnectedError(self.port, _reason(exc)) from None

    def set_baud(self, baud: int) -> None:
        """Switch the port's baud rate; ValueError when the adapter or the OS refuses it."""
        if baud != self.baud:
            try:
                self._serial.baudrate = baud
            except (OSError, serial.SerialException) as exc:
                raise ValueError(f"{self.port} refused {baud} baud: {exc}") from None
            self.baud = baud
            self.byte_s = 10.0 / baud

    def timeout(self, request_len: int, replies: int, data_size: int) -> float:
        wire = request_len + replies * self.codec.status_length(data_size)
        return wire * self.byte_s + replies * self.return_delay_s + self.latency_s + self.adapter_latency_s

    # --- transactions -----------------------------------------------------------------------------

    def transact(
        self,
        what: str,
        build: Callable[[Sequence[int]], bytes],
        ids: Sequence[int],
        data_size: int,
        *,
        probe: bool = False,
    ) -> tuple[dict[int, Packet], float]:
        """Send ``build(ids)`` and collect a status packet from each of ``ids``, retrying the missing.

        ``probe`` (scan, baud probe): one try, and no per-servo missing counts, for ids that may not exist.
        Returns (packet by id, timestamp of the first try).
        """
        stats = self.stats
        stats.transactions += 1
        if not ids:  # nothing answers (a sync write, a broadcast): just send it
            self.send(build(ids))
            return {}, 0.0
        tries = 1 if probe else 1 + self.retries
        pending: Sequence[int] = ids
        got_all: dict[int, Packet] = {}
        garbled: set[int] = set()
        t_first = 0.0
        timeout = 0.0
        for attempt in range(tries):
            if attempt:
                stats.retries += 1
            request = build(pending)
            timeout = self.timeout(len(request), len(pending), data_size)
            got, t, garbled = self.exchange(request, pending, data_size, timeout)
            per_servo = stats.per_servo
            for i in got:
                (per_servo.get(i) or stats.servo(i)).replies += 1
            if not attempt:
                if len(got) == len(pending):
                    return got, t  # the common case
                t_first = t
            got_all.update(got)
            if len(got) == len(pending):
                stats.recovered += 1
                return got_all, t_first
            stats.timeouts += 1
            missing = [i for i in pending if i not in got]
            for i in missing:
                if i in garbled:
                    stats.corrupt_replies += 1
                    stats.servo(i).corrupt += 1
                else:
                    stats.missing_replies += 1
                    if not probe:
                        stats.servo(i).missing += 1
            pending = missing
        silent = [i for i in pending if i not in garbled]  # as the last try saw them
        if silent:
            names = ", ".join(self.describe(i) for i in silent)
            err: ServoError = NoResponseError(what, names, self.port, self.baud, timeout, tries)
        else:
            names = ", ".join(self.describe(i) for i in pending)
            err = CorruptResponseError(what, names, self.port, tries)
        err.ids = tuple(silent or pending)  # type: ignore[attr-defined]
        raise err

    def send(self, request: bytes) -> None:
        """Write a request no servo answers. Waits only while the output buffer is full."""
        fd = self._fd
        if fd < 0:
            raise RuntimeError("the bus is closed")
        sent = 0
        deadline = 0.0
        try:
            while True:
                sent += os.write(fd, request[sent:] if sent else request)
                if sent == len(request):
                    break
                deadline = deadline or time.monotonic() + self.timeout(len(request), 0, 0)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select((), (fd,), (), remaining)[1]:
                    raise PortDisconnectedError(self.port, "nothing reads what the bus writes (output buffer full)")
        except (OSError, termios.error) as exc:
            raise PortDisconnectedError(self.port, _reason(exc)) from None
        finally:
            self.stats.bytes_tx += sent

    def try_send(self, request: bytes) -> int:
        """One non-blocking write of a request no servo answers, for the event loop's fast path.

        Never waits (the fd is non-blocking): returns how many bytes the kernel took, so the caller
        hands whatever is left to the I/O thread.
        """
        if self._fd < 0:
            raise RuntimeError("the bus is closed")
        try:
            sent = os.write(self._fd, request)
        except BlockingIOError:
            return 0
        except (OSError, termios.error) as exc:
            raise PortDisconnectedError(self.port, _reason(exc)) from None
        self.stats.transactions += 1
        self.stats.bytes_tx += sent
        return sent

    def exchange(
        self, request: bytes, ids: Sequence[int], data_size: int, timeout: float
    ) -> tuple[dict[int, Packet], float, set[int]]:
        """One try: (packets by id, timestamp, ids whose reply came garbled)."""
        fd = self._fd
        if fd < 0:
            raise RuntimeError("the bus is closed")
        dec = self.decoder
        dec.reset()
        dec.bad_ids.clear()
        dec.max_length = self.reply_max_length(data_size)
        discarded = dec.discarded_bytes
        clock = time.monotonic
        frame_len = self.codec.status_length(data_size)
        try:
            if self.strays is None:  # (a scan flushes once, at its start)
                termios.tcflush(fd, termios.TCIFLUSH)
            t_start = clock()
            sent = os.write(fd, request)
            t_sent = clock()
            deadline = t_sent + timeout
            while sent < len(request):  # a full output buffer (nobody reads the other end)
                remaining = deadline - clock()
                if remaining <= 0 or not select.select((), (fd,), (), remaining)[1]:
                    self.stats.bytes_tx += sent
                    return {}, t_sent, set()
                sent += os.write(fd, request[sent:])
                t_sent = clock()
        except (OSError, termios.error) as exc:
            raise PortDisconnectedError(self.port, _reason(exc)) from None
        self.stats.bytes_tx += sent
        t_est = t_sent + len(request) * self.byte_s
        got: dict[int, Packet] = {}
        need = len(ids)
        wanted = set(ids)
        # No reply to this request can be complete before its bytes and the reply's crossed the wire.
        earliest = t_start + 0.9 * (len(request) + frame_len) * self.byte_s
        debts = self.debts
        first_rx = 0.0
        rx = 0
        expect_rx = need * frame_len
        checksum_errors = errors_before = dec.checksum_errors
        last_look = False
        # The last reply is due when every byte has crossed the wire (return delay 0 assumed): sleep in
        # select until shortly before, then poll, so the reply is picked up within microseconds rather
        # than after a thread wake-up. The poll window is bounded (SPIN_S).
        spin_from = t_sent + (len(request) + expect_rx) * self.byte_s - SPIN_LEAD_S
        try:
            while True:
                remaining = deadline - clock()
                if remaining <= 0:  # one last look: this thread may have slept past the deadline
                    if last_look:  # while the replies were already waiting in the kernel
                        break
                    last_look, remaining = True, 0.0
                now = clock()
                if remaining > 0 and now >= spin_from:
                    chunk = _poll(fd, min(deadline, now + SPIN_S))
                    if chunk is None:
                        spin_from = deadline  # nothing within the spin window: back to sleeping in select
                        continue
                else:
                    wake_early = 0.0 < spin_from - now < remaining  # wake up to start polling
                    if not select.select((fd,), (), (), spin_from - now if wake_early else remaining)[0]:
                        if wake_early:
                            continue
                        break
                    chunk = os.read(fd, 4096)
                now = clock()
                rx += len(chunk)
                for packet in dec.feed(chunk):
                    i = packet.id
                    if i not in wanted or i in got or len(packet.params) != data_size:
                        expect_rx += self.codec.status_length(len(packet.params))  # not one we wait for
                        if self.strays is not None and len(packet.params) == data_size:
                            self.strays.setdefault(i, packet)
                        continue
                    if debts and i in debts and now < earliest and self._pay_debt(i, now):
                        expect_rx += frame_len
                        continue  # the late reply to an earlier try, not to this request
                    if self.is_garbled_request(packet.code):
                        dec.bad_ids.add(i)
                        continue
                    got[i] = packet
                    if not first_rx:
                        first_rx = now
                if len(got) == need:
                    break
                if rx >= expect_rx and not dec.pending:
                    break  # as many bytes as the replies have came, some garbled: retry now
                if dec.checksum_errors != checksum_errors:
                    checksum_errors = dec.checksum_errors
                    if wanted - got.keys() <= dec.bad_ids:  # all that is missing came garbled: retry now
                        break
        except OSError as exc:
            raise PortDisconnectedError(self.port, _reason(exc)) from None
        finally:
            self.stats.bytes_rx += rx
        if first_rx and first_rx < t_est:
            t_est = first_rx
        if len(got) == need:
            return got, t_est, set()
        missing = wanted - got.keys()
        garbled = missing & dec.bad_ids
        # A frame with a bad checksum is dropped byte by byte: about one frame of discarded bytes
        # each. More discarded than that, a frame cut short, more bad frames than ids, or a bad
        # frame under an id that is not missing (its ID byte was hit) is garbage that cannot be
        # pinned on one id: then every missing id counts as garbled.
        bad_frames = dec.checksum_errors - errors_before
        unexplained = dec.discarded_bytes - discarded - bad_frames * frame_len
        if unexplained > 0 or dec.pending or bad_frames > len(garbled) or not dec.bad_ids <= missing:
            garbled = missing
        expires = clock() + DEBT_S
        for i in missing - dec.bad_ids:  # its reply may still come, during a later request
            debts[i] = (debts[i][0] + 1 if i in debts else 1, expires)
        return got, t_est, garbled

    def _pay_debt(self, servo_id: int, now: float) -> bool:
        """True when ``servo_id`` still owes a reply from a try that timed out (it is dropped)."""
        count, expires = self.debts.pop(servo_id)
        if now > expires:
            return False
        if count > 1:
            self.debts[servo_id] = (count - 1, expires)
        self.stats.stale_replies += 1
        return True


SPIN_LEAD_S = 60e-6  # start polling this long before the last reply is due
SPIN_S = 300e-6  # poll at most this long, then sleep in select again


def _poll(fd: int, until: float) -> bytes | None:
    """Non-blocking reads until data comes or ``until`` passes (None)."""
    clock = time.monotonic
    while True:
        try:
            return os.read(fd, 4096)
        except BlockingIOError:
            if clock() >= until:
                return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc.args[-1]) if exc.args else str(exc)  # termios.error: (errno, message)


def tracking_decoder(decoder_cls: type, id_offset: int) -> Any:
    """A status decoder that also remembers which ids sent a frame with a bad checksum (``bad_ids``).

    Relies on the codec's decoder keeping the rejected frame at the front of its buffer (``_buf``)
    when ``_try_decode`` reports a checksum error.
    """

    class TrackingDecoder(decoder_cls):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__(status=True)
            self.bad_ids: set[int] = set()

        def _try_decode(self) -> Any:
            errors = self.checksum_errors
            result = super()._try_decode()
            if self.checksum_errors != errors:
                self.bad_ids.add(self._buf[id_offset])
            return result

    return TrackingDecoder()
