"""`harmowam bench sim`: the cost of the simulated SO-101 (render one camera frame, one 30 Hz step).

The measuring itself lives in ``hardware.sim.bench``; this is the command's config and text output.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from harmowam_ctl.bench import machine
from pydantic import BaseModel, ConfigDict, Field


class BenchSimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: int = Field(96, ge=16, le=1024)
    samples: int = Field(300, ge=20, le=100_000)


def run(cfg: BenchSimConfig) -> dict[str, Any]:
    from hardware.sim import bench  # sets MUJOCO_GL=egl before mujoco loads

    result = bench.run(frames=cfg.samples, steps=cfg.samples, resolution=(cfg.resolution, cfg.resolution))
    result["benchmark"] = "sim"
    result["machine"] = machine()
    result["date"] = dt.date.today().isoformat()
    return result


def format_text(r: dict[str, Any]) -> str:
    res = "x".join(str(v) for v in r["resolution"])
    lines = [f"simulated SO-101 (MuJoCo {r['mujoco']}, {res} px, load average {r['load_avg'][0]})"]
    for key, label in (("render_front_ms", "render front"), ("render_wrist_ms", "render wrist"), ("step_ms", "30 Hz step")):
        s = r[key]
        lines.append(f"  {label:<13} median {s['median']:.3f} ms   p99 {s['p99']:.3f} ms")
    lines.append(f"  targets: render <= {r['targets_ms']['render']} ms, step <= {r['targets_ms']['step']} ms: "
                 f"{'met' if r['meets_targets'] else 'NOT met'}")
    return "\n".join(lines)
