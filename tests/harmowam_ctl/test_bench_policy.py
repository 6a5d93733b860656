"""`harmowam bench policy`: the result's fields, the ACT comparison, and bad options/checkpoints."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from harmowam_ctl import cli
from harmowam_ctl.bench import policy as bench
from policies.harmowam import HarmoWAM
from policies.harmowam.checkpoint import save_checkpoint

sys.path.insert(0, str(Path(__file__).parents[1] / "policies" / "harmowam"))  # tests are not packages
from harmowam_tiny import tiny_config  # noqa: E402


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    cfg = tiny_config()
    save_checkpoint(tmp_path / "c", HarmoWAM(cfg), cfg, {})
    return tmp_path / "c"


def test_result_fields_from_a_checkpoint_without_act(ckpt):
    r = bench.run(bench.BenchPolicyConfig(checkpoint=str(ckpt), samples=10, warmup=1, act=False))
    for k in ("world_model_ms", "predictive_ms", "reactive_ms", "gate_ms", "decode_ms", "step_ms_p50", "step_ms_p99", "step_cpu_ms_p50"):
        assert r[k] > 0, k
    assert r["step_ms_p50"] <= r["step_ms_p99"] and r["torch_threads"] == 1 and r["image_size"] == 96
    assert r["gate_ms"] < r["world_model_ms"]
    for v in r["forced"].values():
        assert 0 < v["step_ms_p50"] <= v["step_ms_p99"]
    assert sum(r["gated_experts"].values()) == 10 and set(r["gated_experts"]) <= {"predictive", "reactive"}
    assert r["act"] == {"error": "not run (act disabled)"} and r["goal"]["met"] is None
    text = bench.format_text(r)
    assert "step (gated)" in text and "ACT: not timed" in text and "unknown" in text


def test_act_is_timed_in_the_same_run(ckpt, monkeypatch):
    import policies.act as act

    real = act.default_act_for_bench
    calls = []

    def small_act(cameras, image_size, **kw):  # the real helper, at a smaller size to keep the test quick
        calls.append((tuple(cameras), image_size, kw.get("torch_threads")))
        return real(cameras, image_size, dim_model=64, dim_feedforward=128, n_heads=2, chunk_size=12, n_action_steps=12, **kw)

    monkeypatch.setattr(act, "default_act_for_bench", small_act)
    r = bench.run(bench.BenchPolicyConfig(checkpoint=str(ckpt), samples=10, warmup=1))
    a = r["act"]
    assert "error" not in a, a
    assert 0 < a["step_ms_p50"] <= a["step_ms_p99"] and a["step_cpu_ms_p50"] > 0
    assert r["goal"]["act_compared"] and r["goal"]["met"] == (r["step_ms_p50"] <= 30 and r["step_ms_p50"] < a["step_ms_p50"])
    assert "LeRobot ACT (default) p50" in bench.format_text(r)
    assert calls == [(("front", "wrist"), 96, 1)]  # the checkpoint's cameras, 96 px, one thread


def test_cli_errors(tmp_path, capsys):
    assert cli.main(["bench", "policy", "--checkpoint", str(tmp_path / "none")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["bench", "policy", "--samples", "2"]) == 2
    assert "samples" in capsys.readouterr().err
