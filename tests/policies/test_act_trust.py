"""Untrusted checkpoints: an ACT checkpoint whose processor files (policy_preprocessor.json, ...) name code
outside LeRobot's and our packages is refused before LeRobot reads them (the named module is never imported)
unless the user opts in (``trust_remote_code`` / ``--trust-checkpoint-code``); HarmoWAM checkpoints load
without pickle.

One tiny ACT checkpoint (dim 32, chunk 4, unit statistics) is written once for the module with LeRobot's own
``save_pretrained`` (~10 s); each test copies its JSON files and links its weights."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
import uuid
from pathlib import Path

import pytest
import torch

from harmowam_ctl import cli
from policies.act import (
    ActCheckpointError,
    ActOptions,
    ActPolicy,
    UntrustedCheckpointCode,
    act_config,
    checked_act_options,
    check_processor_code,
    untrusted_processor_code,
)
from policies.registry import PolicySpec, build

PRE, POST = "policy_preprocessor.json", "policy_postprocessor.json"


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = act_config(dim_model=32, n_heads=2, dim_feedforward=64, n_encoder_layers=1, n_vae_encoder_layers=1,
                     chunk_size=4, n_action_steps=4)
    stats = {k: {"mean": torch.zeros(f.shape), "std": torch.ones(f.shape)}
             for k, f in {**cfg.input_features, **cfg.output_features}.items()}
    pre, post = make_pre_post_processors(cfg, dataset_stats=stats)
    d = tmp_path_factory.mktemp("act_trust") / "pretrained_model"
    ACTPolicy(cfg).save_pretrained(d)
    pre.save_pretrained(d)
    post.save_pretrained(d)
    return d


@pytest.fixture
def ckpt(tiny_ckpt: Path, tmp_path: Path) -> Path:
    """A copy of the tiny checkpoint whose JSON files a test may change (the weights are linked)."""
    d = tmp_path / "pretrained_model"
    d.mkdir()
    for f in tiny_ckpt.iterdir():
        if f.suffix == ".json":
            shutil.copy(f, d / f.name)
        else:
            (d / f.name).symlink_to(f)
    return d


@pytest.fixture
def evil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """(module name, marker file): a module on sys.path that writes the marker when imported, and defines
    ``Evil``, a pass-through LeRobot processor step (so a trusted load goes through)."""
    name = f"evil_module_{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "imported.marker"
    src = tmp_path / "evil_src"
    src.mkdir()
    (src / f"{name}.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('the checkpoint ran code')\n"
        "from lerobot.processor.pipeline import ProcessorStep\n"
        "class Evil(ProcessorStep):\n"
        "    def __call__(self, transition):\n"
        "        return transition\n"
        "    def transform_features(self, features):\n"
        "        return features\n"
    )
    monkeypatch.syspath_prepend(str(src))
    yield name, marker
    sys.modules.pop(name, None)


def _add_step(d: Path, file: str, step: dict, index: int | None = None) -> None:
    doc = json.loads((d / file).read_text())
    doc["steps"].insert(len(doc["steps"]) if index is None else index, step)
    (d / file).write_text(json.dumps(doc, indent=2))


# ---- what passes ----------------------------------------------------------------------------------------

def test_lerobots_own_checkpoint_passes_and_loads(ckpt: Path):
    pre = json.loads((ckpt / PRE).read_text())
    assert all("registry_name" in s and "class" not in s for s in pre["steps"])  # what LeRobot writes
    assert untrusted_processor_code(ckpt) == []
    check_processor_code(ckpt)
    assert ActPolicy(ckpt).horizon == 4


def test_a_class_of_lerobots_own_packages_passes(ckpt: Path):
    _add_step(ckpt, PRE, {"class": "lerobot.processor.batch_processor.AddBatchDimensionProcessorStep", "config": {}})
    assert untrusted_processor_code(ckpt) == []
    ActPolicy(ckpt)


# ---- what is refused, before anything is imported ---------------------------------------------------------

def test_a_foreign_class_is_refused_and_never_imported(ckpt: Path, evil: tuple[str, Path]):
    name, marker = evil
    _add_step(ckpt, PRE, {"class": f"{name}.Evil", "config": {}}, index=1)
    with pytest.raises(UntrustedCheckpointCode) as ei:
        ActPolicy(ckpt)
    msg = str(ei.value)
    assert str(ckpt) in msg and f'{PRE}: steps[1]: "class": "{name}.Evil"' in msg  # file, entry, class
    assert "outside LeRobot's and this program's packages" in msg and "would import it" in msg  # why
    assert "--trust-checkpoint-code" in msg and "trust_remote_code=true" in msg  # the opt-in
    assert not marker.exists() and name not in sys.modules
    assert isinstance(ei.value, ActCheckpointError) and isinstance(ei.value, ValueError)
    import pickle

    again = pickle.loads(pickle.dumps(ei.value))  # it may cross from a policy process
    assert str(again) == msg and again.problems == ei.value.problems


@pytest.mark.parametrize("path", ["os.system", "subprocess.Popen", "builtins.eval", "lerobot_evil.x.Step",
                                  ".lerobot.Step", "notdotted"])
def test_code_outside_the_trusted_packages_is_refused(ckpt: Path, path: str):
    _add_step(ckpt, POST, {"class": path, "config": {"args": ["touch", "/tmp/pwned"]}}, index=1)
    problems = untrusted_processor_code(ckpt)
    assert len(problems) == 1 and problems[0].startswith(f'{POST}: steps[1]: "class": "{path}"')
    with pytest.raises(UntrustedCheckpointCode):
        ActPolicy(ckpt)


@pytest.mark.parametrize(("path", "found"), [
    ("lerobot.processor.pipeline.Path", "pathlib"),  # a name LeRobot's module imported, not a step
    ("lerobot.processor.pipeline.importlib", "importlib"),  # a module, not a class
    ("lerobot.policies.factory.make_policy", "make_policy"),  # a function of LeRobot's
    ("harmowam_ctl.cli.main", "main"),
])
def test_a_trusted_module_must_name_a_processor_step(ckpt: Path, path: str, found: str):
    _add_step(ckpt, PRE, {"class": path, "config": {}})
    [problem] = untrusted_processor_code(ckpt)
    assert "is not a LeRobot processor step" in problem and found in problem


def test_class_is_checked_even_next_to_a_registry_name(ckpt: Path, evil: tuple[str, Path]):
    name, marker = evil
    _add_step(ckpt, PRE, {"registry_name": "to_batch_processor", "class": f"{name}.Evil", "config": {}})
    with pytest.raises(UntrustedCheckpointCode, match=f"{name}.Evil"):
        ActPolicy(ckpt)
    assert not marker.exists()


def test_a_step_registered_by_a_plugin_is_refused(ckpt: Path):
    from lerobot.processor.pipeline import ProcessorStep, ProcessorStepRegistry

    reg = f"plugin_step_{uuid.uuid4().hex[:6]}"

    @ProcessorStepRegistry.register(name=reg)
    class PluginStep(ProcessorStep):  # registered from this test module: outside the trusted packages
        def __call__(self, transition):
            return transition

        def transform_features(self, features):
            return features

    try:
        _add_step(ckpt, PRE, {"registry_name": reg, "config": {}})
        [problem] = untrusted_processor_code(ckpt)
        assert f'"registry_name": "{reg}" is registered by' in problem and "PluginStep" in problem
    finally:
        ProcessorStepRegistry.unregister(reg)


def test_an_unknown_registry_name_imports_nothing_and_fails_as_a_damaged_checkpoint(ckpt: Path):
    _add_step(ckpt, PRE, {"registry_name": "no_such_step_anywhere", "config": {}})
    assert untrusted_processor_code(ckpt) == []  # LeRobot only looks it up: nothing to run
    with pytest.raises(ActCheckpointError, match="does not load.*no_such_step_anywhere"):
        ActPolicy(ckpt)


@pytest.mark.parametrize(("step", "refused"), [
    ({"registry_name": "action_tokenizer_processor", "config": {"action_tokenizer_name": "./tok"}}, True),  # default True
    ({"registry_name": "action_tokenizer_processor",
      "config": {"action_tokenizer_name": "./tok", "trust_remote_code": False}}, False),
    ({"registry_name": "tokenizer_processor", "config": {"tokenizer_name": "./tok", "trust_remote_code": True}}, True),
    ({"registry_name": "tokenizer_processor", "config": {"tokenizer_name": "./tok"}}, False),
])
def test_a_step_that_lets_transformers_run_repository_code_is_refused(ckpt: Path, step: dict, refused: bool):
    _add_step(ckpt, PRE, step)
    problems = untrusted_processor_code(ckpt)
    assert bool(problems) is refused
    if refused:
        assert "trust_remote_code" in problems[0] and f"{PRE}: steps[" in problems[0]


def test_every_processor_file_is_read_not_only_the_preprocessor(ckpt: Path, evil: tuple[str, Path]):
    name, marker = evil
    (ckpt / "extra_processor.json").write_text(json.dumps({"name": "x", "steps": [{"class": f"{name}.Evil"}]}))
    (ckpt / "notes.json").write_text("not json {")  # not a processor file: ignored
    [problem] = untrusted_processor_code(ckpt)
    assert problem.startswith("extra_processor.json: steps[0]:")
    assert not marker.exists()


# ---- the opt-in ------------------------------------------------------------------------------------------

def test_trusting_the_checkpoint_loads_it_and_runs_its_code(ckpt: Path, evil: tuple[str, Path]):
    from structlog.testing import capture_logs

    name, marker = evil
    _add_step(ckpt, PRE, {"class": f"{name}.Evil", "config": {}}, index=1)
    with capture_logs() as logs:
        policy = ActPolicy(ckpt, trust_remote_code=True)
    assert marker.exists()  # the check was the only barrier: with the opt-in LeRobot imports it
    assert type(policy._pre.steps[1]).__name__ == "Evil"
    warned = [e for e in logs if e["event"] == "act_checkpoint_code_trusted"]
    assert warned and any(f"{name}.Evil" in p for p in warned[0]["entries"])


def test_checked_act_options_sets_the_opt_in_and_checks_now(ckpt: Path, evil: tuple[str, Path]):
    name, marker = evil
    assert checked_act_options({"checkpoint": str(ckpt)}) == {"checkpoint": str(ckpt)}
    _add_step(ckpt, POST, {"class": f"{name}.Evil"})
    with pytest.raises(UntrustedCheckpointCode):
        checked_act_options({"checkpoint": str(ckpt), "fps": 10})
    assert checked_act_options({"checkpoint": str(ckpt)}, trust=True) == {"checkpoint": str(ckpt), "trust_remote_code": True}
    assert checked_act_options({"checkpoint": str(ckpt), "trust_remote_code": True}) ["trust_remote_code"] is True
    assert ActOptions(checkpoint="x").trust_remote_code is False
    assert not marker.exists()


def test_the_registry_passes_the_opt_in_to_the_policy(ckpt: Path, evil: tuple[str, Path]):
    name, marker = evil
    _add_step(ckpt, PRE, {"class": f"{name}.Evil", "config": {}}, index=1)
    with pytest.raises(UntrustedCheckpointCode):
        build(PolicySpec(name="act", options={"checkpoint": str(ckpt)}))
    assert not marker.exists()
    build(PolicySpec(name="act", options={"checkpoint": str(ckpt), "trust_remote_code": True}))
    assert marker.exists()


# ---- the commands ----------------------------------------------------------------------------------------

def _main(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(argv)
    return rc, err.getvalue()


@pytest.mark.parametrize("argv", [
    ["run", "--sim", "--duration", "1", "--no-keyboard", "--no-status", "--policy"],
    ["eval", "--task", "pick_place", "--episodes", "1", "--policy"],
    ["bench", "loop", "--duration", "2", "--policy"],
    ["record", "--sim", "--no-keyboard", "--no-status", "--out", "/nonexistent-harmowam-test/ds", "--policy"],
], ids=["run", "eval", "bench-loop", "record"])
def test_commands_refuse_before_starting_anything(ckpt: Path, evil: tuple[str, Path], argv: list[str], monkeypatch):
    name, marker = evil
    _add_step(ckpt, PRE, {"class": f"{name}.Evil", "config": {}})
    import harmowam_ctl.setup

    def no_session(*a, **k):
        raise AssertionError("the session (arm, cameras, policy) must not start")

    monkeypatch.setattr(harmowam_ctl.setup, "session", no_session)
    rc, err = _main([*argv, str(ckpt)])
    assert rc == 2, err
    assert f"{name}.Evil" in err and "--trust-checkpoint-code" in err and PRE in err
    assert not marker.exists() and name not in sys.modules


def test_run_trust_flag_puts_the_opt_in_into_the_policy_options(ckpt: Path, evil: tuple[str, Path], monkeypatch):
    name, _ = evil
    _add_step(ckpt, PRE, {"class": f"{name}.Evil", "config": {}})
    import harmowam_ctl.setup

    seen = {}

    class Stop(Exception):
        pass

    def fake_session(cfg, *a, **k):
        seen["cfg"] = cfg
        raise Stop

    monkeypatch.setattr(harmowam_ctl.setup, "session", fake_session)
    with pytest.raises(Stop):
        cli.main(["run", "--sim", "--duration", "1", "--no-keyboard", "--no-status", "--policy", str(ckpt),
                  "--trust-checkpoint-code"])
    assert seen["cfg"].policy == "act"
    opts = seen["cfg"].policy_options
    assert opts["checkpoint"] == str(ckpt.resolve()) and opts["trust_remote_code"] is True


def test_the_trust_flag_is_on_run_record_eval_and_bench_loop_only():
    parser = cli._parser()
    for argv in (["run", "--trust-checkpoint-code"], ["eval", "--policy", "x", "--trust-checkpoint-code"],
                 ["bench", "loop", "--trust-checkpoint-code"], ["record", "--trust-checkpoint-code"]):
        args, rest = parser.parse_known_args(argv)
        assert args.trust_checkpoint_code and not rest
    for argv in (["teleop", "--trust-checkpoint-code"],):
        _, rest = parser.parse_known_args(argv)
        assert rest == ["--trust-checkpoint-code"]


# ---- HarmoWAM checkpoints: no pickle ---------------------------------------------------------------------

def test_harmowam_checkpoints_load_without_pickle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Loading a HarmoWAM checkpoint (weights, config, training state) never unpickles: with every
    unpickling entry point broken it still loads, and a pickle planted next to it is never read."""
    import pickle

    import numpy as np

    sys.path.insert(0, str(Path(__file__).parent / "harmowam"))
    from harmowam_tiny import tiny_config

    from policies.harmowam import HarmoWAM
    from policies.harmowam.checkpoint import load_checkpoint, save_checkpoint
    from policies.harmowam.policy import HarmoWAMPolicy
    from policies.harmowam.train_state import read_train_state, save_train_state

    cfg = tiny_config()
    model = HarmoWAM(cfg)
    model.set_stats({"state": {"mean": np.zeros(6), "std": np.ones(6)}, "action": {"mean": np.zeros(6), "std": np.ones(6)}})
    d = save_checkpoint(tmp_path / "ckpt", model, cfg, {"step": 1})
    save_train_state(d, torch.optim.AdamW(model.parameters(), lr=1e-3), None, {"step": 1, "stage": "world"})
    (d / "planted.pt").write_bytes(pickle.dumps({"x": 1}))

    def no_unpickling(*a, **k):
        raise AssertionError("a HarmoWAM checkpoint must not be unpickled")

    for target, attr in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(target, attr, no_unpickling)
    loaded, _, meta = load_checkpoint(d)
    assert meta == {"step": 1} and all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    HarmoWAMPolicy.from_checkpoint(d)
    doc, tensors = read_train_state(d)
    assert doc["step"] == 1 and "rng.torch" in tensors


def test_harmowam_code_has_no_unpickling_call():
    """Belt and braces for the test above: no loader of ``policies/harmowam`` can unpickle (no pickle
    import, ``torch.load`` only with ``weights_only=True``, no ``allow_pickle=True``)."""
    import re

    for src in sorted((Path(__file__).parents[2] / "policies" / "harmowam").glob("*.py")):
        text = src.read_text()
        assert not re.search(r"^\s*(import pickle|from pickle|import dill|import joblib)", text, re.M), src
        assert not re.search(r"pickle\.(load|loads|Unpickler)\b", text), src
        assert "allow_pickle=True" not in text, src
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (src, call)
