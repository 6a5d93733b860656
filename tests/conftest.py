"""Test-wide settings: one torch/BLAS thread (torch reads OMP_NUM_THREADS when it first loads),
nothing downloaded at run time, headless rendering."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
