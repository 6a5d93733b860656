"""Fixtures for the emulator tests: started emulators and a raw pyserial client that speaks the codecs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import serial

from hardware.emulator import Emulator
from hardware.protocol import dynamixel as dxl
from hardware.protocol import feetech as ft
from hardware.protocol.common import Packet


class RawClient:
    """A bare pyserial client: send instruction frames, collect decoded status packets."""

    def __init__(self, port: str, baud: int, family: str) -> None:
        self.ser = serial.Serial(port, baud, timeout=0)
        self.family = family
        self.codec = ft if family == "feetech" else dxl

    def close(self) -> None:
        self.ser.close()

    def set_baud(self, baud: int) -> None:
        self.ser.baudrate = baud

    def send(self, frame: bytes) -> None:
        self.ser.reset_input_buffer()
        self.ser.write(frame)

    def collect(self, n: int = 1, timeout: float = 0.1) -> list[Packet]:
        """Status packets received until ``n`` have arrived or ``timeout`` seconds have passed."""
        decoder = self.codec.Decoder(status=True)
        packets: list[Packet] = []
        deadline = time.monotonic() + timeout
        while len(packets) < n and time.monotonic() < deadline:
            chunk = self.ser.read(4096)
            if chunk:
                packets += decoder.feed(chunk)
            else:
                time.sleep(0.0002)
        self.last_decoder = decoder
        return packets

    def raw(self, n_bytes: int, timeout: float = 0.1) -> bytes:
        """Raw bytes received until ``n_bytes`` have arrived or ``timeout`` seconds have passed."""
        out = b""
        deadline = time.monotonic() + timeout
        while len(out) < n_bytes and time.monotonic() < deadline:
            out += self.ser.read(n_bytes - len(out))
            time.sleep(0.0002)
        return out

    def transact(self, frame: bytes, n: int = 1, timeout: float = 0.1) -> list[Packet]:
        self.send(frame)
        return self.collect(n, timeout)

    def one(self, frame: bytes, timeout: float = 0.1) -> Packet:
        replies = self.transact(frame, 1, timeout)
        assert len(replies) == 1, f"expected one reply to {frame.hex(' ')}, got {replies}"
        return replies[0]

    def silent(self, frame: bytes, wait: float = 0.03) -> bool:
        """True when nothing at all comes back within ``wait`` seconds."""
        self.send(frame)
        return self.raw(1, wait) == b""


@pytest.fixture
def so101() -> Iterator[Emulator]:
    with Emulator("so101") as emu:
        yield emu


@pytest.fixture
def koch() -> Iterator[Emulator]:
    with Emulator("koch") as emu:
        yield emu


@pytest.fixture
def ft_client(so101: Emulator) -> Iterator[RawClient]:
    client = RawClient(so101.port, 1_000_000, "feetech")
    yield client
    client.close()


@pytest.fixture
def dxl_client(koch: Emulator) -> Iterator[RawClient]:
    client = RawClient(koch.port, 1_000_000, "dynamixel")
    yield client
    client.close()


def _wait_for(predicate, timeout: float = 3.0, interval: float = 0.01):
    """Poll ``predicate`` until it returns a truthy value; return it (or the last falsy value)."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


@pytest.fixture
def wait_for():
    return _wait_for


@pytest.fixture
def make_client() -> Iterator:
    """``make_client(port, baud, family)`` -> RawClient, closed at teardown."""
    clients: list[RawClient] = []

    def make(port: str, baud: int = 1_000_000, family: str = "feetech") -> RawClient:
        client = RawClient(port, baud, family)
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()
