"""Telemetry: tick storage and its cap, the summary's numbers, summary.json/plot.png (also for a run with no
ticks), the cost of one tick, and the rerun recording read back from the .rrd file."""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import structlog
from PIL import Image

from harmowam_ctl.clock import FakeClock
from harmowam_ctl.config import ConfigError, build
from harmowam_ctl.telemetry import SOURCES, Telemetry, TelemetryConfig, TickRecord
from harmowam_ctl.types import Source

P = 0.01  # 100 Hz


def rec(i: int, *, t0: float = 1000.0, source: Source = Source.POLICY, late: float = 0.0002,
        compute: float = 0.001, present: np.ndarray | None = None, target: np.ndarray | None = None,
        **kw: object) -> TickRecord:
    t = t0 + i * P
    pos = np.full(6, 0.001 * i) if present is None else present
    return TickRecord(t_sched=t, t_start=t + late, t_end=t + late + compute, state_t=t + late / 2,
                      present=pos, target=pos if target is None else target,
                      source=source, **kw)  # type: ignore[arg-type]


def strict_json(path: Path) -> dict:
    def no_nan(c: str) -> None:
        raise AssertionError(f"{path.name} holds {c}")

    return json.loads(path.read_text(), parse_constant=no_nan)


def make(tmp_path: Path, clock: FakeClock | None = None, **cfg: object) -> tuple[Telemetry, FakeClock]:
    clock = clock or FakeClock(1000.0)
    return Telemetry(TelemetryConfig(out_dir=tmp_path / "run", **cfg), clock), clock  # type: ignore[arg-type]


# --- config --------------------------------------------------------------------------------------------------
def test_config_defaults_and_paths() -> None:
    c = TelemetryConfig()
    assert c.out_dir.parts[0] == "runs" and len(c.out_dir.name) == len("20260101-120000")
    assert c.rrd_path == c.out_dir / "run.rrd"
    assert c.max_ticks == 360_000 and c.plot and not c.rerun
    assert TelemetryConfig(rerun_path=Path("x.rrd")).rrd_path == Path("x.rrd")
    assert TelemetryConfig(out_dir=Path("runs/exp1")).name == "exp1"


@pytest.mark.parametrize(("values", "flag", "words"), [
    ({"max_ticks": 10}, "--max-ticks", "greater than or equal to 100"),
    ({"arm": "so102"}, "--arm", "so101"),
    ({"jpeg_quality": 0}, "--jpeg-quality", "greater than or equal to 1"),
    ({"colour": True}, "--colour", "Extra inputs"),
])
def test_config_errors_name_the_flag(values: dict, flag: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        build(TelemetryConfig, values)
    assert flag in str(e.value) and words in str(e.value)


# --- storage --------------------------------------------------------------------------------------------------
def test_ticks_are_stored_as_given_across_blocks(tmp_path: Path) -> None:
    tel, _ = make(tmp_path)
    n = 1000  # > the first blocks (256 + 512): the store grows without losing rows
    for i in range(n):
        requested = np.full(6, 9.0) if i % 7 == 0 else None
        tel.tick(rec(i, source=SOURCES[i % 3], reason=f"r{i % 4}", requested=requested,
                     filter_flags=frozenset({"velocity", "limit"}) if i % 5 == 0 else frozenset(),
                     e2e_s=0.05 if i % 10 == 0 else None, chunk_age_s=None))
    c = tel.columns()
    assert len(c) == n
    np.testing.assert_allclose(c.t_sched, 1000.0 + np.arange(n) * P)
    np.testing.assert_allclose(c.present[:, 3], 0.001 * np.arange(n), atol=1e-6)
    assert [SOURCES[k] for k in c.source[:6]] == [SOURCES[i % 3] for i in range(6)]
    assert [c.reasons[k] for k in c.reason[:5]] == ["r0", "r1", "r2", "r3", "r0"]
    assert np.isnan(c.requested[1]).all() and (c.requested[7] == 9.0).all()
    flagged = {c.flag_names[b] for b in range(len(c.flag_names)) if c.flags[5] >> b & 1}
    assert flagged == {"velocity", "limit"} and c.flags[1] == 0
    assert np.isfinite(c.e2e_s).sum() == 100 and np.isnan(c.chunk_age_s).all()


def test_summary_light_for_the_status_line(tmp_path: Path) -> None:
    tel, _ = make(tmp_path, max_ticks=400)
    assert tel.summary_light() == {"ticks": 0, "tick_hz": None, "faults": [], "events_count": 0}
    for i in range(300):  # the newest 100 ticks straddle two blocks
        tel.tick(rec(i, late=0.0 if i < 250 else 0.005))  # the last 50 run 5 ms late
    live = tel.summary_light()
    assert live["ticks"] == 300 and live["tick_hz"] == pytest.approx(99 / (99 * P + 0.005), rel=1e-5)
    for i in range(300, 700):
        tel.tick(rec(1000 + 2 * i))  # now every 20 ms
    tel.fault("x", "y", "hold")
    live = tel.summary_light()
    assert live["tick_hz"] == pytest.approx(50.0) and len(live["faults"]) == 1 and live["ticks"] == 700
    t = time.perf_counter()
    for _ in range(100):
        tel.summary_light()
    assert (time.perf_counter() - t) / 100 < 1e-3  # cheap enough for a 10 Hz status loop


def test_stored_values_are_copies(tmp_path: Path) -> None:
    tel, _ = make(tmp_path)
    pos = np.zeros(6)
    tel.tick(rec(0, present=pos, target=pos))
    pos[:] = 5.0  # the runtime reuses its buffer
    assert (tel.columns().present[0] == 0).all()


def test_cap_drops_the_oldest_half_and_keeps_counting(tmp_path: Path) -> None:
    tel, clock = make(tmp_path, max_ticks=100)
    for i in range(99):
        tel.tick(rec(i))
    assert len(tel.columns()) == 99
    tel.tick(rec(99))  # the 100th: the oldest 50 go
    c = tel.columns()
    assert len(c) == 50 and c.t_sched[0] == pytest.approx(1000.0 + 50 * P)
    for i in range(100, 251):
        tel.tick(rec(i))
    c = tel.columns()
    assert len(c) == 51  # drops at 150, 200, 250 ticks: rows 200..250 remain
    np.testing.assert_allclose(c.t_sched, 1000.0 + np.arange(200, 251) * P)
    clock.set(1000.0 + 251 * P)
    s = tel.summary()
    assert s["ticks"] == 251 and s["ticks_retained"] == 51
    assert s["time_by_source_s"]["policy"] == pytest.approx(251 * P)  # counted over the whole run


def test_bad_tick_inputs_raise(tmp_path: Path) -> None:
    tel, _ = make(tmp_path)
    with pytest.raises(ValueError, match="source must be one of"):
        tel.tick(rec(0, source="teleop"))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        tel.tick(rec(1, present=np.zeros(5)))
    with pytest.raises(ValueError, match="reason must be a str"):
        tel.tick(rec(2, reason=3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'predict' or 'act'"):
        tel.policy("plan", 0.0, 0.0, 0.1)  # type: ignore[arg-type]
    assert Source.POLICY.value == "policy"
    tel.tick(rec(3, source="policy"))  # type: ignore[arg-type]  # the plain value is accepted


# --- summary ----------------------------------------------------------------------------------------------------
def test_summary_numbers(tmp_path: Path) -> None:
    clock = FakeClock(999.5)
    tel, _ = make(tmp_path, clock, arm="so101", run_name="bench-1")
    slots = [k for k in range(350) if k != 51]  # slot 50 starts 12 ms late, so slot 51 is skipped
    for k in slots:
        src = Source.POLICY if k < 200 else (Source.HOLD if k < 300 else Source.HUMAN)
        late = 0.012 if k == 50 else 0.0002
        target = np.zeros(6)
        target[0] = 0.5 * (1000.0 + k * P + late - 1000.0)  # 0.5 rad/s
        target[2] = 0.02 if k >= 100 else 0.0  # one step: 2 rad/s for one tick
        tel.tick(rec(k, source=src, late=late, target=target, compute=0.002 if k == 60 else 0.001,
                     e2e_s=(0.06 + 0.001 * (k % 3)) if k % 10 == 0 else None, chunk_age_s=0.02,
                     filter_flags=frozenset({"velocity"}) if k < 30 else frozenset({"velocity", "stall"}) if k == 30
                     else frozenset()))
    for k in range(10):
        t = 1000.0 + k * 0.1
        tel.policy("predict", t, t, t + 0.03)
        tel.policy("act", t, t + 0.03, t + 0.04, gate=0.2 * (k % 2), expert="predictive" if k < 3 else "reactive")
    clock.set(1004.0)
    tel.fault("stale_frame", "front camera 0.4 s old", "hold")
    tel.event("transition", frm="active", to="safe-stopped")
    clock.set(1005.0)
    tel.close()
    s = tel.summary()
    assert s["run"] == "bench-1" and s["arm"] == "so101"
    assert s["duration_s"] == pytest.approx(5.5)
    assert s["ticks"] == 349 and s["tick_hz"] == pytest.approx(348 / 3.49, rel=1e-4)
    assert s["tick_period_nominal_ms"] == pytest.approx(10.0)
    assert s["tick_jitter_ms"]["p50"] == pytest.approx(0.2) and s["tick_jitter_ms"]["max"] == pytest.approx(12.0)
    assert s["tick_period_ms"]["p50"] == pytest.approx(10.0) and s["tick_period_ms"]["max"] == pytest.approx(21.8)
    assert s["tick_compute_ms"]["p50"] == pytest.approx(1.0) and s["tick_compute_ms"]["max"] == pytest.approx(2.0)
    assert s["overruns"] == 1 and s["deadline_misses"] == 1
    assert s["e2e_latency_ms"]["p50"] == pytest.approx(61.0) and s["e2e_samples"] == 35
    assert s["e2e_latency_ms"]["p99"] == pytest.approx(62.0)
    assert s["chunk_age_ms"]["p99"] == pytest.approx(20.0)
    assert s["policy"]["predict_ms"]["p50"] == pytest.approx(30.0)
    assert s["policy"]["act_ms"]["p99"] == pytest.approx(10.0)
    assert s["policy"]["policy_hz"] == pytest.approx(10.0) and s["policy"]["chunks"] == 10
    assert s["gate"]["mean"] == pytest.approx(0.1) and s["gate"]["fraction_predictive"] == pytest.approx(0.3)
    tbs = s["time_by_source_s"]
    assert tbs["policy"] == pytest.approx(2.0) and tbs["hold"] == pytest.approx(1.0)
    assert tbs["human"] == pytest.approx(0.5)
    assert s["filter_counts"] == {"velocity": 31, "stall": 1}
    v = s["max_velocity_rad_s"]
    assert v["shoulder_pan"] == pytest.approx(0.5, rel=1e-3)
    assert v["elbow_flex"] == pytest.approx(2.0, rel=1e-3)
    assert v["gripper"] == 0.0
    assert s["faults"] == [{"t": 1004.0, "name": "stale_frame", "detail": "front camera 0.4 s old",
                            "reaction": "hold"}]
    assert s["events_count"] == 2  # the fault is an event too
    json.dumps(s, allow_nan=False)


def test_summary_without_samples_uses_none(tmp_path: Path) -> None:
    tel, _ = make(tmp_path)
    tel.tick(rec(0, present=np.full(6, np.nan), target=np.full(6, np.nan)))
    s = tel.summary()
    assert s["e2e_latency_ms"] == {"p50": None, "p99": None}
    assert s["tick_hz"] is None and s["tick_period_ms"]["p50"] is None and s["gate"] is None
    assert s["policy"]["policy_hz"] is None and s["policy"]["act_ms"]["p50"] is None
    assert all(v is None for v in s["max_velocity_rad_s"].values())
    json.dumps(s, allow_nan=False)


def test_events_are_logged_and_kept(tmp_path: Path) -> None:
    tel, clock = make(tmp_path)
    with structlog.testing.capture_logs() as logs:
        tel.event("handover", to="human", reason="leader moved", event="x")
        clock.advance(1.0)
        tel.fault("bus_timeout", "no reply from id 3 (elbow_flex)", "safe stop")
    assert [e["event"] for e in logs] == ["handover", "fault"]
    assert logs[0]["to"] == "human" and logs[0]["event_"] == "x" and logs[1]["log_level"] == "warning"
    assert tel.events[1]["t"] == 1001.0 and tel.faults[0]["reaction"] == "safe stop"
    tel.event("transition", t=1000.5, to="active")  # the runtime may stamp the moment itself
    tel.fault("stall", "gripper", "hold", t=1000.7)
    assert tel.events[2]["t"] == 1000.5 and tel.faults[1]["t"] == tel.events[3]["t"] == 1000.7


# --- files -------------------------------------------------------------------------------------------------------
def test_write_summary_events_and_plot(tmp_path: Path) -> None:
    tel, clock = make(tmp_path)
    for i in range(5000):  # more than the plot draws: thinned
        tel.tick(rec(i, source=Source.POLICY if i % 1000 < 700 else Source.HOLD, e2e_s=0.07 if i % 20 == 0 else None,
                     requested=np.ones(6) if i % 2 else None))
        if i % 30 == 0:
            tel.policy("act", 1000.0 + i * P, 1000.0 + i * P, 1000.0 + i * P + 0.01, gate=0.5, expert="reactive")
    clock.set(1050.0)
    tel.fault("following_error", "elbow_flex 0.3 rad behind", "hold")
    paths = tel.write()
    assert set(paths) == {"summary", "events", "plot"}
    assert paths["summary"] == tmp_path / "run" / "summary.json"
    s = strict_json(paths["summary"])
    assert s["ticks"] == 5000 and s["faults"][0]["name"] == "following_error"
    assert json.loads(paths["events"].read_text().splitlines()[0])["kind"] == "fault"
    with Image.open(paths["plot"]) as im:
        assert im.format == "PNG" and im.size[0] > 800 and im.size[1] > 800
        px = np.asarray(im.convert("RGB")).reshape(-1, 3)
    for colour in ((0x2C, 0xA0, 0x2C), (0x9E, 0x9E, 0x9E)):  # the policy and hold bands are drawn
        assert (px == colour).all(axis=1).sum() > 5000, colour


def test_write_with_zero_ticks_and_nan(tmp_path: Path) -> None:
    tel, clock = make(tmp_path)
    clock.advance(0.3)
    tel.fault("connect", "no servo answered on /dev/ttyACM0", "abort: check power and cable")
    paths = tel.write(tmp_path / "elsewhere")
    s = strict_json(paths["summary"])
    assert s["ticks"] == 0 and s["duration_s"] == pytest.approx(0.3)
    assert s["tick_hz"] is None and s["tick_jitter_ms"]["max"] is None and s["overruns"] == 0
    assert s["faults"][0]["detail"] == "no servo answered on /dev/ttyACM0"
    assert paths["plot"].stat().st_size > 10_000

    tel2, _ = make(tmp_path / "nan")
    for i in range(20):  # NaN positions and chunk ages on some ticks must not break the plot or summary
        bad = np.full(6, np.nan) if i % 3 == 0 else None
        tel2.tick(rec(i, present=bad, chunk_age_s=math.nan if i % 2 else 0.01))
    s2 = strict_json(tel2.write()["summary"])
    assert s2["ticks"] == 20


def test_plot_can_be_turned_off(tmp_path: Path) -> None:
    tel, _ = make(tmp_path, plot=False)
    tel.tick(rec(0))
    paths = tel.write()
    assert "plot" not in paths and not (tmp_path / "run" / "plot.png").exists()


# --- cost of one tick ----------------------------------------------------------------------------------------------
def _tick_cost_us(tel: Telemetry, n: int = 20_000) -> float:
    recs = [rec(i, source=SOURCES[(i // 500) % 3], reason=("ok", "stale chunk", "leader moved")[i % 3],
                filter_flags=frozenset({"velocity"}) if i % 4 == 0 else frozenset(),
                requested=np.ones(6) if i % 2 else None, e2e_s=0.05 if i % 10 == 0 else None, chunk_age_s=0.01)
            for i in range(n)]
    costs = []
    for r in recs:
        t = time.perf_counter_ns()
        tel.tick(r)
        costs.append(time.perf_counter_ns() - t)
    return statistics.median(costs) / 1e3


def test_one_tick_costs_well_under_50_us(tmp_path: Path) -> None:
    tel, _ = make(tmp_path)
    cost = _tick_cost_us(tel)
    assert cost < 50.0, f"recording one tick took {cost:.1f} us (median)"


@dataclass
class CameraFrame:  # the attributes hardware.camera.Frame has
    image: np.ndarray
    t_capture: float


# --- rerun --------------------------------------------------------------------------------------------------------
def _entities(path: Path) -> dict[str, int]:
    from rerun.chunk import RrdReader

    rows: dict[str, int] = {}
    for chunk in RrdReader(path).stream():
        rows[chunk.entity_path] = rows.get(chunk.entity_path, 0) + chunk.num_rows
    return rows


def test_rerun_recording_holds_the_run(tmp_path: Path) -> None:
    tel, clock = make(tmp_path, rerun=True, arm="so101")
    rng = np.random.default_rng(0)
    cost = _tick_cost_us(tel, 2000)  # the recorder thread reads these in the background
    assert cost < 50.0, f"one tick took {cost:.1f} us with rerun on"
    for k in range(50):
        tel.frame("front", rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), t=1000.0 + k / 30)
    tel.frame("wrist", CameraFrame(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8), 1000.2))
    tel.imagined(1000.5, rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8))
    tel.imagined(1000.6, None)  # a policy without a world model
    tel.policy("act", 1000.5, 1000.52, 1000.56, gate=0.8, expert="predictive")
    tel.policy("predict", 1000.5, 1000.5, 1000.52)
    clock.advance(5.0)
    tel.fault("stale_frame", "front camera 0.4 s old", "hold")
    paths = tel.write()
    rrd = paths["rerun"]
    assert rrd == tmp_path / "run" / "run.rrd" and rrd.stat().st_size > 10_000
    rows = _entities(rrd)
    for name in ("shoulder_pan", "gripper"):
        assert rows[f"/joints/{name}/target"] == 2000 and rows[f"/joints/{name}/present"] == 2000
    assert rows["/joints/elbow_flex/requested"] == 1000  # only where it was given
    assert rows["/tick/period_ms"] == 1999 and rows["/latency/e2e_ms"] == 200
    assert rows["/control/source"] >= 4  # changes of source or reason only
    assert rows["/cameras/front"] >= 1 and rows["/cameras/wrist"] == 1 and all(rows[f"/imagined/{k}"] == 1 for k in range(3))
    assert "/imagined/3" not in rows
    assert rows["/policy/gate"] == 1 and rows["/policy/expert"] == 1 and rows["/policy/predict_ms"] == 1
    assert rows["/faults"] == 1 and "/safety/filter" in rows
    info = strict_json(paths["summary"])["rerun"]
    assert info["frames_logged"] + info["frames_dropped"] == 52  # 51 camera frames + 1 imagined set
    assert info["frames_logged"] == rows["/cameras/front"] + 2 and info["errors"] == 0
    assert info["ticks_logged"] == 2000 and info["ticks_missed"] == 0


def test_rerun_counts_ticks_the_cap_dropped_first(tmp_path: Path) -> None:
    tel, _ = make(tmp_path, rerun=True, max_ticks=100)
    tel._recorder._period = 3600.0  # the thread wakes only when closed: it misses most ticks
    for i in range(1000):
        tel.tick(rec(i))
    paths = tel.write()
    info = strict_json(paths["summary"])["rerun"]
    assert info["ticks_logged"] + info["ticks_missed"] == 1000
    assert info["ticks_missed"] >= 900
    assert _entities(paths["rerun"])["/joints/wrist_flex/target"] == info["ticks_logged"]
