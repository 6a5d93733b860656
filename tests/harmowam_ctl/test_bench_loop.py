"""``harmowam bench loop``: its config, and the synchronous baseline on the out-of-process world."""

from __future__ import annotations

import asyncio

import pytest

from harmowam_ctl.bench import loop
from harmowam_ctl.cli import main
from harmowam_ctl.config import ConfigError, build


def test_sim_options_follow_the_mode():
    assert build(loop.BenchLoopConfig, {}).sim_options() == {
        "mode": "process", "world_nice": 0, "camera_nice": 0, "world_cpus": None}
    cfg = build(loop.BenchLoopConfig, {"sim_mode": "inprocess", "world_nice": 5})
    assert cfg.sim_options() == {"mode": "inprocess"}
    assert build(loop.BenchLoopConfig, {"world_cpus": [1]}).sim_options()["world_cpus"] == (1,)


def test_bad_lever_values_name_the_field():
    with pytest.raises(ConfigError, match="sim.mode"):
        build(loop.BenchLoopConfig, {"sim_mode": "cloud"})
    with pytest.raises(ConfigError, match="world.nice"):
        build(loop.BenchLoopConfig, {"world_nice": 40})


def test_cli_refuses_an_unknown_sim_mode(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "loop", "--sim-mode", "cloud"])
    assert e.value.code == 2 and "--sim-mode" in capsys.readouterr().err


def test_sync_baseline_runs_on_the_world_process():
    cfg = build(loop.BenchLoopConfig, {"duration_s": 2.0, "predict_ms": 1.0, "act_ms": 1.0})
    r = asyncio.run(loop._sync_baseline(cfg))
    assert r["tick_hz"] is not None and 5 < r["tick_hz"] <= 101  # loose: other programs share the CPUs
    assert r["policy_hz"] is not None and r["policy_hz"] > 1  # a chunk of 12 steps per inference
    assert r["e2e_latency_ms_p50"] is not None and 0 < r["e2e_latency_ms_p50"] < 1000
    assert r["bus_read_ms_p50"] is not None and 0.5 < r["bus_read_ms_p50"] < 500  # the wire alone takes ~0.9 ms


def test_probe_reports_wakeup_lateness_after_the_first_second():
    import multiprocessing as mp

    from harmowam_ctl.bench import loop

    parent, child = mp.Pipe(duplex=False)
    loop._probe_main(1.3, child)
    r = parent.recv()
    assert 25 <= r["wakeups"] <= 31  # 130 wake-ups, the first 100 left out
    assert 0 <= r["late_ms_p50"] <= r["late_ms_p99"] <= r["late_ms_max"] < 1000
