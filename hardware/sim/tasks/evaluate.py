"""Measure the scripted experts' success rates; prints JSON.

    python -m hardware.sim.tasks.evaluate --seeds 100                 # every task, in domain
    python -m hardware.sim.tasks.evaluate --tasks push --specs in_domain position --seeds 40 --jobs 2

Seeds run from ``--start`` to ``--start + --seeds - 1``; each (task, spec, seed) is one episode of
``run_episode``. Output: per task and spec, the episodes, successes, rate, the failed seeds, the mean
episode length (steps at 30 Hz) and the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def _one(args: tuple[str, str, int]) -> tuple[str, str, int, bool, int, str]:
    import hardware.sim  # noqa: F401  (MUJOCO_GL before mujoco)
    from hardware.sim.tasks import get_task, run_episode

    task, spec, seed = args
    try:
        ep = run_episode(get_task(task), seed, spec)
        return task, spec, seed, bool(ep.success), ep.steps, ""
    except Exception as e:  # a crash is a failure, reported with its message
        return task, spec, seed, False, 0, f"{type(e).__name__}: {e}"


def main(argv: list[str] | None = None) -> int:
    from hardware.sim.tasks import task_names
    from hardware.sim.variations import AXES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=list(task_names()), choices=task_names())
    ap.add_argument("--specs", nargs="+", default=["in_domain"], help=f"names ({', '.join(AXES)}) or YAML paths")
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1)
    a = ap.parse_args(argv)
    jobs = [(t, s, seed) for t in a.tasks for s in a.specs for seed in range(a.start, a.start + a.seeds)]
    t0 = time.perf_counter()
    if a.jobs > 1:
        with ProcessPoolExecutor(a.jobs) as pool:
            results = list(pool.map(_one, jobs, chunksize=4))
    else:
        results = [_one(j) for j in jobs]
    out: dict = {"seeds": [a.start, a.start + a.seeds - 1], "wall_s": round(time.perf_counter() - t0, 1), "cpu_count": os.cpu_count(), "results": {}}
    for t in a.tasks:
        for s in a.specs:
            rs = [r for r in results if r[0] == t and r[1] == s]
            ok = [r for r in rs if r[3]]
            out["results"].setdefault(t, {})[s] = {
                "episodes": len(rs),
                "successes": len(ok),
                "rate": round(len(ok) / max(1, len(rs)), 3),
                "failed_seeds": [r[2] for r in rs if not r[3]],
                "errors": {r[2]: r[5] for r in rs if r[5]},
                "mean_steps": round(sum(r[4] for r in rs) / max(1, len(rs)), 1),
            }
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
