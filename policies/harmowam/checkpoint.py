"""HarmoWAM checkpoints: a directory with ``model.safetensors`` (weights and the normalisation buffers) and
``config.json`` (``{"format": "harmowam", "version": 1, "config": {...}, "meta": {...}}``). No pickle.

Every problem loading one raises ``CheckpointError`` (a ``ValueError``) naming the file and what is wrong:
missing directory or file, a config.json that is not JSON or not a HarmoWAM checkpoint (a LeRobot ACT
checkpoint is recognised and named), a config that does not validate (the field), a corrupted or
truncated safetensors file, a missing, unexpected, mis-shaped or non-finite tensor (named, expected vs
found). A config.json written before a field existed loads with that field's ``LEGACY_DEFAULTS`` value
(the behaviour it was trained with). Files are written to a temporary name and renamed, so an
interrupted save never leaves a half-written checkpoint under the real names.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from safetensors.torch import load_file, save_file

from policies.harmowam.config import HarmoWAMConfig
from policies.harmowam.model import HarmoWAM

FORMAT, VERSION = "harmowam", 1
WEIGHTS, CONFIG = "model.safetensors", "config.json"
# config fields added after the first checkpoints were written: a config.json without one gets the value
# those checkpoints were trained with (every field is written by ``save_checkpoint``, so new ones have it)
LEGACY_DEFAULTS: dict[str, Any] = {"wm_residual": False, "action_vision": False, "state_history": 0, "gate_inputs": "pooled",
                                   "aug_shift_px": 0, "aug_state_noise": 0.0}


class CheckpointError(ValueError):
    """A HarmoWAM checkpoint that cannot be used; the message names the file and the problem."""


def save_checkpoint(directory: str | os.PathLike[str], model: HarmoWAM, cfg: HarmoWAMConfig,
                    meta: Mapping[str, Any] | None = None) -> Path:
    """Write ``model.safetensors`` + ``config.json`` into ``directory`` (created); returns the directory."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    try:
        text = json.dumps({"format": FORMAT, "version": VERSION, "config": cfg.model_dump(mode="json"), "meta": dict(meta or {})}, indent=2)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint meta must be JSON-serialisable: {e}") from None
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp_w, tmp_c = out / (WEIGHTS + ".tmp"), out / (CONFIG + ".tmp")
    save_file(tensors, str(tmp_w), metadata={"format": FORMAT, "version": str(VERSION)})
    tmp_c.write_text(text + "\n")
    os.replace(tmp_w, out / WEIGHTS)
    os.replace(tmp_c, out / CONFIG)
    return out


def _not_harmowam(path: Path, doc: Any) -> str:
    if isinstance(doc, dict) and doc.get("type") == "act":
        return (f"{path} is a LeRobot ACT checkpoint (type 'act'), not a HarmoWAM one: run it as the ACT policy "
                "(--policy act, or --policy DIR which picks the policy from config.json)")
    if isinstance(doc, dict) and isinstance(doc.get("type"), str):
        return f"{path} is a LeRobot {doc['type']!r} policy checkpoint, not a HarmoWAM one"
    return f"{path} is not a HarmoWAM checkpoint config (no \"format\": \"harmowam\"): point at a directory written by harmowam train"


def read_config(directory: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None) -> tuple[HarmoWAMConfig, dict[str, Any]]:
    """The checkpoint's config (with ``overrides`` applied) and meta, without the weights."""
    d = Path(directory)
    if not d.is_dir():
        raise CheckpointError(f"checkpoint directory {d} does not exist (or is not a directory)")
    path = d / CONFIG
    if not path.is_file():
        hint = " (a lerobot-train output? point at its pretrained_model/ folder)" if (d / "pretrained_model").is_dir() else ""
        raise CheckpointError(f"{path} is missing: not a checkpoint directory{hint}")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is not readable JSON ({e}): the file is corrupted or truncated; re-save the checkpoint") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(_not_harmowam(path, doc))
    if doc.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {doc.get('version')!r}, this program reads version {VERSION}")
    raw = doc.get("config")
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: \"config\" must be an object of HarmoWAMConfig fields")
    try:
        cfg = HarmoWAMConfig.model_validate({**LEGACY_DEFAULTS, **raw, **dict(overrides or {})})
    except ValidationError as e:
        bad = "; ".join(f"{'.'.join(map(str, x['loc'])) or 'config'}: {x['msg']}" for x in e.errors())
        raise CheckpointError(f"{path}: invalid config field(s): {bad}") from None
    meta = doc.get("meta") or {}
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: \"meta\" must be an object")
    return cfg, meta


def _check_tensors(path: Path, found: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> None:
    missing = [k for k in expected if k not in found]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise CheckpointError(f"{path}: tensor(s) missing: {', '.join(missing[:3])}{more} (weights from another model or version?)")
    extra = [k for k in found if k not in expected]
    if extra:
        raise CheckpointError(f"{path}: unexpected tensor(s) {', '.join(extra[:3])}: these weights do not match config.json")
    for k, want in expected.items():
        got = found[k]
        if tuple(got.shape) != tuple(want.shape):
            raise CheckpointError(f"{path}: tensor {k!r} has shape {tuple(got.shape)}, config.json expects "
                                  f"{tuple(want.shape)}: the weights and config.json do not belong together")
        if got.dtype != want.dtype:
            raise CheckpointError(f"{path}: tensor {k!r} is {got.dtype}, expected {want.dtype}")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise CheckpointError(f"{path}: tensor {k!r} holds NaN or inf values (training diverged?)")


def load_checkpoint(directory: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None) -> tuple[HarmoWAM, HarmoWAMConfig, dict[str, Any]]:
    """(model in eval mode, config, meta). ``overrides``: config fields to change (inference settings)."""
    cfg, meta = read_config(directory, overrides)
    path = Path(directory) / WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: the checkpoint has a config but no weights; re-save it")
    try:
        found = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for a bad header or a short file
        raise CheckpointError(f"{path} is not a readable safetensors file ({type(e).__name__}: {e}): "
                              "it is corrupted or truncated; re-save the checkpoint or use another") from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = HarmoWAM(cfg)
    _check_tensors(path, found, model.state_dict())
    model.load_state_dict(found, strict=True)
    return model.eval(), cfg, meta
