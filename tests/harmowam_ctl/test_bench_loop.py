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


def test_policy_lever_takes_synthetic_or_a_checkpoint(tmp_path):
    import pytest

    from harmowam_ctl.bench import loop

    spec = loop.policy_spec(build(loop.BenchLoopConfig, {"predict_ms": 5, "act_ms": 2}))
    assert spec.name == "synthetic" and spec.options == {"predict_ms": 5.0, "act_ms": 2.0}
    with pytest.raises(ValueError, match="neither a policy name nor a directory"):
        loop.policy_spec(build(loop.BenchLoopConfig, {"policy": str(tmp_path / "nope")}))


def test_cli_refuses_a_policy_that_is_not_there(capsys, tmp_path):
    from harmowam_ctl import cli

    assert cli.main(["bench", "loop", "--policy", str(tmp_path / "nope"), "--json"]) == 2
    assert "--policy" in capsys.readouterr().err
