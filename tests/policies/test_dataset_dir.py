"""``--dataset`` takes a folder or a repo id under ``$HF_LEROBOT_HOME``, as LeRobot resolves it; nothing is
downloaded, and a miss names every place looked at."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from policies.dataset_dir import DatasetNotFound, lerobot_home, resolve_dataset


def _fake(root: Path) -> Path:
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text("{}")
    return root


def test_lerobot_home_follows_lerobots_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_LEROBOT_HOME", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert lerobot_home() == tmp_path / "hf" / "lerobot"
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lr"))
    assert lerobot_home() == tmp_path / "lr"


def test_a_folder_or_a_repo_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "home"))
    folder = _fake(tmp_path / "mine")
    assert resolve_dataset(folder) == folder
    under = _fake(tmp_path / "home" / "me" / "cubes")
    assert resolve_dataset("me/cubes") == under
    with pytest.raises(DatasetNotFound, match=r"me/nothing.*home/me/nothing.*\$HF_LEROBOT_HOME"):
        resolve_dataset("me/nothing")


def test_harmowam_train_takes_a_repo_id_and_names_a_miss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harmowam_ctl import cli

    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "home"))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = cli.main(["train", "--dataset", "me/missing", "--out", str(tmp_path / "o")])
    assert rc == 2 and "HF_LEROBOT_HOME" in err.getvalue() and str(tmp_path / "home" / "me" / "missing") in err.getvalue()
    assert not (tmp_path / "o").exists()
