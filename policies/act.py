"""LeRobot's ACT (Action Chunking Transformer) behind our ``Policy`` interface: the baseline.

``ActPolicy(checkpoint)`` loads a checkpoint written by ``lerobot-train`` (or ``harmowam baseline act``,
which runs it) with LeRobot's own classes (``ACTPolicy``, ``make_pre_post_processors``: the checkpoint's
normalisation statistics travel in its processor files). ``checkpoint`` may be the run directory
(``--output_dir``), its ``checkpoints/<step>`` or ``checkpoints/last`` directory, or the
``pretrained_model`` directory itself (``find_pretrained_dir``).

Mapping: ``Observation.images[cam]`` (H x W x 3 uint8) -> ``observation.images.<cam>`` (resized to the
checkpoint's image size when it differs), ``Observation.state`` -> ``observation.state``, through
LeRobot's ``prepare_observation_for_inference`` and the checkpoint's pre-processor; the predicted chunk
goes through its post-processor (un-normalisation). ``camera_map`` renames: checkpoint camera ->
observation camera (e.g. ``{"laptop": "front"}``).

The chunk: ``act`` returns the first ``n_action_steps`` of the predicted ``chunk_size`` steps: the steps
LeRobot's own ``select_action`` would execute before it asks the model again (the rest it throws away),
so the baseline runs as it was trained to run. The runtime re-plans whenever a newer chunk arrives
(crossfade), so a long chunk is only a horizon. Exception: with temporal ensembling
(``n_action_steps == 1``) the whole ``chunk_size`` is returned (one step is no chunk; the runtime's
crossfade stands in for the ensembling). ``dt = 1 / fps``: ``fps`` option, else the ``harmowam
baseline act`` note in the run directory, else the training dataset's ``meta/info.json`` (found through
``train_config.json``), else 30 with a warning. ``t0 = obs.t``, ``expert = "act"``, ``gate = None``;
``predict`` is trivial. Deterministic (eval mode: no dropout, the VAE latent is zero at inference).

Untrusted code: LeRobot builds the checkpoint's processors from its JSON files (``policy_preprocessor.json``,
``policy_postprocessor.json``): a step's ``"class": "module.Class"`` is imported (``importlib``), a step's
``"registry_name"`` is looked up in LeRobot's ``ProcessorStepRegistry`` (no import). So a checkpoint from
an untrusted source can run code. Before any of that, ``check_processor_code`` reads every processor file of
the checkpoint (every ``*.json`` there with a ``"steps"`` list) and refuses (``UntrustedCheckpointCode``) a
``class`` outside LeRobot's and this program's packages (``TRUSTED_PACKAGES``) or one that is not a LeRobot
processor step, a registered step whose class lives elsewhere (a plugin), and a step that would let
``transformers`` run a model repository's code (``trust_remote_code``). The opt-in: policy option
``trust_remote_code: true`` (``harmowam run``/``eval``/``bench loop --trust-checkpoint-code``).

Units: the policy speaks the units of its training data (LeRobot's degrees / 0..100 for a LeRobot or
``harmowam sim demos`` dataset). ``training_facts`` reads them (baseline note, else the training dataset);
the runtime converts with the arm's calibration and refuses a checkpoint whose units it cannot tell
(``policies.units``).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from policies.interface import N_JOINTS, ActionChunk, Observation, WorldPrediction



def _log() -> Any:
    """structlog's logger, on stderr when nobody configured structlog (a policy process: its stdout is the
    parent's, where ``harmowam run --json`` prints JSON)."""
    if structlog.is_configured():
        return structlog.get_logger(__name__)
    return structlog.wrap_logger(structlog.PrintLogger(sys.stderr))

IMAGE_PREFIX = "observation.images."
STATE_KEY = "observation.state"
ACTION_KEY = "action"
BASELINE_NOTE = "harmowam_baseline.json"  # written by `harmowam baseline act` next to checkpoints/
DEFAULT_FPS = 30.0
_CPU_OVERRIDES = {"device_processor": {"device": "cpu"}}


TRUSTED_PACKAGES = ("lerobot", "policies", "harmowam_ctl", "hardware", "calibration")
TRUST_OPT_IN = ("--trust-checkpoint-code (harmowam run, record, eval, bench loop; elsewhere "
                "--set policy_options.trust_remote_code=true)")


class ActCheckpointError(ValueError):
    """The directory is not a usable ACT checkpoint; the message names the file and the fix."""


class UntrustedCheckpointCode(ActCheckpointError):
    """A processor file of the checkpoint names code this program does not load without an opt-in;
    ``problems``: one line per refused entry (file, entry, class, why)."""

    def __init__(self, pretrained: Path, problems: list[str]) -> None:
        self.pretrained, self.problems = pretrained, list(problems)
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"ACT checkpoint {pretrained} is refused: its processor files name code outside LeRobot's and this "
            f"program's packages ({', '.join(TRUSTED_PACKAGES)}), which loading it would run:\n{listing}\n"
            f"Nothing of it was imported. Only if you trust where this checkpoint comes from, load it with {TRUST_OPT_IN}."
        )

    def __reduce__(self) -> tuple[Any, ...]:  # picklable (it may cross from a policy process)
        return (type(self), (self.pretrained, self.problems))


class ActOptions(BaseModel):
    """``PolicySpec.options`` for the ``act`` policy."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str = Field(description="lerobot-train output: run dir, checkpoints/<step>, last, or pretrained_model")
    fps: float | None = Field(None, gt=0, le=1000, description="control rate of the training data (dt = 1/fps)")
    camera_map: dict[str, str] = Field(default_factory=dict, description="checkpoint camera -> observation camera")
    trust_remote_code: bool = Field(False, description=(
        "load a checkpoint whose processor files name code outside LeRobot's and this program's packages "
        "(it runs that code: only for checkpoints from a source you trust)"))


def find_pretrained_dir(path: str | Path) -> Path:
    """The ``pretrained_model`` directory (with ``config.json``) inside ``path`` (module doc)."""
    p = Path(path).expanduser()
    if not p.is_dir():
        what = "is a file, not a directory" if p.exists() else "does not exist"
        raise ActCheckpointError(f"ACT checkpoint {p} {what}: give the lerobot-train output directory")
    for cand in (p, p / "pretrained_model", p / "last" / "pretrained_model", p / "checkpoints" / "last" / "pretrained_model"):
        if (cand / "config.json").is_file():
            return cand
    steps = sorted((d for d in (p / "checkpoints").glob("*") if d.name.isdigit()), key=lambda d: int(d.name))
    if steps and (steps[-1] / "pretrained_model" / "config.json").is_file():
        return steps[-1] / "pretrained_model"
    raise ActCheckpointError(
        f"{p} holds no ACT checkpoint: no config.json there nor in pretrained_model/, last/pretrained_model/ or "
        "checkpoints/<step>/pretrained_model/ (point at the directory lerobot-train or `harmowam baseline act` wrote)"
    )


def read_act_config(pretrained: Path) -> dict[str, Any]:
    """``config.json`` of an ACT checkpoint, checked to be one (``ActCheckpointError`` otherwise)."""
    path = pretrained / "config.json"
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ActCheckpointError(f"{path}: cannot read it as JSON ({e}); the checkpoint is damaged") from None
    if not isinstance(cfg, dict):
        raise ActCheckpointError(f"{path}: not a LeRobot policy config (a JSON object is expected)")
    if cfg.get("format") == "harmowam":
        raise ActCheckpointError(f"{path.parent} is a HarmoWAM checkpoint, not ACT: run it as the harmowam policy")
    if cfg.get("type") != "act":
        found = f"a LeRobot {cfg['type']!r} policy" if "type" in cfg else "no policy type"
        raise ActCheckpointError(f"{path}: not an ACT checkpoint ({found}); only LeRobot's ACT is supported")
    if not (pretrained / "model.safetensors").is_file():
        raise ActCheckpointError(f"{pretrained}: model.safetensors is missing; copy the whole pretrained_model directory")
    return cfg


def processor_files(pretrained: Path) -> list[Path]:
    """Every JSON file of ``pretrained`` LeRobot could build a processor pipeline from (a ``"steps"`` list:
    ``policy_preprocessor.json``, ``policy_postprocessor.json``...); a file that is not JSON is skipped
    (LeRobot cannot build from it either)."""
    out = []
    for path in sorted(pretrained.glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            doc = json.loads(path.read_text())
            if isinstance(doc, dict) and isinstance(doc.get("steps"), list):
                out.append(path)
    return out


def _trusted_module(module: str) -> bool:
    return any(module == pkg or module.startswith(pkg + ".") for pkg in TRUSTED_PACKAGES)


def _wants_remote_code(config: Any) -> bool:
    """A ``trust_remote_code`` set to a true value anywhere in a step's config."""
    if isinstance(config, dict):
        return any((k == "trust_remote_code" and bool(v)) or _wants_remote_code(v) for k, v in config.items())
    if isinstance(config, list):
        return any(_wants_remote_code(v) for v in config)
    return False


def _class_problem(path: str) -> str | None:
    """Why the step ``"class": path`` is refused, None when it is a processor step of a trusted package.
    Nothing outside ``TRUSTED_PACKAGES`` is imported here."""
    module, _, name = path.rpartition(".")
    if not module or not name:
        return "is not a module.Class path"
    if not _trusted_module(module):
        return "is outside LeRobot's and this program's packages; LeRobot would import it"
    from lerobot.processor.pipeline import ProcessorStep

    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None  # LeRobot fails the same way (a checkpoint from another LeRobot version): named at load
    if not (inspect.isclass(obj) and issubclass(obj, ProcessorStep) and _trusted_module(obj.__module__)):
        return f"is not a LeRobot processor step (it is {getattr(obj, '__module__', '?')}.{getattr(obj, '__name__', name)})"
    return None


def _step_problems(step: dict[str, Any]) -> list[str]:
    """Why one ``steps`` entry is refused: the keys LeRobot 0.6.1 resolves a class from (``registry_name``
    first, else ``class``; ``class`` is checked even next to a ``registry_name``) and its config."""
    import lerobot.policies.factory  # noqa: F401 - registers LeRobot's steps, as loading a checkpoint does
    from lerobot.processor.pipeline import ProcessorStepRegistry

    problems: list[str] = []
    cls: Any = None
    if "registry_name" in step:
        reg = step["registry_name"]
        known = isinstance(reg, str) and reg in ProcessorStepRegistry.list()
        cls = ProcessorStepRegistry.get(reg) if known else None  # unknown: LeRobot fails the load, imports nothing
        if cls is not None and not _trusted_module(cls.__module__):
            problems.append(f'"registry_name": {json.dumps(reg)} is registered by {cls.__module__}.{cls.__name__}, '
                            "a plugin outside LeRobot's and this program's packages")
    if "class" in step:
        path = step["class"]
        why = _class_problem(path) if isinstance(path, str) else "is not a module.Class string"
        if why:
            problems.append(f'"class": {json.dumps(path)} {why}')
    config = step.get("config")
    if _wants_remote_code(config) or (getattr(cls, "trust_remote_code", False) is True
                                      and not (isinstance(config, dict) and config.get("trust_remote_code") is False)):
        problems.append("trust_remote_code: the step would let transformers import and run a model "
                        "repository's own Python code")
    return problems


def untrusted_processor_code(pretrained: Path) -> list[str]:
    """One line per processor step of the checkpoint that ``check_processor_code`` refuses (file, entry,
    class, why); [] when all of them are LeRobot's or ours."""
    found: list[str] = []
    for path in processor_files(pretrained):
        for i, step in enumerate(json.loads(path.read_text())["steps"]):
            if isinstance(step, dict):  # LeRobot refuses a whole file with any other step before importing
                found += [f"{path.name}: steps[{i}]: {why}" for why in _step_problems(step)]
    return found


def check_processor_code(pretrained: Path, trust_remote_code: bool = False) -> None:
    """Refuse (``UntrustedCheckpointCode``) a checkpoint whose processor files name code outside the
    trusted packages (module doc), unless ``trust_remote_code``; then it is logged and allowed."""
    problems = untrusted_processor_code(pretrained)
    if problems and trust_remote_code:
        _log().warning("act_checkpoint_code_trusted", checkpoint=str(pretrained), entries=problems,
                       note="trust_remote_code: this code runs as the checkpoint loads")
    elif problems:
        raise UntrustedCheckpointCode(pretrained, problems)


def checked_act_options(options: dict[str, Any], trust: bool = False) -> dict[str, Any]:
    """The ``act`` policy's options with ``trust_remote_code`` set when ``trust`` (a CLI's
    ``--trust-checkpoint-code``), after checking its checkpoint now (``check_processor_code``): a command
    refuses such a checkpoint before it opens any device. ``ActCheckpointError`` names what to fix."""
    opts = {**options, "trust_remote_code": True} if trust else dict(options)
    o = ActOptions(**opts)
    check_processor_code(find_pretrained_dir(o.checkpoint), o.trust_remote_code)
    return opts


def training_facts(pretrained: Path) -> dict[str, Any]:
    """fps and units (``calibration.units`` JSON; ``None`` when they cannot be told) from our baseline note or
    the training dataset (module doc), and ``units_source`` naming the file; {} when neither is found."""
    for d in (pretrained.parent, pretrained.parent.parent, pretrained.parent.parent.parent):
        note = d / BASELINE_NOTE
        if note.is_file():
            with contextlib.suppress(OSError, ValueError):
                facts = dict(json.loads(note.read_text()))
                facts.setdefault("units_source", str(note))
                return facts
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        ds = json.loads((pretrained / "train_config.json").read_text())["dataset"]
        from lerobot.utils.constants import HF_LEROBOT_HOME

        root = Path(ds["root"]) if ds.get("root") else HF_LEROBOT_HOME / ds["repo_id"]
        info = json.loads((root / "meta" / "info.json").read_text())
        return {"fps": info["fps"], "units": dataset_units_json(info), "units_source": str(root / "meta" / "info.json")}
    return {}


def dataset_units_json(info: dict[str, Any]) -> dict[str, Any] | None:
    """The units of a dataset's ``action`` (``calibration.units``) as JSON, ``None`` when it cannot say."""
    from calibration.units import UnitsError, dataset_units

    try:
        return dataset_units(info, ACTION_KEY).as_json()
    except UnitsError:
        return None


class ActPolicy:
    """LeRobot ACT as a ``policies.interface.Policy`` (module doc)."""

    name = "act"

    def __init__(
        self, checkpoint: str | Path, *, fps: float | None = None, camera_map: dict[str, str] | None = None,
        torch_threads: int = 1, trust_remote_code: bool = False,
    ) -> None:
        torch.set_num_threads(torch_threads)
        pretrained = find_pretrained_dir(checkpoint)
        read_act_config(pretrained)
        check_processor_code(pretrained, trust_remote_code)  # before LeRobot reads a processor file
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.act.modeling_act import ACTPolicy
        from lerobot.policies.factory import make_pre_post_processors
        from safetensors import SafetensorError

        try:
            config = PreTrainedConfig.from_pretrained(pretrained)
            config.device = "cpu"
            # LeRobot prints a line while loading: keep it off our stdout (a --json run prints JSON there)
            with contextlib.redirect_stdout(io.StringIO()):
                model = ACTPolicy.from_pretrained(pretrained, config=config, strict=True)
            pre, post = make_pre_post_processors(
                config, pretrained_path=str(pretrained),
                preprocessor_overrides=_CPU_OVERRIDES, postprocessor_overrides=_CPU_OVERRIDES,
            )
        except (OSError, ValueError, RuntimeError, KeyError, ImportError, SafetensorError) as e:
            cause = " ".join(str(e).split("\n")[:3])  # a state-dict mismatch lists every tensor: the first ones
            raise ActCheckpointError(
                f"ACT checkpoint {pretrained} does not load ({type(e).__name__}: {cause}); it is damaged or its "
                "config.json does not match its model.safetensors: train it again or copy it whole"
            ) from e
        facts = training_facts(pretrained)
        if fps is None and facts.get("fps") is None:
            _log().warning("act_fps_unknown", checkpoint=str(pretrained), assumed=DEFAULT_FPS,
                           fix="set the training data's rate: --set policy_options.fps=N")
        self.units: Any = facts.get("units")  # the runtime converts (policies.units); None: it refuses to drive
        self._setup(config, model, pre, post, fps or facts.get("fps") or DEFAULT_FPS, camera_map or {})
        self.checkpoint = pretrained

    @classmethod
    def from_parts(cls, config: Any, model: Any, pre: Any, post: Any, fps: float = DEFAULT_FPS,
                   camera_map: dict[str, str] | None = None) -> ActPolicy:
        """An ``ActPolicy`` around an in-memory LeRobot ACT (used by the benchmark and tests)."""
        self = cls.__new__(cls)
        self.units, self.checkpoint = "rad", None
        self._setup(config, model, pre, post, fps, camera_map or {})
        return self

    def _setup(self, config: Any, model: Any, pre: Any, post: Any, fps: float, camera_map: dict[str, str]) -> None:
        self.config, self._model, self._pre, self._post = config, model, pre, post
        self.fps, self.dt = float(fps), 1.0 / float(fps)
        action = config.output_features.get(ACTION_KEY)
        if action is None or tuple(action.shape) != (N_JOINTS,):
            got = None if action is None else tuple(action.shape)
            raise ActCheckpointError(f"this ACT checkpoint's action has shape {got}; the runtime drives {N_JOINTS} joints")
        state = config.input_features.get(STATE_KEY)
        self.state_dim: int | None = None if state is None else int(state.shape[0])
        self._images = {k[len(IMAGE_PREFIX):]: tuple(f.shape) for k, f in config.image_features.items()}
        unknown = set(camera_map) - set(self._images)
        if unknown:
            raise ActCheckpointError(
                f"camera_map names {sorted(unknown)}, which the checkpoint does not use (it uses {sorted(self._images)})"
            )
        self._camera_of = {c: camera_map.get(c, c) for c in self._images}
        ens = config.temporal_ensemble_coeff is not None
        self.horizon = int(config.chunk_size if ens else config.n_action_steps)
        model.eval()

    @property
    def cameras(self) -> tuple[str, ...]:
        """The observation camera names this policy needs."""
        return tuple(self._camera_of.values())

    def reset(self) -> None:
        self._model.reset()

    def predict(self, obs: Observation) -> WorldPrediction:
        return WorldPrediction(t_obs=obs.t)

    def act(self, prediction: WorldPrediction, obs: Observation) -> ActionChunk:
        with torch.inference_mode():
            batch = self._pre(self._batch(obs))
            chunk = self._model.predict_action_chunk(batch)[:, : self.horizon]
            actions = self._post(chunk)
        a = actions[0].detach().to("cpu", torch.float64).numpy()
        return ActionChunk(t0=obs.t, dt=self.dt, actions=a, t_obs=obs.t, expert="act")

    def _batch(self, obs: Observation) -> dict[str, Any]:
        from lerobot.policies.utils import prepare_observation_for_inference

        raw: dict[str, np.ndarray] = {}
        if self.state_dim is not None:
            state = np.asarray(obs.state, dtype=np.float32).reshape(-1)
            if state.shape[0] != self.state_dim:
                raise ValueError(f"observation state has {state.shape[0]} joints; this ACT checkpoint takes {self.state_dim}")
            raw[STATE_KEY] = state
        for cam, src in self._camera_of.items():
            img = obs.images.get(src)
            if img is None:
                have = ", ".join(sorted(obs.images)) or "none"
                raise ValueError(
                    f"ACT needs camera {src!r} (cameras here: {have}); name a camera so (--camera {src}=SOURCE) "
                    "or map it with policy option camera_map"
                )
            img = np.asarray(img)
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(f"camera {src!r}: expected an H x W x 3 uint8 image, got {img.shape} {img.dtype}")
            raw[IMAGE_PREFIX + cam] = img
        batch = prepare_observation_for_inference(raw, torch.device("cpu"), obs.task)
        for cam, shape in self._images.items():
            key = IMAGE_PREFIX + cam
            if tuple(batch[key].shape[-2:]) != shape[-2:]:
                batch[key] = F.interpolate(batch[key], size=shape[-2:], mode="bilinear", antialias=True, align_corners=False)
        return batch


def act_config(cameras: tuple[str, ...] = ("front", "wrist"), image_size: int = 96, **overrides: Any) -> Any:
    """LeRobot's ``ACTConfig`` at its defaults for our inputs (6 joints, these cameras), without the
    pretrained backbone weights (nothing is downloaded); ``overrides`` change any field."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig

    inputs = {f"{IMAGE_PREFIX}{c}": PolicyFeature(type=FeatureType.VISUAL, shape=(3, image_size, image_size)) for c in cameras}
    inputs[STATE_KEY] = PolicyFeature(type=FeatureType.STATE, shape=(N_JOINTS,))
    outputs = {ACTION_KEY: PolicyFeature(type=FeatureType.ACTION, shape=(N_JOINTS,))}
    fields = {"input_features": inputs, "output_features": outputs, "pretrained_backbone_weights": None,
              "device": "cpu", "push_to_hub": False, **overrides}
    return ACTConfig(**fields)


class ActBench:
    """One ACT policy step (``act`` = pre-processor + full chunk prediction + post-processor) on random
    inputs; ``step()`` returns the chunk so the work cannot be skipped."""

    def __init__(self, policy: ActPolicy, obs: Observation) -> None:
        self.policy, self.obs = policy, obs

    def step(self) -> ActionChunk:
        return self.policy.act(self.policy.predict(self.obs), self.obs)


def default_act_for_bench(cameras: tuple[str, ...] = ("front", "wrist"), image_size: int = 96, seed: int = 0,
                          torch_threads: int = 1, **overrides: Any) -> ActBench:
    """ACT at LeRobot's DEFAULT size (ResNet-18, dim 512, 4+1 layers, chunk 100), freshly initialised
    (``pretrained_backbone_weights=None``), on ``torch_threads`` threads, with unit statistics."""
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    torch.set_num_threads(torch_threads)
    torch.manual_seed(seed)
    config = act_config(tuple(cameras), image_size, **overrides)
    stats = {k: {"mean": torch.zeros(f.shape), "std": torch.ones(f.shape)}
             for k, f in {**config.input_features, **config.output_features}.items()}
    pre, post = make_pre_post_processors(config, dataset_stats=stats)
    policy = ActPolicy.from_parts(config, ACTPolicy(config), pre, post)
    rng = np.random.default_rng(seed)
    images = {c: rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8) for c in cameras}
    obs = Observation(t=0.0, state=rng.normal(0, 0.3, N_JOINTS), state_t=0.0, images=images, image_t=dict.fromkeys(cameras, 0.0))
    return ActBench(policy, obs)
