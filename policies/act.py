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

Units: the policy outputs the units of its training data. Datasets of ``harmowam sim demos`` are in
radians (the runtime's unit); LeRobot's own SO-101 recordings are in degrees: such a checkpoint is loaded
(with a warning naming the units) but not converted. ``units`` says what the dataset declared.
"""

from __future__ import annotations

import contextlib
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


class ActCheckpointError(ValueError):
    """The directory is not a usable ACT checkpoint; the message names the file and the fix."""


class ActOptions(BaseModel):
    """``PolicySpec.options`` for the ``act`` policy."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str = Field(description="lerobot-train output: run dir, checkpoints/<step>, last, or pretrained_model")
    fps: float | None = Field(None, gt=0, le=1000, description="control rate of the training data (dt = 1/fps)")
    camera_map: dict[str, str] = Field(default_factory=dict, description="checkpoint camera -> observation camera")


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


def _training_facts(pretrained: Path) -> dict[str, Any]:
    """fps and units from our baseline note or the training dataset (module doc); {} when not found."""
    for d in (pretrained.parent, pretrained.parent.parent, pretrained.parent.parent.parent):
        note = d / BASELINE_NOTE
        if note.is_file():
            with contextlib.suppress(OSError, ValueError):
                return dict(json.loads(note.read_text()))
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        ds = json.loads((pretrained / "train_config.json").read_text())["dataset"]
        from lerobot.utils.constants import HF_LEROBOT_HOME

        root = Path(ds["root"]) if ds.get("root") else HF_LEROBOT_HOME / ds["repo_id"]
        info = json.loads((root / "meta" / "info.json").read_text())
        return {"fps": info["fps"], "units": info["features"].get(ACTION_KEY, {}).get("units")}
    return {}


class ActPolicy:
    """LeRobot ACT as a ``policies.interface.Policy`` (module doc)."""

    name = "act"

    def __init__(
        self, checkpoint: str | Path, *, fps: float | None = None, camera_map: dict[str, str] | None = None,
        torch_threads: int = 1,
    ) -> None:
        torch.set_num_threads(torch_threads)
        pretrained = find_pretrained_dir(checkpoint)
        read_act_config(pretrained)
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
        except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as e:
            cause = " ".join(str(e).split("\n")[:3])  # a state-dict mismatch lists every tensor: the first ones
            raise ActCheckpointError(
                f"ACT checkpoint {pretrained} does not load ({type(e).__name__}: {cause}); it is damaged or its "
                "config.json does not match its model.safetensors: train it again or copy it whole"
            ) from e
        facts = _training_facts(pretrained)
        if fps is None and facts.get("fps") is None:
            _log().warning("act_fps_unknown", checkpoint=str(pretrained), assumed=DEFAULT_FPS,
                           fix="set the training data's rate: --set policy_options.fps=N")
        self.units: str | None = facts.get("units")
        if self.units != "rad":
            _log().warning("act_units_not_radians", checkpoint=str(pretrained), units=self.units,
                           note="the runtime sends these targets as radians; no conversion is made")
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
