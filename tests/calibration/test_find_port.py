"""find-port state machine with a fake port lister (unplug/replug) and the permission hint."""

from __future__ import annotations

import errno
import os
import tempfile

import pytest

from calibration.wizards.find_port import FindPortWizard, PortInfo, open_error, permission_hint
from calibration.wizards.setup_motors import Answer, State


class FakePorts:
    def __init__(self, *ports: str | PortInfo) -> None:
        self.now = list(ports)
        self.calls = 0

    def __call__(self) -> list[str | PortInfo]:
        self.calls += 1
        return list(self.now)


def wizard(ports: FakePorts, access=lambda path: None, settle_s: float = 0.05) -> FindPortWizard:
    return FindPortWizard(ports, check_access=access, settle_s=settle_s, poll_s=0.01)


def test_unplug_then_replug_finds_the_port():
    ports = FakePorts("/dev/ttyS0", PortInfo("/dev/ttyACM0", "Waveshare bus servo adapter", 0x1A86, 0x55D3))
    w = wizard(ports)
    assert w.start().answers == (Answer.CONTINUE, Answer.CANCEL)
    screen = w.step(Answer.CONTINUE)
    assert screen.state is State.CONNECT and "/dev/ttyACM0" in screen.lines[0]
    ports.now = ["/dev/ttyS0"]  # unplugged
    screen = w.step(Answer.CONTINUE)
    assert screen.title == "The arm's port is /dev/ttyACM0"
    assert "Waveshare" in screen.lines[0] and "Plug the cable back in" in screen.lines[1]
    ports.now = ["/dev/ttyS0", "/dev/ttyACM0"]
    screen = w.step(Answer.CONTINUE)
    assert screen.state is State.DONE and screen.final
    assert screen.lines == ("/dev/ttyACM0 is back: it is the arm's port.", "Use it as: --port /dev/ttyACM0")


def test_a_port_that_comes_back_renumbered_is_named():
    ports = FakePorts("/dev/ttyACM0", "/dev/ttyUSB0")
    w = wizard(ports)
    w.start(), w.step(Answer.CONTINUE)
    ports.now = ["/dev/ttyUSB0"]
    w.step(Answer.CONTINUE)
    ports.now = ["/dev/ttyUSB0", "/dev/ttyACM1"]
    screen = w.step(Answer.CONTINUE)
    assert screen.state is State.DONE and w.port.device == "/dev/ttyACM1"
    assert "came back as /dev/ttyACM1 (not /dev/ttyACM0)" in screen.lines[0]


def test_the_port_list_is_polled_until_the_os_catches_up():
    ports = FakePorts("/dev/ttyACM0")
    w = FindPortWizard(ports, check_access=lambda p: None, settle_s=5.0, poll_s=0.0)
    w.start(), w.step(Answer.CONTINUE)
    calls = ports.calls

    def late() -> list[str]:  # the device disappears on the third listing
        n = ports.calls - calls
        ports.calls += 1
        return [] if n >= 2 else ["/dev/ttyACM0"]

    w._list = late
    screen = w.step(Answer.CONTINUE)
    assert screen.title == "The arm's port is /dev/ttyACM0"


def test_nothing_or_several_disappearing_is_a_problem_then_retry():
    ports = FakePorts("/dev/ttyACM0", "/dev/ttyACM1")
    w = wizard(ports)
    w.start(), w.step(Answer.CONTINUE)
    screen = w.step(Answer.CONTINUE)  # nothing unplugged
    assert screen.state is State.PROBLEM and screen.title == "No port disappeared"
    assert screen.answers == (Answer.RETRY, Answer.CANCEL)
    screen = w.step(Answer.RETRY)  # lists again, asks to unplug
    assert screen.state is State.CONNECT
    ports.now = []
    screen = w.step(Answer.CONTINUE)
    assert screen.state is State.PROBLEM and "/dev/ttyACM0, /dev/ttyACM1" in screen.lines[0]
    ports.now = ["/dev/ttyACM0", "/dev/ttyACM1"]
    w.step(Answer.RETRY)
    ports.now = ["/dev/ttyACM1"]
    assert w.step(Answer.CONTINUE).title == "The arm's port is /dev/ttyACM0"


def test_a_port_that_does_not_come_back_can_be_retried():
    ports = FakePorts("/dev/ttyACM0")
    w = wizard(ports)
    w.start(), w.step(Answer.CONTINUE)
    ports.now = []
    w.step(Answer.CONTINUE)
    screen = w.step(Answer.CONTINUE)  # still unplugged
    assert screen.state is State.PROBLEM and screen.title == "The port did not come back"
    ports.now = ["/dev/ttyACM0"]
    assert w.step(Answer.RETRY).state is State.DONE


def test_cancel_at_any_step():
    ports = FakePorts("/dev/ttyACM0")
    w = wizard(ports)
    w.start()
    screen = w.step(Answer.CANCEL)
    assert screen.state is State.CANCELLED and screen.final
    with pytest.raises(ValueError):
        w.step(Answer.YES)


def test_no_permission_gives_the_exact_commands():
    ports = FakePorts(PortInfo("/dev/ttyACM0", "", 0x1A86, 0x55D3))
    denied = lambda path: PermissionError(errno.EACCES, "Permission denied", path)  # noqa: E731
    w = wizard(ports, access=denied)
    w.start(), w.step(Answer.CONTINUE)
    ports.now = []
    w.step(Answer.CONTINUE)
    ports.now = [PortInfo("/dev/ttyACM0", "", 0x1A86, 0x55D3)]
    screen = w.step(Answer.CONTINUE)
    text = "\n".join(screen.lines)
    assert "no permission to open /dev/ttyACM0" in text
    assert "sudo usermod -aG dialout $USER" in text and "sudo chmod 666 /dev/ttyACM0" in text
    assert 'ATTRS{idVendor}=="1a86", ATTRS{idProduct}=="55d3"' in text and "udevadm control --reload-rules" in text
    assert "Use it as" not in text


def test_a_busy_port_is_not_a_permission_problem():
    ports = FakePorts("/dev/ttyACM0")
    busy = lambda path: OSError(errno.EBUSY, "Device or resource busy", path)  # noqa: E731
    w = wizard(ports, access=busy)
    w.start(), w.step(Answer.CONTINUE)
    ports.now = []
    w.step(Answer.CONTINUE)
    ports.now = ["/dev/ttyACM0"]
    text = "\n".join(w.step(Answer.CONTINUE).lines)
    assert "busy" in text.lower() and "usermod" not in text


def _as_nobody(fn, *args):
    """Run ``fn(*args)`` in a forked child with uid/gid 65534 (root bypasses file modes); its repr back."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            os.setgid(65534)
            os.setuid(65534)
            os.write(w, repr(fn(*args)).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    os.waitpid(pid, 0)
    return out


def test_a_real_path_without_permission_is_detected():
    """A real file at mode 000 (as a non-root user): the default access check sees EACCES; mode 666 passes."""
    folder = tempfile.mkdtemp()
    try:
        os.chmod(folder, 0o755)
        path = os.path.join(folder, "ttyACM0")
        open(path, "w").close()
        os.chmod(path, 0o000)
        check = _as_nobody if os.geteuid() == 0 else (lambda fn, *a: repr(fn(*a)))
        assert "Permission denied" in check(open_error, path)
        os.chmod(path, 0o666)
        assert check(open_error, path) == "None"
        hint = permission_hint(PortInfo(path))
        assert f'KERNEL=="ttyACM0"' in hint[4] and f"sudo chmod 666 {path}" in hint[2]
    finally:
        os.chmod(path, 0o600)
        os.remove(path)
        os.rmdir(folder)
