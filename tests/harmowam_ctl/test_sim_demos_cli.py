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
