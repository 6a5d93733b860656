"""A policy's units at the runtime boundary: read them from a checkpoint, check them against the arm, convert.

Policies inside the runtime speak radians (``policies.interface``). A trained checkpoint speaks the units of
its training data (``calibration.units``): LeRobot's degrees / 0..100 for a LeRobot recording or a
``harmowam sim demos`` dataset, radians for harmowam's older datasets. The checkpoint records them
(``harmowam train``: ``meta.units``; ``harmowam baseline act``: ``harmowam_baseline.json``; a plain
``lerobot-train`` ACT: its training dataset's ``meta/info.json`` found through ``train_config.json``).

``bind_units(spec, profile, calibration, declared)`` runs before the arm is driven: it reads the
checkpoint's units without loading weights, checks them against the arm (joint names and count, arm type)
and returns ``PolicyIO`` (picklable: it travels into a policy process with the ``PolicySpec``), or ``None``
for policies that speak radians natively (``synthetic``, ``scripted``) or a checkpoint in radians with the
joints in the runtime's order. ``UnitsError`` says why a policy cannot be driven and how to fix it:
unknown units need ``--policy-units``; ``--policy-units`` that contradicts the checkpoint is refused.

``ConvertedPolicy`` (made by ``policies.registry.build`` when the spec carries ``PolicyIO``) converts the
observation's joint state radians -> policy units before both stages, and the chunk's targets back to
radians, with the arm's calibration (the gripper's 0..100 needs its calibrated range).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from calibration.model import ArmCalibration, JointCalibration
from calibration.units import JointUnits, UnitsConverter, UnitsError, check_fits, parse_units, radians
from hardware.arms import ArmProfile, arm
from policies.interface import ActionChunk, Observation, Policy, WorldPrediction

NATIVE = frozenset({"synthetic", "scripted"})  # built here, in radians


class PolicyIO(BaseModel):
    """What a policy process needs to convert: the arm, its calibration (LeRobot's JSON) and the units."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arm: str
    calibration: dict[str, dict[str, int]]
    units: dict[str, Any]

    def converter(self) -> UnitsConverter:
        profile = arm(self.arm)
        cal = ArmCalibration({j: JointCalibration(**v, joint=j) for j, v in self.calibration.items()})
        return UnitsConverter(parse_units(self.units, robot_type=None), cal, profile.family)


def units_from_meta(value: Any, robot_type: str | None = None) -> JointUnits | None:
    """A checkpoint's recorded units: ``JointUnits.as_json``, the older ``"rad"`` string, or ``None``."""
    if value is None:
        return None
    if value == "rad":
        return radians(robot_type=robot_type)
    if isinstance(value, Mapping):
        return parse_units(value, robot_type=robot_type)
    raise UnitsError(f"the checkpoint records units {value!r}, which this program cannot read")


def checkpoint_units(name: str, options: Mapping[str, Any]) -> tuple[JointUnits | None, str]:
    """``(units, where they were read)`` for a policy spec's checkpoint, without loading weights."""
    if name in NATIVE:
        return radians(), "native"
    ckpt = options.get("checkpoint")
    if not ckpt:
        raise UnitsError(f"policy {name!r} has no checkpoint to read its units from")
    if name == "harmowam":
        from policies.harmowam.checkpoint import read_config

        _, meta = read_config(ckpt)
        return units_from_meta(meta.get("units")), f"{ckpt}/config.json"
    if name == "act":
        from policies.act import find_pretrained_dir, training_facts

        facts = training_facts(find_pretrained_dir(ckpt))
        return units_from_meta(facts.get("units")), facts.get("units_source", "the training dataset")
    raise UnitsError(f"policy {name!r}: this program does not know where its units are recorded")


def bind_units(name: str, options: Mapping[str, Any], profile: ArmProfile, calibration: ArmCalibration,
               declared: str | None = None) -> PolicyIO | None:
    """The conversion for driving policy ``name`` (with ``options``) on ``profile`` (module doc)."""
    units, source = checkpoint_units(name, options)
    if declared is not None:
        want = parse_units(declared, robot_type=profile.lerobot_type,
                           names=units.names if units is not None else radians().names)
        if units is not None and (units.kinds, units.names) != (want.kinds, want.names):
            raise UnitsError(
                f"--policy-units {declared} says {want.describe()}, but the checkpoint records {units.describe()} "
                f"({source}); drop --policy-units (it is only for checkpoints that do not say)"
            )
        units = want if units is None else units
    if units is None:
        raise UnitsError(
            f"the checkpoint does not say which units its joints are in ({source}); driving it would guess. If it "
            "was trained on a LeRobot recording of this arm, pass --policy-units lerobot; on harmowam's radians "
            "datasets, --policy-units rad"
        )
    check_fits(units, profile.lerobot_type, profile.legacy_lerobot_types)
    io = PolicyIO(arm=profile.name, calibration=calibration.as_dict(), units=units.as_json())
    if name in NATIVE or io.converter().identity:
        return None
    return io


class ConvertedPolicy:
    """``inner`` (speaking its checkpoint's units) behind the radians interface (module doc)."""

    def __init__(self, inner: Policy, io: PolicyIO) -> None:
        self.inner = inner
        self.name = inner.name
        self.io = io
        self.conv = io.converter()

    def __getattr__(self, attr: str) -> Any:  # cameras, meta, ... of the inner policy
        return getattr(self.inner, attr)

    def _obs(self, obs: Observation) -> Observation:
        return dataclasses.replace(obs, state=self.conv.to_units(np.asarray(obs.state, dtype=float)))

    def reset(self) -> None:
        self.inner.reset()

    def predict(self, obs: Observation) -> WorldPrediction:
        return self.inner.predict(self._obs(obs))

    def act(self, prediction: WorldPrediction, obs: Observation) -> ActionChunk:
        chunk = self.inner.act(prediction, self._obs(obs))
        return dataclasses.replace(chunk, actions=self.conv.to_radians(chunk.actions))


def describe_io(io: PolicyIO | None) -> str:
    return "radians" if io is None else parse_units(io.units, robot_type=None).describe()
