"""Training state next to a model checkpoint, without pickle: ``training_state.safetensors`` (optimizer
tensors, torch RNG state) + ``training_state.json`` (step, stage, scheduler, optimizer hyper-parameters,
anything else JSON). The JSON file is written last (by rename), so its presence marks a complete save.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

STATE_TENSORS, STATE_JSON = "training_state.safetensors", "training_state.json"


class TrainStateError(ValueError):
    """A training state that cannot be restored; the message names the file and the problem."""


def _split_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"optimizer.{idx}.{key}"] = val.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars, "indices": [int(i) for i in sd["state"]]}


def _join_optimizer(tensors: dict[str, torch.Tensor], doc: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(i): {} for i in doc["indices"]}
    for name, val in tensors.items():
        if name.startswith("optimizer."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = val
    for idx, st in doc.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(st)
    return {"state": state, "param_groups": doc["param_groups"]}


def save_train_state(directory: str | os.PathLike[str], optimizer: torch.optim.Optimizer | None,
                     scheduler: Any | None, info: dict[str, Any]) -> None:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    doc: dict[str, Any] = {"format": "harmowam-train-state", "version": 1, **info}
    if optimizer is not None:
        t, o = _split_optimizer(optimizer.state_dict())
        tensors.update(t)
        doc["optimizer"] = o
    if scheduler is not None:
        doc["scheduler"] = scheduler.state_dict()
    text = json.dumps(doc, indent=2)  # fails here, before anything is written, if not JSON-able
    tmp_t, tmp_j = out / (STATE_TENSORS + ".tmp"), out / (STATE_JSON + ".tmp")
    save_file(tensors, str(tmp_t))
    tmp_j.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp_t, out / STATE_TENSORS)
    os.replace(tmp_j, out / STATE_JSON)


def read_train_state(directory: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    d = Path(directory)
    try:
        doc = json.loads((d / STATE_JSON).read_text(encoding="utf-8"))
        tensors = load_file(str(d / STATE_TENSORS))
    except FileNotFoundError as e:
        raise TrainStateError(f"{d}: training state incomplete ({Path(e.filename).name} missing); resume from an earlier checkpoint or start again with --overwrite") from None
    except (OSError, ValueError, RuntimeError) as e:
        raise TrainStateError(f"{d}: training state cannot be read ({type(e).__name__}: {e}); start again with --overwrite") from None
    if doc.get("format") != "harmowam-train-state":
        raise TrainStateError(f"{d / STATE_JSON}: not a harmowam training state")
    return doc, tensors


def restore_optimizer(optimizer: torch.optim.Optimizer, doc: dict[str, Any], tensors: dict[str, torch.Tensor], where: Path) -> None:
    if "optimizer" not in doc:
        raise TrainStateError(f"{where}: no optimizer state saved")
    try:
        optimizer.load_state_dict(_join_optimizer(tensors, doc["optimizer"]))
    except (ValueError, KeyError) as e:
        raise TrainStateError(f"{where}: the optimizer state does not fit this model ({e}); start again with --overwrite") from None
