"""Which policy to run: ``PolicySpec`` (picklable: it crosses into a policy process) and ``build``.

``build(spec, context)`` makes the policy named by ``spec.name`` in the calling thread or process
(wrapped in ``policies.units.ConvertedPolicy`` when ``spec.io`` says its checkpoint speaks other units)
(``harmowam_ctl.inference.PolicyRunner`` calls it inside its worker). ``context`` is what a policy
needs from the running program that cannot be pickled: for ``scripted``, the simulated ``TaskEnv``.

Names: ``synthetic`` (``policies.synthetic``, options = ``SyntheticOptions``), ``scripted``
(``policies.scripted``, needs ``context``; no options). Trained checkpoints (``harmowam``, ``act``)
come with issue 5: they add an entry to ``_BUILDERS`` taking ``options["checkpoint"]``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from policies.interface import Policy
from policies.units import ConvertedPolicy, PolicyIO


class PolicySpec(BaseModel):
    """What ``--policy`` and its options chose."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="the policy's name (registry.policy_names())")
    options: dict[str, Any] = Field(default_factory=dict, description="the policy's own options")
    seed: int = Field(0, description="seeds the policy's random parts (synthetic weights and phases)")
    torch_threads: int = Field(1, ge=1, le=64, description="torch.set_num_threads in the policy's worker")
    io: PolicyIO | None = Field(None, description=(
        "convert between radians and the checkpoint's units with the arm's calibration (policies.units.bind_units); "
        "None: the policy speaks radians"))

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in _BUILDERS:
            raise ValueError(f"unknown policy {v!r} (policies: {', '.join(_BUILDERS)})")
        return v


def _synthetic(spec: PolicySpec, context: Any) -> Policy:
    from policies.synthetic import SyntheticPolicy

    return SyntheticPolicy(spec.options, seed=spec.seed, torch_threads=spec.torch_threads)


def _scripted(spec: PolicySpec, context: Any) -> Policy:
    if context is None:
        raise ValueError("--policy scripted needs --sim (it drives the simulated task's scripted expert)")
    if spec.options:
        raise ValueError(f"--policy scripted takes no options (got {', '.join(spec.options)})")
    from policies.scripted import ScriptedPolicy

    return ScriptedPolicy(context)


def _act(spec: PolicySpec, context: Any) -> Policy:
    from policies.act import ActOptions, ActPolicy

    o = ActOptions(**spec.options)
    return ActPolicy(o.checkpoint, fps=o.fps, camera_map=o.camera_map, torch_threads=spec.torch_threads,
                     trust_remote_code=o.trust_remote_code)


def _harmowam(spec: PolicySpec, context: Any) -> Policy:
    from policies.harmowam.policy import HarmoWAMPolicy

    opts = dict(spec.options)
    if not opts.get("checkpoint"):
        raise ValueError("--policy harmowam needs options['checkpoint'] = a directory written by harmowam train")
    return HarmoWAMPolicy.from_checkpoint(opts.pop("checkpoint"), seed=spec.seed, torch_threads=spec.torch_threads, overrides=opts)


# name -> builder(spec, context). Issue 5 adds "harmowam" and "act" (from a checkpoint) here.
_BUILDERS: dict[str, Callable[[PolicySpec, Any], Policy]] = {
    "synthetic": _synthetic,
    "scripted": _scripted,
    "act": _act,
    "harmowam": _harmowam,
}
NEEDS_CONTEXT = frozenset({"scripted"})  # cannot run in a policy process (the context stays here)


def policy_names() -> tuple[str, ...]:
    return tuple(_BUILDERS)


def build(spec: PolicySpec, context: Any = None) -> Policy:
    """The policy ``spec`` names, built here (``ValueError`` naming what to fix when it cannot be)."""
    try:
        builder = _BUILDERS[spec.name]
    except KeyError:
        raise ValueError(f"unknown policy {spec.name!r} (policies: {', '.join(_BUILDERS)})") from None
    policy = builder(spec, context)
    return policy if spec.io is None else ConvertedPolicy(policy, spec.io)


def _format(checkpoint: Path) -> Any:
    try:
        return json.loads((checkpoint / "config.json").read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        return None


def resolve_policy(arg: str) -> PolicySpec:
    """``--policy ARG``: a policy name, or a checkpoint directory whose ``config.json`` says which builder
    loads it: ``{"format": "harmowam"}`` (``harmowam train``; its ``--out`` will do, for ``final/``) or
    LeRobot's ``{"type": "act"}`` (``lerobot-train``, ``harmowam baseline act``; the run directory will do).
    ``ValueError`` naming the fix otherwise."""
    if arg in _BUILDERS:
        return PolicySpec(name=arg)
    path = Path(arg).expanduser()
    expected = (f"give a policy name ({', '.join(_BUILDERS)}) or a checkpoint directory written by harmowam train, "
                "lerobot-train (ACT) or harmowam baseline act")
    if not path.is_dir():
        raise ValueError(f"{arg!r} is {'a file' if path.exists() else 'neither a policy name nor a directory'}: {expected}")
    if not (path / "config.json").is_file() and _format(path / "final") == "harmowam":
        path = path / "final"  # a `harmowam train --out` directory: its trained policy
    if _format(path) == "harmowam":
        name = "harmowam"
    else:
        from policies.act import ActCheckpointError, find_pretrained_dir, read_act_config

        try:
            read_act_config(find_pretrained_dir(path))
        except ActCheckpointError as e:
            raise ValueError(f"{path} is not a checkpoint this program can run ({e}); {expected}") from None
        name = "act"
    if name not in _BUILDERS:
        raise ValueError(f"{path} is a {name} checkpoint, but this installation has no {name!r} policy")
    return PolicySpec(name=name, options={"checkpoint": str(path.resolve())})
