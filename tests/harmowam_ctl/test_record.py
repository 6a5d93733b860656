"""``harmowam record``: the episode logic on its own (fake clock, fake sink), then whole recordings
against the simulated arm (``--sim``: MuJoCo arm behind the emulated bus, simulated cameras) with an
emulated leader arm moved by the test, read back with LeRobot's ``LeRobotDataset``.

The leader emulator is built inside ``harmowam_ctl.setup.session``; ``LeaderMotions`` stands in for
its motion model so the test can move the leader's joints "by hand" while the recording runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hardware.emulator import KinematicMotion
from harmowam_ctl import cli, runconfig
from harmowam_ctl import setup as setup_mod
from harmowam_ctl.config import ConfigError
from harmowam_ctl.keyboard import Intent, parse_keys
from harmowam_ctl.record import Recording, RecordConfig
from harmowam_ctl.record_episodes import EpisodeRecorder, Phase, RecordKeys
from harmowam_ctl.record_writer import META_FILE, DatasetSink, record_features
from harmowam_ctl.telemetry import SOURCES
from harmowam_ctl.types import JointState, Source

torch.set_num_threads(1)

# Quick stops, and watchdogs relaxed: these tests are about recording (the watchdogs have their own tests in
# test_runtime.py), and the simulator shares this process with the runtime on a machine that may be busy.
QUICK_STOP = ["safe_stop.move_to_rest=false", "safe_stop.hold_s=0.05", "watchdogs.bus.deadline_s=1.0",
              "watchdogs.bus.max_failed_ticks=20", "watchdogs.loop_lag.deadline_s=0.5", "watchdogs.camera.deadline_s=2.0",
              "watchdogs.following.grace_s=2.0", "teleop.max_consecutive_errors=50"]
FPS, EP_S = 30, 1.0
# The simulated world in this process: starting a world process takes seconds per session, and the
# simulator's process is not what these tests are about (one CLI test below runs the default).
SIM_OPTIONS = {"mode": "inprocess"}


# --- the episode logic, without a runtime ---------------------------------------------------------------


class FakeSink:
    def __init__(self, max_frames: int | None = None) -> None:
        self.frames: list[dict[str, Any]] = []
        self.events: list[tuple[str, Any]] = []
        self.error: BaseException | None = None
        self.max_frames = max_frames

    def frame(self, frame: dict[str, Any], nbytes: int) -> bool:
        if self.max_frames is not None and len(self.frames) >= self.max_frames:
            return False
        self.frames.append(frame)
        self.events.append(("frame", frame))
        return True

    def save(self, info: dict[str, Any]) -> None:
        self.events.append(("save", info))

    def discard(self, why: str) -> None:
        self.events.append(("discard", why))


class Cam:
    def __init__(self) -> None:
        self.frame: Any = None

    def latest(self) -> Any:
        return self.frame


class Img:
    def __init__(self, value: int) -> None:
        self.image = np.full((4, 5, 3), value, dtype=np.uint8)


def make_recorder(*, budget: int = 2, reset_s: float = 0.5, rerecord: bool = True, sink: FakeSink | None = None,
                  cam: Cam | None = None) -> tuple[EpisodeRecorder, dict[str, Any]]:
    box: dict[str, Any] = {"t": 100.0, "stopping": False, "stops": [], "keys": RecordKeys(), "sink": sink or FakeSink()}
    box["cam"] = cam if cam is not None else Cam()
    if cam is None:
        box["cam"].frame = Img(7)
    rec = EpisodeRecorder(
        box["sink"], fps=FPS, episode_s=EP_S, reset_s=reset_s, budget=budget, cameras={"front": box["cam"]},
        task="do it", keys=box["keys"], now=lambda: box["t"], stopping=lambda: box["stopping"],
        request_stop=box["stops"].append, rerecord_in_session=rerecord,
    )
    return rec, box


def tick(rec: EpisodeRecorder, box: dict[str, Any], source: Source = Source.POLICY, dt: float = 0.01) -> None:
    box["t"] += dt
    q = np.full(6, box["t"] - 100.0)
    box["keys"].intents()  # what the runtime's _keys does every tick: record intents go to the recorder
    rec.on_tick(JointState(t=box["t"] - 0.001, positions=q), q + 0.5, source)


def test_frames_follow_the_fps_grid_and_the_tick_state() -> None:
    rec, box = make_recorder(budget=1)
    for k in range(200):
        tick(rec, box, Source.HUMAN if 50 <= k < 80 else Source.POLICY)
    sink = box["sink"]
    assert [e[0] for e in sink.events].count("save") == 1
    assert len(sink.frames) == FPS * EP_S  # 45 grid points in 1.5 s, one frame each
    ts = np.array([f["t_monotonic"][0] for f in sink.frames])
    assert np.all(np.diff(ts) > 0.02) and np.all(np.diff(ts) < 0.05)
    for f in sink.frames:  # the frame carries that tick's state and command, and who drove it
        np.testing.assert_allclose(f["action"], f["observation.state"] + 0.5, atol=1e-6)
        assert f["intervention"][0] == (f["control_source"][0] == SOURCES.index(Source.HUMAN))
        assert f["observation.images.front"].shape == (4, 5, 3) and f["task"] == "do it"
    info = next(e[1] for e in sink.events if e[0] == "save")
    human = sum(f["intervention"][0] for f in sink.frames)
    assert info["interventions"] == 1 and info["intervention_frames"] == human and 8 <= human <= 11
    assert info["ended_by"] == "duration" and info["missed_frames"] == 0
    assert rec.phase is Phase.DONE and rec.outcome == "done" and len(box["stops"]) == 1


def test_a_stalled_loop_skips_grid_points_instead_of_inventing_frames() -> None:
    rec, box = make_recorder(budget=1)
    for _ in range(20):
        tick(rec, box)
    tick(rec, box, dt=0.2)  # the loop was blocked for 200 ms: 6 grid points passed
    for _ in range(200):
        tick(rec, box)
    info = next(e[1] for e in box["sink"].events if e[0] == "save")
    assert info["missed_frames"] == 5  # the late tick gives one frame, the 5 before it are missing
    assert len(box["sink"].frames) + info["missed_frames"] == FPS * EP_S


def test_a_stall_across_the_end_of_an_episode_keeps_its_length() -> None:
    rec, box = make_recorder(budget=1)
    for _ in range(90):
        tick(rec, box)
    tick(rec, box, dt=0.15)  # 0.89 s into the episode -> 1.04 s: past the end and its last 3 grid points
    info = next(e[1] for e in box["sink"].events if e[0] == "save")
    assert info["missed_frames"] == 2  # the late tick gives the last grid point; the two before it are missing
    assert len(box["sink"].frames) + info["missed_frames"] == FPS * EP_S


def test_keys_next_saves_early_and_rerecord_discards_then_records_again() -> None:
    rec, box = make_recorder(budget=2, reset_s=0.3)
    for _ in range(30):
        tick(rec, box)
    box["keys"].push(Intent.RERECORD)
    tick(rec, box)
    assert rec.phase is Phase.RESET and box["sink"].events[-1][0] == "discard"
    t_reset = box["t"]
    while rec.phase is Phase.RESET:
        tick(rec, box)
    assert box["t"] - t_reset == pytest.approx(0.3, abs=0.011)  # nothing recorded during the reset
    n_before = len(box["sink"].frames)
    for _ in range(50):
        tick(rec, box)
    box["keys"].push(Intent.NEXT_EPISODE)
    tick(rec, box)
    save = box["sink"].events[-1]
    assert save[0] == "save" and save[1]["ended_by"] == "key n" and 0.45 < save[1]["duration_s"] < 0.55
    assert len(box["sink"].frames) - n_before == 16  # 0.51 s at 30 fps
    assert rec.phase is Phase.RESET and rec.number == 1  # the discarded one does not count
    box["keys"].push(Intent.NEXT_EPISODE)  # n during the reset starts the next episode at once
    tick(rec, box)
    assert rec.phase is Phase.RECORD


def test_a_stop_nobody_asked_for_drops_the_episode_in_progress() -> None:
    rec, box = make_recorder(budget=3)
    for _ in range(20):
        tick(rec, box)
    box["stopping"] = True
    tick(rec, box)
    assert box["sink"].events[-1][0] == "discard" and rec.outcome == "aborted" and box["stops"] == []
    n = len(box["sink"].events)
    tick(rec, box)
    assert len(box["sink"].events) == n  # done: nothing more


def test_a_writer_error_stops_the_run() -> None:
    rec, box = make_recorder(budget=3)
    tick(rec, box)
    box["sink"].error = OSError("disk full")
    tick(rec, box)
    assert rec.outcome == "error" and "disk full" in box["stops"][0]


def test_recording_waits_for_every_camera() -> None:
    cam = Cam()
    rec, box = make_recorder(budget=1, cam=cam)
    for _ in range(10):
        tick(rec, box)
    assert rec.phase is Phase.WAIT and not box["sink"].frames
    cam.frame = Img(3)
    tick(rec, box)
    assert rec.phase is Phase.RECORD and len(box["sink"].frames) == 1


def test_a_discard_ends_a_sim_session() -> None:
    rec, box = make_recorder(budget=1, rerecord=False)
    tick(rec, box)
    box["keys"].push(Intent.RERECORD)
    tick(rec, box)
    assert rec.outcome == "discarded" and box["stops"] and rec.number == 0


def test_sink_queue_is_bounded_and_never_blocks(tmp_path: Path) -> None:
    sink = DatasetSink(tmp_path / "ds", "local/ds", 30, record_features({}), "so101_follower", "create",
                       run_info={}, max_queue_mb=1.0)
    frame = {"x": np.zeros(400_000, dtype=np.uint8)}
    t0 = time.perf_counter()
    results = [sink.frame(frame, 400_000) for _ in range(5)]  # no writer thread: nothing drains
    assert time.perf_counter() - t0 < 0.05
    assert results == [True, True, False, False, False] and sink.dropped == 3
    info: dict[str, Any] = {}
    sink.save(info)
    assert info["dropped_frames"] == 3 and sink.dropped == 0


def test_record_keys_and_arrows() -> None:
    assert parse_keys(b"nNrR") == [Intent.NEXT_EPISODE] * 2 + [Intent.RERECORD] * 2
    assert parse_keys(b"\x1b[C\x1b[D\x1bOC") == [Intent.NEXT_EPISODE, Intent.RERECORD, Intent.NEXT_EPISODE]
    assert parse_keys(b"\x1b[1;5C\x1b[A") == []  # modified arrows, other arrows: nothing
    keys = RecordKeys()
    keys.push(Intent.TAKEOVER_TOGGLE)
    keys.push(Intent.NEXT_EPISODE)
    assert keys.intents() == [Intent.TAKEOVER_TOGGLE]  # the runtime gets its own keys only
    assert list(keys.record) == [Intent.NEXT_EPISODE]


# --- whole recordings on the simulated arm ---------------------------------------------------------------


class LeaderMotions(KinematicMotion):
    """The emulated leader's motion model, remembered so the test can move it by hand."""

    made: list[LeaderMotions] = []

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        LeaderMotions.made.append(self)

    async def glide(self, joint: int, ticks: float, seconds: float, steps: int = 15) -> None:
        for _ in range(steps):
            self.move_by_hand(joint, ticks / steps)
            await asyncio.sleep(seconds / steps)


@pytest.fixture
def leader(monkeypatch: pytest.MonkeyPatch) -> type[LeaderMotions]:
    LeaderMotions.made = []
    monkeypatch.setattr(setup_mod, "KinematicMotion", LeaderMotions)
    return LeaderMotions


def run_config(tmp_path: Path, **flags: Any) -> Any:
    base = {"sim": True, "status": False, "keyboard": False, "telemetry": {"out_dir": str(tmp_path / "run"), "plot": False}}
    return runconfig.load(None, {**base, **flags}, QUICK_STOP)


def rec_config(out: Path, **kw: Any) -> RecordConfig:
    # the test cameras are a few pixels wide: PNG (the AV1 encoder needs >= 32 px; the video default is tested apart)
    return RecordConfig(out=out, **{"episodes": 1, "episode_s": EP_S, "fps": FPS, "video": False, **kw})


def units_of(rt: Any) -> Any:
    """The run's radians -> LeRobot-units converter (what the writer applied)."""
    from calibration.units import UnitsConverter, lerobot_units

    arm = rt.p.arm
    return UnitsConverter(lerobot_units(arm.profile.lerobot_type), arm.cal, arm.profile.family)


async def record(cfg: Any, rec: RecordConfig, scenario: Callable[[Recording], Awaitable[Any]] | None = None,
                 timeout: float = 60.0) -> tuple[dict[str, Any], Recording, list[Any]]:
    """Run a recording, with ``scenario(recording)`` beside it; returns (result, recording, runtimes)."""
    runtimes: list[Any] = []

    @contextlib.asynccontextmanager
    async def session(c: Any, **kw: Any) -> AsyncIterator[Any]:
        async with setup_mod.session(c, sim_options=SIM_OPTIONS, **kw) as rt:
            runtimes.append(rt)
            yield rt

    r = Recording(cfg, rec, session_factory=session)
    side = asyncio.create_task(scenario(r)) if scenario else None
    try:
        result = await asyncio.wait_for(r.run(), timeout)
    finally:
        if side is not None:
            if side.done() and side.exception() is not None:
                raise side.exception()  # type: ignore[misc]
            side.cancel()
    return result, r, runtimes


async def until(cond: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def recording_phase(r: Recording, phase: Phase, number: int | None = None) -> Callable[[], bool]:
    return lambda: r.recorder is not None and r.recorder.phase is phase and (number is None or r.recorder.number == number)


def load(out: Path) -> Any:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(f"local/{out.name}", root=out, video_backend="pyav")


def columns(ds: Any, episode: int | None = None) -> dict[str, np.ndarray]:
    hf = ds.hf_dataset.with_format("numpy")
    cols = {k: np.asarray(hf[k]) for k in ("observation.state", "action", "intervention", "control_source",
                                             "t_monotonic", "episode_index", "frame_index")}
    if episode is not None:
        keep = cols["episode_index"] == episode
        cols = {k: v[keep] for k, v in cols.items()}
    return cols


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def meta(out: Path) -> dict[str, Any]:
    return json.loads((out / META_FILE).read_text())


async def test_dagger_recording_flags_the_human_stretch_and_stores_the_commands_sent(tmp_path: Path, leader: Any) -> None:
    out = tmp_path / "ds"
    cfg = run_config(tmp_path, policy="scripted", leader_arm="so101-leader", leader_sim=True)
    marks: dict[str, float] = {}

    async def human(r: Recording) -> None:
        await until(recording_phase(r, Phase.RECORD), "the episode to start")
        await asyncio.sleep(0.3)
        marks["move"] = time.monotonic()
        await leader.made[-1].glide(0, 250, 0.15)  # 0.38 rad on the base joint: past engage_rad
        await until(lambda: r.rt.source is Source.HUMAN, "the human to take over", 3.0)
        await asyncio.sleep(0.4)
        marks["key"] = time.monotonic()
        r.keys.push(Intent.TAKEOVER_TOGGLE)  # the t key: hand back to the policy

    result, r, rts = await record(cfg, rec_config(out, episode_s=1.5), human)
    assert result["saved"] == 1 and result["complete"]
    ds = load(out)
    assert ds.num_episodes == 1 and ds.fps == FPS
    assert set(ds.meta.camera_keys) == {"observation.images.front", "observation.images.wrist"}
    item = ds[0]
    assert tuple(item["observation.images.front"].shape) == (3, 96, 96)
    assert item["task"] == r.rt.p.task == "Pick up the cube and place it on the plate."
    c = columns(ds)
    info = meta(out)["episodes"][0]
    # every grid point is a frame or a counted miss; a loaded 2-core machine misses some (13 of 45 seen), not most
    assert len(c["t_monotonic"]) + info["missed_frames"] == FPS * 1.5 and len(c["t_monotonic"]) >= FPS * 1.5 / 2
    # intervention is 1 exactly on the frames the human drove: one stretch, from the leader's move to the key
    iv = c["intervention"].ravel()
    src = c["control_source"].ravel()
    assert np.array_equal(iv == 1, src == SOURCES.index(Source.HUMAN))
    idx = np.flatnonzero(iv)
    # ~0.4 s of human control is ~12 frames at 30 fps; a loaded machine misses a few (7 seen): margin, not luck
    assert idx.size >= 4 and np.all(np.diff(idx) == 1), iv
    t = c["t_monotonic"].ravel()
    assert marks["move"] <= t[idx[0]] < marks["move"] + 0.6
    assert t[idx[-1]] <= marks["key"] + 0.05 and t[idx[-1] + 1] >= marks["key"] - 0.05
    assert (src[: idx[0]] == SOURCES.index(Source.POLICY)).any()  # the policy drove before the take-over
    # after the hand-back: hold while the policy re-plans from the present state, then the policy
    assert set(src[idx[-1] + 1:]) <= {SOURCES.index(Source.HOLD), SOURCES.index(Source.POLICY)}
    assert info["interventions"] == 1 and info["intervention_frames"] == idx.size
    # every frame is one servo tick: its measured joints and the command sent (the runtime's own telemetry)
    tel = rts[0].p.telemetry.columns()
    rows = {float(st): k for k, st in enumerate(tel.state_t)}
    conv = units_of(rts[0])  # the dataset is in LeRobot's units (so_follower: degrees, gripper 0..100)
    action_rad, state_rad = conv.to_radians(c["action"]), conv.to_radians(c["observation.state"])
    for k, ts in enumerate(t):
        row = rows[float(ts)]
        np.testing.assert_allclose(action_rad[k], tel.target[row].astype(np.float32), atol=1e-5)
        np.testing.assert_allclose(state_rad[k], tel.present[row], atol=1e-5)
        assert SOURCES[int(tel.source[row])] is SOURCES[int(src[k])]
    np.testing.assert_allclose(c["action"][:, :5], np.degrees(action_rad[:, :5]) * 4096 / 4095, atol=1e-3)
    assert np.max(np.abs(action_rad - state_rad)) < 0.36  # the safety filter's step bound held


async def test_pure_teleop_discard_rerecords_the_same_scene(tmp_path: Path, leader: Any) -> None:
    out = tmp_path / "ds"
    cfg = run_config(tmp_path, leader_arm="so101-leader", leader_sim=True, seed=5)

    async def operator(r: Recording) -> None:
        await until(recording_phase(r, Phase.RECORD), "the first episode")
        await leader.made[-1].glide(1, -200, 0.1)
        await asyncio.sleep(0.3)
        r.keys.push(Intent.RERECORD)  # r: throw this one away
        await until(lambda: len(leader.made) == 2 and recording_phase(r, Phase.RECORD)(), "the second try")
        await leader.made[-1].glide(1, -200, 0.1)

    result, r, rts = await record(cfg, rec_config(out), operator)
    assert result["saved"] == 1 and result["discarded"] == 1, result["sessions"]
    assert [s["outcome"] for s in result["sessions"]] == ["discarded", "done"]
    assert [s["seed"] for s in result["sessions"]] == [5, 5]  # the same scene again
    ds = load(out)
    assert ds.num_episodes == 1
    c = columns(ds)
    assert len(c["t_monotonic"]) + meta(out)["episodes"][0]["missed_frames"] == FPS * EP_S
    assert c["t_monotonic"].min() > rts[1].t_active  # only the second session's frames
    src = c["control_source"].ravel()
    assert set(src) <= {SOURCES.index(Source.HUMAN), SOURCES.index(Source.HOLD)}  # no policy: hold or human
    assert c["intervention"].ravel().sum() == (src == SOURCES.index(Source.HUMAN)).sum() > 10


async def test_ctrl_c_mid_episode_keeps_the_episodes_saved_before(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    cfg = run_config(tmp_path, policy="scripted")

    async def ctrl_c(r: Recording) -> None:
        await until(recording_phase(r, Phase.RECORD, number=1), "the second episode")
        await asyncio.sleep(0.4)
        os.kill(os.getpid(), signal.SIGINT)  # the runtime's handler: a safe stop

    result, r, rts = await record(cfg, rec_config(out, episodes=3, episode_s=0.6), ctrl_c)
    assert result["saved"] == 1 and not result["complete"] and result["outcome"] == "aborted"
    assert rts[-1].stopping.cause == "signal SIGINT"
    ds = load(out)
    assert ds.num_episodes == 1 and ds.num_frames == len(columns(ds)["t_monotonic"])
    m = meta(out)
    assert m["runs"][-1]["interrupted"] and m["runs"][-1]["saved"] == 1
    assert [s["outcome"] for s in m["runs"][-1]["sessions"]] == ["done", "aborted"]
    assert not (out / "images").exists() or not any((out / "images").rglob("*.png"))  # the partial one is gone


def test_existing_output_needs_resume_or_overwrite_and_nothing_else_is_deleted(tmp_path: Path, capsys: Any) -> None:
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    out = tmp_path / "ds"
    args = ["record", "--sim", "--policy", "scripted", "--episode-s", "0.3", "--no-status", "--no-keyboard",
            *sum((["--set", s] for s in QUICK_STOP), [])]
    assert cli.main([*args, "--out", str(other), "--overwrite"]) == 2  # not a dataset: never deleted
    assert "never deleted" in capsys.readouterr().err and (other / "keep.txt").read_text() == "mine"
    cfg = run_config(tmp_path, policy="scripted")
    asyncio.run(record(cfg, rec_config(out, episode_s=0.3)))
    before = tree_digest(out)
    base = [*args, "--out", str(out)]
    assert cli.main(base) == 2  # holds a dataset: neither --resume nor --overwrite
    assert "--resume" in capsys.readouterr().err
    assert cli.main([*base, "--resume", "--overwrite"]) == 2
    assert cli.main([*base, "--resume", "--fps", "15"]) == 2  # a resume must match the dataset
    assert "recorded at 30 fps" in capsys.readouterr().err
    assert tree_digest(out) == before  # nothing deleted or changed by the refusals
    asyncio.run(record(cfg.model_copy(update={"seed": 1}), rec_config(out, episode_s=0.3, resume=True)))
    ds = load(out)
    assert ds.num_episodes == 2 and sorted(set(columns(ds)["episode_index"].tolist())) == [0, 1]
    assert len(meta(out)["runs"]) == 2
    first = np.asarray(ds.hf_dataset.with_format("numpy")["t_monotonic"])
    capsys.readouterr()
    assert cli.main([*base, "--overwrite", "--json"]) == 0  # the command as users run it (world process)
    assert json.loads(capsys.readouterr().out)["saved"] == 1
    ds = load(out)
    assert ds.num_episodes == 1 and len(meta(out)["runs"]) == 1
    assert np.asarray(ds.hf_dataset.with_format("numpy")["t_monotonic"]).min() > first.max()


@pytest.mark.parametrize("extra, field", [
    (["--sim", "--duration", "3"], "--duration"),
    (["--sim"], "--leader-arm"),  # no policy and no leader: nobody drives
    (["--sim", "--policy", "scripted", "--fps", "200"], "--fps"),
    (["--sim", "--policy", "scripted", "--fps", "60", "--rate", "50"], "--fps"),
    (["--port", "/dev/null", "--calibration", "x", "--policy", "synthetic"], "--task-text"),
    (["--sim", "--policy", "scripted", "--episodes", "0"], "--episodes"),
])
def test_bad_options_name_the_flag_and_record_nothing(tmp_path: Path, capsys: Any, extra: list[str], field: str) -> None:
    out = tmp_path / "ds"
    assert cli.main(["record", "--out", str(out), "--no-status", *extra]) == 2
    assert field in capsys.readouterr().err
    assert not out.exists()


# --- a real arm's flow: one session, a reset between episodes (emulated bus, fake cameras: runtime_harness) ----


def harness_session(rig: Any) -> Any:
    @contextlib.asynccontextmanager
    async def session(cfg: Any, *, on_tick: Any = None) -> AsyncIterator[Any]:
        own = rig.rt.p.on_tick

        def both(*a: Any) -> None:
            own(*a)
            on_tick(*a)

        rig.rt.p.on_tick = both
        yield rig.rt

    return session


async def test_real_arm_flow_records_all_episodes_in_one_session_with_resets(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from runtime_harness import Rig

    out = tmp_path / "ds"
    cfg = runconfig.load(None, {"port": "/dev/null", "policy": "synthetic", "status": False, "keyboard": False}, QUICK_STOP)
    rec = rec_config(out, episodes=2, episode_s=0.5, reset_s=0.3, task_text="Wave.")
    rig = Rig(tmp_path, duration_s=None, cameras=1, overrides={"safe_stop": {"hold_s": 0.05, "move_to_rest": False}})
    marks: dict[str, float] = {}

    async def operator(r: Recording) -> None:
        await until(recording_phase(r, Phase.RECORD, number=0), "the first episode")
        await asyncio.sleep(0.2)
        r.keys.push(Intent.RERECORD)
        await until(recording_phase(r, Phase.RESET), "the reset after the discard")
        marks["reset1"] = time.monotonic()

    async with rig:
        r = Recording(cfg, rec, session_factory=harness_session(rig))
        side = asyncio.create_task(operator(r))
        result = await asyncio.wait_for(r.run(), 30)
        await side
    assert result["saved"] == 2 and result["discarded"] == 1 and result["complete"]
    assert len(result["sessions"]) == 1 and result["sessions"][0]["outcome"] == "done"
    assert rig.rt.stopping.cause == "recording: 2 episode(s) recorded"
    ds = load(out)
    assert ds.num_episodes == 2 and ds.meta.robot_type == "so_follower"  # LeRobot 0.6.1's name, as lerobot-record
    assert tuple(ds[0]["observation.images.front"].shape) == (3, 6, 8) and ds[0]["task"] == "Wave."
    c = columns(ds)
    t0, t1 = (c["t_monotonic"][c["episode_index"] == e].ravel() for e in (0, 1))
    for t, info in zip((t0, t1), meta(out)["episodes"]):
        assert len(t) + info["missed_frames"] == 15
    assert t0.min() > marks["reset1"] + 0.25  # the discarded try is not in the dataset; the reset is not recorded
    assert t1.min() - t0.max() > 0.3  # a reset between the episodes, unrecorded
    assert (c["control_source"].ravel() != SOURCES.index(Source.HUMAN)).all() and not c["intervention"].any()

    # the same dataset cannot be resumed with other cameras: an error naming them, nothing changed
    before = tree_digest(out)
    rig2 = Rig(tmp_path, duration_s=None, cameras=2)
    async with rig2:
        r2 = Recording(cfg, rec.model_copy(update={"resume": True}), session_factory=harness_session(rig2))
        with pytest.raises(ConfigError, match="observation.images.cam1"):
            await r2.run()
        assert rig2.rt.lifecycle.state.value == "disconnected"  # never connected, never activated
    assert tree_digest(out) == before


async def test_a_simulated_recording_is_what_lerobot_record_writes(tmp_path: Path) -> None:
    """The defaults: cameras as AV1 videos, robot_type so_follower, <joint>.pos in LeRobot's units (degrees,
    gripper 0..100 through the run's calibration), no units key; LeRobot reads it back."""
    out = tmp_path / "ds"
    cfg = run_config(tmp_path, policy="scripted")
    rec = RecordConfig(out=out, episodes=1, episode_s=0.6, fps=FPS)  # video: the default
    result, r, rts = await record(cfg, rec)
    assert result["saved"] == 1
    ds = load(out)
    assert ds.meta.robot_type == "so_follower"
    for cam in ("front", "wrist"):
        assert ds.features[f"observation.images.{cam}"]["dtype"] == "video"
        assert tuple(ds[0][f"observation.images.{cam}"].shape)[0] == 3  # decoded by LeRobot
    for key in ("observation.state", "action"):
        assert ds.features[key]["names"][0] == "shoulder_pan.pos" and "units" not in ds.features[key]
    c = columns(ds)
    conv = units_of(rts[0])
    grip = c["observation.state"][:, 5]
    assert 0.0 <= grip.min() and grip.max() <= 100.0
    tel = rts[0].p.telemetry.columns()  # the runtime's own record of each tick, in radians
    rows = {float(st): k for k, st in enumerate(tel.state_t)}
    for k, ts in enumerate(c["t_monotonic"].ravel()):
        np.testing.assert_allclose(conv.to_radians(c["observation.state"][k]), tel.present[rows[float(ts)]], atol=1e-5)
    info = meta(out)
    assert info["units"]["action"] == "lerobot" and info["units"]["calibration"]["gripper"]["id"] == 6
