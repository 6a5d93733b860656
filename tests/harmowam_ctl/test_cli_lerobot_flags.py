"""Coming from LeRobot: its flags (``--robot.port=...``) typed at ``harmowam`` exit 2 with our flag for each
(before argparse, whose "required" errors would hide the hint); ``--calibration`` is the calibration name
everywhere, ``--name`` on calibrate/check still works with a one-line hint."""

from __future__ import annotations

import argparse

import pytest

from harmowam_ctl import cli, lerobot_flags
from harmowam_ctl.commands import calibrate as calibrate_cmd


def _main(capsys: pytest.CaptureFixture, argv: list[str]) -> tuple[int, str]:
    rc = cli.main(argv)
    return rc, capsys.readouterr().err


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _options(command: str) -> set[str]:
    parser = _subparsers(cli._parser())[command]
    return {s for a in parser._actions for s in a.option_strings}


@pytest.mark.parametrize(("argv", "typed", "ours"), [
    (["record", "--robot.port=/dev/ttyACM0"], "--robot.port=/dev/ttyACM0", "--port /dev/ttyACM0"),
    (["record", "--robot.port", "/dev/ttyACM0"], "--robot.port /dev/ttyACM0", "--port /dev/ttyACM0"),
    (["run", "--robot.id=black"], "--robot.id=black", "--calibration black"),
    (["run", "--robot.id"], "--robot.id", "--calibration NAME"),
    (["run", "--robot.type=so101_follower"], "--robot.type=so101_follower", "--arm so101"),
    (["teleop", "--robot.type=so100_follower"], "--robot.type=so100_follower", "--arm so100"),
    (["teleop", "--robot.type=koch_follower"], "--robot.type=koch_follower", "--arm koch"),
    (["record", "--robot.cameras={front: {type: opencv}}"], "--robot.cameras={front: {type: opencv}}", "--camera NAME=SOURCE"),
    (["teleop", "--teleop.port=/dev/ttyACM1"], "--teleop.port=/dev/ttyACM1", "--leader-port /dev/ttyACM1"),
    (["teleop", "--teleop.id=blue"], "--teleop.id=blue", "--leader-calibration blue"),
    (["teleop", "--teleop.type=so101_leader"], "--teleop.type=so101_leader", "--leader-arm so101-leader"),
    (["record", "--teleop.type=koch_leader"], "--teleop.type=koch_leader", "--leader-arm koch-leader"),
    (["record", "--dataset.repo_id=me/cubes"], "--dataset.repo_id=me/cubes", "--out $HF_LEROBOT_HOME/me/cubes --repo-id me/cubes"),
    (["train", "--dataset.repo_id=me/cubes"], "--dataset.repo_id=me/cubes", "--dataset me/cubes (a repo id under $HF_LEROBOT_HOME"),
    (["record", "--dataset.single_task=Grab the cube"], "--dataset.single_task=Grab the cube", "--task-text 'Grab the cube'"),
    (["record", "--dataset.num_episodes=5"], "--dataset.num_episodes=5", "--episodes 5"),
    (["record", "--dataset.root=/data/x"], "--dataset.root=/data/x", "--out /data/x"),
    (["train", "--dataset.root=/data/x"], "--dataset.root=/data/x", "--dataset /data/x"),
    (["eval", "--policy.path=outputs/act"], "--policy.path=outputs/act", "--policy outputs/act"),
    (["run", "--policy.path", "outputs/act"], "--policy.path outputs/act", "--policy outputs/act"),
    # the wizards: the leader arm is --arm X --leader, its port --port, its name --calibration
    (["calibrate", "--robot.port=/dev/ttyACM0"], "--robot.port=/dev/ttyACM0", "--port /dev/ttyACM0"),
    (["calibrate", "--robot.id=black"], "--robot.id=black", "--calibration black"),
    (["calibrate", "--teleop.type=so101_leader"], "--teleop.type=so101_leader", "--arm so101 --leader"),
    (["check", "--teleop.id=blue"], "--teleop.id=blue", "--calibration blue --leader"),
    (["check", "--teleop.port=/dev/x"], "--teleop.port=/dev/x", "--port /dev/x --leader"),
    (["setup-motors", "--robot.type=koch_follower"], "--robot.type=koch_follower", "--arm koch"),
    (["setup-motors", "--teleop.type=so100_leader"], "--teleop.type=so100_leader", "--arm so100-leader"),
])
def test_each_lerobot_flag_names_ours(capsys, argv: list[str], typed: str, ours: str) -> None:
    rc, err = _main(capsys, argv)
    assert rc == 2, err
    assert f"  {typed}  ->  {ours}" in err, err
    assert "LeRobot's flags" in err and f"harmowam {argv[0]} --help" in err


ROBOT = ("--robot.port", "--robot.id", "--robot.type")
TELEOP = ("--teleop.port", "--teleop.id", "--teleop.type")
DATASET = ("--dataset.repo_id", "--dataset.root", "--dataset.single_task", "--dataset.num_episodes", "--dataset.fps",
           "--dataset.episode_time_s", "--dataset.reset_time_s")
RELEVANT = {  # our command -> the LeRobot flags its LeRobot counterpart takes
    "calibrate": ROBOT + TELEOP, "check": ROBOT + TELEOP, "setup-motors": ("--robot.port", "--robot.type", *TELEOP[::2]),
    "teleop": ROBOT + TELEOP + ("--robot.cameras",), "run": ROBOT + TELEOP + ("--robot.cameras", "--policy.path"),
    "record": ROBOT + TELEOP + DATASET + ("--robot.cameras", "--policy.path"),
    "train": ("--dataset.repo_id", "--dataset.root", "--output_dir"), "eval": ("--policy.path",),
}


@pytest.mark.parametrize("cmd", sorted(RELEVANT))
def test_every_suggested_flag_exists_on_that_command(cmd: str) -> None:
    """The table is checked against our parsers: each --flag a hint suggests is one of the command's."""
    have = _options(cmd)
    for flag in RELEVANT[cmd]:
        assert flag in lerobot_flags._TABLE, flag
        suggestion = lerobot_flags._TABLE[flag]("x", cmd)
        used = [w.rstrip(",") for w in suggestion.split("(")[0].split() if w.startswith("--")]
        assert used, (cmd, flag, suggestion)
        for w in used:
            assert w in have, (cmd, flag, suggestion)


def test_a_whole_lerobot_record_line_gets_one_line_per_flag_and_nothing_runs(capsys) -> None:
    argv = ["record", "--robot.type=so101_follower", "--robot.port=/dev/ttyACM0", "--robot.id=black",
            "--teleop.type=so101_leader", "--teleop.port=/dev/ttyACM1", "--teleop.id=blue",
            "--dataset.repo_id=me/cubes", "--dataset.num_episodes=2", "--dataset.single_task=Grab the cube",
            "--display_data=true"]
    rc, err = _main(capsys, argv)
    assert rc == 2
    for ours in ("--arm so101", "--port /dev/ttyACM0", "--calibration black", "--leader-arm so101-leader",
                 "--leader-port /dev/ttyACM1", "--leader-calibration blue", "--episodes 2"):
        assert f"->  {ours}" in err
    assert "Traceback" not in err


def test_the_hint_comes_before_argparses_required_errors(capsys) -> None:
    # calibrate requires --arm/--port/--calibration: argparse alone would only say they are missing
    rc, err = _main(capsys, ["calibrate", "--robot.type=so101_follower", "--robot.port=/dev/x", "--robot.id=a"])
    assert rc == 2 and "->  --arm so101" in err and "->  --calibration a" in err and "required" not in err


def test_other_lerobot_style_flags_point_to_help(capsys) -> None:
    rc, err = _main(capsys, ["record", "--robot.max_relative_target=5"])
    assert rc == 2 and "--robot.max_relative_target=5  ->  no such option here: see `harmowam record --help`" in err


def test_our_own_flags_and_plain_unknown_flags_are_untouched(capsys) -> None:
    assert lerobot_flags.hints(["run", "--policy", "x", "--calibration", "a", "--dataset", "d"]) == []
    assert lerobot_flags.hints(["emulate", "--robot.port=x"]) == []  # the emulator's own arguments
    with pytest.raises(SystemExit) as ei:
        cli.main(["run", "--no-such-flag"])
    assert ei.value.code == 2 and "unrecognized arguments: --no-such-flag" in capsys.readouterr().err


def test_the_command_list_is_the_clis() -> None:
    assert set(lerobot_flags.COMMANDS) == set(cli.COMMANDS)


# ---- one name for the calibration: --calibration ------------------------------------------------------------

@pytest.mark.parametrize("cmd", ["calibrate", "check", "run", "teleop", "record"])
def test_calibration_is_the_flag_everywhere(cmd: str) -> None:
    assert "--calibration" in _options(cmd)


@pytest.mark.parametrize("cmd", ["run", "teleop", "record"])
def test_leader_calibration_stays_on_the_runtime_commands(cmd: str) -> None:
    assert "--leader-calibration" in _options(cmd)


@pytest.mark.parametrize("cmd", ["calibrate", "check"])
def test_old_name_flag_still_works_with_a_one_line_hint(cmd: str, capsys) -> None:
    parser = _subparsers(cli._parser())[cmd]
    args = parser.parse_args(["--arm", "so101", "--port", "/dev/x", "--name", "arm1"])
    assert args.calibration == "arm1"
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"harmowam {cmd}: --name is now --calibration; --name still works for now "
                   "(write --calibration arm1, as for harmowam run/teleop/record)"]
    args = parser.parse_args(["--arm", "so101", "--port", "/dev/x", "--calibration", "arm2"])
    assert args.calibration == "arm2" and capsys.readouterr().err == ""
    assert calibrate_cmd.options(args, calibrate_cmd.ArmOptions).calibration == "arm2"


def test_calibration_name_is_required_and_not_given_twice(capsys) -> None:
    with pytest.raises(SystemExit) as ei:
        cli.main(["check", "--arm", "so101", "--port", "/dev/x"])
    err = capsys.readouterr().err
    assert ei.value.code == 2 and "--calibration is required" in err and "--name" not in err.split("error:")[-1]
    with pytest.raises(SystemExit):
        cli.main(["check", "--arm", "so101", "--port", "/dev/x", "--calibration", "a", "--name", "b"])
    assert "not allowed with" in capsys.readouterr().err
