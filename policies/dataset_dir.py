"""``--dataset`` as LeRobot users give it: a folder, or a repo id (``user/name``) under ``$HF_LEROBOT_HOME``.

LeRobot 0.6.1 keeps datasets in ``$HF_LEROBOT_HOME/<repo_id>`` (default ``$HF_HOME/lerobot``, i.e.
``~/.cache/huggingface/lerobot``); ``lerobot-record --dataset.repo_id=me/pick`` writes there.
``resolve_dataset`` finds a local dataset either way and never downloads (nothing is fetched at run time).
"""

from __future__ import annotations

import os
from pathlib import Path


class DatasetNotFound(ValueError):
    """Neither a folder nor a repo id with a dataset under ``$HF_LEROBOT_HOME``; the message names both."""


def lerobot_home() -> Path:
    """LeRobot's ``HF_LEROBOT_HOME`` (computed as LeRobot does, without importing it)."""
    hf_home = os.getenv("HF_HOME") or str(Path(os.getenv("XDG_CACHE_HOME", "~/.cache")) / "huggingface")
    return Path(os.getenv("HF_LEROBOT_HOME", str(Path(hf_home) / "lerobot"))).expanduser()


def resolve_dataset(arg: str | os.PathLike[str]) -> Path:
    """The dataset directory ``arg`` names (module doc); ``DatasetNotFound`` naming what was tried."""
    path = Path(arg).expanduser()
    if (path / "meta" / "info.json").is_file():
        return path
    text = str(arg)
    tried = [str(path)]
    if not path.is_absolute() and not text.startswith("."):
        under_home = lerobot_home() / text
        if (under_home / "meta" / "info.json").is_file():
            return under_home
        tried.append(str(under_home))
    if path.is_dir():
        return path  # the reader names what is missing in it
    raise DatasetNotFound(
        f"--dataset {text}: no LeRobot dataset at {' or '.join(tried)}; give the dataset's folder, or its repo id "
        "as lerobot-record wrote it under $HF_LEROBOT_HOME (nothing is downloaded)"
    )
