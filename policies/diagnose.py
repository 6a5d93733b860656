"""Open-loop diagnostics of a trained policy on a LeRobot dataset (``harmowam diagnose``).

The policy is driven only through the stable ``policies.interface.Policy`` interface: for every sampled
episode ``policy.reset()``, then for each frame in order an ``Observation`` (``t = state_t = frame / fps``,
the dataset's own state, the cameras' frames, ``index`` = frame) and ``policy.act(policy.predict(obs), obs)``.
Observations come in time order because a policy may keep a state history. The checkpoint and the dataset
both speak the dataset's units, so the policy is used unwrapped (no ``policies.units`` conversion) and its
targets are compared with the dataset's ``action`` column as they are.

Each sampled episode is run three times (three "passes"): with its own images, with the images of another
sampled episode at the same relative progress (``swap``), and with a constant grey image (``grey``). The
state is always the episode's own. From these:

1. **Open-loop action error**: the chunk's first action vs ``a_t``, and the chunk's steps that exist in
   the episode vs ``a_t .. a_{t+H-1}`` (mean absolute error per joint), on training and held-out episodes;
   for scale, the same error of "holding still" (every step = the current state) and the std of the
   dataset's actions.
2. **Does it look**: the mean change of the first action when the images are swapped, vs the mean
   difference of the two episodes' true actions at those frames (``ratio``: near 0 = blind); and the change
   when the images are grey. Ratios compare means over joints in radians when every joint converts, else
   after dividing each joint by its action std (so degrees and 0..100 are not added up).
3. **Gate vs phase** (datasets with a ``phase`` column: 1 interaction, 0 transit): accuracy of
   ``gate > threshold`` per phase class, balanced accuracy, and the routed experts' shares per phase.
4. **Object-position probe** (``harmowam sim demos`` datasets, whose ``meta/harmowam_demos.json`` gives
   each episode's task, variation spec and seed): the objects' initial xy come from
   ``Task.sample(spec, seed)`` (the scene ``Task.reset`` builds; no physics needed). The interface exposes no
   internal features, so the probe reads the policy's *output* at the episode's first frame (after
   ``reset``, one call per episode, over up to ``probe_episodes`` episodes: the arm is still at home there,
   so what the chunk knows about the object it saw): a ridge regression (leave one episode out, the
   penalty chosen inside each training fold) from the chunk's targets minus the state to the objects' xy,
   next to the same probe from the state (what the input alone gives away) and from the demonstrations'
   actions minus the state (whether the expert's first moves carry it at all: when they do not, the probe
   is inconclusive). A probe of the policy's latent features is not available through the interface and
   is reported as such.

Errors are reported in the dataset's units and, where they convert, in radians and degrees: a radians
dataset as it is; LeRobot ``deg`` joints with their constant (no calibration needed); LeRobot 0..100 ranges
(the gripper) only for a ``harmowam sim demos`` dataset, with the simulated SO-101's calibration
(``ArmCalibration.simulated``), since other recordings need the calibration of the arm they came from.

``load_inputs`` raises ``DiagnoseInputError`` (a ``ValueError``) naming the fix for bad input.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from policies.interface import Observation, Policy

TRAIN, HELD_OUT = "train", "held_out"
SPLITS = (TRAIN, HELD_OUT)
PASSES = ("own", "swap", "grey")
GREY = 128
BLIND_RATIO, LOOKS_RATIO = 0.1, 0.3  # look ratio below: blind; above: looks; between: barely


class DiagnoseInputError(ValueError):
    """The checkpoint or the dataset cannot be diagnosed; the message names the fix."""


@dataclass
class Episode:
    """One dataset episode in memory (all of its frames: a partner's images are read at any progress).

    ``images``: camera -> (T, S, S, 3) uint8; ``state``/``action``: (T, D) in the dataset's units;
    ``phase``: (T,) 0/1 from the dataset's column, or None; ``steps``: how many of the first frames are run.
    ``object_xy``: the objects' initial xy (flattened), when known."""

    episode: int
    split: str
    images: dict[str, np.ndarray]
    state: np.ndarray
    action: np.ndarray
    fps: float
    phase: np.ndarray | None = None
    steps: int = 0
    object_xy: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.state)
        if self.steps <= 0 or self.steps > n:
            self.steps = n

    @property
    def length(self) -> int:
        return int(len(self.state))


@dataclass
class Rollout:
    """The policy's output at each run frame: chunks (T, H, D), gates (T,) (NaN: no gate), expert names."""

    chunks: np.ndarray
    gates: np.ndarray
    experts: list[str | None]
    seconds: float

    @property
    def first(self) -> np.ndarray:
        return self.chunks[:, 0]


ImageSource = Callable[[int], Mapping[str, np.ndarray]]


def aligned(k: int, length: int, other_length: int) -> int:
    """The frame of an episode of ``other_length`` frames at the same relative progress as frame ``k`` of
    an episode of ``length`` frames."""
    if length <= 1 or other_length <= 1:
        return 0
    return int(round(k * (other_length - 1) / (length - 1)))


def rollout(policy: Policy, ep: Episode, images: ImageSource | None = None) -> Rollout:
    """Run ``policy`` over the first ``ep.steps`` frames of ``ep`` in order, after ``reset`` (module doc).
    ``images(k)``: the cameras shown at frame ``k`` (default: the episode's own)."""
    own: ImageSource = lambda k: {c: v[k] for c, v in ep.images.items()}  # noqa: E731
    source = images or own
    policy.reset()
    chunks, gates, experts = [], [], []
    t0 = time.perf_counter()
    for k in range(ep.steps):
        t = k / ep.fps
        cams = dict(source(k))
        obs = Observation(t=t, state=np.asarray(ep.state[k], dtype=np.float64), state_t=t, images=cams,
                          image_t={c: t for c in cams}, index=k)
        chunk = policy.act(policy.predict(obs), obs)
        chunks.append(np.asarray(chunk.actions, dtype=np.float64))
        gates.append(math.nan if chunk.gate is None else float(chunk.gate))
        experts.append(chunk.expert)
    horizon = min(c.shape[0] for c in chunks)
    stacked = np.stack([c[:horizon] for c in chunks])
    return Rollout(stacked, np.asarray(gates, dtype=np.float64), experts, time.perf_counter() - t0)


def swapped_images(ep: Episode, partner: Episode) -> ImageSource:
    """``partner``'s cameras at the same relative progress as ``ep``'s frame."""
    return lambda k: {c: partner.images[c][aligned(k, ep.length, partner.length)] for c in ep.images}


def grey_images(ep: Episode) -> ImageSource:
    grey = {c: np.full(v.shape[1:], GREY, dtype=np.uint8) for c, v in ep.images.items()}
    return lambda k: grey


def partners(episodes: Sequence[Episode]) -> list[int | None]:
    """For each episode the index of the one whose images it is shown in the swap pass: the next sampled
    episode (cyclic), None when only one was sampled."""
    n = len(episodes)
    return [None if n < 2 else (i + 1) % n for i in range(n)]


# --- numbers -------------------------------------------------------------------------------------------------


@dataclass
class Scale:
    """How the dataset's joints convert: ``names`` per joint, ``to_rad[j]`` radians per dataset unit (None:
    not convertible), ``std`` the dataset actions' std per joint (dataset units), ``describe`` the units."""

    names: list[str]
    to_rad: list[float | None]
    std: np.ndarray
    describe: str = "dataset units"
    note: str = ""

    def vec(self, v: np.ndarray) -> dict[str, Any]:
        """A per-joint vector of absolute errors/changes in dataset units, with its mean and, where the joints
        convert, radians and degrees (the means over all joints only when every joint converts)."""
        v = np.asarray(v, dtype=np.float64)
        rad = [None if s is None else float(x * s) for x, s in zip(v, self.to_rad)]
        all_rad = all(r is not None for r in rad)
        mean_rad = float(np.mean(rad)) if all_rad else None
        return {
            "per_joint": [float(x) for x in v],
            "mean": float(v.mean()),
            "per_joint_rad": rad,
            "mean_rad": mean_rad,
            "mean_deg": None if mean_rad is None else math.degrees(mean_rad),
            "normalised": float(np.mean(v / self.std)),  # mean over joints of value / action std
        }

    def short(self, d: Mapping[str, Any]) -> str:
        return self.text(d, deg=False)

    @property
    def basis(self) -> str:
        """What ratios of two vectors compare: radians when every joint converts, else each joint divided by
        its action std (so that degrees and 0..100 are not added up)."""
        return "radians" if all(x is not None for x in self.to_rad) else "per-joint action std"

    def ratio(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> float | None:
        """``a / b`` of two ``vec`` results on ``basis``; None when ``b`` is ~0."""
        key = "mean_rad" if self.basis == "radians" else "normalised"
        return None if b[key] <= 1e-12 else float(a[key] / b[key])

    def text(self, d: Mapping[str, Any], digits: int = 3, deg: bool = True) -> str:
        """A ``vec``'s mean as text: radians (and degrees) when every joint converts, else dataset units."""
        if d.get("mean_rad") is not None:
            return f"{d['mean_rad']:.{digits}f} rad" + (f" ({d['mean_deg']:.1f} deg)" if deg else "")
        return f"{d['mean']:.{digits}f} dataset units (mean over joints)" if deg else f"{d['mean']:.{digits}f} dataset units"


def _std(episodes: Sequence[Episode], min_std: float = 1e-6) -> np.ndarray:
    a = np.concatenate([e.action for e in episodes]).astype(np.float64)
    return np.maximum(a.std(0), min_std)


def open_loop(episodes: Sequence[Episode], rolls: Sequence[Rollout], scale: Scale) -> dict[str, Any]:
    """Check 1 (module doc), per split."""
    out: dict[str, Any] = {}
    for split in SPLITS:
        first, chunk, hold_first, hold_chunk = [], [], [], []
        eps = 0
        for ep, r in zip(episodes, rolls):
            if ep.split != split:
                continue
            eps += 1
            for k in range(ep.steps):
                true = ep.action[k : k + r.chunks.shape[1]].astype(np.float64)
                m = len(true)
                pred = r.chunks[k, :m]
                first.append(np.abs(pred[0] - true[0]))
                chunk.append(np.abs(pred - true).mean(0))
                s = ep.state[k].astype(np.float64)
                hold_first.append(np.abs(s - true[0]))
                hold_chunk.append(np.abs(s[None] - true).mean(0))
        if not eps:
            out[split] = None
            continue
        out[split] = {
            "episodes": eps,
            "frames": len(first),
            "first": scale.vec(np.mean(first, 0)),
            "chunk": scale.vec(np.mean(chunk, 0)),
            "hold_first": scale.vec(np.mean(hold_first, 0)),
            "hold_chunk": scale.vec(np.mean(hold_chunk, 0)),
        }
    out["verdict"] = _open_loop_verdict(out, scale)
    return out


def _open_loop_verdict(r: Mapping[str, Any], scale: Scale) -> str:
    tr, ho = r.get(TRAIN), r.get(HELD_OUT)
    ref = ho or tr
    if ref is None:
        return "no frames"
    name = "held-out" if ho else "training"
    vs_hold = scale.ratio(ref["chunk"], ref["hold_chunk"])
    if vs_hold is None:
        return f"the {name} actions do not move: nothing to compare"
    words = (f"{name} chunk error {scale.short(ref['chunk'])} is {vs_hold:.2f}x that of holding still, "
             f"{scale.short(ref['hold_chunk'])}")
    if vs_hold >= 1.0:
        word = "not learned (no better than not moving)"
    elif vs_hold > 0.5:
        word = "weak (barely better than not moving)"
    else:
        word = "learned"
    if ho and tr:
        ratio = scale.ratio(ref["chunk"], tr["chunk"])
        if ratio is not None:
            words += f"; {ratio:.1f}x the training episodes' {scale.short(tr['chunk'])}"
            word += ", overfits" if ratio > 1.5 else ", held-out as good as training" if ratio < 1.15 else ", held-out a little worse"
    if (scale.ratio(ref["first"], ref["hold_first"]) or 0.0) > 1.0:
        words += f"; its first action is worse than holding still ({scale.short(ref['first'])} vs {scale.short(ref['hold_first'])})"
    return f"{word}: {words}"


def look(episodes: Sequence[Episode], own: Sequence[Rollout], swap: Sequence[Rollout | None],
         grey: Sequence[Rollout], scale: Scale) -> dict[str, Any]:
    """Check 2 (module doc)."""
    pair = partners(episodes)
    d_swap, spread, d_grey = [], [], []
    for i, ep in enumerate(episodes):
        d_grey.append(np.abs(grey[i].first - own[i].first))
        if pair[i] is None or swap[i] is None:
            continue
        p = episodes[pair[i]]
        d_swap.append(np.abs(swap[i].first - own[i].first))
        idx = [aligned(k, ep.length, p.length) for k in range(ep.steps)]
        spread.append(np.abs(ep.action[: ep.steps].astype(np.float64) - p.action[idx].astype(np.float64)))
    out: dict[str, Any] = {"alignment": "same relative progress", "grey_value": GREY}
    g = scale.vec(np.concatenate(d_grey).mean(0))
    out["grey_change"] = g
    if d_swap:
        s, sp = scale.vec(np.concatenate(d_swap).mean(0)), scale.vec(np.concatenate(spread).mean(0))
        out["swap_change"], out["episode_spread"] = s, sp
        out["ratio"], out["grey_ratio"] = scale.ratio(s, sp), scale.ratio(g, sp)
        out["ratio_basis"] = scale.basis
        out["per_joint_ratio"] = [a / b if b > 1e-12 else None for a, b in zip(s["per_joint"], sp["per_joint"])]
    else:
        out["swap_change"] = out["episode_spread"] = out["ratio"] = out["grey_ratio"] = None
        out["per_joint_ratio"] = None
        out["swap_note"] = "one episode sampled: nothing to swap its images with"
    out["verdict"] = _look_verdict(out, scale)
    return out


def _look_verdict(r: Mapping[str, Any], scale: Scale) -> str:
    grey = f"grey images change it by {scale.short(r['grey_change'])}"
    if r["ratio"] is None:
        why = r.get("swap_note") or "the sampled episodes' actions do not differ at the same progress"
        return f"swap not measured ({why}); {grey}"
    ratio = r["ratio"]
    word = "blind" if ratio < BLIND_RATIO else "barely looks" if ratio < LOOKS_RATIO else "looks"
    basis = "" if scale.basis == "radians" else ", each joint over its action std"
    return (f"{word}: swapping images changes the first action by {scale.short(r['swap_change'])} where episodes "
            f"differ by {scale.short(r['episode_spread'])} (ratio {ratio:.2f}{basis}); {grey} (ratio {r['grey_ratio']:.2f})")


def gate_accuracy(episodes: Sequence[Episode], rolls: Sequence[Rollout], threshold: float) -> dict[str, Any]:
    """Check 3 (module doc): over all sampled frames with a phase label and a gate value, and per split."""
    if not any(ep.phase is not None for ep in episodes):
        return {"available": False, "reason": "the dataset has no phase column (1 interaction, 0 transit)"}
    if all(np.isnan(r.gates).all() for r in rolls):
        return {"available": False, "reason": "the policy has no gate (its chunks carry gate None)"}

    def summary(pairs: list[tuple[Episode, Rollout]]) -> dict[str, Any] | None:
        phase, gate, names = [], [], []
        for ep, r in pairs:
            if ep.phase is None:
                continue
            keep = ~np.isnan(r.gates)
            phase.append(np.asarray(ep.phase[: ep.steps])[keep].astype(int))
            gate.append(r.gates[keep])
            names.extend(n for n, kept in zip(r.experts, keep) if kept)
        if not phase:
            return None
        ph, g = np.concatenate(phase), np.concatenate(gate)
        pred = (g > threshold).astype(int)
        out: dict[str, Any] = {"frames": int(len(ph))}
        accs = []
        for cls, label in ((1, "interaction"), (0, "transit")):
            m = ph == cls
            n = int(m.sum())
            share = Counter(x for x, keep in zip(names, m) if keep)
            acc = float((pred[m] == cls).mean()) if n else None
            if acc is not None:
                accs.append(acc)
            out[label] = {"frames": n, "accuracy": acc, "mean_gate": float(g[m].mean()) if n else None,
                          "experts": {str(k): v / n for k, v in sorted(share.items(), key=lambda kv: str(kv[0]))} if n else {}}
        out["accuracy"] = float((pred == ph).mean())
        out["balanced_accuracy"] = float(np.mean(accs)) if accs else None
        return out

    pairs = list(zip(episodes, rolls))
    out: dict[str, Any] = {"available": True, "threshold": threshold, "all": summary(pairs)}
    for split in SPLITS:
        out[split] = summary([(e, r) for e, r in pairs if e.split == split])
    out["verdict"] = _gate_verdict(out["all"])
    return out


def _gate_verdict(a: Mapping[str, Any] | None) -> str:
    if a is None:
        return "no labelled frames"
    parts = [f"{lab} {a[lab]['accuracy']:.0%} of {a[lab]['frames']}" for lab in ("interaction", "transit")
             if a[lab]["accuracy"] is not None]
    bal = a["balanced_accuracy"]
    if a["interaction"]["frames"] == 0 or a["transit"]["frames"] == 0:
        word = "one phase only in the sample: cannot tell whether the gate separates them"
    elif bal < 0.6:
        word = "the gate does not tell the phases apart"
    elif bal < 0.85:
        word = "the gate separates the phases roughly"
    else:
        word = "the gate separates the phases"
    return f"{word} (right on {', '.join(parts)}; balanced {bal:.0%})"


ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)  # ridge penalties tried (on standardised inputs)
PROBE_MIN_EPISODES = 10


def _standardise(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    mu, sd = ref.mean(0), ref.std(0)
    sd = np.where(sd < 1e-12, 1.0, sd)
    return (x - mu) / sd


def _loo_mse(z: np.ndarray, y: np.ndarray, alpha: float) -> float:
    """Closed-form leave-one-out mean squared error of ridge with an intercept on centred inputs ``z``:
    hat matrix ``K (K + alpha I)^-1 + 1/n`` with ``K = z z^T``."""
    n = len(z)
    k = z @ z.T
    hat = k @ np.linalg.inv(k + alpha * np.eye(n)) + 1.0 / n
    resid = (y - hat @ y) / (1.0 - np.diag(hat))[:, None]
    return float((resid**2).mean())


def ridge_loo_r2(x: np.ndarray, y: np.ndarray, alpha: float | None = None) -> float:
    """Leave-one-out R^2 (pooled over the targets) of a ridge regression of ``y`` (n, q) on ``x`` (n, p), the
    inputs standardised on each training fold. ``alpha`` None: chosen inside each training fold from ``ALPHAS``
    by its own leave-one-out error (nested: the left-out episode never picks it). NaN when ``y`` is constant."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    n = len(x)
    pred = np.empty_like(y)
    for i in range(n):
        m = np.arange(n) != i
        z = _standardise(x[m], x[m])
        ym = y[m].mean(0)
        a = alpha if alpha is not None else min(ALPHAS, key=lambda al: _loo_mse(z, y[m], al))
        w = z.T @ np.linalg.solve(z @ z.T + float(a) * np.eye(len(z)), y[m] - ym)  # dual form
        pred[i] = _standardise(x[i : i + 1], x[m])[0] @ w + ym
    sst = float(((y - y.mean(0)) ** 2).sum())
    if sst <= 1e-18:
        return math.nan
    return 1.0 - float(((y - pred) ** 2).sum()) / sst


def object_probe(policy: Policy, episodes: Sequence[Episode], skipped: str | None = None,
                 min_episodes: int = PROBE_MIN_EPISODES) -> dict[str, Any]:
    """Check 4 (module doc): one policy call (after ``reset``) at the first frame of each of ``episodes``
    (those with ``object_xy``)."""
    if skipped:
        return {"available": False, "reason": skipped}
    eps = [e for e in episodes if e.object_xy is not None]
    if len(eps) < min_episodes:
        return {"available": False, "reason": f"{len(eps)} episodes with known object positions; the probe needs at "
                f"least {min_episodes} (record more demos or raise --probe-episodes)"}
    t0 = time.perf_counter()
    chunks = [rollout(policy, dataclasses.replace(e, steps=1)).chunks[0] for e in eps]
    h = min(len(c) for c in chunks)
    y = np.stack([e.object_xy for e in eps])
    s0 = np.stack([e.state[0] for e in eps])
    policy_x = np.stack([(c[:h] - e.state[0]).ravel() for c, e in zip(chunks, eps)])
    true_x = np.stack([(e.action[np.minimum(np.arange(h), e.length - 1)] - e.state[0]).ravel() for e in eps])
    r: dict[str, Any] = {
        "available": True, "episodes": len(eps),
        "splits": {sp: sum(e.split == sp for e in eps) for sp in SPLITS},
        "inputs": "first frame: the chunk's targets minus the state (policy, demonstrations); the state",
        "targets": "the objects' initial xy (m)", "method": f"ridge, leave one episode out, alpha from {list(ALPHAS)} nested",
        "r2_policy": ridge_loo_r2(policy_x, y), "r2_state": ridge_loo_r2(s0, y), "r2_true_actions": ridge_loo_r2(true_x, y),
        "seconds": time.perf_counter() - t0,
    }
    r2p, r2s, r2t = r["r2_policy"], r["r2_state"], r["r2_true_actions"]
    if not all(math.isfinite(v) for v in (r2p, r2s, r2t)):
        r["verdict"] = "the objects do not move between these episodes: nothing to probe"
        return r
    if r2t < 0.3:
        word = "inconclusive: even the demonstrations' first actions do not tell where the object is"
    elif r2p > max(r2s, 0.0) + 0.2:
        word = "its first actions depend on where the object is"
    else:
        word = "its first actions carry no more about the object than the state does (it does not find it by eye)"
    r["verdict"] = (f"{word}: R^2 {r2p:.2f} from the policy's first chunk, {r2s:.2f} from the state, {r2t:.2f} from "
                    f"the demonstrations' ({len(eps)} episodes, leave-one-out ridge)")
    return r


LATENT_PROBE = {"available": False, "reason": "the policy interface exposes no internal features (predict's latent is "
                "policy-specific and not a documented feature vector); only the output probe above is computed"}


def diagnose(policy: Policy, episodes: Sequence[Episode], scale: Scale, *, threshold: float = 0.5,
             probe_episodes: Sequence[Episode] = (), probe_skipped: str | None = None,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """All checks on ``episodes`` (each run in the three passes of the module doc); the object probe on
    ``probe_episodes`` (one call each; default: ``episodes``)."""
    if not episodes:
        raise DiagnoseInputError("no episodes to diagnose")
    pair = partners(episodes)
    own, swap, grey = [], [], []
    t0 = time.perf_counter()
    for i, ep in enumerate(episodes):
        o = rollout(policy, ep)
        s = None if pair[i] is None else rollout(policy, ep, swapped_images(ep, episodes[pair[i]]))
        g = rollout(policy, ep, grey_images(ep))
        own.append(o)
        swap.append(s)
        grey.append(g)
        if progress:
            took = o.seconds + g.seconds + (s.seconds if s else 0.0)
            progress(f"episode {ep.episode} ({ep.split.replace('_', '-')}): {ep.steps} of {ep.length} frames x "
                     f"{2 if s is None else 3} passes in {took:.1f} s")
    seconds = time.perf_counter() - t0
    calls = sum(ep.steps * (2 if s is None else 3) for ep, s in zip(episodes, swap))
    return {
        "sampled": {
            split: {"episodes": [e.episode for e in episodes if e.split == split],
                    "frames": int(sum(e.steps for e in episodes if e.split == split))}
            for split in SPLITS
        } | {"passes": list(PASSES), "policy_calls": calls, "seconds": seconds,
             "ms_per_call": 1000.0 * seconds / max(calls, 1)},
        "units": {"dataset": scale.describe, "joints": scale.names, "rad_per_unit": scale.to_rad, "note": scale.note},
        "action_std": scale.vec(scale.std),
        "open_loop": open_loop(episodes, own, scale),
        "look": look(episodes, own, swap, grey, scale),
        "gate": gate_accuracy(episodes, own, threshold),
        "object_probe": object_probe(policy, probe_episodes or episodes, probe_skipped),
        "latent_probe": dict(LATENT_PROBE),
    }


# --- text ----------------------------------------------------------------------------------------------------


def _pair(d: Mapping[str, Any] | None, scale: Scale) -> str:
    if d is None:
        return "none sampled"
    return f"{scale.text(d['first'])} first / {scale.text(d['chunk'])} chunk"


def format_text(r: Mapping[str, Any]) -> str:
    """The report as plain text: each check a line or two with its numbers and a verdict."""
    u = r["units"]
    scale = Scale(list(u["joints"]), list(u["rad_per_unit"]), np.asarray(r["action_std"]["per_joint"]), u["dataset"])
    s = r["sampled"]
    lines = [f"diagnose {r.get('policy', '')} on {r.get('dataset', '')}"]
    if r.get("split_note"):
        lines.append(f"  {r['split_note']}")
    lines.append(
        f"  sampled: train episodes {s[TRAIN]['episodes'] or 'none'} ({s[TRAIN]['frames']} frames), held-out "
        f"{s[HELD_OUT]['episodes'] or 'none'} ({s[HELD_OUT]['frames']} frames); at most {r.get('max_frames', '?')} frames "
        f"an episode; {s['policy_calls']} policy calls ({', '.join(s['passes'])} images) in {s['seconds']:.1f} s "
        f"({s['ms_per_call']:.1f} ms each)")
    lines.append(f"  units: {u['dataset']}{'; ' + u['note'] if u.get('note') else ''}")
    ol = r["open_loop"]
    hold = ol.get(HELD_OUT) or ol.get(TRAIN)
    lines.append(f"1. open-loop error (mean abs): train {_pair(ol.get(TRAIN), scale)}; held-out {_pair(ol.get(HELD_OUT), scale)}; "
                 f"holding still {scale.text(hold['hold_first']) if hold else '-'} / {scale.text(hold['hold_chunk']) if hold else '-'}; "
                 f"actions' std {scale.text(r['action_std'])}")
    ref = ol.get(HELD_OUT) or ol.get(TRAIN)
    if ref:
        per = ref["first"]["per_joint_rad"] if ref["first"]["mean_rad"] is not None else ref["first"]["per_joint"]
        unit = "rad" if ref["first"]["mean_rad"] is not None else "dataset units"
        lines.append(f"   per joint ({'held-out' if ol.get(HELD_OUT) else 'train'} first action, {unit}): "
                     + ", ".join(f"{n} {v:.3f}" for n, v in zip(u["joints"], per)))
    lines.append(f"   -> {ol['verdict']}")
    lines.append(f"2. looking: {r['look']['verdict']}")
    g = r["gate"]
    if g["available"]:
        a = g["all"]
        shares = "; ".join(
            f"{lab}: " + (", ".join(f"{k} {v:.0%}" for k, v in a[lab]["experts"].items()) or "-")
            for lab in ("interaction", "transit"))
        lines.append(f"3. gate vs phase (gate > {g['threshold']}): {g['verdict']}; experts routed: {shares}")
    else:
        lines.append(f"3. gate vs phase: not available: {g['reason']}")
    p = r["object_probe"]
    lines.append(f"4. object-position probe: {p['verdict'] if p['available'] else 'not available: ' + p['reason']}")
    lines.append(f"   latent-feature probe: not available: {r['latent_probe']['reason']}")
    return "\n".join(lines)


# --- reading a checkpoint and a dataset ----------------------------------------------------------------------


@dataclass
class Inputs:
    """What ``load_inputs`` prepared: the policy (unwrapped), the sampled episodes and the context."""

    policy: Any
    episodes: list[Episode]
    scale: Scale
    threshold: float
    checkpoint: Path
    dataset: Path
    same_dataset: bool
    split_note: str
    probe_skipped: str | None
    load_s: float
    max_frames: int = 0
    probe_episodes: list[Episode] = field(default_factory=list)


def checkpoint_dir(arg: str | Path) -> Path:
    """``--policy``: a HarmoWAM checkpoint directory, or a ``harmowam train --out`` directory (its final/)."""
    path = Path(arg).expanduser()
    if not path.exists():
        raise DiagnoseInputError(f"--policy {arg}: no such directory; point it at a checkpoint written by harmowam train "
                                 "(its --out directory or the final/ folder in it)")
    if not path.is_dir():
        raise DiagnoseInputError(f"--policy {arg}: is a file; point it at a checkpoint directory written by harmowam train")
    if not (path / "config.json").is_file() and (path / "final" / "config.json").is_file():
        path = path / "final"
    try:
        doc = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        doc = None
    if isinstance(doc, dict) and doc.get("format") != "harmowam" and doc.get("type"):
        raise DiagnoseInputError(f"--policy {arg}: a LeRobot {doc['type']!r} checkpoint; harmowam diagnose reads HarmoWAM "
                                 "checkpoints (written by harmowam train)")
    return path


def _feature_shape(info: Mapping[str, Any], key: str) -> list[int] | None:
    f = (info.get("features") or {}).get(key)
    return list(f.get("shape") or []) if isinstance(f, Mapping) else None


def camera_map(cfg: Any, meta: Mapping[str, Any], override: Mapping[str, str] | None = None) -> dict[str, str]:
    """Checkpoint camera -> dataset feature: ``override`` (--camera), else the checkpoint's ``camera_keys``,
    else ``observation.images.<name>``."""
    keys = meta.get("camera_keys") if isinstance(meta.get("camera_keys"), Mapping) else {}
    override = dict(override or {})
    unknown = sorted(set(override) - set(cfg.cameras))
    if unknown:
        raise DiagnoseInputError(f"--camera {unknown[0]}=...: the policy has no camera {unknown[0]!r} (its cameras: "
                                 f"{', '.join(cfg.cameras)})")
    return {c: override.get(c) or keys.get(c) or f"observation.images.{c}" for c in cfg.cameras}


def check_dataset(info: Mapping[str, Any], cfg: Any, cams: Mapping[str, str], root: Path) -> None:
    feats = info.get("features") or {}
    image_feats = sorted(k for k, f in feats.items() if isinstance(f, Mapping) and f.get("dtype") in ("image", "video"))
    for name, key in cams.items():
        if key not in feats or feats[key].get("dtype") not in ("image", "video"):
            raise DiagnoseInputError(
                f"--dataset {root}: the policy's camera {name!r} is read from {key!r}, which the dataset does not have "
                f"(its cameras: {', '.join(image_feats) or 'none'}); map it with --camera {name}=KEY")
    for key, want, what in (("action", int(cfg.action_dim), "action"), ("observation.state", int(cfg.state_dim), "state")):
        shape = _feature_shape(info, key)
        if shape is None:
            raise DiagnoseInputError(f"--dataset {root}: has no {key!r} feature; diagnose needs a LeRobot dataset with "
                                     "observation.state and action")
        if shape != [want]:
            raise DiagnoseInputError(
                f"--dataset {root}: {key!r} has shape {shape}, the policy's {what} has {want} values: the dataset was "
                "recorded for another robot; diagnose the policy on data of the arm it was trained for")


def scale_for(units: Mapping[str, Any] | None, names: Sequence[str], std: np.ndarray, sim_demos: bool) -> Scale:
    """Radians per dataset unit for each joint (module doc)."""
    from calibration.units import DEG, RAD, UnitsConverter, UnitsError, parse_units

    names = [str(n).removesuffix(".pos") for n in names]
    if units is None:
        return Scale(names, [None] * len(names), std, "dataset units (unknown)",
                     "the dataset does not say its joints' units: errors in dataset units only")
    try:
        ju = parse_units(units, robot_type=None)
    except UnitsError as e:
        return Scale(names, [None] * len(names), std, "dataset units", f"units not understood ({e}): dataset units only")
    names = [n.removesuffix(".pos") for n in ju.names] if len(ju.names) == len(names) else names
    if ju.is_radians:
        return Scale(names, [1.0] * len(names), std, "radians")
    try:
        from calibration.model import ArmCalibration
        from hardware.arms import SO101

        conv = UnitsConverter(ju, ArmCalibration.simulated(SO101), SO101.family)
        per_unit = 1.0 / np.abs(conv.slope)
    except UnitsError as e:
        return Scale(names, [None] * len(names), std, ju.describe(), f"cannot convert to radians ({e}): dataset units only")
    to_rad: list[float | None] = []
    for kind, a in zip(ju.kinds, per_unit):
        if kind == RAD:
            to_rad.append(1.0)
        elif kind == DEG or sim_demos:
            to_rad.append(float(a))
        else:
            to_rad.append(None)
    if sim_demos:
        note = "converted to radians with the simulated SO-101's calibration (a harmowam sim demos dataset)"
    elif all(x is not None for x in to_rad):
        note = "LeRobot degrees converted to radians"
    else:
        left = [n for n, x in zip(names, to_rad) if x is None]
        note = (f"LeRobot degrees converted to radians; {', '.join(left)} in dataset units only (its 0..100 range needs "
                "the calibration of the arm that recorded it), so means in radians are left out")
    return Scale(names, to_rad, std, ju.describe(), note)


def object_positions(root: Path, episode_ids: Sequence[int]) -> tuple[dict[int, np.ndarray], str | None]:
    """The objects' initial xy of ``episode_ids`` from ``meta/harmowam_demos.json`` (``Task.sample`` with the
    episode's spec and seed), or ({}, why not)."""
    path = root / "meta" / "harmowam_demos.json"
    if not path.is_file():
        return {}, "the dataset has no meta/harmowam_demos.json (only harmowam sim demos datasets record the scenes)"
    try:
        doc = json.loads(path.read_text())
        recs = {int(e["episode_index"]): e for e in doc.get("episodes", []) if {"episode_index", "task", "spec", "seed"} <= e.keys()}
    except (OSError, ValueError, TypeError, AttributeError) as e:
        return {}, f"{path} cannot be read: {e}"
    from hardware.sim.tasks import get_task

    out: dict[int, np.ndarray] = {}
    tasks: dict[str, Any] = {}
    for e in episode_ids:
        rec = recs.get(int(e))
        if rec is None:
            continue
        try:
            task = tasks.setdefault(rec["task"], get_task(rec["task"]))
            v = task.sample(rec["spec"], int(rec["seed"]))
        except Exception as err:  # an unknown task, a spec file that moved, a scene that cannot be sampled
            return {}, f"episode {e}'s scene cannot be rebuilt ({type(err).__name__}: {err})"
        out[int(e)] = np.array([c for name in sorted(v.objects) for c in v.objects[name].xy], dtype=np.float64)
    if not out:
        return {}, f"{path} lists none of the sampled episodes"
    return out, None


def _pick(ids: Sequence[int], n: int) -> list[int]:
    """``n`` episodes spread evenly over ``ids`` (all when there are fewer)."""
    ids = list(ids)
    if len(ids) <= n:
        return ids
    return [ids[int(i)] for i in np.round(np.linspace(0, len(ids) - 1, n)).astype(int)]


def load_inputs(policy_arg: str | Path, dataset_arg: str | Path, *, episodes: int = 5, max_frames: int = 200,
                cameras: Mapping[str, str] | None = None, seed: int = 0, probe_episodes: int = 60) -> Inputs:
    """Load the checkpoint (``HarmoWAMPolicy``, unwrapped) and the sampled episodes of the dataset (at most
    ``episodes`` training and ``episodes`` held-out, the first ``max_frames`` frames of each; for the object
    probe the first frame of at most ``probe_episodes`` episodes, spread over the dataset); raises
    ``DiagnoseInputError`` naming the fix for bad input."""
    from calibration.units import UnitsError, parse_units
    from policies.harmowam.checkpoint import CheckpointError, read_config
    from policies.harmowam.data import DataConfig, DatasetError, load_frames, read_info

    if episodes < 1 or max_frames < 1:
        raise DiagnoseInputError("--episodes and --max-frames must be at least 1")
    ckpt = checkpoint_dir(policy_arg)
    try:
        cfg, meta = read_config(ckpt)
    except CheckpointError as e:
        raise DiagnoseInputError(f"--policy: {e}") from None
    root = Path(dataset_arg).expanduser()
    try:
        info = read_info(root)
    except DatasetError as e:
        raise DiagnoseInputError(str(e)) from None
    cams = camera_map(cfg, meta, cameras)
    check_dataset(info, cfg, cams, root)
    t0 = time.perf_counter()
    try:
        frames = load_frames(root, cfg, DataConfig(cameras=cams))
    except DatasetError as e:
        raise DiagnoseInputError(str(e)) from None
    load_s = time.perf_counter() - t0
    # the checkpoint and the dataset must speak the same units (the policy is driven unwrapped)
    ck_units = meta.get("units")
    if ck_units is not None and frames.units is not None:
        try:
            a, b = parse_units(ck_units, robot_type=None), parse_units(frames.units, robot_type=None)
        except UnitsError:
            a = b = None
        if a is not None and (a.kinds, a.names) != (b.kinds, b.names):
            raise DiagnoseInputError(
                f"--dataset {root}: its joints are in {b.describe()}, the checkpoint was trained on {a.describe()}; "
                "diagnose it on a dataset in the units it was trained on")
    from policies.harmowam.policy import HarmoWAMPolicy

    try:
        policy = HarmoWAMPolicy.from_checkpoint(ckpt, seed=seed, torch_threads=1)
    except (CheckpointError, ValueError) as e:
        raise DiagnoseInputError(f"--policy: {e}") from None

    ids = list(frames.episode_ids)
    trained_on = meta.get("dataset")
    same = bool(trained_on) and Path(str(trained_on)).resolve() == root.resolve()
    if same:
        train_ids = [e for e in ids if e in set(meta.get("train_episodes") or [])]
        held = [e for e in ids if e not in set(train_ids)]
        extra = [e for e in held if e not in set(meta.get("val_episodes") or [])]
        note = (f"the checkpoint's training dataset: {len(train_ids)} training and {len(held)} held-out episodes"
                + (f" ({len(extra)} of them added after training)" if extra else ""))
    else:
        train_ids, held = [], ids
        note = (f"not the dataset the checkpoint was trained on ({trained_on or 'not recorded'}): every episode counts as held-out")
    chosen = [(e, TRAIN) for e in _pick(train_ids, episodes)] + [(e, HELD_OUT) for e in _pick(held, episodes)]
    split_of = {e: TRAIN if e in set(train_ids) else HELD_OUT for e in ids}
    provenance = (root / "meta" / "harmowam_demos.json").is_file()
    probe_ids = _pick(ids, probe_episodes) if probe_episodes > 0 else []
    if probe_ids:
        xy, probe_skipped = object_positions(root, probe_ids)
    else:
        xy, probe_skipped = {}, "--probe-episodes 0: skipped"
    has_phase = frames.phase_source == "dataset"

    def episode(e: int, split: str, steps: int, n_images: int | None = None) -> Episode:
        a, b = frames.bounds[ids.index(e)]
        end = b if n_images is None else a + n_images
        return Episode(
            episode=e, split=split,
            images={c: np.ascontiguousarray(frames.images[c][a:end].permute(0, 2, 3, 1).numpy()) for c in cfg.cameras},
            state=frames.state[a:b].astype(np.float64), action=frames.action[a:b].astype(np.float64), fps=frames.fps,
            phase=frames.phase[a:b].copy() if has_phase else None, steps=steps, object_xy=xy.get(e))

    eps = [episode(e, split, min(max_frames, frames.bounds[ids.index(e)][1] - frames.bounds[ids.index(e)][0]))
           for e, split in chosen]
    probe = [episode(e, split_of[e], 1, n_images=1) for e in probe_ids if e in xy]
    names = ((info.get("features") or {}).get("action") or {}).get("names")
    names = list(names) if isinstance(names, list) and len(names) == cfg.action_dim else [f"joint{i}" for i in range(cfg.action_dim)]
    scale = scale_for(frames.units, names, _std(eps), provenance)
    return Inputs(policy, eps, scale, float(getattr(cfg, "gate_threshold", 0.5)), ckpt, root, same, note,
                  probe_skipped, load_s, max_frames, probe)


def run(inputs: Inputs, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``diagnose`` on what ``load_inputs`` prepared, with the context in the report."""
    r = diagnose(inputs.policy, inputs.episodes, inputs.scale, threshold=inputs.threshold,
                 probe_episodes=inputs.probe_episodes, probe_skipped=inputs.probe_skipped, progress=progress)
    return {"policy": str(inputs.checkpoint), "dataset": str(inputs.dataset), "same_dataset": inputs.same_dataset,
            "split_note": inputs.split_note, "max_frames": inputs.max_frames, "load_s": inputs.load_s, **r}
