"""Fixtures for the bus tests: emulated arms (the project's emulator, in this process) and open buses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import structlog

from hardware import arms
from hardware.bus import DynamixelBus, FeetechBus, open_bus
from hardware.emulator import Emulator


@pytest.fixture(autouse=True)
def _plain_structlog() -> None:
    """Other tests configure structlog for the CLI (a level filter, a stream pytest later closes)."""
    structlog.reset_defaults()


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Emulator]]:
    """``make_emulator(arm, baud=..., faults=...)`` -> a started Emulator, stopped after the test."""
    started: list[Emulator] = []

    def make(arm: str = "so101", **kw: object) -> Emulator:
        emu = Emulator(arm, **kw)  # type: ignore[arg-type]
        emu.start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def so101_emu(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator("so101")


@pytest.fixture
def koch_emu(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator("koch")


# The emulator of these fixtures runs in the test process: on a loaded machine its replies can come
# several ms late (it shares the GIL and the CPU), later than the bus's default 4 ms margin. Tests
# that compare values with the emulator use this margin so such a late reply is not a retry.
PATIENT_S = 0.02


@pytest.fixture
async def so_bus(so101_emu: Emulator) -> AsyncIterator[FeetechBus]:
    bus = open_bus(arms.SO101, so101_emu.port, latency_s=PATIENT_S)
    assert isinstance(bus, FeetechBus)
    async with bus:
        yield bus


@pytest.fixture
async def koch_bus(koch_emu: Emulator) -> AsyncIterator[DynamixelBus]:
    bus = open_bus(arms.KOCH, koch_emu.port, latency_s=PATIENT_S)
    assert isinstance(bus, DynamixelBus)
    async with bus:
        yield bus
