"""LeRobot's command-line flags (``--robot.port=...``, ``--dataset.repo_id=...``) -> ours, for the hint
``harmowam`` prints when someone coming from LeRobot types them (exit code 2, nothing run).

``hints(argv)`` returns one ``(their flag as typed, ours)`` pair per LeRobot-style flag in ``argv`` (empty
when there is none). What ours is can depend on the command: ``--teleop.port`` is ``--leader-port`` for
``run``/``teleop``/``record`` but ``--port`` (with ``--leader``) for ``calibrate``/``check``; a
``--dataset.repo_id`` is where ``record`` writes (``--out``) but what ``train`` reads (``--dataset``).
Types (``--robot.type=so101_follower``) become our arm names (``--arm so101``). The flags of
LeRobot 0.6.1's ``lerobot-calibrate``, ``-setup-motors``, ``-teleoperate``, ``-record``, ``-train`` and
``-eval`` that have a counterpart are in ``_TABLE``; any other ``--robot.*``, ``--teleop.*``,
``--dataset.*``, ``--policy.*`` or ``--env.*`` flag gets a pointer to ``--help``.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence

COMMANDS = ("emulate", "scan", "bench", "demo", "sim", "run", "teleop", "record", "baseline", "train", "eval",
            "diagnose", "find-port", "setup-motors", "calibrate", "check")
READS_DATASET = ("train", "baseline", "diagnose")  # --dataset is what they read
RUNTIME = ("run", "teleop", "record")  # the commands of harmowam_ctl.commands.run._common
WIZARDS = ("calibrate", "check")  # harmowam_ctl.commands.calibrate.add_arm_options: --arm --leader --port --calibration
PREFIXES = ("--robot.", "--teleop.", "--dataset.", "--policy.", "--env.")
# LeRobot 0.6.1's RobotConfig / TeleoperatorConfig type names -> our arm profiles (hardware.arms.ARMS)
FOLLOWER_TYPES = {"so100_follower": "so100", "so101_follower": "so101", "koch_follower": "koch"}
LEADER_TYPES = {"so100_leader": "so100-leader", "so101_leader": "so101-leader", "koch_leader": "koch-leader"}


def _q(value: str | None, placeholder: str) -> str:
    return shlex.quote(value) if value else placeholder


def _robot_type(v: str | None, cmd: str) -> str:
    if v in LEADER_TYPES:  # a leader named as a robot: LeRobot would refuse it too
        return _teleop_type(v, cmd)
    return f"--arm {FOLLOWER_TYPES.get(v or '', 'so101 (so100, so101 or koch)')}"


def _teleop_type(v: str | None, cmd: str) -> str:
    arm = LEADER_TYPES.get(v or "")
    if cmd in WIZARDS:
        return f"--arm {arm.removesuffix('-leader')} --leader" if arm else "--arm so101 --leader (so100, so101 or koch)"
    if cmd == "setup-motors":
        return f"--arm {arm or 'so101-leader (so100-leader, so101-leader or koch-leader)'}"
    return f"--leader-arm {arm or 'so101-leader (so100-leader, so101-leader or koch-leader)'}"


def _teleop_port(v: str | None, cmd: str) -> str:
    port = _q(v, "PORT")
    if cmd in WIZARDS:
        return f"--port {port} --leader"
    if cmd == "setup-motors":
        return f"--port {port} (with --arm so101-leader etc.)"
    return f"--leader-port {port}"


def _teleop_id(v: str | None, cmd: str) -> str:
    name = _q(v, "NAME")
    return f"--calibration {name} --leader" if cmd in WIZARDS else f"--leader-calibration {name}"


def _robot_id(v: str | None, cmd: str) -> str:
    if cmd == "setup-motors":
        return "nothing (setup-motors needs no calibration name; give it to harmowam calibrate --calibration)"
    return f"--calibration {_q(v, 'NAME')}"


def _repo_id(v: str | None, cmd: str) -> str:
    rid = v or "USER/NAME"
    if cmd in READS_DATASET:
        return f"--dataset {rid} (a repo id under $HF_LEROBOT_HOME, or the dataset's folder)"
    return f"--out $HF_LEROBOT_HOME/{rid} --repo-id {rid} (record: --out is the dataset's folder)"


def _root(v: str | None, cmd: str) -> str:
    return f"--dataset {_q(v, 'DIR')}" if cmd in READS_DATASET else f"--out {_q(v, 'DIR')}"


def _policy_type(v: str | None, cmd: str) -> str:
    if v == "act":
        return "harmowam baseline act --dataset DIR --out DIR (LeRobot's ACT, trained by lerobot-train)"
    return "harmowam train --dataset DIR --out DIR (HarmoWAM) or harmowam baseline act (LeRobot's ACT)"


def _simple(ours: str, placeholder: str) -> Callable[[str | None, str], str]:
    return lambda v, cmd: f"{ours} {_q(v, placeholder)}"


_TABLE: dict[str, Callable[[str | None, str], str]] = {
    "--robot.port": lambda v, cmd: f"--port {_q(v, 'PORT')}",
    "--robot.id": _robot_id,
    "--robot.type": _robot_type,
    "--robot.cameras": lambda v, cmd: "--camera NAME=SOURCE, once per camera (e.g. --camera front=0 --camera wrist=/dev/video2)",
    "--teleop.port": _teleop_port,
    "--teleop.id": _teleop_id,
    "--teleop.type": _teleop_type,
    "--dataset.repo_id": _repo_id,
    "--dataset.root": _root,
    "--dataset.single_task": _simple("--task-text", "TEXT"),
    "--dataset.num_episodes": _simple("--episodes", "N"),
    "--dataset.fps": _simple("--fps", "N"),
    "--dataset.episode_time_s": _simple("--episode-s", "S"),
    "--dataset.reset_time_s": _simple("--reset-s", "S"),
    "--policy.path": _simple("--policy", "DIR"),
    "--policy.type": _policy_type,
    "--output_dir": _simple("--out", "DIR"),
}


def command_of(argv: Sequence[str]) -> str:
    """The harmowam command in ``argv`` ('' when none)."""
    return next((a for a in argv if a in COMMANDS), "")


def hints(argv: Sequence[str]) -> list[tuple[str, str]]:
    """(LeRobot flag as typed, our flag) for every LeRobot-style flag in ``argv`` (module doc)."""
    args = list(argv[: argv.index("--")] if "--" in argv else argv)
    cmd = command_of(args)
    if cmd == "emulate":  # its arguments are the emulator's own
        return []
    out: list[tuple[str, str]] = []
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if flag not in _TABLE and not flag.startswith(PREFIXES):
            continue
        if not eq and i + 1 < len(args) and not args[i + 1].startswith("-"):
            value, typed = args[i + 1], f"{arg} {args[i + 1]}"
        else:
            typed = arg
        ours = _TABLE[flag](value or None, cmd) if flag in _TABLE else (
            f"no such option here: see `harmowam {cmd or 'COMMAND'} --help`")
        out.append((typed, ours))
    return out


def message(argv: Sequence[str], found: list[tuple[str, str]]) -> str:
    """The text ``harmowam`` prints for ``hints(argv)``."""
    cmd = command_of(argv)
    prog = f"harmowam {cmd}" if cmd else "harmowam"
    lines = [f"{prog}: these are LeRobot's flags; harmowam spells them differently:"]
    lines += [f"  {theirs}  ->  {ours}" for theirs, ours in found]
    lines.append(f"see `{prog} --help` and the README's 'Coming from LeRobot'")
    return "\n".join(lines)
