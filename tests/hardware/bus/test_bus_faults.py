"""What goes wrong on a bus: corrupt, dropped and late replies, dead and mismatched motors, error bits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from hardware import arms
from hardware.bus import DynamixelBus, FeetechBus, ServoFault, open_bus
from hardware.emulator import Emulator
from hardware.errors import (
    CorruptResponseError,
    MissingMotorsError,
    ModelMismatchError,
    NoResponseError,
    NoServosFoundError,
)

IDS = [1, 2, 3, 4, 5, 6]
MakeEmu = Callable[..., Emulator]


async def test_retries_recover_from_corrupt_replies(make_emulator: MakeEmu) -> None:
    emu = make_emulator("so101", faults="corrupt=0.15,seed=3")
    # a long latency margin: on a loaded machine a slow reply must not pass for a missing one
    async with open_bus(arms.SO101, emu.port, retries=6, latency_s=0.05) as bus:
        for _ in range(60):
            got = await bus.sync_read("Present_Position", IDS)
            assert set(got.values) == set(IDS)
            await bus.read(3, "Goal_Position")
        stats = bus.stats
    corrupted = emu.stats.corrupted
    assert corrupted > 5
    assert stats.corrupt_replies == corrupted  # every flipped byte is caught, none taken for missing
    assert stats.missing_replies == 0
    assert stats.retries >= 1 and stats.recovered >= 1
    assert stats.retries <= corrupted  # a sync read retries only what is missing, all at once
    assert sum(s.corrupt for s in stats.per_servo.values()) == corrupted
    assert sum(s.replies for s in stats.per_servo.values()) == 60 * 7


async def test_retries_recover_from_dropped_replies(make_emulator: MakeEmu) -> None:
    emu = make_emulator("koch", faults="drop=0.15,seed=5")
    async with open_bus(arms.KOCH, emu.port, retries=6, latency_s=0.02) as bus:
        for k in range(40):
            await bus.sync_write("Goal_Position", {i: 2000 + k for i in IDS})
            got = await bus.sync_read("Goal_Position", IDS)
            assert got.values == {i: 2000 + k for i in IDS}
        stats = bus.stats
    assert emu.stats.dropped > 5
    assert stats.missing_replies == emu.stats.dropped
    assert stats.timeouts >= 1 and stats.recovered >= 1 and stats.corrupt_replies == 0
    assert stats.bytes_tx > 0 and stats.bytes_rx > 0


async def test_a_late_reply_to_an_earlier_try_is_not_taken_for_the_new_one(
    make_emulator: MakeEmu, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hardware.bus.link as link_mod

    # 38400 baud: no reply to a READ can be complete within 3.7 ms of sending it
    emu = make_emulator("so101", baud=38_400, faults="late=1:10")  # every reply 10 ms late
    emu.servo(1).set("Goal_Position", 1234)  # torque off: the joint stays where it is
    assert abs(emu.servo(1).get("Present_Position") - 1234) > 10
    async with FeetechBus(emu.port, 38_400, retries=0) as bus:
        with pytest.raises(NoResponseError):  # ~9 ms timeout
            await bus.read(1, "Present_Position")
        await asyncio.sleep(0.02)  # its reply arrives now, after the timeout
        # as if it came just after the next request's input flush:
        monkeypatch.setattr(link_mod.termios, "tcflush", lambda fd, queue: None)
        bus.latency_s = 0.03
        reading = await bus.read(1, "Goal_Position")
        assert reading.value == 1234
        assert bus.stats.stale_replies == 1


async def test_sync_read_retries_only_the_missing_ids(make_emulator: MakeEmu) -> None:
    emu = make_emulator("so101", faults="dead=5")
    async with open_bus(arms.SO101, emu.port, retries=2, latency_s=0.02) as bus:
        with pytest.raises(NoResponseError) as info:
            await bus.sync_read("Present_Position", IDS)
        assert emu.stats.requests == 3
        # the retries asked id 5 alone: 1 full request (14 bytes) + 2 requests for one id (9 bytes)
        assert bus.stats.bytes_tx == 14 + 2 * 9
    err = info.value
    assert "id 5 (wrist_roll)" in str(err) and "sync read of Present_Position" in str(err)
    assert emu.port in str(err) and "3 tries" in str(err)
    assert err.ids == (5,)  # type: ignore[attr-defined]
    stats = bus.stats
    assert (stats.retries, stats.missing_replies, stats.per_servo[5].missing) == (2, 3, 3)
    assert stats.per_servo[1].missing == 0


async def test_dead_motor_is_named_by_read_and_verify(make_emulator: MakeEmu) -> None:
    emu = make_emulator("koch", faults="dead=3")
    async with open_bus(arms.KOCH, emu.port) as bus:
        started = time.monotonic()
        with pytest.raises(NoResponseError, match=r"id 3 \(elbow_flex\) did not answer a read of Present_Position"):
            await bus.read(3, "Present_Position")
        assert time.monotonic() - started < 0.2  # 3 tries of a few ms each
        with pytest.raises(MissingMotorsError) as info:
            await bus.verify(arms.KOCH)
        assert "id 3 (elbow_flex)" in str(info.value)
        assert info.value.missing == ("id 3 (elbow_flex)",)
        assert "found: id 1 (shoulder_pan)" in str(info.value)


async def test_verify_asks_a_silent_servo_again_before_calling_it_missing(make_emulator: MakeEmu) -> None:
    """One lost ping reply at connect (a loaded machine, a noisy cable) does not stop the arm connecting."""
    emu = make_emulator("so101")
    async with open_bus(arms.SO101, emu.port) as bus:
        real, lost = bus._w_ping, {5: 2}  # id 5 misses its first ping round and the first retry

        def flaky(servo_id: int):
            if lost.get(servo_id, 0) > 0:
                lost[servo_id] -= 1
                raise NoResponseError("a ping", f"id {servo_id}", emu.port, 1_000_000, 0.01, 3)
            return real(servo_id)

        bus._w_ping = flaky  # type: ignore[method-assign]
        found = await bus.verify(arms.SO101)
        assert sorted(found) == [1, 2, 3, 4, 5, 6] and lost[5] == 0


async def test_garbled_every_time_raises_corrupt_response(make_emulator: MakeEmu) -> None:
    emu = make_emulator("so101", faults="corrupt=1")
    async with open_bus(arms.SO101, emu.port, latency_s=0.05) as bus:  # no timeout on a loaded machine
        with pytest.raises(CorruptResponseError, match=r"id 2 \(shoulder_lift\) sent corrupt replies"):
            await bus.read(2, "Present_Position")
        assert bus.stats.corrupt_replies == 3


async def test_late_replies_cost_a_retry_not_a_failure(make_emulator: MakeEmu) -> None:
    emu = make_emulator("so101", faults="late=0.3:20,seed=2")
    async with open_bus(arms.SO101, emu.port, retries=4) as bus:
        for _ in range(10):
            before = time.monotonic()
            reading = await bus.read(1, "Present_Position")
            assert before <= reading.t <= time.monotonic()
        assert bus.stats.timeouts >= 1


async def test_scan_keeps_replies_that_come_after_their_timeout(make_emulator: MakeEmu) -> None:
    # every reply comes 6 ms late, after its own (~5 ms) timeout, during the next id's try
    emu = make_emulator("so101", faults="late=1:6")
    async with open_bus(arms.SO101, emu.port) as bus:
        assert await bus.scan(range(0, 10)) == {i: 777 for i in IDS}


async def test_model_mismatch(make_emulator: MakeEmu) -> None:
    emu = make_emulator("so101", faults="model=3:2825")
    async with open_bus(arms.SO101, emu.port) as bus:
        with pytest.raises(ModelMismatchError) as info:
            await bus.verify(arms.SO101)
    message = str(info.value)
    assert "id 3 (elbow_flex)" in message and "model number 2825" in message and "sts3215" in message


async def test_koch_leader_profile_on_a_follower_is_a_mismatch(koch_bus: DynamixelBus) -> None:
    with pytest.raises(ModelMismatchError, match=r"id 1 \(shoulder_pan\) is a xl430-w250"):
        await koch_bus.verify(arms.KOCH_LEADER)
    assert await koch_bus.verify(arms.KOCH) == {1: 1060, 2: 1060, 3: 1200, 4: 1200, 5: 1200, 6: 1200}


@pytest.mark.parametrize(("arm", "servo_baud"), [("so101", 500_000), ("koch", 57_600)])
async def test_wrong_baud_names_the_baud_the_servos_answer_at(
    make_emulator: MakeEmu, arm: str, servo_baud: int
) -> None:
    emu = make_emulator(arm, baud=servo_baud)
    profile = arms.arm(arm)
    async with open_bus(profile, emu.port, 1_000_000) as bus:
        started = time.monotonic()
        with pytest.raises(NoServosFoundError) as info:
            await bus.verify(profile)
        assert time.monotonic() - started < 2.0
        assert bus.baud == 1_000_000  # restored after the probe
    assert info.value.other_baud == servo_baud
    assert f"at {servo_baud} baud, not 1000000" in str(info.value)


async def test_feetech_error_bits_are_surfaced(make_emulator: MakeEmu) -> None:
    emu = make_emulator("so101", faults="voltage=4,overheat=2")
    emu.servo(2).set("Max_Temperature_Limit", 33)  # the overheat fault climbs 30 C/s from 30 C
    async with open_bus(arms.SO101, emu.port) as bus:
        got = await bus.sync_read("Present_Position", IDS)
        assert got.faults == {4: ServoFault.VOLTAGE}
        assert (await bus.read(4, "Present_Voltage")).faults == ServoFault.VOLTAGE
        assert (await bus.ping(4)).faults == ServoFault.VOLTAGE
        await bus.write(2, "Torque_Enable", 1)
        deadline = time.monotonic() + 3.0
        while ServoFault.OVERHEAT not in bus.faults.get(2, ServoFault.NONE):
            assert time.monotonic() < deadline, f"no overheat bit seen; faults {bus.faults}"
            await bus.sync_read("Present_Temperature", IDS)
            await asyncio.sleep(0.02)
        reading = await bus.sync_read("Present_Temperature", IDS)
        assert reading.faults[2] & ServoFault.OVERHEAT
        assert reading.values[2] > 33
        assert bus.faults[4] == ServoFault.VOLTAGE
        assert bus.faults[1] == ServoFault.NONE


async def test_dynamixel_alert_reads_hardware_error_status_once(make_emulator: MakeEmu) -> None:
    emu = make_emulator("koch", faults="voltage=5")
    async with open_bus(arms.KOCH, emu.port, latency_s=0.02) as bus:
        assert isinstance(bus, DynamixelBus)
        got = await bus.sync_read("Present_Position", IDS)
        assert got.faults == {5: ServoFault.ALERT | ServoFault.VOLTAGE}
        assert bus.hardware_error_status == {5: 0x01}
        requests = emu.stats.requests
        for _ in range(3):
            again = await bus.sync_read("Present_Position", IDS)
            assert again.faults == {5: ServoFault.ALERT | ServoFault.VOLTAGE}
        assert emu.stats.requests == requests + 3  # register 70 was read once, not on every reply
        assert (await bus.ping(5)).faults == ServoFault.ALERT | ServoFault.VOLTAGE
        assert (await bus.read(1, "Present_Position")).faults == ServoFault.NONE
        assert bus.faults[5] == ServoFault.ALERT | ServoFault.VOLTAGE


async def test_fault_changes_are_logged_once(make_emulator: MakeEmu) -> None:
    from structlog.testing import capture_logs

    emu = make_emulator("so101", faults="voltage=6")
    async with FeetechBus(emu.port) as bus:
        with capture_logs() as logs:
            for _ in range(5):
                await bus.sync_read("Present_Position", IDS)
    faults = [e for e in logs if e["event"] == "servo_fault"]
    assert len(faults) == 1
    assert faults[0]["servo"] == "id 6" and faults[0]["faults"] == "VOLTAGE"


async def test_a_broken_log_sink_does_not_break_the_bus(make_emulator: MakeEmu) -> None:
    import io

    import structlog

    closed = io.StringIO()
    closed.close()  # like a stream pytest closed after another test configured structlog with it
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=closed))
    emu = make_emulator("so101", faults="voltage=2")
    async with FeetechBus(emu.port) as bus:
        got = await bus.sync_read("Present_Position", IDS)  # logs the new fault: must not raise
    assert got.faults == {2: ServoFault.VOLTAGE}
