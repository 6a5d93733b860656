"""Train HarmoWAM on a local LeRobotDataset: ``train(dataset, out, TrainConfig(...))``.

Stages (global step counter across them; a stage with 0 steps is skipped):
    1a. ``autoencoder`` ``autoencoder_steps``: the frame autoencoder alone (reconstruction of a few current
       camera frames per sample, ``model.autoencoder_loss``); ~4x cheaper per step than the world stage.
    1b. ``world`` ``world_steps``: latent flow matching on the now frozen autoencoder, so the flow targets
       do not move and the ``wm`` loss and validation's ``imagine_vs_copy`` (imagined vs "nothing moves",
       < 1 = it predicts motion) measure progress. With ``autoencoder_steps: 0`` the autoencoder trains
       here too (``world_loss(train_autoencoder=True)``).
    2. ``expert`` ``expert_steps``: predictive + reactive experts and the gate on the frozen world model
       (L = L_pred + 0.1 L_react + 0.05 L_gate, the weights in the model config).
    3. ``e2e``    ``e2e_steps`` (default 0): everything end to end at ``e2e_lr``.
Each stage has its own AdamW (``world_lr`` for stage 1, ``lr`` for stage 2; ``weight_decay``) with linear
warm-up then cosine decay, and gradient clipping.
Cost (default model, batch 32, one CPU thread of the 2-core development VM, 2026-11-25): autoencoder
~0.10 s/step (~310 samples/s), world ~0.36 s/step (~88), expert ~0.25 s/step (~130): the default
1000 + 4000 + 4000 steps take ~45 min plus validation. ``HuggingFace accelerate`` runs the same code single-process on a CPU or a GPU and
under ``accelerate launch`` on several GPUs (each process gets its own batches; ``batch_size`` is per
process).

Determinism: before step g the torch RNG is seeded from (seed, g, process) and batch g is a pure function
of (seed, g, process) (an endless stream of per-epoch permutations), so a run resumed from a checkpoint
gives exactly the weights of an uninterrupted run (CPU, same thread count).

Output directory ``OUT``:
    train_config.json       the TrainConfig, the resolved model config, the dataset path
    metrics.jsonl           one line per log interval / validation: step, stage, split, losses, lr, samples/s
    checkpoints/step_NNNNNNN/  model.safetensors + config.json (``checkpoint.save_checkpoint``) and
                            training_state.safetensors + .json (optimizer, scheduler, step, stage, RNG)
                            every ``save_every`` steps, at each stage end and at the end (``keep_checkpoints``
                            newest kept)
    final/                  the trained policy: ``HarmoWAMPolicy.from_checkpoint(OUT/final)``
    summary.json            steps, samples/s per stage, first/last losses, last validation
A non-empty ``OUT`` is refused unless ``resume`` (continue from the newest checkpoint, with the saved
config) or ``overwrite`` (which only deletes a previous training output, never another directory).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from policies.harmowam.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from policies.harmowam.config import HarmoWAMConfig
from policies.harmowam.data import DataConfig, build_datasets, read_info
from policies.harmowam.model import HarmoWAM
from policies.harmowam.policy import INFERENCE_FIELDS
from policies.harmowam.train_state import STATE_JSON, TrainStateError, read_train_state, restore_optimizer, save_train_state

log = structlog.get_logger("harmowam.train")
STAGES = ("autoencoder", "world", "expert", "e2e")
TRAIN_CONFIG = "train_config.json"


class TrainError(ValueError):
    """Training cannot start or resume as asked; the message names the option/file and the fix."""


class TrainFailed(RuntimeError):
    """Training went wrong on the way (a non-finite loss); the checkpoints saved so far are kept."""


RUNTIME_FIELDS = ("torch_threads", "num_workers")  # may change at --resume: they do not change the result
AE_STEPS, WORLD_STEPS, EXPERT_STEPS = 1000, 4000, 4000  # ~45 min on one CPU thread at batch 32 (module doc)


class TrainConfig(BaseModel):
    """Everything ``harmowam train`` can be told (``--config FILE``, YAML or JSON)."""

    model_config = ConfigDict(extra="forbid")

    autoencoder_steps: int = Field(AE_STEPS, ge=0, description=(
        "stage 1a steps: the frame autoencoder alone (then frozen); 0: it trains with the world model"))
    world_steps: int = Field(WORLD_STEPS, ge=0, description="stage 1 steps (world model)")
    expert_steps: int = Field(EXPERT_STEPS, ge=0, description="stage 2 steps (experts + gate, world model frozen)")
    e2e_steps: int = Field(0, ge=0, description="optional stage 3: end-to-end fine-tune steps")
    batch_size: int = Field(32, ge=1, description="samples per step and per process")
    lr: float = Field(3e-4, gt=0, description="learning rate of the expert stage")
    world_lr: float = Field(1e-3, gt=0, description="learning rate of stage 1 (autoencoder and world stages)")
    e2e_lr: float = Field(1e-4, gt=0, description="learning rate of the end-to-end stage")
    weight_decay: float = Field(1e-4, ge=0)
    warmup_steps: int = Field(50, ge=0, description="linear warm-up at the start of each stage")
    grad_clip: float | None = Field(1.0, gt=0, description="max gradient norm (None: no clipping)")
    log_every: int = Field(25, ge=1)
    val_every: int = Field(250, ge=1, description="validate every N steps (and at each stage end)")
    val_batches: int = Field(4, ge=1, description="validation batches (fixed, evenly spread samples)")
    save_every: int = Field(500, ge=1, description="checkpoint every N steps (and at each stage end)")
    keep_checkpoints: int = Field(2, ge=0, description="newest checkpoints kept (0: all)")
    seed: int = 0
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes (0: load in the training process)")
    cache_world: bool = Field(True, description=(
        "expert stage: the frozen world model's output (one imagination per frame) computed once for every frame "
        "instead of at every step (about a third of an expert step's time; e2e never caches)"))
    torch_threads: int | None = Field(None, ge=1, description="torch CPU threads (None: torch's default)")
    model: dict[str, Any] = Field(default_factory=dict, description="HarmoWAMConfig overrides (fps/cameras default from the data)")
    init_from: str | None = Field(None, description=(
        "start from a trained policy's weights (a harmowam train output, its final/ or a checkpoint): e.g. "
        "more expert steps (autoencoder_steps: 0, world_steps: 0) or fine-tuning on new data; its model config "
        "must match and its normalisation statistics are kept"))
    data: DataConfig = Field(default_factory=DataConfig)

    def plan(self) -> list[tuple[str, int, int]]:
        """(stage, first global step, end global step) of every stage with steps."""
        out, g = [], 0
        for name, n in zip(STAGES, self._counts(), strict=True):
            if n:
                out.append((name, g, g + n))
                g += n
        return out

    def _counts(self) -> list[int]:
        return [self.autoencoder_steps, self.world_steps, self.expert_steps, self.e2e_steps]

    @property
    def total_steps(self) -> int:
        return sum(self._counts())

    def with_total_steps(self, total: int) -> TrainConfig:
        """``total`` steps shared by the enabled stages in the proportions of this config (``--steps``)."""
        counts = self._counts()
        have = sum(counts)
        if total < sum(1 for c in counts if c):
            raise TrainError(f"--steps {total}: need at least one step per enabled stage ({sum(1 for c in counts if c)})")
        new = [int(total * c // have) for c in counts]
        for i in np.argsort([-(total * c / have - n) for c, n in zip(counts, new, strict=True)]):
            if sum(new) < total and counts[i]:
                new[i] += 1
        for i, c in enumerate(counts):  # every enabled stage keeps at least one step
            if c and not new[i]:
                new[i] = 1
                new[int(np.argmax(new))] -= 1
        return self.model_copy(update={f"{name}_steps": n for name, n in zip(STAGES, new, strict=True)})


def _init_weights(model: HarmoWAM, mcfg: HarmoWAMConfig, where: str) -> Path:
    """Load ``init_from``'s weights (and statistics) into ``model``; TrainError naming what differs."""
    path = Path(where).expanduser()
    if not (path / "config.json").is_file() and (path / "final" / "config.json").is_file():
        path = path / "final"
    try:
        loaded, ck_cfg, _ = load_checkpoint(path)
    except CheckpointError as e:
        raise TrainError(f"init_from: {e}") from None
    diff = sorted(k for k in HarmoWAMConfig.model_fields if k not in INFERENCE_FIELDS and getattr(ck_cfg, k) != getattr(mcfg, k))
    if diff:
        shown = ", ".join(f"{k} {getattr(ck_cfg, k)!r} there, {getattr(mcfg, k)!r} here" for k in diff[:4])
        raise TrainError(f"init_from {path}: its model config differs from this training's ({shown}); "
                         "give the same model: settings (and cameras/fps) or start without init_from")
    model.load_state_dict(loaded.state_dict())
    log.info("initialised from a trained policy", path=str(path))
    return path


def model_config(cfg: TrainConfig, fps: float | None = None) -> HarmoWAMConfig:
    over = dict(cfg.model)
    if cfg.data.cameras and "cameras" not in over:
        over["cameras"] = tuple(cfg.data.cameras)
    if fps and "fps" not in over:
        over["fps"] = float(fps)
    try:
        return HarmoWAMConfig(**over)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise TrainError(f"model.{field}: {err['msg']}") from None


# --- output directory -----------------------------------------------------------------------------------


def check_out(out: Path, resume: bool, overwrite: bool) -> str:
    """'new', 'resume' or 'overwrite' (module doc); raises TrainError naming the directory and flag."""
    if resume and overwrite:
        raise TrainError("--resume and --overwrite exclude each other: choose one")
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out {out}: exists and is not a directory")
    empty = not out.exists() or not any(out.iterdir())
    ours = (out / TRAIN_CONFIG).is_file()
    if resume:
        if not ours:
            raise TrainError(f"--out {out}: nothing to resume (no {TRAIN_CONFIG}); drop --resume to start a new training")
        return "resume"
    if empty:
        return "new"
    if not overwrite:
        raise TrainError(f"--out {out}: is not empty; pass --resume to continue its training, --overwrite to replace it, or choose another directory")
    if not ours:
        raise TrainError(f"--out {out}: is not empty and not a harmowam training output; it is never deleted: choose another directory")
    return "overwrite"


def checkpoints(out: Path) -> list[Path]:
    """Complete checkpoints under ``out``, oldest first."""
    d = out / "checkpoints"
    return sorted(p for p in d.glob("step_*") if (p / STATE_JSON).is_file()) if d.is_dir() else []


# --- data order -----------------------------------------------------------------------------------------


class StreamSampler:
    """Endless batches: batch of step g for process r is positions [(g*P + r)*B, +B) of a stream made of
    per-epoch permutations seeded by (seed, epoch)."""

    def __init__(self, n: int, batch: int, seed: int, start_step: int, rank: int = 0, world: int = 1) -> None:
        self.n, self.batch, self.seed, self.start, self.rank, self.world = n, batch, seed, start_step, rank, world
        self._perm: tuple[int, np.ndarray] | None = None

    def _at(self, pos: int) -> int:
        epoch, r = divmod(pos, self.n)
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n))
        return int(self._perm[1][r])

    def __iter__(self):
        g = self.start
        while True:
            pos = (g * self.world + self.rank) * self.batch
            yield [self._at(pos + j) for j in range(self.batch)]
            g += 1


class _StageLoss(nn.Module):
    """The model's loss for one stage as ``forward``, so DDP (accelerate) syncs its gradients."""

    def __init__(self, model: HarmoWAM, stage: str, joint: bool = False) -> None:
        super().__init__()
        self.model, self.stage, self.joint = model, stage, joint

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        if self.stage == "autoencoder":
            return self.model.autoencoder_loss(batch)
        if self.stage == "world":
            return self.model.world_loss(batch, train_autoencoder=self.joint)
        return self.model.expert_loss(batch, train_world=self.stage == "e2e")


@torch.no_grad()
def cache_world(model: HarmoWAM, dataset: Any, cfg: TrainConfig, device: torch.device) -> None:
    """Imagine every frame of ``dataset.frames`` once with the (frozen) world model and hand the result to the
    datasets that share those frames (``HarmoWAMDataset.world_cache``): the expert stage then reads it instead
    of running the world model at every step. Deterministic: each batch draws its noise from a generator
    seeded from ``cfg.seed`` and the batch's first row, so a resumed run rebuilds the same cache."""
    was = model.training
    model.eval()
    imgs, state = dataset.all_images(), torch.from_numpy(dataset.frames.state)
    n, bs = imgs.shape[0], max(8, cfg.batch_size)
    out: dict[str, torch.Tensor] = {}
    for a in range(0, n, bs):
        b = min(n, a + bs)
        g = torch.Generator(device="cpu").manual_seed(cfg.seed * 7919 + a)
        w = model.imagine(imgs[a:b].to(device).float().div_(255.0), state[a:b].to(device), g, with_vision=False)
        for k, v in (("z", w.z), ("pooled", w.pooled), ("current", w.current), ("future", w.future), ("hidden", w.hidden)):
            if k not in out:
                out[k] = torch.empty((n, *v.shape[1:]), dtype=torch.float16)
            out[k][a:b] = v.to("cpu", torch.float16)
    dataset.set_world_cache(out)
    model.train(was)


def _stage_parameters(model: HarmoWAM, stage: str, joint: bool):
    if stage == "autoencoder":
        return model.autoencoder_parameters()
    if stage == "world":
        return model.world_parameters() if joint else model.world.parameters()
    return model.expert_parameters() if stage == "expert" else model.parameters()


def _lr_lambda(warmup: int, steps: int):
    def f(i: int) -> float:
        if warmup and i < warmup:
            return (i + 1) / warmup
        span = max(1, steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (i - warmup) / span)))

    return f


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def validate(model: HarmoWAM, val_ds: Any, stage: str, cfg: TrainConfig, device: torch.device) -> dict[str, float]:
    """Mean losses (gate accuracy; in stage 1 the imagination error vs "nothing moves") over fixed validation samples."""
    from torch.utils.data import DataLoader, Subset

    n = min(len(val_ds), cfg.val_batches * cfg.batch_size)
    idx = np.unique(np.linspace(0, len(val_ds) - 1, n).round().astype(int)).tolist()
    dl = DataLoader(Subset(val_ds, idx), batch_size=cfg.batch_size, shuffle=False)
    was = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    with torch.no_grad():
        torch.manual_seed(cfg.seed + 12345)
        for batch in dl:
            batch = _to(batch, device)
            b = int(batch["state"].shape[0])
            logs: dict[str, float] = {}
            if stage == "autoencoder":
                logs.update({f"autoencoder_{k}" if k == "loss" else k: v for k, v in model.autoencoder_loss(batch)[1].items()})
            if stage in ("world", "e2e"):
                logs.update({f"world_{k}" if k == "loss" else k: v for k, v in model.world_loss(batch)[1].items()})
                logs.update(model.imagination_error(batch))  # the progress measure of stage 1 (model.py)
            if stage in ("expert", "e2e"):
                logs.update({f"expert_{k}" if k == "loss" else k: v for k, v in model.expert_loss(batch)[1].items()})
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v * b
            count += b
    model.train(was)
    return {k: v / count for k, v in sums.items()}


# --- the loop -------------------------------------------------------------------------------------------


def _load_saved_config(out: Path) -> TrainConfig:
    try:
        doc = json.loads((out / TRAIN_CONFIG).read_text(encoding="utf-8"))
        return TrainConfig.model_validate(doc["train"])
    except (OSError, ValueError, KeyError) as e:
        raise TrainError(f"{out / TRAIN_CONFIG}: cannot be read ({e}); start again with --overwrite") from None


def train(dataset: str | Path, out: str | Path, cfg: TrainConfig | None = None, *, resume: bool = False,
          overwrite: bool = False, progress: bool = True, stop_after: int | None = None) -> dict[str, Any]:
    """Train (module doc). ``resume``: continue ``out``'s newest checkpoint with its saved config (a
    ``cfg`` given too must equal it). ``stop_after``: stop after that global step with a checkpoint (a
    time-sliced job; resume later). Returns the summary (also written to ``OUT/summary.json``)."""
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from torch.utils.data import DataLoader

    out, dataset = Path(out), Path(dataset)
    mode = check_out(out, resume, overwrite)
    if mode == "resume":
        saved = _load_saved_config(out)
        mine, theirs = ({} if cfg is None else cfg.model_dump(mode="json")), saved.model_dump(mode="json")
        diff = sorted(k for k in mine if k not in RUNTIME_FIELDS and mine[k] != theirs[k])
        if diff:
            raise TrainError(f"--resume {out}: the given config differs from the one it was started with ({', '.join(diff)}); drop --config/--steps or use --overwrite")
        cfg = saved if cfg is None else saved.model_copy(update={k: getattr(cfg, k) for k in RUNTIME_FIELDS})
    cfg = cfg or TrainConfig()
    if cfg.total_steps == 0:
        raise TrainError("world_steps, expert_steps and e2e_steps are all 0: nothing to train")
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    # several processes (torchrun / accelerate launch) without a GPU: accelerate only goes distributed
    # (gloo) when told to stay on the CPU
    cpu_ddp = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    acc = Accelerator(cpu=cpu_ddp, kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    main = acc.is_main_process
    mcfg = model_config(cfg, read_info(dataset).get("fps"))
    train_ds, val_ds, stats, frames = build_datasets(dataset, mcfg, cfg.data)
    if mode == "overwrite" and main:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model = HarmoWAM(mcfg)
    model.set_stats(stats)
    meta = {
        "trained_by": "harmowam train", "dataset": str(dataset.resolve()), "units": frames.units,
        "camera_keys": frames.keys, "phase_source": frames.phase_source, "fps": frames.fps,
        "train_episodes": train_ds.episodes, "val_episodes": val_ds.episodes if val_ds else [],
    }
    if frames.units is None:
        meta["units_note"] = ("the dataset's units are unknown: the runtime refuses this policy until they are declared "
                              "(harmowam run --policy-units ...)")
    start, state_doc, state_t, ck = 0, None, None, None
    if mode == "resume":
        cks = checkpoints(out)
        if cks:
            ck = cks[-1]
            try:
                state_doc, state_t = read_train_state(ck)
                loaded, ck_cfg, _ = load_checkpoint(ck)
            except (TrainStateError, CheckpointError) as e:
                raise TrainError(str(e)) from None
            if ck_cfg != mcfg:  # e.g. started by an older version whose model config lacked a field
                diff = sorted(k for k in HarmoWAMConfig.model_fields if getattr(ck_cfg, k) != getattr(mcfg, k))
                raise TrainError(f"--resume {out}: checkpoint {ck.name} has another model config ({', '.join(diff)}) than this "
                                 "program builds from the training config; start again with --overwrite")
            model.load_state_dict(loaded.state_dict())
            start = int(state_doc["step"])
            torch.set_rng_state(state_t["rng.torch"])
    if ck is None and cfg.init_from:
        meta["init_from"] = str(_init_weights(model, mcfg, cfg.init_from))
    if mode != "resume" and main:
        doc = {"train": cfg.model_dump(mode="json"), "model": mcfg.model_dump(mode="json"), "dataset": meta["dataset"]}
        (out / TRAIN_CONFIG).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    metrics = out / "metrics.jsonl"
    if main and metrics.exists():  # drop lines of an interrupted run past the checkpoint
        keep = [ln for ln in metrics.read_text().splitlines() if ln and json.loads(ln)["step"] <= start]
        metrics.write_text("".join(ln + "\n" for ln in keep))
    model.to(acc.device)
    bar = None
    if progress and main:
        from tqdm import tqdm

        bar = tqdm(total=cfg.total_steps, initial=start, desc="harmowam train", unit="step", file=sys.stderr, dynamic_ncols=True)
    summary: dict[str, Any] = {"stages": {}, "processes": acc.num_processes, "process_index": acc.process_index, "device": str(acc.device), "batch_size": cfg.batch_size,
                               "train_samples": len(train_ds), "val_samples": len(val_ds) if val_ds else 0,
                               "dataset_load_s": round(frames.load_s, 2)}
    if mode == "resume" and (out / "summary.json").is_file():
        summary["stages"] = json.loads((out / "summary.json").read_text()).get("stages", {})

    def save(step: int, stage: str, opt: Any, sched: Any) -> None:
        acc.wait_for_everyone()
        if not main:
            return
        d = out / "checkpoints" / f"step_{step:07d}"
        save_checkpoint(d, model, mcfg, {**meta, "step": step, "stage": stage})
        save_train_state(d, opt, sched, {"step": step, "stage": stage, "seed": cfg.seed,
                                         "rng": "torch seeded from (seed, step, process) before every step"})
        if cfg.keep_checkpoints:
            for old in checkpoints(out)[: -cfg.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)

    def record(row: dict[str, Any]) -> None:
        if main:
            with metrics.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

    t_all = time.perf_counter()
    stopped = False
    for stage, first, end in cfg.plan():
        if start >= end:
            continue
        for p in model.parameters():
            p.requires_grad_(stage == "e2e")
        joint = cfg.autoencoder_steps == 0  # no autoencoder stage: it trains with the world model
        params = list(_stage_parameters(model, stage, joint))
        for p in params:
            p.requires_grad_(True)
        lr = {"autoencoder": cfg.world_lr, "world": cfg.world_lr, "e2e": cfg.e2e_lr}.get(stage, cfg.lr)
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg.warmup_steps, end - first))
        if state_doc is not None and state_doc.get("stage") == stage and start > first:
            restore_optimizer(opt, state_doc, state_t, ck)
            sched.load_state_dict(state_doc["scheduler"])
        if stage == "expert" and cfg.cache_world:
            t_cache = time.perf_counter()
            cache_world(model, train_ds, cfg, acc.device)
            if val_ds is not None:
                val_ds.set_world_cache(train_ds.world_cache)  # the same frames (rows of one Frames)
            summary["world_cache_s"] = round(time.perf_counter() - t_cache, 2)
            log.info("world model output cached", frames=len(train_ds.frames), seconds=summary["world_cache_s"])
        wrapped, aopt = acc.prepare(_StageLoss(model, stage, joint), opt)
        sampler = StreamSampler(len(train_ds), cfg.batch_size, cfg.seed, start, acc.process_index, acc.num_processes)
        loader = DataLoader(train_ds, batch_sampler=sampler, num_workers=cfg.num_workers, pin_memory=acc.device.type == "cuda")
        it = iter(loader)
        st = summary["stages"].setdefault(stage, {"steps": end - first, "train_s": 0.0, "steps_done": 0})
        window: dict[str, float] = {}
        n_win = 0
        if bar is not None:
            bar.set_description(f"harmowam train [{stage}]")
        for g in range(start, end):
            torch.manual_seed(cfg.seed * 1_000_003 + g * acc.num_processes + acc.process_index)
            t0 = time.perf_counter()
            batch = _to(next(it), acc.device)
            loss, logs = wrapped(batch)
            if not torch.isfinite(loss):
                raise TrainFailed(f"step {g + 1} ({stage}): the loss is {float(loss)}; lower lr (now {sched.get_last_lr()[0]:.2e}) or check the dataset")
            acc.backward(loss)
            if cfg.grad_clip:
                acc.clip_grad_norm_(params, cfg.grad_clip)
            aopt.step()
            sched.step()
            aopt.zero_grad(set_to_none=True)
            st["train_s"] += time.perf_counter() - t0
            st["steps_done"] += 1
            for k, v in logs.items():
                window[k] = window.get(k, 0.0) + v
            n_win += 1
            step = g + 1
            if "first_loss" not in st:
                st["first_loss"] = logs["loss"]
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"loss {logs['loss']:.4f}", refresh=False)
            if step % cfg.log_every == 0 or step == end:
                row = {k: v / n_win for k, v in window.items()}
                st["last_loss"] = row["loss"]
                record({"step": step, "stage": stage, "split": "train", **row, "lr": sched.get_last_lr()[0]})
                window, n_win = {}, 0
            if val_ds is not None and (step % cfg.val_every == 0 or step == end):
                v = validate(model, val_ds, stage, cfg, acc.device)
                st["val"] = v
                record({"step": step, "stage": stage, "split": "val", **v})
                log.info("validation", step=step, stage=stage, **v)
            stop = stop_after is not None and step >= stop_after
            if step % cfg.save_every == 0 or step == end or stop:
                save(step, stage, opt, sched)
            if stop:
                stopped = True
                break
        done = st["steps_done"]
        st["samples_per_s"] = round(done * cfg.batch_size * acc.num_processes / st["train_s"], 2) if st["train_s"] else None
        start = g + 1
        if stopped:
            break
    if bar is not None:
        bar.close()
    acc.wait_for_everyone()
    summary.update({"out": str(out), "step": start, "total_steps": cfg.total_steps, "complete": start >= cfg.total_steps,
                    "seconds": round(time.perf_counter() - t_all, 2)})
    if summary["complete"] and main:
        save_checkpoint(out / "final", model, mcfg, {**meta, "step": start, "stage": "final"})
        summary["final"] = str(out / "final")
    if main:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
