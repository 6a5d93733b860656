"""policies.evaluate and ``harmowam eval``: closed-loop episodes in simulated time, success detection,
chunk resampling, the summary, and bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import hardware.sim  # noqa: F401  (MUJOCO_GL before mujoco)
from harmowam_ctl import cli
from policies.evaluate import EvalConfig, chunk_targets, evaluate, summarize, wilson
from policies.harmowam import HarmoWAM
from policies.harmowam.checkpoint import save_checkpoint
from policies.harmowam.policy import HarmoWAMPolicy
from policies.interface import ActionChunk, Observation, WorldPrediction
from policies.scripted import ScriptedPolicy

sys.path.insert(0, str(Path(__file__).parent / "harmowam"))  # tests are not packages
from harmowam_tiny import shake_outputs, tiny_config  # noqa: E402


class HoldStill:
    """Asks for the present joint positions: the arm never moves, so the task never succeeds."""

    name = "hold"
    cameras = ("front",)

    def __init__(self) -> None:
        self.seen: list[Observation] = []
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def predict(self, obs: Observation) -> WorldPrediction:
        return WorldPrediction(t_obs=obs.t)

    def act(self, prediction: WorldPrediction, obs: Observation) -> ActionChunk:
        self.seen.append(obs)
        return ActionChunk(t0=obs.t, dt=0.1, actions=np.repeat(obs.state[None], 4, axis=0), t_obs=obs.t, expert="hold")


def test_wilson_interval_known_values() -> None:
    assert wilson(0, 1) == (0.0, 0.793)
    assert wilson(5, 10) == (0.237, 0.763)
    assert wilson(10, 10) == (0.722, 1.0)
    assert wilson(0, 0) == (0.0, 1.0)


def test_chunk_targets_resample_onto_the_control_rate_and_hold_the_ends() -> None:
    actions = np.outer(np.arange(4.0), np.ones(6))  # 0, 1, 2, 3 at t0 + 0, 0.1, 0.2, 0.3
    chunk = ActionChunk(t0=5.0, dt=0.1, actions=actions, t_obs=5.0)
    got = chunk_targets(chunk, 5.05, 0.05, 8)
    np.testing.assert_allclose(got[:, 0], [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0, 3.0])
    assert got.shape == (8, 6)


def test_scripted_expert_succeeds_through_the_evaluator_and_the_summary_counts_it() -> None:
    cfg = EvalConfig(task="pick_place", episodes=1, replan_every=1)
    seen: list[dict] = []
    r = evaluate(ScriptedPolicy, cfg, label="scripted", on_episode=seen.append)
    s = r["results"]["in_domain"]
    assert (s["episodes"], s["successes"], s["failed_seeds"]) == (1, 1, [])
    ep = seen[0]
    assert ep["seed"] == 1000 and ep["success"]
    # success must hold settle_s (15 steps at 30 Hz) before the episode ends
    assert ep["steps"] == ep["success_step"] + 14
    assert s["expert_share"] == {"scripted": 1.0}


def test_a_policy_that_never_moves_fails_every_episode_at_the_time_limit() -> None:
    p = HoldStill()
    cfg = EvalConfig(task="pick_place", specs=("in_domain", "position"), episodes=2, start_seed=7, replan_every=10)
    seen: list[dict] = []
    r = evaluate(p, cfg, on_episode=seen.append)
    assert [(e["spec"], e["seed"]) for e in seen] == [("in_domain", 7), ("in_domain", 8), ("position", 7), ("position", 8)]
    for spec in ("in_domain", "position"):
        s = r["results"][spec]
        assert (s["successes"], s["rate"], s["failed_seeds"], s["mean_steps_to_success"]) == (0, 0.0, [7, 8], None)
    assert all(e["steps"] == 450 and e["calls"] == 45 for e in seen)  # 15 s at 30 Hz, a call per 10 steps
    assert p.resets == 4
    # observations: simulated time (not the wall clock), the policy's camera at 96 px, the instruction
    assert [o.t for o in p.seen[:3]] == pytest.approx([0.0, 10 / 30, 20 / 30])
    assert set(p.seen[0].images) == {"front"} and p.seen[0].images["front"].shape == (96, 96, 3)
    assert "cube" in p.seen[0].task


def test_harmowam_checkpoint_runs_closed_loop_and_reports_its_experts(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = HarmoWAM(tiny_config(image_size=96))
    shake_outputs(model)
    save_checkpoint(tmp_path / "ckpt", model, model.cfg)
    policy = HarmoWAMPolicy.from_checkpoint(tmp_path / "ckpt")
    r = evaluate(policy, EvalConfig(episodes=1, replan_every=6))
    s = r["results"]["in_domain"]
    assert s["episodes"] == 1 and s["policy_call_ms_p50"] > 0
    assert set(s["expert_share"]) <= {"predictive", "reactive"} and sum(s["expert_share"].values()) == pytest.approx(1.0)


def test_summary_of_mixed_episodes() -> None:
    eps = [{"seed": 1, "success": True, "success_step": 100, "experts": {"predictive": 3, "reactive": 1}, "call_ms": [10.0]},
           {"seed": 2, "success": False, "success_step": None, "experts": {"reactive": 4}, "call_ms": [20.0]}]
    s = summarize(eps, 1.0)
    assert (s["successes"], s["rate"], s["failed_seeds"], s["mean_steps_to_success"]) == (1, 0.5, [2], 100.0)
    assert s["expert_share"] == {"predictive": 0.375, "reactive": 0.625}


def test_cli_writes_the_result_and_every_episode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "res" / "eval.json"
    rc = cli.main(["eval", "--policy", "scripted", "--episodes", "1", "--variations", "position", "--out", str(out), "--json"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["results"]["position"]["successes"] == 1
    doc = json.loads(out.read_text())
    assert doc["episodes"][0]["spec"] == "position" and "call_ms" not in doc["episodes"][0]


@pytest.mark.parametrize("argv, needle", [
    (["--policy", "synthetic", "--variations", "nowhere"], "no such variation file"),
    (["--policy", "synthetic", "--task", "juggle"], "no task 'juggle'"),
    (["--policy", "synthetic", "--episodes", "0"], "episodes"),
    (["--policy", "/nonexistent/ckpt"], "neither a policy name nor a directory"),
    (["--policy", "synthetic", "--set", "oops"], "KEY=VALUE"),
])
def test_cli_bad_input_names_the_problem_and_runs_nothing(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["eval", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and "seed 1000:" not in err  # no episode ran
