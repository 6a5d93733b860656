"""LeRobot ACT behind our Policy interface (policies.act), the ``act`` builder and the ``--policy DIR``
resolver (policies.registry), and ``harmowam baseline act`` (LeRobot's own trainer).

One small ACT (dim 64, 1 layer, chunk 12) is trained once for the module by the real ``harmowam baseline
act`` (2 steps, ~7 s); one test trains ACT at its default size (2 steps, ~12 s)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest
import torch

from harmowam_ctl import cli
from policies import registry
from policies.act import ActCheckpointError, ActPolicy, act_config, default_act_for_bench, find_pretrained_dir
from policies.interface import Observation, Policy
from policies.registry import PolicySpec, build, resolve_policy

sys.path.insert(0, str(Path(__file__).parent))  # tests are not packages (--import-mode=importlib)
import tiny_dataset  # noqa: E402

SMALL = ["policy.dim_model=64", "policy.n_heads=2", "policy.dim_feedforward=128", "policy.n_encoder_layers=1",
         "policy.n_vae_encoder_layers=1", "policy.chunk_size=12", "policy.n_action_steps=12"]


def _baseline(dataset: Path, out: Path, steps: int, *extra: str) -> list[str]:
    argv = ["baseline", "act", "--dataset", str(dataset), "--out", str(out), "--steps", str(steps),
            "--batch-size", "2", "--device", "cpu", "--torch-threads", "1", "--json"]
    return argv + [a for s in extra for a in ("--set", s)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return tiny_dataset.make_tiny_dataset(tmp_path_factory.mktemp("act") / "ds", episodes=2, frames=20)


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> tuple[Path, dict]:
    """(run dir, the command's JSON result) of a small ACT trained by `harmowam baseline act`."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("act_run") / "run"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main(_baseline(dataset, out, 2, *SMALL))
    assert rc == 0
    return out, json.loads(buf.getvalue())


@pytest.fixture(scope="module")
def policy(trained) -> ActPolicy:
    return ActPolicy(trained[0])


def _obs(t: float = 7.5, state=None, cameras=("front", "wrist"), size=(96, 96), seed=0) -> Observation:
    rng = np.random.default_rng(seed)
    imgs = {c: rng.integers(0, 256, (*size, 3), dtype=np.uint8) for c in cameras}
    s = np.array([0.1, -0.3, 0.2, 0.0, 0.1, 0.5]) if state is None else np.asarray(state, float)
    return Observation(t=t, state=s, state_t=t, images=MappingProxyType(imgs), image_t=dict.fromkeys(cameras, t))


# ---- harmowam baseline act -------------------------------------------------------------------------------

def test_baseline_act_runs_lerobot_train_and_records_the_dataset(trained, dataset):
    out, result = trained
    pretrained = out / "checkpoints" / "000002" / "pretrained_model"
    assert Path(result["checkpoint"]).resolve() == pretrained.resolve()
    cfg = json.loads((pretrained / "config.json").read_text())
    assert cfg["type"] == "act" and cfg["pretrained_backbone_weights"] is None and cfg["dim_model"] == 64
    assert cfg["device"] == "cpu" and (pretrained / "model.safetensors").is_file()
    assert sorted(cfg["input_features"]) == ["observation.images.front", "observation.images.wrist", "observation.state"]
    train_cfg = json.loads((pretrained / "train_config.json").read_text())
    assert train_cfg["steps"] == 2 and Path(train_cfg["dataset"]["root"]) == dataset.resolve()
    note = json.loads((out / "harmowam_baseline.json").read_text())
    assert note["fps"] == 30.0 and note["units"]["kinds"] == ["rad"] * 6 and note["cameras"] == ["front", "wrist"]
    assert "--policy.dim_model=64" in note["lerobot_args"] and note["device"] == "cpu"


def test_baseline_act_bad_inputs_exit_2_naming_the_option(tmp_path, dataset, capsys):
    assert cli.main(["baseline", "act", "--dataset", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "--dataset" in capsys.readouterr().err
    (tmp_path / "plain").mkdir()
    assert cli.main(["baseline", "act", "--dataset", str(tmp_path / "plain"), "--out", str(tmp_path / "o")]) == 2
    assert "not a LeRobot dataset" in capsys.readouterr().err
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("keep me")
    assert cli.main(["baseline", "act", "--dataset", str(dataset), "--out", str(full)]) == 2
    assert "not empty" in capsys.readouterr().err and (full / "x").read_text() == "keep me"
    assert cli.main(["baseline", "act", "--dataset", str(dataset), "--out", str(tmp_path / "o"), "--set", "steps"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert cli.main(["baseline", "act", "--dataset", str(dataset), "--out", str(tmp_path / "o"), "--set", "output_dir=x"]) == 2
    assert cli.main(["baseline", "act", "--dataset", str(dataset), "--out", str(tmp_path / "o"), "--steps", "0"]) == 2
    assert cli.main(["baseline"]) == 2
    assert not (tmp_path / "o").exists()


def test_baseline_act_reports_a_failing_trainer(tmp_path, dataset, capsys, monkeypatch):
    from harmowam_ctl.commands import baseline

    calls = []

    def fake_run(argv, **kw):  # LeRobot's trainer exiting with an error (its own tests cover why it would)
        calls.append((argv, kw))
        return subprocess.CompletedProcess(argv, 3)

    monkeypatch.setattr(baseline.subprocess, "run", fake_run)
    rc = cli.main(_baseline(dataset, tmp_path / "o", 5, "policy.chunk_size=50", "save_freq=1"))
    assert rc == 1 and "lerobot-train failed with exit code 3" in capsys.readouterr().err
    argv, kw = calls[0]
    assert argv[1:3] == ["-m", "lerobot.scripts.lerobot_train"]
    assert {"--policy.type=act", "--policy.pretrained_backbone_weights=null", "--steps=5", "--batch_size=2",
            "--policy.chunk_size=50", "--save_freq=1", "--policy.device=cpu", f"--dataset.root={dataset.resolve()}"} <= set(argv)
    assert kw["env"]["HF_HUB_OFFLINE"] == "1" and kw["env"]["OMP_NUM_THREADS"] == "1"
    assert not (tmp_path / "o" / "harmowam_baseline.json").exists()


def test_baseline_act_at_default_size_trains_and_runs(tmp_path, dataset, capsys):
    t = time.monotonic()
    assert cli.main(_baseline(dataset, tmp_path / "run", 2)) == 0
    took = time.monotonic() - t
    result = json.loads(capsys.readouterr().out)
    cfg = json.loads((Path(result["checkpoint"]) / "config.json").read_text())
    assert (cfg["dim_model"], cfg["n_encoder_layers"], cfg["chunk_size"], cfg["vision_backbone"]) == (512, 4, 100, "resnet18")
    assert cfg["pretrained_backbone_weights"] is None
    p = ActPolicy(tmp_path / "run")
    chunk = p.act(p.predict(_obs()), _obs())
    assert chunk.actions.shape == (100, 6) and p.horizon == 100
    assert took < 60, f"default-size 2-step training took {took:.1f} s"


# ---- ActPolicy ---------------------------------------------------------------------------------------------

def test_every_form_of_the_checkpoint_path_finds_the_same_model(trained):
    out = trained[0]
    want = (out / "checkpoints" / "000002" / "pretrained_model").resolve()
    for p in (out, out / "checkpoints" / "last", out / "checkpoints" / "000002", want):
        assert find_pretrained_dir(p).resolve() == want


def test_act_chunk_is_stamped_sized_and_deterministic(policy):
    assert isinstance(policy, Policy) and policy.name == "act"
    assert policy.cameras == ("front", "wrist") and policy.state_dim == 6 and policy.horizon == 12
    assert policy.fps == 30.0 and policy.dt == pytest.approx(1 / 30) and policy.units["kinds"] == ["rad"] * 6
    obs = _obs(t=123.25)
    pred = policy.predict(obs)
    assert pred.t_obs == obs.t and pred.latent is None
    chunk = policy.act(pred, obs)
    assert chunk.actions.shape == (12, 6) and chunk.t0 == obs.t == chunk.t_obs and chunk.dt == pytest.approx(1 / 30)
    assert chunk.expert == "act" and chunk.gate is None and np.all(np.isfinite(chunk.actions))
    policy.reset()
    np.testing.assert_array_equal(policy.act(pred, obs).actions, chunk.actions)
    other = policy.act(pred, _obs(t=123.25, state=[0.5, 0.2, -0.4, 0.3, -0.2, 0.1]))
    assert np.abs(other.actions - chunk.actions).max() > 1e-6  # the state reaches the model


def test_act_equals_lerobots_own_inference_pipeline(trained, policy):
    """Our mapping (images, state, normalisation) gives what LeRobot's predict_action gives."""
    from lerobot.common.control_utils import predict_action
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    pretrained = find_pretrained_dir(trained[0])
    cfg = PreTrainedConfig.from_pretrained(pretrained)
    model = ACTPolicy.from_pretrained(pretrained, config=cfg)
    pre, post = make_pre_post_processors(cfg, pretrained_path=str(pretrained))
    obs = _obs(seed=3)
    raw = {f"observation.images.{c}": np.array(obs.images[c]) for c in ("front", "wrist")}
    raw["observation.state"] = obs.state.astype(np.float32)
    theirs = predict_action(raw, model, torch.device("cpu"), pre, post, use_amp=False, task="")
    ours = policy.act(policy.predict(obs), obs).actions[0]
    np.testing.assert_allclose(ours, theirs.reshape(-1).numpy(), atol=1e-5)


def test_act_resizes_other_image_sizes_and_maps_camera_names(trained, policy):
    chunk = policy.act(policy.predict(_obs(size=(120, 160))), _obs(size=(120, 160)))
    assert chunk.actions.shape == (12, 6) and np.all(np.isfinite(chunk.actions))
    mapped = ActPolicy(trained[0], camera_map={"front": "top"})
    assert mapped.cameras == ("top", "wrist")
    obs = _obs(cameras=("top", "wrist"))
    same = _obs()  # same pixels (same seed, same camera order)
    np.testing.assert_allclose(mapped.act(mapped.predict(obs), obs).actions, policy.act(policy.predict(same), same).actions)
    with pytest.raises(ActCheckpointError, match="camera_map names \\['top'\\].*uses \\['front', 'wrist'\\]"):
        ActPolicy(trained[0], camera_map={"top": "front"})


def test_act_bad_observations_say_what_to_fix(policy):
    with pytest.raises(ValueError, match="needs camera 'wrist' \\(cameras here: front\\).*--camera wrist="):
        policy.act(policy.predict(_obs(cameras=("front",))), _obs(cameras=("front",)))
    with pytest.raises(ValueError, match="state has 5 joints; this ACT checkpoint takes 6"):
        policy.act(policy.predict(_obs()), _obs(state=np.zeros(5)))
    bad = Observation(t=1.0, state=np.zeros(6), state_t=1.0,
                      images={"front": np.zeros((96, 96, 3), np.float32), "wrist": np.zeros((96, 96), np.uint8)})
    with pytest.raises(ValueError, match="camera 'front': expected an H x W x 3 uint8 image"):
        policy.act(policy.predict(bad), bad)


def _copy(trained, tmp_path: Path) -> Path:
    dst = tmp_path / "pm"
    shutil.copytree(find_pretrained_dir(trained[0]), dst)
    return dst


def test_not_an_act_checkpoint_is_named(tmp_path, trained):
    with pytest.raises(ActCheckpointError, match="does not exist"):
        ActPolicy(tmp_path / "missing")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ActCheckpointError, match="is a file"):
        ActPolicy(tmp_path / "f")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ActCheckpointError, match="holds no ACT checkpoint"):
        ActPolicy(tmp_path / "empty")
    d = _copy(trained, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "type": "diffusion"}))
    with pytest.raises(ActCheckpointError, match="not an ACT checkpoint \\(a LeRobot 'diffusion' policy\\)"):
        ActPolicy(d)
    (d / "config.json").write_text(json.dumps({"format": "harmowam", "version": 1}))
    with pytest.raises(ActCheckpointError, match="is a HarmoWAM checkpoint, not ACT"):
        ActPolicy(d)
    (d / "config.json").write_text('{"type": "act", ')
    with pytest.raises(ActCheckpointError, match="cannot read it as JSON.*damaged"):
        ActPolicy(d)


def test_damaged_act_weights_are_named(tmp_path, trained):
    d = _copy(trained, tmp_path)
    weights = d / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ActCheckpointError, match="does not load"):
        ActPolicy(d)
    weights.unlink()
    with pytest.raises(ActCheckpointError, match="model.safetensors is missing"):
        ActPolicy(d)
    shutil.copy(find_pretrained_dir(trained[0]) / "model.safetensors", weights)
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "dim_feedforward": 256}))  # weights no longer fit
    with pytest.raises(ActCheckpointError, match="does not load.*size mismatch for model.*config.json does not match"):
        ActPolicy(d)


def test_fps_comes_from_option_note_or_dataset(tmp_path, trained):
    from structlog.testing import capture_logs

    d = _copy(trained, tmp_path)  # no baseline note next to it: the dataset's info.json is read
    fake = tmp_path / "ds15"
    (fake / "meta").mkdir(parents=True)
    names = [f"{j}.pos" for j in ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")]
    (fake / "meta" / "info.json").write_text(json.dumps({"fps": 15, "robot_type": "so_follower", "features": {
        "action": {"dtype": "float32", "shape": [6], "names": names}}}))  # a LeRobot SO recording: degrees
    tc = json.loads((d / "train_config.json").read_text())
    tc["dataset"]["root"] = str(fake)
    (d / "train_config.json").write_text(json.dumps(tc))
    p = ActPolicy(d)
    assert p.fps == 15 and p.units["kinds"] == ["deg"] * 5 + ["range_0_100"]  # the runtime converts (policies.units)
    assert ActPolicy(d, fps=50).dt == pytest.approx(0.02)
    shutil.rmtree(fake)
    with capture_logs() as logs:
        p = ActPolicy(d)
    assert p.fps == 30.0 and any(e["event"] == "act_fps_unknown" for e in logs)


def test_temporal_ensembling_checkpoint_gives_the_whole_chunk():
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    cfg = act_config(dim_model=32, n_heads=2, dim_feedforward=64, n_encoder_layers=1, n_vae_encoder_layers=1,
                     chunk_size=8, n_action_steps=1, temporal_ensemble_coeff=0.01)
    stats = {k: {"mean": torch.zeros(f.shape), "std": torch.ones(f.shape)}
             for k, f in {**cfg.input_features, **cfg.output_features}.items()}
    pre, post = make_pre_post_processors(cfg, dataset_stats=stats)
    p = ActPolicy.from_parts(cfg, ACTPolicy(cfg), pre, post, fps=10)
    chunk = p.act(p.predict(_obs()), _obs())
    assert p.horizon == 8 and chunk.actions.shape == (8, 6) and chunk.dt == pytest.approx(0.1)


def test_a_checkpoint_that_does_not_drive_six_joints_is_refused():
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.modeling_act import ACTPolicy

    cfg = act_config(dim_model=32, n_heads=2, dim_feedforward=64, n_encoder_layers=1, n_vae_encoder_layers=1, chunk_size=4,
                     n_action_steps=4, output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(7,))})
    with pytest.raises(ActCheckpointError, match="action has shape \\(7,\\); the runtime drives 6 joints"):
        ActPolicy.from_parts(cfg, ACTPolicy(cfg), None, None)


def test_default_act_for_bench_is_lerobots_default_size():
    bench = default_act_for_bench()
    c = bench.policy.config
    assert (c.dim_model, c.n_encoder_layers, c.n_decoder_layers, c.dim_feedforward, c.chunk_size) == (512, 4, 1, 3200, 100)
    assert c.vision_backbone == "resnet18" and c.pretrained_backbone_weights is None and c.use_vae
    assert torch.get_num_threads() == 1
    chunk = bench.step()
    assert chunk.actions.shape == (100, 6) and np.all(np.isfinite(chunk.actions))


# ---- registry: the act builder and --policy DIR ----------------------------------------------------------

def test_registry_builds_act_from_options(trained):
    p = build(PolicySpec(name="act", options={"checkpoint": str(trained[0]), "fps": 10}))
    assert isinstance(p, ActPolicy) and p.dt == pytest.approx(0.1)
    with pytest.raises(ValueError, match="checkpointt"):
        build(PolicySpec(name="act", options={"checkpointt": str(trained[0])}))


def test_resolve_policy_picks_the_builder_from_config_json(tmp_path, trained, monkeypatch):
    assert resolve_policy("synthetic") == PolicySpec(name="synthetic")
    assert resolve_policy("scripted").name == "scripted"
    out = trained[0]
    for d in (out, out / "checkpoints" / "last", find_pretrained_dir(out)):
        spec = resolve_policy(str(d))
        assert spec.name == "act" and spec.options == {"checkpoint": str(d.resolve())}
    hw = tmp_path / "hw"
    hw.mkdir()
    (hw / "config.json").write_text(json.dumps({"format": "harmowam", "version": 1, "config": {}}))
    monkeypatch.setitem(registry._BUILDERS, "harmowam", lambda spec, ctx: None)
    assert resolve_policy(str(hw)) == PolicySpec(name="harmowam", options={"checkpoint": str(hw.resolve())})
    train_out = tmp_path / "train_out"  # `harmowam train --out`: the policy is in final/
    shutil.copytree(hw, train_out / "final")
    assert resolve_policy(str(train_out)).options == {"checkpoint": str((train_out / "final").resolve())}
    monkeypatch.delitem(registry._BUILDERS, "harmowam")
    with pytest.raises(ValueError, match="is a harmowam checkpoint, but this installation has no 'harmowam' policy"):
        resolve_policy(str(hw))
    (hw / "config.json").write_text(json.dumps({"type": "diffusion"}))
    with pytest.raises(ValueError, match="not a checkpoint this program can run.*'diffusion'.*harmowam train"):
        resolve_policy(str(hw))
    with pytest.raises(ValueError, match="neither a policy name nor a directory: give a policy name \\(synthetic"):
        resolve_policy(str(tmp_path / "nothing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no ACT checkpoint"):
        resolve_policy(str(tmp_path / "empty"))


# ---- through the runtime ---------------------------------------------------------------------------------

async def test_act_runs_in_a_policy_process(trained):
    from harmowam_ctl.inference import PolicyRunner

    spec = resolve_policy(str(trained[0]))
    async with PolicyRunner(spec, "process") as r:
        assert r.pid != os.getpid()
        obs = _obs(t=time.monotonic())
        pred = await r.predict(obs)
        chunk = await r.act(pred, obs)
        assert chunk.actions.shape == (12, 6) and chunk.t0 == obs.t and chunk.expert == "act"
        np.testing.assert_allclose(chunk.actions, ActPolicy(trained[0]).act(pred, obs).actions, atol=1e-6)


def test_harmowam_run_sim_with_an_act_directory_ends_safe_stopped(trained, tmp_path, capfd):
    argv = ["run", "--sim", "--policy", str(trained[0]), "--duration", "2", "--json", "--no-keyboard", "--no-status",
            "--out", str(tmp_path / "run"), "--set", "safe_stop.rest_speed_rad_s=2.0", "--set", "safe_stop.hold_s=0.1",
            # this test is about ACT behind the runtime; on a loaded 2-core machine the emulated servos (sharing
            # the CPU with ACT's ~60 ms steps) can miss a few replies in a row: the bus watchdog has its own tests
            "--set", "watchdogs.bus.max_failed_ticks=20", "--set", "watchdogs.bus.deadline_s=1.0"]
    rc = cli.main(argv)
    out, err = capfd.readouterr()  # file descriptors: the policy process's output lands here too
    assert rc == 0, err[-2000:]
    summary = json.loads(out)  # nothing but JSON on stdout (the policy process logs to stderr)
    assert summary["state"] == "safe_stopped" and not summary["fault"]
    # on a busy machine the policy may be late now and then: a hold, never anything worse
    assert all(f["reaction"] == "hold" for f in summary["faults"]), summary["faults"]
    assert summary["policy"]["chunks"] > 5 and summary["time_by_source_s"]["policy"] > 1.0


def test_harmowam_run_with_a_non_checkpoint_directory_exits_2(tmp_path, capsys):
    assert cli.main(["run", "--sim", "--policy", str(tmp_path), "--duration", "1", "--no-keyboard"]) == 2
    assert "--policy:" in capsys.readouterr().err
