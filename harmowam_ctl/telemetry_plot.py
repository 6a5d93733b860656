"""The end-of-run plot (plot.png), drawn with matplotlib's Agg canvas (no pyplot, no display, no global
backend switch), from the retained tick columns, the policy steps and the summary.

Panels, sharing one time axis (seconds since the run started): tick period and jitter; end-to-end latency
and policy step times; who drove the arm (coloured bands) with fault markers; then targets vs present
for each joint. Long runs are thinned for drawing: timing panels keep each bin's maximum (spikes stay
visible), joint panels a regular subsample. Works with zero ticks and with None/NaN values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from harmowam_ctl.telemetry import PolicyStep, TickColumns

SOURCE_COLOURS = {"policy": "#2ca02c", "human": "#1f77b4", "hold": "#9e9e9e"}
MAX_POINTS = 4000


def _binned_max(t: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    if t.size <= max_points:
        return t, y
    k = int(np.ceil(t.size / max_points))
    m = (t.size // k) * k
    yb = y[:m].reshape(-1, k)
    with np.errstate(all="ignore"):
        ymax = np.where(np.isfinite(yb).any(axis=1), np.nanmax(np.where(np.isfinite(yb), yb, -np.inf), axis=1),
                        np.nan)
    return t[:m:k], ymax


def _thin(n: int, max_points: int = MAX_POINTS) -> slice:
    return slice(None, None, max(1, int(np.ceil(n / max_points))))


def _no_data(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#888888")


def _fmt(x: Any, unit: str = "", digits: int = 1) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}{unit}"


def write_plot(path: str | Path, cols: TickColumns, steps: Sequence[PolicyStep], summary: Mapping[str, Any], *,
               t0: float, joint_names: Sequence[str]) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from harmowam_ctl.telemetry import SOURCES

    n = len(cols)
    duration = float(summary.get("duration_s") or 0.0)
    fig = Figure(figsize=(15, 13), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(5, 3, height_ratios=[1.2, 1.2, 0.55, 1, 1])
    ax_tick = fig.add_subplot(gs[0, :])
    ax_lat = fig.add_subplot(gs[1, :], sharex=ax_tick)
    ax_src = fig.add_subplot(gs[2, :], sharex=ax_tick)
    fig.suptitle(f"{summary.get('run')}  arm {summary.get('arm') or 'n/a'}  -  {summary.get('ticks', 0)} ticks, "
                 f"{_fmt(summary.get('tick_hz'), ' Hz')}, {summary.get('overruns', 0)} overruns, "
                 f"{len(summary.get('faults') or [])} faults, {duration:.1f} s")

    t = cols.t_start - t0
    # tick period and jitter
    if n:
        if n >= 2:
            tp, period = _binned_max(t[1:], np.diff(cols.t_start) * 1e3)
            ax_tick.plot(tp, period, lw=0.7, label="period (bin max)")
        tj, jitter = _binned_max(t, np.abs(cols.t_start - cols.t_sched) * 1e3)
        ax_tick.plot(tj, jitter, lw=0.7, label="jitter |t_start - t_sched| (bin max)")
        tc, compute = _binned_max(t, (cols.t_end - cols.t_start) * 1e3)
        ax_tick.plot(tc, compute, lw=0.7, label="compute (bin max)")
        nominal = summary.get("tick_period_nominal_ms")
        if nominal is not None:
            ax_tick.axhline(nominal, ls="--", lw=0.8, color="k", label=f"nominal {nominal:.1f} ms")
        ax_tick.legend(loc="upper right", fontsize=8)
    else:
        first = (summary.get("faults") or [None])[0]
        why = f"\nfault {first.get('name')}: {first.get('detail')} -> {first.get('reaction')}" if first else ""
        _no_data(ax_tick, "no servo ticks recorded" + why)
    ax_tick.set_ylabel("tick (ms)")

    # latency and policy step times
    drew = False
    e2e = np.isfinite(cols.e2e_s)
    if e2e.any():
        ax_lat.plot(cols.t_end[e2e] - t0, cols.e2e_s[e2e] * 1e3, ".", ms=3, label="end-to-end (frame -> command)")
        drew = True
    for stage, colour in (("predict", "#9467bd"), ("act", "#ff7f0e")):
        st = [p for p in steps if p.stage == stage]
        if st:
            ax_lat.plot([p.t_done - t0 for p in st], [(p.t_done - p.t_start) * 1e3 for p in st], ".", ms=3,
                        color=colour, label=f"policy {stage} step")
            drew = True
    if drew:
        ax_lat.legend(loc="upper right", fontsize=8)
    else:
        _no_data(ax_lat, "no latency samples, no policy steps")
    ax_lat.set_ylabel("ms")

    # who drove, and faults
    if n:
        change = np.flatnonzero(np.diff(cols.source.astype(np.int16))) + 1
        starts = np.concatenate([[0], change])
        ends = np.concatenate([change, [n]])
        last_end = t[-1] + ((summary.get("tick_period_nominal_ms") or 0.0) / 1e3)
        edges = np.append(t, last_end)
        for code, src in enumerate(SOURCES):
            segs = [(edges[a], edges[b] - edges[a])
                    for a, b in zip(starts, ends, strict=True) if cols.source[a] == code]
            if segs:
                ax_src.broken_barh(segs, (0, 1), facecolors=SOURCE_COLOURS.get(src.value, "#cccccc"))
    faults = summary.get("faults") or []
    for i, f in enumerate(faults):
        ft = f.get("t")
        if ft is None:
            continue
        for ax in (ax_tick, ax_lat, ax_src):
            ax.axvline(ft - t0, color="red", lw=1.0, alpha=0.8)
        if i < 12:
            ax_src.text(ft - t0, 1.05, str(f.get("name")), color="red", fontsize=7, rotation=20, va="bottom")
    ax_src.legend(handles=[Patch(color=SOURCE_COLOURS[s.value], label=s.value) for s in SOURCES]
                  + ([Patch(color="red", label="fault")] if faults else []), loc="upper left", fontsize=8, ncol=4)
    ax_src.set_ylim(0, 1.6)
    ax_src.set_yticks([])
    ax_src.set_ylabel("source")
    ax_src.set_xlabel("time since start (s)")
    fault_t = [f["t"] - t0 for f in faults if f.get("t") is not None]
    right = max([duration, float(t[-1]) if n else 0.0, *fault_t])
    ax_tick.set_xlim(0, right * 1.02 if right > 0 else 1.0)

    # joints
    sl = _thin(n)
    for j, name in enumerate(joint_names):
        ax = fig.add_subplot(gs[3 + j // 3, j % 3], sharex=ax_tick)
        ax.set_title(name, fontsize=9)
        if n:
            ax.plot(cols.state_t[sl] - t0, cols.present[sl, j], lw=0.8, label="present")
            ax.plot(cols.t_end[sl] - t0, cols.target[sl, j], lw=0.8, label="target")
            req = cols.requested[sl, j]
            if np.isfinite(req).any():
                ax.plot(t[sl], req, lw=0.6, ls=":", label="requested (before filter)")
            ax.legend(fontsize=7, loc="upper right")
        else:
            _no_data(ax, "no ticks")
        ax.set_ylabel("rad", fontsize=8)
        ax.tick_params(labelsize=7)

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out
