"""Teleop: the take-over detector (explicit times), the latest-value slot, Teleop.poll staleness, and
LeaderArm against a scripted fake bus and the in-process emulator (so101-leader, koch-leader)."""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np
import pytest
import structlog
from structlog.testing import capture_logs

from hardware import arms
from hardware.bus import PortDisconnectedError, SyncReading, open_bus
from hardware.emulator import Emulator, KinematicMotion
from hardware.errors import CorruptResponseError, MissingMotorsError
from hardware.protocol import dynamixel as dxl
from hardware.protocol import feetech as ft
from harmowam_ctl.config import ConfigError, build
from harmowam_ctl.slots import Slot
from harmowam_ctl.teleop import LeaderArm, TakeoverDetector, Teleop, TeleopConfig
from harmowam_ctl.types import JointState

ELBOW = 2
PATIENT_S = 0.02  # the in-process emulator can answer a few ms late on a loaded machine


@pytest.fixture(autouse=True)
def _plain_structlog() -> None:
    structlog.reset_defaults()


class TickConverter:
    """Trivial ticks -> radians: 2048 = 0, 4096 ticks per turn, ids in order."""

    def __init__(self, ids: tuple[int, ...] = (1, 2, 3, 4, 5, 6)) -> None:
        self.ids = ids

    def positions_to_radians(self, values: dict[int, int]) -> np.ndarray:
        return np.array([(values[i] - 2048) * 2 * math.pi / 4096 for i in self.ids])


def rad(ticks: float) -> float:
    return ticks * 2 * math.pi / 4096


def pose(**joints: float) -> np.ndarray:
    out = np.zeros(6)
    for name, v in joints.items():
        out[arms.JOINT_NAMES.index(name)] = v
    return out


# --- config ---------------------------------------------------------------------------------------


def test_config_defaults_and_mapping() -> None:
    cfg = TeleopConfig()
    assert (cfg.engage_rad, cfg.release, cfg.still_s, cfg.rate_hz, cfg.max_age_s, cfg.max_consecutive_errors) == (
        0.12, "key", 1.5, 100.0, 0.1, 5)
    assert cfg.joint_scale == dict.fromkeys(arms.JOINT_NAMES, 1.0)
    cfg = TeleopConfig(joint_scale={"gripper": 2.0, "wrist_roll": -1.0}, joint_offset={"gripper": 0.1})
    out = cfg.to_follower(np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]))
    np.testing.assert_allclose(out, [0.1, 0.2, 0.3, 0.4, -0.5, 1.3])


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"release": "maybe"}, "'key' or 'still'"),
        ({"joint_scale": {"elbow": 2.0}}, "allowed: shoulder_pan"),
        ({"joint_scale": {"gripper": 0.0}}, "non-zero"),
        ({"joint_offset": {"gripper": float("nan")}}, "finite"),
        ({"engage_rad": 0.0}, "greater than 0"),
        ({"rate_hz": 5.0, "max_age_s": 0.1}, "one read period"),
        ({"still_s": 0.05}, "shorter than still_s"),
        ({"bogus": 1}, "Extra inputs"),
    ],
)
def test_config_rejects_bad_values(values: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        build(TeleopConfig, values)
    assert needle in str(err.value)
    assert str(err.value).startswith("--")  # names the flag


# --- the detector ---------------------------------------------------------------------------------


def test_engage_threshold_both_sides_and_directions() -> None:
    for sign in (1.0, -1.0):
        det = TakeoverDetector()
        assert not det.update(0.0, pose()).active
        s = det.update(0.01, pose(elbow_flex=sign * 0.11))
        assert not s.active and not s.changed and s.target is None
        s = det.update(0.02, pose(elbow_flex=sign * 0.119))
        assert not s.active
        s = det.update(0.03, pose(elbow_flex=sign * 0.14))
        assert s.active and s.changed
        assert s.reason == "leader moved: elbow_flex 0.14 rad"
        np.testing.assert_allclose(s.target, pose(elbow_flex=sign * 0.14))
        s = det.update(0.04, pose(elbow_flex=sign * 0.15))
        assert s.active and not s.changed  # changed only on the flip


def test_engage_names_the_joint_that_moved_most() -> None:
    det = TakeoverDetector(TeleopConfig(engage_rad=0.2))
    det.update(0.0, pose())
    s = det.update(0.01, pose(shoulder_pan=0.1, gripper=-0.25))
    assert s.active and s.reason == "leader moved: gripper 0.25 rad"


def test_no_trigger_from_a_leader_left_displaced_at_start() -> None:
    det = TakeoverDetector()
    start = np.array([0.9, -1.2, 1.4, 0.3, -2.0, 1.1])  # far from zero everywhere
    s = det.update(5.0, start)
    assert not s.active and not s.changed
    for k in range(1, 50):
        s = det.update(5.0 + k * 0.01, start + 0.05 * np.sin(k))  # hand resting on it
        assert not s.active
    assert det.update(6.0, start + pose(wrist_flex=0.13)).active


def test_key_toggles_and_reference_moves_to_the_release_pose() -> None:
    det = TakeoverDetector()
    det.update(0.0, pose())
    s = det.update(0.1, pose(), key_toggle=True)
    assert s.active and s.changed and s.reason == "key t"
    s = det.update(0.2, pose(shoulder_lift=0.8))  # human drives far away
    assert s.active and not s.changed
    np.testing.assert_allclose(s.target, pose(shoulder_lift=0.8))
    s = det.update(0.3, pose(shoulder_lift=0.8), key_toggle=True)
    assert not s.active and s.changed and s.reason == "key t" and s.target is None
    # left at 0.8: no re-trigger there, only on a new displacement from it
    assert not det.update(0.4, pose(shoulder_lift=0.85)).active
    s = det.update(0.5, pose(shoulder_lift=0.93))
    assert s.active and s.reason.startswith("leader moved: shoulder_lift")


def test_key_release_works_in_still_mode_and_key_mode_ignores_stillness() -> None:
    det = TakeoverDetector(TeleopConfig(release="still"))
    det.update(0.0, pose())
    det.update(0.01, pose(), key_toggle=True)
    s = det.update(0.02, pose(), key_toggle=True)
    assert not s.active and s.reason == "key t"

    det = TakeoverDetector(TeleopConfig(release="key"))
    det.update(0.0, pose())
    assert det.update(0.01, pose(elbow_flex=0.3)).active
    for k in range(1, 1000):  # 10 s held still
        assert det.update(0.01 + k * 0.01, pose(elbow_flex=0.3)).active


def _drive(det: TakeoverDetector, t0: float, t1: float, fn, dt: float = 0.01):
    """Update at dt steps over [t0, t1) with pose fn(t); return the first releasing state and its time."""
    n = round((t1 - t0) / dt)
    for k in range(n):
        t = t0 + k * dt
        s = det.update(t, fn(t))
        if s.changed and not s.active:
            return s, t
    return None, None


def test_still_release_timing() -> None:
    cfg = TeleopConfig(release="still", still_s=1.5, still_rad_s=0.05)
    det = TakeoverDetector(cfg)
    det.update(0.0, pose())
    assert det.update(0.01, pose(elbow_flex=0.2)).active
    # the human moves at 0.3 rad/s until t = 2, then holds: no release while moving
    moving = lambda t: pose(elbow_flex=0.2 + 0.3 * min(t, 2.0) - 0.003)  # noqa: E731
    s, t = _drive(det, 0.02, 2.0, moving)
    assert s is None and det.active
    s, t = _drive(det, 2.0, 6.0, moving)
    assert s is not None and s.reason.startswith("leader still 1.5")
    assert 2.0 + 1.5 - 1e-9 <= t <= 2.0 + 1.5 + cfg.speed_window_s + 0.02
    # released where it was held: resting there does not re-engage
    held = moving(3.0)
    assert not det.update(t + 0.5, held).active
    assert det.reference is not None and np.allclose(det.reference, held)


def test_still_release_tolerates_encoder_quantisation_but_not_slow_motion() -> None:
    cfg = TeleopConfig(release="still", still_s=1.0, still_rad_s=0.05)
    det = TakeoverDetector(cfg)
    det.update(0.0, pose())
    det.update(0.01, pose(), key_toggle=True)
    one_tick = rad(1)
    jitter = lambda t: pose(wrist_flex=one_tick * ((round(t * 100) * 7) % 3 - 1))  # noqa: E731
    s, t = _drive(det, 0.02, 3.0, jitter)
    assert s is not None and 1.0 <= t <= 1.2

    det = TakeoverDetector(cfg)
    det.update(0.0, pose())
    det.update(0.01, pose(), key_toggle=True)
    slow = lambda t: pose(shoulder_pan=0.08 * t)  # noqa: E731  above still_rad_s: still moving
    s, _ = _drive(det, 0.02, 5.0, slow)
    assert s is None and det.active


def test_detector_rejects_bad_input() -> None:
    det = TakeoverDetector()
    with pytest.raises(ValueError, match="6 finite radians"):
        det.update(0.0, np.zeros(5))
    with pytest.raises(ValueError, match="6 finite radians"):
        det.update(0.0, pose(gripper=float("nan")))
    det.update(1.0, pose())
    with pytest.raises(ValueError, match="time went back"):
        det.update(0.5, pose())


# --- slot and Teleop.poll -------------------------------------------------------------------------


def _js(t: float, p: np.ndarray) -> JointState:
    return JointState(t=t, positions=p)


def test_poll_stale_reading_hands_back_and_retakes_reference() -> None:
    tele = Teleop(None, TeleopConfig(max_age_s=0.1))
    s = tele.poll(10.0, key_toggle=True)
    assert not s.active and s.reason == "leader reading stale (no reading yet)"
    tele.slot.put(_js(10.0, pose()))
    assert not tele.poll(10.01).active
    tele.slot.put(_js(10.02, pose(elbow_flex=0.5)))
    s = tele.poll(10.03)
    assert s.active and s.changed and s.t == 10.02
    s = tele.poll(10.02 + 0.099)
    assert s.active  # still fresh
    s = tele.poll(10.02 + 0.15)  # the leader stopped publishing
    assert not s.active and s.changed and s.target is None
    assert s.reason.startswith("leader reading stale (150 ms old")
    assert not tele.poll(10.3, key_toggle=True).active  # no take-over without leader data
    # data returns with the leader still displaced: that pose is the new reference, no jump to it
    tele.slot.put(_js(10.4, pose(elbow_flex=0.5)))
    s = tele.poll(10.41)
    assert not s.active and not s.changed
    tele.slot.put(_js(10.42, pose(elbow_flex=0.65)))
    assert tele.poll(10.43).active


async def test_teleop_run_without_leader_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="needs a LeaderArm"):
        await Teleop(None).run()


# --- LeaderArm on a scripted bus ------------------------------------------------------------------


class InstantClock:
    """A clock whose sleeps return at once, moving time to the deadline (no real waiting)."""

    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t

    async def sleep_until(self, t: float) -> None:
        self.t = max(self.t, t)
        await asyncio.sleep(0)


class ScriptedBus:
    """Only what a reader may use; any write method would be an AttributeError. ``script`` holds
    'ok', 'corrupt' or 'unplug' per sync read of Present_Position (then 'ok' forever)."""

    def __init__(self, clock: InstantClock, script: list[str], ticks: int = 2048) -> None:
        self.profile, self.port, self.clock = arms.SO101_LEADER, "/dev/fake", clock
        self.script, self.ticks, self.reads = list(script), ticks, 0
        self.opened = self.closed = 0

    async def open(self) -> None:
        self.opened += 1

    async def close(self) -> None:
        self.closed += 1

    async def verify(self) -> dict[int, int]:
        return {}

    async def sync_read(self, register: str, ids) -> SyncReading:
        if register == "Torque_Enable":
            return SyncReading(dict.fromkeys(ids, 0), self.clock.now())
        self.reads += 1
        what = self.script.pop(0) if self.script else "ok"
        if what == "corrupt":
            raise CorruptResponseError("a sync read of Present_Position", "id 3 (elbow_flex)", self.port, 3)
        if what == "unplug":
            raise PortDisconnectedError(self.port, "device reports readiness to read but returned no data")
        return SyncReading(dict.fromkeys(ids, self.ticks + self.reads), self.clock.now())


async def _run_until(leader: LeaderArm, slot: Slot[JointState], n_reads: int) -> asyncio.Task:
    task = asyncio.create_task(leader.run(slot))
    for _ in range(10_000):
        if task.done() or leader.bus.reads >= n_reads:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0)
    return task


async def test_isolated_read_errors_do_not_stop_the_leader() -> None:
    clock = InstantClock()
    script = ["ok", "corrupt", "ok", "corrupt", "corrupt", "corrupt", "corrupt", "ok", "ok"]
    bus = ScriptedBus(clock, script)
    leader = LeaderArm(bus, TickConverter(), clock=clock)  # type: ignore[arg-type]
    slot: Slot[JointState] = Slot()
    with capture_logs() as logs:
        task = await _run_until(leader, slot, 20)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert leader.errors == 5 and leader.consecutive_errors == 0
    assert leader.reads == bus.reads - 5 == slot.version
    assert sum(e["event"] == "leader_read_failed" for e in logs) == 5
    state = slot.latest()
    assert state is not None and state.t <= clock.now()
    np.testing.assert_allclose(state.positions, rad(bus.reads))  # the newest reading, in radians
    # paced at rate_hz: 100 Hz -> 10 ms apart in clock time
    assert clock.t == pytest.approx(100.0 + 0.01 * bus.reads, abs=0.011)


async def test_consecutive_read_errors_end_the_leader_with_a_note() -> None:
    clock = InstantClock()
    bus = ScriptedBus(clock, ["ok"] + ["corrupt"] * 3)
    leader = LeaderArm(bus, TickConverter(), TeleopConfig(max_consecutive_errors=3), clock=clock)  # type: ignore[arg-type]
    slot: Slot[JointState] = Slot()
    with pytest.raises(CorruptResponseError) as err:
        await asyncio.wait_for(leader.run(slot), 5.0)
    assert "3 leader reads in a row failed" in "\n".join(err.value.__notes__)
    assert leader.errors == 3 and slot.version == 1


async def test_unplugged_port_ends_the_leader_at_once() -> None:
    clock = InstantClock()
    bus = ScriptedBus(clock, ["ok", "unplug"])
    leader = LeaderArm(bus, TickConverter(), clock=clock)  # type: ignore[arg-type]
    with pytest.raises(PortDisconnectedError):
        await asyncio.wait_for(leader.run(Slot()), 5.0)
    assert bus.reads == 2


async def test_bad_converter_output_counts_as_a_failed_read() -> None:
    class Broken:
        def positions_to_radians(self, values: dict[int, int]) -> np.ndarray:
            return np.full(6, np.nan)

    clock = InstantClock()
    bus = ScriptedBus(clock, [])
    leader = LeaderArm(bus, Broken(), TeleopConfig(max_consecutive_errors=2), clock=clock)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="check the leader's calibration"):
        await asyncio.wait_for(leader.run(Slot()), 5.0)
    assert leader.errors == 2


def test_leader_needs_six_ids() -> None:
    clock = InstantClock()
    bus = ScriptedBus(clock, [])
    with pytest.raises(ValueError, match="6 servos"):
        LeaderArm(bus, TickConverter(), ids=(1, 2, 3))  # type: ignore[arg-type]
    bus.profile = None  # type: ignore[assignment]
    with pytest.raises(ValueError, match="pass ids="):
        LeaderArm(bus, TickConverter())  # type: ignore[arg-type]


# --- LeaderArm on the emulator --------------------------------------------------------------------

START = [2048.0, 2100.0, 1900.0, 2048.0, 2300.0, 2000.0]
READS_ONLY = {
    "so101-leader": {ft.Instruction.PING, ft.Instruction.READ, ft.Instruction.SYNC_READ},
    "koch-leader": {dxl.Instruction.PING, dxl.Instruction.READ, dxl.Instruction.SYNC_READ},
}


def _recording_emulator(arm: str, **kw: object) -> tuple[Emulator, list[int]]:
    emu = Emulator(arm, motion=KinematicMotion(START), **kw)  # type: ignore[arg-type]
    seen: list[int] = []
    handle = emu.protocol.handle

    def record(packet, servos, now):  # type: ignore[no-untyped-def]
        seen.append(packet.code)
        return handle(packet, servos, now)

    emu.protocol.handle = record  # type: ignore[method-assign]
    emu.start()
    return emu, seen


def _expected(emu: Emulator) -> np.ndarray:
    return TickConverter().positions_to_radians({i: emu.servo(i).get("Present_Position") for i in range(1, 7)})


async def _until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


@pytest.mark.parametrize("arm", ["so101-leader", "koch-leader"])
async def test_leader_follows_the_hand_and_never_writes(arm: str) -> None:
    emu, seen = _recording_emulator(arm)
    try:
        goals = {i: emu.servo(i).get("Goal_Position") for i in range(1, 7)}
        profile = arms.arm(arm)
        leader = LeaderArm(open_bus(profile, emu.port, latency_s=PATIENT_S), TickConverter())
        tele = Teleop(leader)
        await tele.open()
        try:
            assert leader.torque_on_ids == ()
            first = await leader.read()
            np.testing.assert_allclose(first.positions, _expected(emu))
            assert abs(first.positions[1] - rad(2100 - 2048)) < rad(2)
            task = asyncio.create_task(tele.run())
            assert await _until(lambda: tele.slot.version >= 3)
            assert not tele.poll(time.monotonic()).active  # rests at START: the reference
            emu.motion.move_by_hand(ELBOW, 120)  # ~0.18 rad
            assert await _until(lambda: tele.poll(time.monotonic()).active)
            state = tele.poll(time.monotonic())
            assert state.reason.startswith("leader moved: elbow_flex 0.18")
            np.testing.assert_allclose(tele.slot.latest().positions, _expected(emu), atol=1e-12)  # type: ignore[union-attr]
            v0, t_start = tele.slot.version, time.monotonic()
            await asyncio.sleep(0.3)
            rate = (tele.slot.version - v0) / (time.monotonic() - t_start)
            assert 10 < rate < 150  # about 100 Hz; wide margins for a shared machine
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            await tele.close()
        assert set(seen) <= READS_ONLY[arm], f"non-read instructions on the wire: {sorted(set(seen))}"
        sync_read = ft.Instruction.SYNC_READ if arm.startswith("so") else dxl.Instruction.SYNC_READ
        assert seen.count(sync_read) > 5
        for i in range(1, 7):
            assert emu.servo(i).get("Torque_Enable") == 0
            assert emu.servo(i).get("Goal_Position") == goals[i]
        assert leader.errors == 0
    finally:
        emu.stop()


@pytest.mark.parametrize("arm", ["so101-leader", "koch-leader"])
async def test_corrupt_replies_do_not_stop_the_leader(arm: str) -> None:
    emu, seen = _recording_emulator(arm, faults="corrupt=0.2")
    try:
        leader = LeaderArm(open_bus(arms.arm(arm), emu.port, latency_s=PATIENT_S), TickConverter())
        slot: Slot[JointState] = Slot()
        await leader.open()
        try:
            task = asyncio.create_task(leader.run(slot))
            assert await _until(lambda: slot.version >= 40 or task.done(), timeout=10.0)
            emu.motion.move_by_hand(0, -200)
            v = slot.version
            assert await _until(lambda: slot.version >= v + 5 or task.done(), timeout=10.0)
            assert not task.done(), task.exception() if task.done() else None
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            await leader.close()
        assert emu.stats.corrupted > 0 and leader.bus.stats.corrupt_replies > 0
        np.testing.assert_allclose(slot.latest().positions, _expected(emu))  # type: ignore[union-attr]
        assert set(seen) <= READS_ONLY[arm]
    finally:
        emu.stop()


async def test_open_reports_missing_motors_and_a_stiff_leader() -> None:
    emu, seen = _recording_emulator("so101-leader", faults="dead=4")
    try:
        leader = LeaderArm(open_bus(arms.SO101_LEADER, emu.port, latency_s=PATIENT_S), TickConverter())
        with pytest.raises(MissingMotorsError, match="wrist_flex"):
            await leader.open()
        assert not leader.bus.is_open  # closed again on failure
    finally:
        emu.stop()

    emu, seen = _recording_emulator("koch-leader")
    try:
        emu.servo(2).set("Torque_Enable", 1)  # a previous program left torque on
        leader = LeaderArm(open_bus(arms.KOCH_LEADER, emu.port, latency_s=PATIENT_S), TickConverter())
        with capture_logs() as logs:
            async with leader:
                assert leader.torque_on_ids == (2,)
        assert any(e["event"] == "leader_torque_on" and e["ids"] == [2] for e in logs)
        assert set(seen) <= READS_ONLY["koch-leader"]  # warned, never switched it off itself
        assert emu.servo(2).get("Torque_Enable") == 1
    finally:
        emu.stop()
