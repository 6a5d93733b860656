"""`harmowam find-port`: which serial port is the arm's, found by unplugging and replugging its USB cable.

A state machine separate from its terminal UI (``ui_setup.py``), like ``setup_motors``:
``start()`` then ``step(answer)`` until a final ``Screen``. The port listing and the access check are
injectable, so tests can simulate an unplug/replug and a port without permission.

    START --Enter--> CONNECT (ports listed; "unplug it") --Enter--> which port disappeared?
          CONNECT_ALL ("plug it back") --Enter--> is it back (maybe renumbered)? access check -> DONE
    none / several disappeared, or it does not come back: PROBLEM (retry)

It shares ``Screen``, ``State`` and ``Answer`` with ``setup_motors`` (one UI runs both): here CONNECT
means "waiting for the unplug" and CONNECT_ALL "waiting for the replug".
"""

from __future__ import annotations

import errno
import grp
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from calibration.wizards.setup_screens import Answer, Screen, State


@dataclass(frozen=True, slots=True)
class PortInfo:
    device: str
    description: str = ""
    vid: int | None = None  # USB vendor and product ids, for the udev rule
    pid: int | None = None


def system_ports() -> list[PortInfo]:
    """The serial ports pyserial sees (serial.tools.list_ports)."""
    from serial.tools import list_ports

    return [PortInfo(p.device, "" if p.description in (None, "n/a") else p.description, p.vid, p.pid)
            for p in list_ports.comports()]


def open_error(path: str) -> OSError | None:
    """Why ``path`` cannot be opened for reading and writing (None: it can)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        return exc
    os.close(fd)
    return None


def permission_hint(port: PortInfo) -> list[str]:
    """The exact commands that give this user access to ``port`` (Linux)."""
    try:
        group = grp.getgrgid(os.stat(port.device).st_gid).gr_name
    except (OSError, KeyError):
        group = "dialout"
    if group == "root":  # the device node is root's: the usual serial group is dialout (uucp on Arch)
        group = "dialout"
    match = f'KERNEL=="{os.path.basename(port.device)}"'
    if port.vid is not None and port.pid is not None:
        match = f'ATTRS{{idVendor}}=="{port.vid:04x}", ATTRS{{idProduct}}=="{port.pid:04x}"'
    rule = f'SUBSYSTEM=="tty", {match}, MODE="0660", GROUP="{group}"'
    return [
        f"You have no permission to open {port.device}. Either:",
        f"  sudo usermod -aG {group} $USER      # then log out and back in (lasts)",
        f"  sudo chmod 666 {port.device}        # this session only (until it is replugged)",
        "or a udev rule (lasts, for this adapter):",
        f"  echo '{rule}' | sudo tee /etc/udev/rules.d/99-harmowam-arm.rules",
        "  sudo udevadm control --reload-rules && sudo udevadm trigger",
    ]


class FindPortWizard:
    def __init__(
        self,
        list_ports: Callable[[], Sequence[PortInfo | str]] = system_ports,
        *,
        check_access: Callable[[str], OSError | None] = open_error,
        settle_s: float = 3.0,
        poll_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._list = list_ports
        self.check_access = check_access
        self.settle_s, self.poll_s = settle_s, poll_s  # how long the OS may take to (un)register a port
        self._clock, self._sleep = clock, sleep
        self.state = State.START
        self.before: dict[str, PortInfo] = {}
        self.port: PortInfo | None = None  # the arm's port once found

    def ports(self) -> dict[str, PortInfo]:
        return {p.device: p for p in (q if isinstance(q, PortInfo) else PortInfo(q) for q in self._list())}

    def _wait_for(self, changed: Callable[[dict[str, PortInfo]], bool]) -> dict[str, PortInfo]:
        """List the ports until ``changed(ports)`` or ``settle_s`` passes (USB takes a moment)."""
        end = self._clock() + self.settle_s
        while True:
            now = self.ports()
            if changed(now) or self._clock() >= end:
                return now
            self._sleep(self.poll_s)

    # --- the machine ------------------------------------------------------------------------------

    def start(self) -> Screen:
        self.state = State.START
        return Screen(State.START, "Find the arm's serial port", (
            "Plug the arm's USB cable in (if it is not), then press Enter.",
        ), (Answer.CONTINUE, Answer.CANCEL))

    def step(self, answer: Answer) -> Screen:
        if answer is Answer.CANCEL:
            self.state = State.CANCELLED
            return Screen(State.CANCELLED, "find-port cancelled", ("Nothing was changed.",))
        s = self.state
        if (s is State.START and answer is Answer.CONTINUE) or (s is State.PROBLEM and answer is Answer.RETRY and self.port is None):
            return self._listed()
        if s is State.CONNECT and answer is Answer.CONTINUE:
            return self._unplugged()
        if (s is State.CONNECT_ALL and answer is Answer.CONTINUE) or (s is State.PROBLEM and answer is Answer.RETRY):
            return self._replugged()
        raise ValueError(f"answer {answer.value!r} does not fit state {s.value!r}")

    def _listed(self) -> Screen:
        self.before, self.port = self.ports(), None
        self.state = State.CONNECT
        now = ", ".join(sorted(self.before)) or "none"
        return Screen(State.CONNECT, "Unplug the arm", (
            f"Serial ports now: {now}.", "Unplug the arm's USB cable (from the computer or the adapter), then press Enter.",
        ), (Answer.CONTINUE, Answer.CANCEL))

    def _problem(self, title: str, lines: Sequence[str]) -> Screen:
        self.state = State.PROBLEM
        return Screen(State.PROBLEM, title, tuple(lines), (Answer.RETRY, Answer.CANCEL))

    def _unplugged(self) -> Screen:
        after = self._wait_for(lambda now: bool(self.before.keys() - now.keys()))
        gone = sorted(self.before.keys() - after.keys())
        if not gone:
            return self._problem("No port disappeared", (
                f"The ports are the same as before: {', '.join(sorted(after)) or 'none'}.",
                "Was the arm's cable plugged in when you pressed Enter the first time? Is its adapter a USB "
                "serial device (a bus-servo board enumerates as /dev/ttyACM* or /dev/ttyUSB*)?",
                "Plug it in, then retry (the ports are listed again, then you unplug it).",
            ))
        if len(gone) > 1:
            return self._problem("Several ports disappeared", (
                f"Gone: {', '.join(gone)}: more than one device was unplugged (a USB hub?).",
                "Plug everything back in, then retry and unplug only the arm's cable.",
            ))
        self.port = self.before[gone[0]]
        self.before = after
        self.state = State.CONNECT_ALL
        return Screen(State.CONNECT_ALL, f"The arm's port is {self.port.device}", (
            f"{self.port.device} disappeared{f' ({self.port.description})' if self.port.description else ''}.",
            "Plug the cable back in, then press Enter.",
        ), (Answer.CONTINUE, Answer.CANCEL))

    def _replugged(self) -> Screen:
        assert self.port is not None
        after = self._wait_for(lambda now: bool(now.keys() - self.before.keys()))
        new = sorted(after.keys() - self.before.keys())
        if not new:
            return self._problem("The port did not come back", (
                f"No new port after {self.settle_s:.0f} s. Check the cable is plugged in firmly, then retry.",
            ))
        lines = []
        if self.port.device in new:
            port = after[self.port.device]
            lines.append(f"{port.device} is back: it is the arm's port.")
        else:
            port = after[new[0]]
            lines.append(f"It came back as {port.device} (not {self.port.device}): ports are numbered in plug-in "
                         f"order, so use {port.device} now; a udev rule (below) gives a stable name.")
        self.port = port
        err = self.check_access(port.device)
        if err is not None and err.errno in (errno.EACCES, errno.EPERM):
            lines += permission_hint(port)
        elif err is not None:
            lines.append(f"{port.device} cannot be opened now: {err.strerror or err} (close any program using it).")
        else:
            lines.append(f"Use it as: --port {port.device}")
        self.state = State.DONE
        return Screen(State.DONE, f"The arm's port: {port.device}", tuple(lines))
