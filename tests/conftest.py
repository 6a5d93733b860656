"""Test-wide settings: one torch/BLAS thread (torch reads OMP_NUM_THREADS when it first loads),
nothing downloaded at run time, headless rendering."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_logging():
    """A test that runs the CLI configures structlog (level, stderr) and exports HARMOWAM_LOG for child
    processes. Each test starts from structlog's defaults (every level kept, so ``capture_logs`` sees all)
    but printing to stderr, never stdout, and HARMOWAM_LOG* are put back afterwards."""
    import structlog

    from harmowam_ctl import logs

    saved = {k: os.environ.get(k) for k in ("HARMOWAM_LOG", "HARMOWAM_LOG_JSON")}
    structlog.reset_defaults()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=logs._Stderr()))
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
