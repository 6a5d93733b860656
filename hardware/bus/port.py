"""Opening a serial port: say precisely why it cannot be used, and find the adapter's latency timer.

Everything here blocks; the bus calls it from its worker thread.
"""

from __future__ import annotations

import errno
import glob
import os
import stat

import serial

from hardware.errors import (
    NotASerialPortError,
    PortBusyError,
    PortError,
    PortNotFoundError,
    PortPermissionError,
)
from hardware.bus.logs import log

PORT_PATTERNS = ("/dev/ttyACM*", "/dev/ttyUSB*", "/dev/tty.usbmodem*", "/dev/tty.usbserial*")
SYSFS_USB_SERIAL = "/sys/bus/usb-serial/devices"  # tests point this elsewhere


class PortDisconnectedError(PortError):
    """The port failed while open (the USB adapter was unplugged, or the pty's other end went away)."""

    def __init__(self, port: str, detail: str) -> None:
        super().__init__(
            f"serial port {port} stopped working: {detail}",
            ["check the USB cable is plugged in, then open the bus again"],
        )
        self.port = port


def existing_ports() -> list[str]:
    return sorted(p for pattern in PORT_PATTERNS for p in glob.glob(pattern))


def _kind(mode: int) -> str | None:
    """What the path is when it cannot be a serial port; None for a character device."""
    if stat.S_ISCHR(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a device"


def _error_for_errno(port: str, err: int, detail: str) -> PortError:
    if err in (errno.ENOENT, errno.ENXIO, errno.ENODEV):
        return PortNotFoundError(port, existing_ports())
    if err in (errno.EACCES, errno.EPERM):
        return PortPermissionError(port)
    if err in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK):
        return PortBusyError(port, "another program has it open")
    if err in (errno.ENOTTY, errno.EINVAL):
        return NotASerialPortError(port, "a device that is not a terminal")
    return PortBusyError(port, detail)


def open_serial(port: str, baud: int) -> serial.Serial:
    """Validate ``port`` and open it raw, non-blocking and exclusively locked, at ``baud``.

    Raises PortNotFoundError, NotASerialPortError, PortPermissionError or PortBusyError.
    """
    try:
        mode = os.stat(port).st_mode
    except FileNotFoundError:
        raise PortNotFoundError(port, existing_ports()) from None
    except OSError as exc:
        raise _error_for_errno(port, exc.errno or 0, str(exc)) from None
    kind = _kind(mode)
    if kind is not None:
        raise NotASerialPortError(port, kind)
    # Probe once ourselves: pyserial reports a non-tty (e.g. /dev/null) without an errno.
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise _error_for_errno(port, exc.errno or 0, str(exc)) from None
    try:
        if not os.isatty(fd):
            raise NotASerialPortError(port, "a device that is not a terminal")
    finally:
        os.close(fd)
    ser = serial.Serial()
    ser.port = port
    ser.baudrate = baud
    ser.timeout = 0
    ser.write_timeout = 0
    ser.exclusive = True  # flock: a second bus on the same port gets PortBusyError
    try:
        ser.open()
    except serial.SerialException as exc:
        raise _error_for_errno(port, exc.errno or 0, str(exc)) from None
    except ValueError as exc:  # pyserial: baud rate not supported by the OS
        raise PortBusyError(port, f"baud rate {baud} refused: {exc}") from None
    return ser


def ftdi_latency_ms(port: str) -> int | None:
    """The FTDI latency timer (ms) of ``port`` when it is a usb-serial device, else None."""
    names = {os.path.basename(port), os.path.basename(os.path.realpath(port))}
    for name in sorted(names):
        path = os.path.join(SYSFS_USB_SERIAL, name, "latency_timer")
        try:
            with open(path) as f:
                value = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if value > 1:
            log(
                "warning",
                "ftdi_latency_timer_high",
                port=port,
                latency_ms=value,
                fix=f"echo 1 | sudo tee {path}  (or the udev rule ATTR{{latency_timer}}=\"1\")",
            )
        return value
    return None
