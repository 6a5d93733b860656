"""`harmowam bench policy`: the cost of one HarmoWAM policy step on one torch thread, and LeRobot ACT's.

Inputs: two (the config's) 96 x 96 random camera frames and a random joint state. Without ``--checkpoint``
the model is freshly initialised at the default size (``HarmoWAMConfig()``, seed 0); with one, the
checkpoint's model (its frames are resized from 96 x 96 when it was trained at another size).

Each sample runs, back to back (interleaved, so that a load change on a shared machine hits all alike):
    forced predictive step: predict (world model) -> gate -> predictive expert
    forced reactive step:   predict -> gate -> reactive expert
    gated step:             ``policy.act(policy.predict(obs), obs)``, the runtime's two calls: the router
                            picks the expert from s_t (with a fresh model s_t is arbitrary, so which expert
                            ran is reported in ``gated_experts``)
    ACT step:               ``policies.act.default_act_for_bench`` (LeRobot's ACT at its default size:
                            ResNet-18, dim 512, chunk 100; pre-processor + chunk + post-processor)
Reported: ``world_model_ms`` (``policy.predict``: frames to tensors, encoder, ``wm_steps`` flow steps),
``gate_ms``, ``predictive_ms``, ``reactive_ms``, ``decode_ms`` (imagined frames for display; off by default
at inference) as medians; ``step_ms_p50``/``step_ms_p99`` of the gated step; ``forced`` p50/p99 of the two
forced steps; ``act`` p50/p99 (or ``{"error": ...}`` when ACT cannot be built). ``step_cpu_ms_p50`` (here
and in ``act``): the median CPU time of the step's thread, close to the wall time an idle machine would
give: on a busy shared machine the wall times are inflated and this is the fairer number (other threads
of the process, if any, are not counted). Speed goal (issue 5): gated step p50 <= 30 ms and below ACT's
p50 (``goal.met``: None when ACT could not be timed).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harmowam_ctl.bench import machine

GOAL_MS = 30.0


class BenchPolicyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkpoint: str | None = Field(None, description="a HarmoWAM checkpoint directory (default: a fresh default-size model)")
    samples: int = Field(200, ge=10, le=100_000, description="timed samples of each kind")
    warmup: int = Field(10, ge=0, le=10_000, description="untimed samples first")
    act: bool = Field(True, description="time LeRobot's ACT in the same run")


def _pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs)
    return {"p50": round(float(np.percentile(a, 50)), 3), "p99": round(float(np.percentile(a, 99)), 3)}


def _median(xs: list[float]) -> float:
    return round(float(np.median(xs)), 3)


def _policy(cfg: BenchPolicyConfig) -> Any:
    import torch

    from policies.harmowam import HarmoWAM, HarmoWAMConfig
    from policies.harmowam.policy import HarmoWAMPolicy

    if cfg.checkpoint:
        return HarmoWAMPolicy.from_checkpoint(cfg.checkpoint, seed=0, torch_threads=1)
    torch.manual_seed(0)
    return HarmoWAMPolicy(HarmoWAM(HarmoWAMConfig()), seed=0, torch_threads=1)


def _act_bench(cameras: tuple[str, ...]) -> tuple[Any, str | None]:
    try:
        from policies.act import default_act_for_bench

        return default_act_for_bench(cameras, 96, torch_threads=1), None
    except Exception as e:  # reported, not fatal: the HarmoWAM numbers stand on their own
        return None, f"{type(e).__name__}: {e}"


def run(cfg: BenchPolicyConfig) -> dict[str, Any]:
    import torch

    from policies.interface import Observation

    torch.set_num_threads(1)
    policy = _policy(cfg)
    model, pcfg = policy.model, policy.cfg
    rng = np.random.default_rng(0)
    images = {c: rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for c in pcfg.cameras}
    obs = Observation(t=0.0, state=rng.normal(0, 0.3, pcfg.state_dim), state_t=0.0, images=images,
                      image_t=dict.fromkeys(pcfg.cameras, 0.0))
    act_bench, act_error = _act_bench(pcfg.cameras) if cfg.act else (None, "not run (act disabled)")
    torch.set_num_threads(1)
    parts: dict[str, list[float]] = {k: [] for k in ("world_model", "gate", "predictive", "reactive", "decode")}
    forced: dict[str, list[float]] = {"predictive": [], "reactive": []}
    steps, act_steps, experts = [], [], {}
    cpu_steps, cpu_act = [], []  # this thread's CPU time: what the wall time would be on an idle machine
    clock, cpu = time.perf_counter, time.thread_time
    for i in range(cfg.warmup + cfg.samples):
        timed = i >= cfg.warmup
        for expert in ("predictive", "reactive"):
            t0 = clock()
            pred = policy.predict(obs)
            t1 = clock()
            with torch.inference_mode():
                float(model.gate_prob(pred.latent)[0])
            t2 = clock()
            policy.expert_actions(pred.latent, expert)
            t3 = clock()
            if timed:
                parts["world_model"].append(t1 - t0)
                parts["gate"].append(t2 - t1)
                parts[expert].append(t3 - t2)
                forced[expert].append(t3 - t0)
        c0, t0 = cpu(), clock()
        chunk = policy.act(policy.predict(obs), obs)
        t1, c1 = clock(), cpu()
        with torch.inference_mode():
            model.decode(pred.latent.future[0, :, 0])
        t2 = clock()
        c2 = cpu()
        if act_bench is not None:
            act_bench.step()
        t3, c3 = clock(), cpu()
        if timed:
            steps.append(t1 - t0)
            cpu_steps.append(c1 - c0)
            parts["decode"].append(t2 - t1)
            experts[chunk.expert] = experts.get(chunk.expert, 0) + 1
            if act_bench is not None:
                act_steps.append(t3 - t2)
                cpu_act.append(c3 - c2)
    ms = lambda xs: [1e3 * x for x in xs]  # noqa: E731
    step = _pct(ms(steps))
    result: dict[str, Any] = {
        "benchmark": "policy",
        "model": cfg.checkpoint or "fresh default-size HarmoWAM (untrained, seed 0)",
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
        "image_size": 96, "cameras": list(pcfg.cameras), "torch_threads": torch.get_num_threads(),
        "wm_steps": pcfg.wm_steps, "expert_steps": pcfg.expert_steps, "samples": cfg.samples,
        **{f"{k}_ms": _median(ms(v)) for k, v in parts.items()},
        "step_ms_p50": step["p50"], "step_ms_p99": step["p99"], "step_cpu_ms_p50": _median(ms(cpu_steps)),
        "forced": {k: {"step_ms_p50": _pct(ms(v))["p50"], "step_ms_p99": _pct(ms(v))["p99"]} for k, v in forced.items()},
        "gated_experts": experts,
        "act": ({"step_ms_p50": _pct(ms(act_steps))["p50"], "step_ms_p99": _pct(ms(act_steps))["p99"],
                 "step_cpu_ms_p50": _median(ms(cpu_act))}
                if act_bench is not None else {"error": act_error}),
        "machine": machine(), "load_avg": [round(x, 2) for x in os.getloadavg()], "date": dt.date.today().isoformat(),
    }
    act_p50 = result["act"].get("step_ms_p50")
    # met: None when ACT could not be timed (half of the goal is unknown)
    met = None if act_p50 is None else bool(step["p50"] <= GOAL_MS and step["p50"] < act_p50)
    result["goal"] = {"step_p50_max_ms": GOAL_MS, "met": met, "act_compared": act_p50 is not None}
    return result


def format_text(r: dict[str, Any]) -> str:
    lines = [f"HarmoWAM policy step, {r['params_m']} M parameters, {len(r['cameras'])} cameras {r['image_size']} px, "
             f"{r['torch_threads']} torch thread (load average {r['load_avg'][0]})",
             f"  world model {r['world_model_ms']:.2f} ms ({r['wm_steps']} steps)   gate {r['gate_ms']:.3f} ms   "
             f"predictive {r['predictive_ms']:.2f} ms ({r['expert_steps']} steps)   reactive {r['reactive_ms']:.2f} ms   "
             f"decode {r['decode_ms']:.2f} ms",
             f"  step (gated)        p50 {r['step_ms_p50']:.2f} ms   p99 {r['step_ms_p99']:.2f} ms   "
             f"(CPU {r['step_cpu_ms_p50']:.2f} ms)   experts {r['gated_experts']}"]
    for k, v in r["forced"].items():
        lines.append(f"  step ({k}){'':<{12 - len(k)}} p50 {v['step_ms_p50']:.2f} ms   p99 {v['step_ms_p99']:.2f} ms")
    a = r["act"]
    lines.append(f"  LeRobot ACT (default) p50 {a['step_ms_p50']:.2f} ms   p99 {a['step_ms_p99']:.2f} ms   "
                 f"(CPU {a['step_cpu_ms_p50']:.2f} ms)" if "error" not in a
                 else f"  LeRobot ACT: not timed ({a['error']})")
    g = r["goal"]
    lines.append(f"  goal: p50 <= {g['step_p50_max_ms']:.0f} ms{' and faster than ACT' if g['act_compared'] else ''}: "
                 f"{'unknown (ACT not timed)' if g['met'] is None else 'met' if g['met'] else 'NOT met'}")
    return "\n".join(lines)
