"""`harmowam sim demos`: bad input (exit 2, the message names the flag or the file and field), a
recording with --resume and --overwrite, and too many failures (exit 1).

The command is driven through its own ``add_parser``/``run`` on a bare parser, as ``harmowam_ctl.cli``
wires it."""

from __future__ import annotations

import argparse
import json

import pytest

pytest.importorskip("mujoco")

from harmowam_ctl.commands import sim  # noqa: E402


def harmowam(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="harmowam")
    sub = p.add_subparsers(dest="command")
    sim.add_parser(sub)
    return sim.run(p.parse_args(argv))


def demos(*args: str) -> int:
    return harmowam(["sim", "demos", *args])


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--task", "fly", "--episodes", "2"], ["--task", "'fly'", "pick_place, stack, push, insert"]),
        (["--task", "push", "--episodes", "0"], ["--episodes", "greater than or equal to 1"]),
        (["--task", "push", "--episodes", "1", "--resolution", "8"], ["--resolution", "16"]),
        (["--task", "push", "--episodes", "1", "--resolution", "24"], ["--resolution 24", "32", "--images"]),
        (["--task", "push", "--episodes", "1", "--fps", "1000"], ["--fps", "120"]),
        (["--task", "push", "--episodes", "1", "--seed", "-3"], ["--seed"]),
        (["--task", "push", "--episodes", "3", "--max-attempts", "2"], ["--max-attempts", "at least --episodes"]),
        (["--task", "push", "--episodes", "1", "--repo-id", "no slash"], ["--repo-id"]),
        (["--task", "push", "--episodes", "1", "--variations", "nope"], ["--variations", "push/nope.yaml", "in_domain"]),
        (["--task", "push", "--episodes", "1", "--noise", "-0.01"], ["--noise", "greater than or equal to 0"]),
        (["--task", "push", "--episodes", "1", "--noise", "1.5"], ["--noise", "less than or equal to 0.2"]),
        (["--task", "push", "--episodes", "1", "--noise", "nan"], ["--noise", "finite"]),
        (["--task", "push", "--episodes", "1", "--noise", "0.03", "--noise-tau", "0"], ["--noise-tau", "0.05"]),
        (["--task", "push", "--episodes", "1", "--noise", "0.03", "--noise-tau", "100"], ["--noise-tau", "10"]),
        (["--task", "push", "--episodes", "1", "--noise-tau", "0.5"], ["--noise-tau", "without --noise"]),
        (["--task", "push", "--episodes", "1", "--noise", "0", "--noise-at-grip"], ["--noise-at-grip", "without --noise"]),
    ],
)
def test_bad_input_names_the_flag(tmp_path, capsys, args, said) -> None:
    out = tmp_path / "ds"
    assert demos(*args, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert err.startswith("harmowam sim demos:")
    for s in said:
        assert s in err, err
    assert "Traceback" not in err and not out.exists()


def test_bad_variation_file_names_file_and_field(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("table: {rgb1: ['#ffffff']}\nfloor: {rgb1: ['#000000']}\nobjects: {cube: {size: [0.01, 0.02], colours: [red], region: {x: [0.2, 0.25], y: [0, 0.05]}}}\n")
    assert demos("--task", "pick_place", "--episodes", "1", "--variations", str(bad), "--out", str(tmp_path / "ds")) == 2
    err = capsys.readouterr().err
    assert "--variations" in err and f"{bad}: objects.cube.colours" in err
    assert demos("--task", "stack", "--episodes", "1", "--variations", str(bad), "--out", str(tmp_path / "ds")) == 2
    assert "objects.cube" in capsys.readouterr().err  # stack has no 'cube'


def test_argparse_level_errors_exit_2(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        demos("--task", "push", "--episodes", "1", "--out", str(tmp_path), "--resume", "--overwrite")
    assert exc.value.code == 2 and "--overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        demos("--task", "push", "--episodes", "many", "--out", str(tmp_path))
    assert exc.value.code == 2 and "--episodes" in capsys.readouterr().err
    assert harmowam(["sim"]) == 2 and "demos" in capsys.readouterr().err


def test_record_then_refuse_then_resume_then_overwrite(tmp_path, capsys) -> None:
    out = tmp_path / "push_demos"
    base = ["--task", "push", "--out", str(out), "--resolution", "16", "--images"]
    assert demos(*base, "--episodes", "1") == 0
    cap = capsys.readouterr()
    assert "success 1/1 (100%)" in cap.err  # the progress bar
    assert "recorded 1 of 1 episodes of push (in_domain)" in cap.out and "joints in lerobot (degrees, gripper 0..100)" in cap.out

    # the directory now holds a dataset: refused, naming it and both flags
    assert demos(*base, "--episodes", "1") == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--resume" in err and "--overwrite" in err

    # --resume adds an episode and does not repeat seed 0
    assert demos(*base, "--episodes", "1", "--resume", "--json", "--no-progress") == 0
    s = json.loads(capsys.readouterr().out)
    assert s["resumed"] and s["total_episodes"] == 2 and s["episodes_saved"] == 1
    prov = json.loads((out / "meta" / "harmowam_demos.json").read_text())
    assert [e["seed"] for e in prov["episodes"]] == [0, 1] and len(prov["runs"]) == 2
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 2 and info["total_frames"] == s["total_frames"]

    # --resume with other settings is refused
    assert demos("--task", "push", "--out", str(out), "--resolution", "32", "--images", "--episodes", "1", "--resume") == 2
    assert "--resolution 32" in capsys.readouterr().err

    # --overwrite replaces it
    assert demos(*base, "--episodes", "1", "--overwrite", "--seed", "5", "--json", "--no-progress") == 0
    s = json.loads(capsys.readouterr().out)
    assert s["total_episodes"] == 1 and not s["resumed"]
    prov = json.loads((out / "meta" / "harmowam_demos.json").read_text())
    assert [e["seed"] for e in prov["episodes"]] == [5]


def test_too_many_failures_exit_1(tmp_path, capsys, monkeypatch) -> None:
    from hardware.sim.tasks.push import PushTask

    monkeypatch.setattr(PushTask, "success", lambda self, env: False)
    out = tmp_path / "never"
    assert demos("--task", "push", "--episodes", "1", "--max-attempts", "1", "--resolution", "16", "--images", "--out", str(out)) == 1
    cap = capsys.readouterr()
    assert "only 0 of 1 episodes succeeded in 1 attempts (--max-attempts 1)" in cap.err
    assert "failed seeds: 0" in cap.out
    assert not out.exists()


def test_noisy_demos_record_the_noise_and_the_experts_labels(tmp_path, capsys) -> None:
    """--noise: the summary says it, provenance records it per run and per episode (enough to replay the
    episode), the dataset's action is the expert's noise-free target and its state the perturbed arm; a
    resumed run without noise is recorded as clean."""
    import numpy as np

    from hardware.sim.dataset import sim_units
    from hardware.sim.noise import ActionNoise
    from hardware.sim.tasks import get_task, run_episode

    out = tmp_path / "recovery"
    base = ["--task", "push", "--out", str(out), "--resolution", "16", "--images", "--no-progress", "--episodes", "1"]
    assert demos(*base, "--noise", "0.03", "--noise-tau", "0.3") == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "action noise" in x)
    assert "action noise: Ornstein-Uhlenbeck, sigma 0.03 rad, tau 0.3 s on shoulder_pan" in line and "gripper" not in line
    assert demos(*base, "--resume", "--json") == 0
    s = json.loads(capsys.readouterr().out)
    assert s["noise"] is None and s["total_episodes"] == 2

    prov = json.loads((out / "meta" / "harmowam_demos.json").read_text())
    first, second = prov["episodes"]
    assert first["noise"]["sigma_rad"] == 0.03 and first["noise"]["tau_s"] == 0.3 and first["noise"]["seed"] == first["seed"]
    assert first["noise"]["joints"] == ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll"]
    assert second["noise"] is None and second["seed"] != first["seed"]  # seeds are not repeated
    assert prov["runs"][0]["noise"] == {k: v for k, v in first["noise"].items() if k not in ("seed", "process")}
    assert prov["runs"][1]["noise"] is None

    # replay the noisy episode from its provenance: the dataset holds its labels and its perturbed states
    noise = ActionNoise.from_record(first["noise"])
    ep = run_episode(get_task("push"), first["seed"], first["spec"], env_kw={"cameras": False}, noise=noise)
    assert ep.success and not np.array_equal(ep.executed, ep.targets)
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    hf = LeRobotDataset("local/recovery", root=out, video_backend="pyav").hf_dataset.with_format(None)
    rows = hf.filter(lambda r: r["episode_index"] == 0)
    units = sim_units()
    assert np.allclose(np.asarray(rows["action"]), units.to_units(ep.targets).astype(np.float32), atol=1e-4)
    assert np.allclose(np.asarray(rows["observation.state"]), units.to_units(ep.joints).astype(np.float32), atol=1e-4)
    assert not np.allclose(np.asarray(rows["action"]), units.to_units(ep.executed).astype(np.float32), atol=1e-2)
