"""The same demonstrations stored in radians and in LeRobot's degrees train two HarmoWAM policies that drive
the simulated SO-101 along the same trajectory, through the runtime's conversion (``policies.units``).

Why they must agree: LeRobot's units are affine in radians (``calibration.units``), and HarmoWAM normalises
state and actions with the dataset's own mean and standard deviation, so both trainings see the same
normalised numbers up to float32 rounding (~1e-7 relative), with the same seed and batch order. What is
left is rounding carried through a few dozen optimiser steps. The tolerance: one servo tick (2*pi/4096 =
1.5e-3 rad) per target - the two policies command the same servo positions - and the closed-loop joint
trajectories within the same tick after 60 control steps.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("mujoco")

from calibration import ArmCalibration  # noqa: E402
from calibration.units import UnitsError  # noqa: E402
from hardware.arms import KOCH, SO101  # noqa: E402
from policies.harmowam.train import TrainConfig, train  # noqa: E402
from policies.interface import Observation  # noqa: E402
from policies.registry import PolicySpec, build  # noqa: E402
from policies.units import ConvertedPolicy, bind_units  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import tiny_dataset  # noqa: E402

TICK = 2 * np.pi / 4096
TINY_MODEL = dict(
    image_size=32, latent_channels=4, encoder_channels=(8, 8, 16, 16), wm_width=32, wm_depth=1, wm_heads=2,
    expert_width=32, expert_depth=1, expert_heads=2, gate_hidden=16, horizon=6, n_future=2, future_stride=2,
    wm_steps=2, expert_steps=2, recon_frames=2,
)
CFG = TrainConfig(autoencoder_steps=10, world_steps=6, expert_steps=20, batch_size=8, lr=3e-3, world_lr=3e-3,
                  warmup_steps=2, log_every=10, val_every=100, save_every=100, val_batches=1, model=TINY_MODEL,
                  data={"val_fraction": 0.34})


@pytest.fixture(scope="module")
def policies(tmp_path_factory):
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("units")
    out = {}
    for units in ("rad", "lerobot"):
        ds = tiny_dataset.make_tiny_dataset(base / f"ds_{units}", episodes=3, frames=40, size=32, units=units)
        torch.manual_seed(0)
        train(ds, base / f"run_{units}", CFG, progress=False)
        out[units] = base / f"run_{units}" / "final"
    return out


def _built(ckpt: Path) -> object:
    cal = ArmCalibration.simulated(SO101)
    opts = {"checkpoint": str(ckpt)}
    return build(PolicySpec(name="harmowam", options=opts, io=bind_units("harmowam", opts, SO101, cal)))


def test_checkpoints_record_their_units_and_only_the_degrees_one_is_converted(policies) -> None:
    cal = ArmCalibration.simulated(SO101)
    assert bind_units("harmowam", {"checkpoint": str(policies["rad"])}, SO101, cal) is None  # radians: nothing to do
    io = bind_units("harmowam", {"checkpoint": str(policies["lerobot"])}, SO101, cal)
    assert io is not None and io.units["kinds"] == ["deg"] * 5 + ["range_0_100"]
    assert isinstance(_built(policies["lerobot"]), ConvertedPolicy)
    with pytest.raises(UnitsError, match="so_follower"):  # an SO policy is not driven on a Koch
        bind_units("harmowam", {"checkpoint": str(policies["lerobot"])}, KOCH, ArmCalibration.centered(KOCH))
    with pytest.raises(UnitsError, match="drop --policy-units"):  # a declaration that contradicts the checkpoint
        bind_units("harmowam", {"checkpoint": str(policies["lerobot"])}, SO101, cal, "rad")


def test_same_chunks_from_radians_and_degrees_training(policies) -> None:
    a, b = _built(policies["rad"]), _built(policies["lerobot"])
    state, _ = tiny_dataset.episode_arrays(1, 40)
    worst = 0.0
    for i in range(0, 40, 5):
        images = {c: tiny_dataset.render(c, state[i], 32, 1) for c in ("front", "wrist")}
        obs = Observation(t=1.0 + i, state=state[i].astype(float), state_t=1.0 + i, images=images,
                          image_t={c: 1.0 + i for c in images})
        ca, cb = a.act(a.predict(obs), obs), b.act(b.predict(obs), obs)
        worst = max(worst, float(np.max(np.abs(ca.actions - cb.actions))))
        assert abs(float(np.max(ca.actions[:, :5])) - float(np.max(cb.actions[:, :5]))) < TICK
    assert worst < TICK, worst
    # without the conversion the degrees policy's targets are tens of "radians": what issue 12 measured
    raw = b.inner.act(b.inner.predict(obs), obs)
    assert np.max(np.abs(raw.actions)) > 5


def test_same_closed_loop_trajectory_on_the_simulated_arm(policies) -> None:
    from hardware.sim.render import SimRenderer
    from hardware.sim.tasks import get_task

    task = get_task("pick_place")
    paths = []
    for units in ("rad", "lerobot"):
        policy = _built(policies[units])
        policy.reset()
        env = task.reset(1000, "in_domain", fps=30, offscreen_size=(640, 480))
        renderer = SimRenderer(env.model, (32, 32))
        traj = []
        try:
            for call in range(10):
                renderer.sync(env.arm)
                t = env.time
                obs = Observation(t=t, state=env.joint_positions(), state_t=t,
                                  images={c: renderer.render(c) for c in ("front", "wrist")},
                                  image_t={"front": t, "wrist": t}, index=call)
                chunk = policy.act(policy.predict(obs), obs)
                for k in range(6):
                    env.step(chunk.actions[min(k, chunk.horizon - 1)])
                    traj.append(env.joint_positions().copy())
        finally:
            renderer.close()
        paths.append(np.array(traj))
    diff = np.max(np.abs(paths[0] - paths[1]))
    assert np.ptp(paths[0][:, :5], axis=0).max() > 0.01  # the arm moved: the comparison says something
    assert diff < TICK, diff


def test_the_runtime_refuses_unknown_units_before_anything_starts(policies, tmp_path) -> None:
    """A checkpoint that does not say its units: ``harmowam run`` refuses it (exit 2, the fix named) before the
    simulated world or a bus is started; ``--policy-units lerobot`` declares them and it is accepted."""
    import asyncio
    import json
    import shutil

    from harmowam_ctl import runconfig
    from harmowam_ctl.config import ConfigError
    from harmowam_ctl.setup import policy_io, session

    ckpt = tmp_path / "nounits"
    shutil.copytree(policies["lerobot"], ckpt)
    doc = json.loads((ckpt / "config.json").read_text())
    doc["meta"]["units"] = None
    (ckpt / "config.json").write_text(json.dumps(doc))
    cfg = runconfig.load(None, {"sim": True, "policy": "harmowam", "status": False, "keyboard": False,
                                "policy_options": {"checkpoint": str(ckpt)}}, [])

    async def enter() -> None:
        async with session(cfg):
            raise AssertionError("the session must not start")

    with pytest.raises(ConfigError, match="--policy-units lerobot"):
        asyncio.run(enter())
    declared = cfg.model_copy(update={"policy_units": "lerobot"})
    io = policy_io(declared, SO101, ArmCalibration.simulated(SO101))
    assert io is not None and io.units["kinds"][0] == "deg"
