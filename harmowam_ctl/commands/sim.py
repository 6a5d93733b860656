"""``harmowam sim``: simulation tools. ``harmowam sim demos`` records scripted demonstrations.

``harmowam sim demos --task pick_place --episodes 50 --out data/pick_place`` runs the task's scripted
expert on seeds 0, 1, 2... in the simulated SO-101 scene, renders the front and wrist cameras at every
step and writes the successful episodes as a LeRobot dataset (LeRobot's own writer; see
``hardware.sim.dataset`` for the features and units: what lerobot-record writes for an SO-101, joints in
LeRobot's degrees and the gripper 0..100, cameras as videos (``--images``: PNG frames), plus a per-frame
``phase`` label).
``--noise SIGMA_RAD`` records recovery demonstrations (DART-style): the arm executes the expert's target
plus an Ornstein-Uhlenbeck offset on the 5 arm joints (stationary standard deviation SIGMA_RAD radians,
correlation time ``--noise-tau``, default 0.4 s; never the gripper; faded out near grasps and releases
unless ``--noise-at-grip``), while the dataset's ``action`` stays the expert's noise-free target for the
perturbed state (``hardware.sim.noise``; measured success rates in ``hardware.sim.dataset``). The
settings and each episode's noise seed go into ``meta/harmowam_demos.json``.
Failed episodes are not saved; seeds are tried until ``--episodes`` are saved or ``--max-attempts``
seeds have been tried. A progress bar on stderr shows episodes saved and the success rate so far; the
summary goes to stdout (``--json`` for JSON).

Exit codes: 0 all requested episodes saved, 1 failure (fewer saved than requested, rendering or
writing failed; what was saved is a valid dataset), 2 bad input (the message names the flag; a bad
variation file is named with its field).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from hardware.sim.noise import DEFAULT_TAU_S, MAX_SIGMA_RAD, MAX_TAU_S, MIN_TAU_S
from harmowam_ctl.config import ConfigError, build

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
PROG = "harmowam sim demos"


class DemosConfig(BaseModel):
    """``harmowam sim demos`` options (defaults as in the help)."""

    model_config = ConfigDict(extra="forbid")

    task: str
    episodes: Annotated[int, Field(ge=1, le=100_000)]
    out: Path
    variations: str = "in_domain"
    fps: Annotated[int, Field(ge=5, le=120)] = 30
    seed: Annotated[int, Field(ge=0)] = 0
    resolution: Annotated[int, Field(ge=16, le=480)] = 96
    video: bool = True
    resume: bool = False
    overwrite: bool = False
    repo_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")] | None = None
    max_attempts: Annotated[int, Field(ge=1)] | None = None
    progress: bool = True
    noise: Annotated[float, Field(ge=0.0, le=MAX_SIGMA_RAD, allow_inf_nan=False)] = 0.0
    noise_tau: Annotated[float, Field(ge=MIN_TAU_S, le=MAX_TAU_S, allow_inf_nan=False)] = DEFAULT_TAU_S
    noise_at_grip: bool = False

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str) -> str:
        from hardware.sim.tasks import task_names

        if v not in task_names():
            raise ValueError(f"no task {v!r} (tasks: {', '.join(task_names())})")
        return v

    @field_validator("variations")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("give a shipped variation name (in_domain, background, position, position_far, object) or a YAML path")
        return v

    @field_validator("overwrite")
    @classmethod
    def _one_of(cls, v: bool, info: ValidationInfo) -> bool:
        if v and info.data.get("resume"):
            raise ValueError("--resume and --overwrite exclude each other: choose one")
        return v

    @field_validator("noise_tau", "noise_at_grip")
    @classmethod
    def _needs_noise(cls, v: object, info: ValidationInfo) -> object:
        if "noise" in info.data and not info.data["noise"]:  # runs only when given (defaults are not validated)
            raise ValueError("has no effect without --noise SIGMA_RAD (> 0)")
        return v

    @field_validator("max_attempts")
    @classmethod
    def _enough(cls, v: int | None, info: ValidationInfo) -> int | None:
        n = info.data.get("episodes")
        if v is not None and n is not None and v < n:
            raise ValueError(f"must be at least --episodes ({n})")
        return v


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``sim`` (with ``demos``) to ``harmowam``'s sub-command parsers; returns the ``sim`` parser."""
    sim = subparsers.add_parser("sim", help="simulation: record scripted demonstrations as a LeRobot dataset")
    sim.set_defaults(handler=run)
    ssub = sim.add_subparsers(dest="sim_command", metavar="WHAT")
    d = ssub.add_parser(
        "demos",
        help="record successful scripted episodes into a LeRobot dataset",
        description="Record successful scripted episodes of a simulated task into a LeRobot dataset "
        "(front and wrist cameras, joint state and targets in LeRobot's units: degrees, gripper 0..100; per-frame phase label).",
    )
    d.add_argument("--task", required=True, help="task name (pick_place, stack, push, insert)")
    d.add_argument("--episodes", required=True, type=int, help="successful episodes to save")
    d.add_argument("--out", required=True, help="dataset directory (must not exist or be empty)")
    d.add_argument(
        "--variations",
        help="scene variations: a shipped name (in_domain, background, position, position_far, object) or a YAML file (default in_domain)",
    )
    d.add_argument("--fps", type=int, help="control and dataset rate (default 30)")
    d.add_argument("--seed", type=int, help="first seed; the next are tried in order (default 0)")
    d.add_argument("--resolution", type=int, help="square image size in pixels (default 96)")
    media = d.add_mutually_exclusive_group()
    media.add_argument("--video", dest="video", action="store_true", default=None, help="store cameras as AV1 videos (default, as lerobot-record)")
    media.add_argument("--images", dest="video", action="store_false", help="store cameras as PNG frames inside the parquet files")
    existing = d.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true", default=None, help="add episodes to the dataset in --out")
    existing.add_argument("--overwrite", action="store_true", default=None, help="delete the dataset in --out first")
    d.add_argument("--repo-id", help="dataset id (default local/<name of --out>)")
    d.add_argument("--max-attempts", type=int, help="seeds to try at most (default max(2 x episodes, episodes + 10))")
    d.add_argument(
        "--noise",
        type=float,
        metavar="SIGMA_RAD",
        help="recovery demonstrations: add an Ornstein-Uhlenbeck offset with this standard deviation (radians, "
        f"0..{MAX_SIGMA_RAD}) to the executed targets of the 5 arm joints; the dataset's action stays the expert's "
        "noise-free target (default 0: clean; the expert completes pick_place in 20/20 up to 0.06)",
    )
    d.add_argument("--noise-tau", type=float, metavar="SECONDS", help=f"correlation time of the noise (default {DEFAULT_TAU_S})")
    d.add_argument(
        "--noise-at-grip",
        action="store_true",
        default=None,
        help="keep the noise while the expert closes in on a grasp or release (default: faded out there). "
        "More of its episodes then fail (pick_place: 15/20 at 0.03); failed episodes are not saved",
    )
    d.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")
    d.add_argument("--json", action="store_true", help="print the summary as JSON")
    return sim


def _config(args: argparse.Namespace) -> DemosConfig:
    names = [
        "task", "episodes", "out", "variations", "fps", "seed", "resolution", "video",
        "resume", "overwrite", "repo_id", "max_attempts", "progress", "noise", "noise_tau", "noise_at_grip",
    ]  # fmt: skip
    return build(DemosConfig, {n: getattr(args, n, None) for n in names})


def format_summary(s: dict) -> str:
    t = s["timing"]
    media = "videos" if s["video"] else "images"
    failed = ", ".join(map(str, s["failed_seeds"])) or "none"
    lines = [
        f"{'added' if s['resumed'] else 'recorded'} {s['episodes_saved']} of {s['episodes_requested']} episodes of "
        f"{s['task']} ({s['spec']}) into {s['path']}",
        f"  attempts {s['attempts']} (max {s['max_attempts']}), success {100 * s['success_rate']:.0f}%, failed seeds: {failed}",
        f"  {s['frames']} frames at {s['fps']} fps, {s['resolution']}x{s['resolution']} {media}, joints in {s['units']}; "
        f"dataset now {s['total_episodes']} episodes, {s['total_frames']} frames",
        f"  {s['seconds']:.1f} s (physics+expert {t['sim_s']:.1f} s, rendering {t['render_s']:.1f} s, "
        f"writing {t['write_s'] + t['finalize_s']:.1f} s)",
    ]
    n = s.get("noise")
    lines.insert(
        2,
        "  action noise: none (clean demonstrations)"
        if not n
        else f"  action noise: Ornstein-Uhlenbeck, sigma {n['sigma_rad']:g} rad, tau {n['tau_s']:g} s on "
        f"{', '.join(n['joints'])} ({'kept' if n['at_grip'] else 'faded out'} at grasp/release); "
        "action = the expert's noise-free target",
    )
    if s["episodes_saved"] or s["total_episodes"]:
        lines.append(f'  load: LeRobotDataset("{s["repo_id"]}", root="{s["path"]}")')
    return "\n".join(lines)


def _demos(args: argparse.Namespace) -> int:
    try:
        cfg = _config(args)
    except ConfigError as err:
        print(f"{PROG}: invalid option\n{str(err).replace('Value error, ', '')}", file=sys.stderr)
        return EXIT_USAGE
    from hardware.sim.dataset import DemoError, DemoInputError, record_demos
    from hardware.sim.noise import ActionNoise
    from hardware.sim.render import RenderError
    from hardware.sim.scene import SceneError
    from hardware.sim.variations import VariationError

    noise = ActionNoise(sigma_rad=cfg.noise, tau_s=cfg.noise_tau, at_grip=cfg.noise_at_grip) if cfg.noise > 0 else None

    try:
        summary = record_demos(
            cfg.task,
            cfg.episodes,
            cfg.out,
            spec=cfg.variations,
            fps=cfg.fps,
            seed=cfg.seed,
            resolution=cfg.resolution,
            video=cfg.video,
            progress=cfg.progress,
            resume=cfg.resume,
            overwrite=cfg.overwrite,
            repo_id=cfg.repo_id,
            max_attempts=cfg.max_attempts,
            noise=noise,
        )
    except VariationError as err:
        print(f"{PROG}: --variations: {err}", file=sys.stderr)
        return EXIT_USAGE
    except DemoInputError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (RenderError, SceneError, DemoError, OSError) as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return EXIT_FAILURE
    print(json.dumps(summary, indent=2) if getattr(args, "json", False) else format_summary(summary))
    if not summary["complete"]:
        kept = (
            f"the {summary['episodes_saved']} saved are a valid dataset in {summary['path']}"
            if summary["episodes_saved"]
            else "nothing was saved"
        )
        print(
            f"{PROG}: only {summary['episodes_saved']} of {summary['episodes_requested']} episodes succeeded in "
            f"{summary['attempts']} attempts (--max-attempts {summary['max_attempts']}); {kept}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Handler of ``harmowam sim``: the exit code."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded at run time
    if getattr(args, "sim_command", None) != "demos":
        print("harmowam sim: choose what to do: demos (harmowam sim demos --help)", file=sys.stderr)
        return EXIT_USAGE
    return _demos(args)
