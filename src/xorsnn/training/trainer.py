"""The training loop: a plain, readable loop over epochs and batches.

``train(config)`` builds the dataset, the model (from the registry), the optimiser and schedule,
resumes from the last checkpoint if asked, and then, per epoch: trains, evaluates, appends a row
to ``metrics.csv`` (and TensorBoard), and writes a checkpoint. The same function runs on one CPU,
one GPU, or under ``torchrun`` on several processes (DDP; rank 0 logs and checkpoints).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import platform
import random
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import ArrayLoader, BatchAugment, DataBundle, ImageArrays, load_dataset
from ..models import create_model, model_info
from ..online import OnlineStepResult, sltt_step_losses
from .checkpoint import load_state, load_weights, resolve_resumable, save_checkpoint, unwrap_model
from .config import CUDAGRAPH_MODES, TrainConfig, resume_mismatches
from .distributed import DistContext, setup_distributed
from .guards import NonFiniteStateError, first_non_finite, named_state, non_finite_flag
from .losses import distill_loss, mean_ce_loss, tet_loss
from .optim import make_optimizer, make_scheduler
from .runlock import RunLock
from .transfer import init_from_checkpoint, load_teacher, teacher_logits

__all__ = ["train", "evaluate", "TrainResult", "NonFiniteLossError", "build_model",
           "make_loaders", "seed_everything"]

log = logging.getLogger("xorsnn.train")

METRIC_FIELDS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_time_s",
                 "train_img_per_s", "wall_time_s"]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the epoch and step."""


@dataclass
class TrainResult:
    """Outcome of :func:`train`."""

    metrics: list[dict[str, Any]]
    best_test_acc: float
    final_test_acc: float
    out_dir: Path
    model: nn.Module
    wall_time_s: float
    config: TrainConfig = field(repr=False, default_factory=TrainConfig)


# -- setup helpers -----------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """RNG states to checkpoint: Python, NumPy, torch CPU and -- on CUDA -- this process's own GPU only,
    so a run resumes on a machine that shows a different number of GPUs to each process."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is None or device is None or device.type != "cuda":
        return
    if isinstance(cuda, (list, tuple)):  # older checkpoints: every visible GPU's state
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
            return
        log.warning("checkpoint holds RNG states of %d GPUs, this process sees %d: restoring the first on %s",
                    len(cuda), torch.cuda.device_count(), device)
        cuda = cuda[0]
    torch.cuda.set_rng_state(cuda, device)


def model_arguments(cfg: TrainConfig, data: DataBundle) -> dict[str, Any]:
    """Constructor arguments of the model for ``cfg`` on ``data`` (stored in checkpoints)."""
    info = data.info
    return {"num_classes": info.num_classes, "in_channels": info.in_channels, "T": cfg.T, **cfg.model_kwargs}


def build_model(cfg: TrainConfig, data: DataBundle) -> nn.Module:
    """The registered model ``cfg.model`` sized for ``data``."""
    return create_model(cfg.model, **model_arguments(cfg, data))


def _subset(split: Any, n: int | None, seed: int) -> Any:
    if n is None:
        return split
    if isinstance(split, ImageArrays):
        return split.subset(n, seed)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(split), generator=g)[:n].tolist()
    return torch.utils.data.Subset(split, sorted(idx))


class _TorchLoader:
    """``DataLoader`` adapter for folder / event datasets with the :class:`ArrayLoader` interface."""

    def __init__(self, ds: Any, batch_size: int, train: bool, ctx: DistContext, seed: int, workers: int) -> None:
        from torch.utils.data import DataLoader, DistributedSampler

        self.sampler = DistributedSampler(ds, ctx.world_size, ctx.rank, shuffle=train, seed=seed,
                                          drop_last=train) if ctx.enabled else None
        g = torch.Generator().manual_seed(seed)
        self.loader = DataLoader(ds, batch_size=batch_size, shuffle=train and self.sampler is None,
                                 sampler=self.sampler, num_workers=workers, drop_last=train, generator=g,
                                 pin_memory=ctx.device.type == "cuda", persistent_workers=workers > 0)
        self.device, self.seed = ctx.device, seed

    def set_epoch(self, epoch: int) -> None:
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        self.loader.generator.manual_seed(self.seed + epoch)  # type: ignore[union-attr]
        base = self.loader.dataset
        while isinstance(base, torch.utils.data.Subset):
            base = base.dataset
        if hasattr(base, "set_augmentation"):  # per-sample augmentation streams of (seed, epoch, index)
            base.set_augmentation(self.seed, epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):  # type: ignore[no-untyped-def]
        for x, y in self.loader:
            x = x.to(self.device, non_blocking=True)
            if x.dim() == 5:  # event frames [B, T, C, H, W] -> time first
                x = x.transpose(0, 1)
            yield x, y.to(self.device, non_blocking=True)


def make_loaders(cfg: TrainConfig, data: DataBundle, ctx: DistContext) -> tuple[Any, Any]:
    """Training and test batch iterators for ``data`` on ``ctx.device``."""
    train_split = _subset(data.train, cfg.train_subset, cfg.seed)
    test_split = _subset(data.test, cfg.test_subset, cfg.seed)
    eval_bs = cfg.eval_batch_size or 2 * cfg.batch_size
    if isinstance(train_split, ImageArrays):
        info = data.info
        padding = info.crop_padding if cfg.crop_padding is None else cfg.crop_padding
        aug = BatchAugment(info.mean, info.std, padding if cfg.augment else 0,
                           info.hflip and cfg.augment, cfg.pad_mode)
        where = {"device": ctx.device, "seed": cfg.seed, "rank": ctx.rank, "world_size": ctx.world_size}
        return (ArrayLoader(train_split, cfg.batch_size, aug, train=True, **where),
                ArrayLoader(test_split, eval_bs, aug, train=False, **where))
    return (_TorchLoader(train_split, cfg.batch_size, True, ctx, cfg.seed, cfg.num_workers),
            _TorchLoader(test_split, eval_bs, False, ctx, cfg.seed, cfg.num_workers))


def _autocast(cfg: TrainConfig, device: torch.device):  # type: ignore[no-untyped-def]
    if cfg.amp == "none" or device.type != "cuda":
        return nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if cfg.amp == "bf16" else torch.float16)


def _loss(cfg: TrainConfig, out: torch.Tensor, y: torch.Tensor, teacher: torch.Tensor | None = None) -> torch.Tensor:
    """The training objective on logits ``out`` ``[T, B, K]``: the task loss (CE or TET), mixed with KD
    against the teacher's logits ``teacher`` ``[B, K]`` when given."""
    if cfg.loss == "tet":
        task = tet_loss(out, y, cfg.tet_lambda, cfg.tet_means, cfg.label_smoothing)
    else:
        task = mean_ce_loss(out, y, cfg.label_smoothing)
    if teacher is None:
        return task
    return distill_loss(task, out, teacher, cfg.kd_lambda, cfg.kd_tau)


def _online_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, teacher: torch.Tensor | None,
                 step_index: int) -> OnlineStepResult:
    """One SLTT / SLTT-K forward-backward over a batch (gradients accumulate in ``.grad``).

    Step ``t``'s loss is the training objective of the one-step sequence ``O_t``: per-step CE for
    ``loss="ce"`` (SLTT's loss), per-step TET and per-step KD -- for TET and KD the mean over steps
    equals the whole-sequence objective. SLTT-K's steps are drawn from a generator seeded by
    ``(seed, global step)``, so a resumed run draws the same steps.
    """
    k = cfg.online_k if cfg.online == "sltt-k" else None
    generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step_index) if k is not None else None

    def step_loss(out_t: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        one_step = out_t.unsqueeze(0)
        return _loss(cfg, one_step, target) if teacher is None else _loss(cfg, one_step, target, teacher)

    return sltt_step_losses(model, x, y, step_loss, k=k, generator=generator)


@contextmanager
def cuda_speed_settings(device: torch.device) -> Iterator[None]:
    """On CUDA, TF32 matmuls/convolutions and cuDNN autotuning for the run; the previous global settings
    are restored afterwards (no side effect outlives the run). Nothing changes on other devices."""
    if device.type != "cuda":
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved


_BUCKET_BYTES = 25 * 2**20  # DDP's default bucket size


def grad_buckets(params: list[torch.Tensor], bucket_bytes: int = _BUCKET_BYTES) -> list[list[torch.Tensor]]:
    """Gradients grouped by dtype/device into buckets of at most ``bucket_bytes`` (one tensor may exceed it)."""
    buckets: list[list[torch.Tensor]] = []
    size, key = 0, None
    for p in params:
        g = p.grad
        if g is None:
            continue
        k = (g.dtype, g.device)
        nbytes = g.numel() * g.element_size()
        if not buckets or k != key or size + nbytes > bucket_bytes:
            buckets.append([])
            size, key = 0, k
        buckets[-1].append(g)
        size += nbytes
    return buckets


def _all_reduce_grads(model: nn.Module, ctx: DistContext) -> None:
    """Average gradients over ranks, one ``all_reduce`` per ~25 MB bucket (online training does not run
    under DDP: it calls backward T times)."""
    from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

    for bucket in grad_buckets(list(model.parameters())):
        flat = ctx.all_reduce_sum(_flatten_dense_tensors(bucket)).div_(ctx.world_size)
        for g, avg in zip(bucket, _unflatten_dense_tensors(flat, bucket), strict=True):
            g.copy_(avg)


# -- evaluation --------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model: nn.Module, loader: Any, ctx: DistContext | None = None, cfg: TrainConfig | None = None
             ) -> dict[str, float]:
    """Mean cross-entropy (of the time-mean logits) and top-1 accuracy over ``loader``, summed over ranks."""
    ctx = ctx or DistContext()
    device = ctx.device
    was_training = model.training
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
    amp = _autocast(cfg, device) if cfg is not None else nullcontext()
    for i, (x, y) in enumerate(loader):
        if i == 0:
            _check_input_dtype(x, model, cfg, device)
        _new_step(cfg)
        with amp:
            out = model(x)
        mean = out.float().mean(0)
        totals[0] += nn.functional.cross_entropy(mean, y, reduction="sum").double()
        totals[1] += (mean.argmax(-1) == y).sum()
        totals[2] += y.numel()
    ctx.all_reduce_sum(totals)
    model.train(was_training)
    loss_sum, correct, count = totals.tolist()
    return {"loss": loss_sum / max(count, 1), "acc": correct / max(count, 1), "count": count}


# -- training ----------------------------------------------------------------------------------------
def _backward_and_step(loss: torch.Tensor, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: Any,
                       cfg: TrainConfig) -> None:
    """Whole-sequence (BPTT) update: backward, optional clipping, optimizer step (with fp16 loss scaling)."""
    optimizer.zero_grad(set_to_none=True)
    (loss if scaler is None else scaler.scale(loss)).backward()
    _clip_and_step(model, optimizer, scaler, cfg)


def _clip_and_step(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: Any, cfg: TrainConfig) -> None:
    """Optional gradient clipping (of the unscaled gradients), then the optimizer step."""
    if cfg.grad_clip:
        if scaler is not None:
            scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)
        scaler.update()


def _check_input_dtype(x: torch.Tensor, model: nn.Module, cfg: TrainConfig | None, device: torch.device) -> None:
    """Refuse input batches whose dtype the model cannot take, naming the fix."""
    if not x.is_floating_point():
        return
    param = next(unwrap_model(model).parameters(), None)
    want = param.dtype if param is not None else torch.float32
    if x.dtype == want:
        return
    half = x.dtype in (torch.float16, torch.bfloat16)
    if half and cfg is not None and cfg.amp != "none" and device.type == "cuda":
        return  # autocast takes half-precision input
    hint = " (half precision: give float32 input and train with --amp bf16 or fp16 on a GPU)" if half else ""
    have, need = str(x.dtype).removeprefix("torch."), str(want).removeprefix("torch.")
    raise ValueError(f"input batches have dtype {have} but the model computes in {need}; convert the data to {need} "
                     f"(e.g. tensor.float() in the dataset){hint}")


def _check_state(named: list[tuple[str, torch.Tensor]], ctx: DistContext, where: str) -> None:
    """Raise :class:`NonFiniteStateError` if any rank's parameters/buffers hold NaN/inf (one fused check)."""
    flag = non_finite_flag(t for _, t in named)
    if flag is None:
        return
    if int(ctx.all_reduce_max(flag.to(ctx.device, torch.int64))) == 0:
        return
    name = first_non_finite(named) or "(on another rank)"
    raise NonFiniteStateError(f"non-finite model state {where}: tensor {name!r} holds NaN/inf; no checkpoint was "
                              "written for it (LAST still points at the last good one); lower the learning rate, "
                              "enable --grad-clip, or check the input data")


def _optimisation_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
                       scaler: Any, cfg: TrainConfig, ctx: DistContext, teacher: nn.Module | None,
                       global_step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on the batch ``(x, y)`` (BPTT, or the online/SLTT path); returns the loss
    and the prediction ``[B, K]``."""
    device = ctx.device
    z_teacher = None
    if teacher is not None:
        with _autocast(cfg, device):
            z_teacher = teacher_logits(teacher, x)
    if cfg.online != "none":
        optimizer.zero_grad(set_to_none=True)
        with _autocast(cfg, device):
            res = _online_step(model, x, y, cfg, z_teacher, global_step)
        if ctx.enabled:
            _all_reduce_grads(model, ctx)
        _clip_and_step(model, optimizer, None, cfg)  # no fp16 loss scaling online (TrainConfig.validate)
        return res.loss.to(device), res.prediction
    with _autocast(cfg, device):
        out = model(x)
        loss = _loss(cfg, out, y) if z_teacher is None else _loss(cfg, out, y, z_teacher)
    _backward_and_step(loss, model, optimizer, scaler, cfg)
    return loss, out.detach().float().mean(0)


def _input_error(epoch: int, step: int, n_steps: int) -> NonFiniteStateError:
    return NonFiniteStateError(f"non-finite input (NaN/inf) in training batch {step + 1} of {n_steps} at epoch "
                               f"{epoch + 1}; check the dataset and its preprocessing")


def _note_first_bad(first: torch.Tensor, finite: torch.Tensor, step: int) -> torch.Tensor:
    """``first`` -- the first step whose tensor was not ``finite``, -1 while none -- after ``step``; no host sync."""
    return torch.where((first < 0) & ~finite, first.new_full((), step), first)


def _raise_on_non_finite(bad_input: torch.Tensor, bad_loss: torch.Tensor, ctx: DistContext, epoch: int,
                         n_steps: int, global_step: int) -> None:
    """Raise naming the first step (on any rank) whose input batch (:class:`NonFiniteStateError`), else whose
    loss (:class:`NonFiniteLossError`), was NaN/inf, if any."""
    bad_x, bad_step = ctx.all_reduce_max(torch.stack([bad_input, bad_loss])).tolist()
    if bad_x >= 0:
        raise _input_error(epoch, bad_x, n_steps)
    if bad_step >= 0:
        raise NonFiniteLossError(
            f"non-finite loss at epoch {epoch + 1}, step {bad_step + 1} of {n_steps} "
            f"(global step {global_step + bad_step + 1}); lower the learning rate, enable --grad-clip, "
            "or check the input data"
        )


class _EpochBar:
    """The epoch's progress bar (main process, ``cfg.progress``), or nothing."""

    def __init__(self, cfg: TrainConfig, ctx: DistContext, n_steps: int, epoch: int) -> None:
        self.bar = None
        self.world_size = ctx.world_size
        if cfg.progress and ctx.is_main:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=n_steps, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, mininterval=0.5,
                            dynamic_ncols=True)

    def update(self, steps: int, totals: torch.Tensor, n_seen: int, elapsed: float) -> None:
        if self.bar is None:
            return
        t, c, n = totals.tolist()
        self.bar.set_postfix(loss=f"{t / n:.4f}", acc=f"{100 * c / n:.2f}%",
                             img_s=f"{n_seen * self.world_size / max(elapsed, 1e-9):.0f}", refresh=False)
        self.bar.update(steps - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _train_epoch(model: nn.Module, loader: Any, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: Any, cfg: TrainConfig,
                 ctx: DistContext, epoch: int, global_step: int, teacher: nn.Module | None = None
                 ) -> tuple[dict[str, float], int]:
    model.train()
    device = ctx.device
    n_steps = len(loader)
    check_every = 1 if device.type == "cpu" else cfg.log_interval
    input_at_once = check_every == 1 and not ctx.enabled  # one CPU process: raise before the forward
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
    first_bad = torch.full((), -1, dtype=torch.int64, device=device)
    bad_input = torch.full((), -1, dtype=torch.int64, device=device)
    named = named_state(unwrap_model(model))
    bar = _EpochBar(cfg, ctx, n_steps, epoch)
    t0 = time.perf_counter()
    n_seen = 0
    for step, (x, y) in enumerate(loader):
        if step == 0:
            _check_input_dtype(x, model, cfg, device)
        if x.is_floating_point():
            x_finite = torch.isfinite(x).all()
            if input_at_once and not bool(x_finite):
                raise _input_error(epoch, step, n_steps)
            bad_input = _note_first_bad(bad_input, x_finite, step)
        if cfg.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        _new_step(cfg)
        loss, prediction = _optimisation_step(model, x, y, optimizer, scaler, cfg, ctx, teacher, global_step + step)
        scheduler.step()
        with torch.no_grad():
            first_bad = _note_first_bad(first_bad, torch.isfinite(loss.detach()), step)
            totals[0] += loss.detach().double() * y.numel()
            totals[1] += (prediction.argmax(-1) == y).sum()
            totals[2] += y.numel()
        n_seen += y.numel()
        if (step + 1) % check_every == 0 or step + 1 == n_steps:
            _raise_on_non_finite(bad_input, first_bad, ctx, epoch, n_steps, global_step)
            _check_state(named, ctx, f"after epoch {epoch + 1}, step {step + 1} of {n_steps} (global step "
                                     f"{global_step + step + 1}; checked every {check_every} step(s))")
            bar.update(step + 1, totals, n_seen, time.perf_counter() - t0)
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - t0
    _average_buffers(model, ctx)
    ctx.all_reduce_sum(totals)
    loss_sum, correct, count = totals.tolist()
    stats = {"loss": loss_sum / max(count, 1), "acc": correct / max(count, 1), "time": elapsed,
             "img_per_s": count / max(elapsed, 1e-9)}
    return stats, global_step + n_steps


@torch.no_grad()
def _average_buffers(model: nn.Module, ctx: DistContext) -> None:
    """Average floating-point buffers (BN running statistics) over ranks at the end of an epoch.

    DDP keeps parameters identical on every rank, but each rank's BN running statistics follow its own
    shard; averaging them makes evaluation and checkpoints identical on all ranks.
    """
    if not ctx.enabled:
        return
    for buf in unwrap_model(model).buffers():
        if buf.is_floating_point():
            ctx.all_reduce_sum(buf)
            buf.div_(ctx.world_size)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=METRIC_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    tmp.replace(path)


def _tensorboard(cfg: TrainConfig, out_dir: Path, ctx: DistContext) -> Any:
    if not (cfg.tensorboard and ctx.is_main):
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("tensorboard is not installed; logging to metrics.csv only (pip install tensorboard)")
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))


def _command_line() -> str:
    """The command that started this process, as a user would type it (``xorsnn train ...``)."""
    prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    prog = "python -m xorsnn" if prog == "__main__.py" else prog
    return " ".join([prog, *sys.argv[1:]])


def _device_name(device: torch.device) -> str:
    """What the run ran on, for result.json: the GPU's name, or the CPU's architecture and core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    return f"{cpu} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


def train(cfg: TrainConfig, data: DataBundle | None = None) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.dataset`` as configured; returns the metrics and the trained model.

    The run directory is locked for the duration (a second run into it refuses, naming this
    process); with ``cfg.resume`` the run-defining settings must match the checkpoint's
    (:func:`xorsnn.training.config.resume_mismatches`).

    Args:
        cfg: the run's configuration.
        data: an already-loaded dataset (skips :func:`xorsnn.data.load_dataset`).
    """
    cfg.validate()
    with warnings.catch_warnings():  # a deprecated alias warns once, where the model is built
        warnings.simplefilter("ignore", FutureWarning)
        model_info(cfg.model)  # an unknown name fails here, before a directory is made or data is read
    t_start = time.perf_counter()
    ctx = setup_distributed(cfg.device)
    try:
        out_dir = _prepare_out_dir(cfg, ctx)
        if cfg.amp != "none" and ctx.device.type != "cuda":
            log.warning("--amp %s is ignored on %s: autocast is used on CUDA only (the run is float32)",
                        cfg.amp, ctx.device)
        if cfg.compile and cfg.compile_mode in CUDAGRAPH_MODES and ctx.device.type != "cuda":
            log.warning("--compile-mode %s on %s: CUDA graphs are CUDA-only; the model is compiled without them",
                        cfg.compile_mode, ctx.device)
        with RunLock(out_dir) if ctx.is_main else nullcontext(), cuda_speed_settings(ctx.device):
            return _train(cfg, data, ctx, t_start, out_dir)
    finally:
        ctx.close()


def _prepare_out_dir(cfg: TrainConfig, ctx: DistContext) -> Path:
    out_dir = Path(cfg.resolved_out_dir())
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir {out_dir} exists and is not a directory; choose another --out-dir")
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def _saved_config(state: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """The configuration the checkpoint was trained with (its state, else the run's config.yaml)."""
    if isinstance(state.get("config"), dict):
        return dict(state["config"])
    path = out_dir / "config.yaml"
    if path.is_file():
        import yaml

        with open(path) as f:
            saved = yaml.safe_load(f)
        if isinstance(saved, dict):
            return saved
    raise ValueError(f"cannot resume {out_dir}: neither the checkpoint nor config.yaml records the run's settings")


def _check_resume(cfg: TrainConfig, state: dict[str, Any], out_dir: Path) -> None:
    """Refuse a resume that would change the run (each differing key, old -> new) or shorten it."""
    diffs = resume_mismatches(_saved_config(state, out_dir), cfg)
    if diffs:
        raise ValueError(f"--resume of {out_dir} with different settings ({'; '.join(diffs)}); resume with the "
                         "run's settings (see its config.yaml; only --epochs, device and logging options may "
                         "change) or start a new run in another --out-dir")
    done = int(state["epoch"])
    if cfg.epochs < done:
        raise ValueError(f"epochs={cfg.epochs} is less than the {done} epochs {out_dir} has completed; "
                         f"give --epochs {done} or more")


def _load_resume_state(cfg: TrainConfig, out_dir: Path) -> tuple[Any, dict[str, Any]] | None:
    if not cfg.resume:
        return None
    ckpt = resolve_resumable(out_dir)
    state = load_state(ckpt)
    _check_resume(cfg, state, out_dir)
    return ckpt, state


def _check_labels(data: DataBundle) -> None:
    k = data.info.num_classes
    for split_name, split in (("train", data.train), ("test", data.test)):
        if isinstance(split, ImageArrays) and len(split):
            lo, hi = int(split.labels.min()), int(split.labels.max())
            if lo < 0 or hi >= k:
                raise ValueError(f"{data.info.name} {split_name} split has labels in [{lo}, {hi}], expected "
                                 f"[0, {k - 1}] (num_classes={k})")


def _restore(resumed: tuple[Any, dict[str, Any]], model: nn.Module, optimizer: torch.optim.Optimizer,
             scheduler: Any, scaler: Any, cfg: TrainConfig) -> tuple[int, int, list[dict[str, Any]], float]:
    ckpt, state = resumed
    load_weights(ckpt, model)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"], next(model.parameters()).device)
    start_epoch, global_step = int(state["epoch"]), int(state["global_step"])
    old_epochs = int((state.get("config") or {}).get("epochs", cfg.epochs))
    if old_epochs != cfg.epochs and cfg.schedule != "constant":
        log.warning("epochs changed from %d to %d: from step %d on the %s schedule follows its %d-epoch form",
                    old_epochs, cfg.epochs, global_step, cfg.schedule, cfg.epochs)
    log.info("resumed at epoch %d from %s", start_epoch, ckpt.directory)
    return start_epoch, global_step, list(state["metrics"]), float(state.get("best_test_acc", -1.0))


def _setup_model(cfg: TrainConfig, data: DataBundle, ctx: DistContext) -> tuple[nn.Module, nn.Module | None]:
    """The student (initialised from ``cfg.init_from`` unless resuming) and the teacher, on the device."""
    model = build_model(cfg, data).to(ctx.device)
    if cfg.init_from and not cfg.resume:
        init_from_checkpoint(model, cfg.init_from)
    teacher = None
    if cfg.teacher:  # a NAME:WEIGHTS teacher is built with the data's shape, not the student's model_kwargs
        info = data.info
        teacher = load_teacher(cfg.teacher, {"num_classes": info.num_classes, "in_channels": info.in_channels,
                                             "T": cfg.T}, ctx.device)
    if cfg.sync_bn:  # before the optimizer exists: the synchronised BNs are new parameters
        _sync_bn(model, ctx)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, teacher


def _sync_bn(model: nn.Module, ctx: DistContext) -> None:
    """``--sync-bn``: time-aware synchronised BN (:func:`xorsnn.layers.convert_sync_batchnorm`), in place."""
    from ..layers import convert_sync_batchnorm

    if not ctx.enabled:
        log.warning("sync_bn: a single process has nothing to synchronise; batch norm computes as without it")
    elif ctx.device.type != "cuda":
        raise ValueError(f"sync_bn needs CUDA devices (torch's SyncBatchNorm synchronises GPU tensors only); this "
                         f"run is on {ctx.device.type}: run without --sync-bn")
    convert_sync_batchnorm(model)


def _runnable(model: nn.Module, cfg: TrainConfig, ctx: DistContext) -> nn.Module:
    """``model`` wrapped for the run: DDP (BPTT only: online training all-reduces its accumulated
    gradients itself) and ``torch.compile``."""
    run_model: nn.Module = model
    if ctx.enabled and cfg.online == "none":
        run_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    if cfg.compile:
        mode = None if cfg.compile_mode == "default" else cfg.compile_mode
        run_model = torch.compile(run_model, mode=mode)  # type: ignore[assignment]
    return run_model


def _new_step(cfg: TrainConfig | None) -> None:
    """Tell torch's CUDA-graph trees that a new iteration begins (a model compiled in a CUDA-graph mode): the
    graph outputs of the previous step may be overwritten from here on (the loop has consumed them)."""
    if cfg is not None and cfg.compile and cfg.compile_mode in CUDAGRAPH_MODES:
        torch.compiler.cudagraph_mark_step_begin()


def _log_epoch(cfg: TrainConfig, epoch: int, stats: dict[str, float], test: dict[str, float],
               row: dict[str, float], tb: Any) -> None:
    log.info("epoch %d/%d  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  %.1fs (%.0f img/s)",
             epoch + 1, cfg.epochs, stats["loss"], 100 * stats["acc"], test["loss"], 100 * test["acc"],
             stats["time"], stats["img_per_s"])
    if tb is not None:
        for k in ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "train_img_per_s"):
            tb.add_scalar(k, row[k], epoch + 1)


def _write_result(out_dir: Path, cfg: TrainConfig, data: DataBundle, ctx: DistContext, best: float, final: float,
                  start_epoch: int, wall: float) -> None:
    with open(out_dir / "result.json", "w") as f:
        json.dump({"model": cfg.model, "dataset": cfg.dataset, "best_test_acc": best, "final_test_acc": final,
                   "epochs": cfg.epochs, "T": cfg.T, "model_kwargs": model_arguments(cfg, data),
                   "train_subset": cfg.train_subset, "test_subset": cfg.test_subset,
                   "resumed_from_epoch": start_epoch if cfg.resume else None, "wall_time_s": wall,
                   "device": str(ctx.device), "device_name": _device_name(ctx.device), "world_size": ctx.world_size,
                   "torch": torch.__version__, "command": _command_line()}, f, indent=2)


def _train(cfg: TrainConfig, data: DataBundle | None, ctx: DistContext, t_start: float, out_dir: Path
           ) -> TrainResult:
    device = ctx.device
    resumed = _load_resume_state(cfg, out_dir)
    seed_everything(cfg.seed)
    if data is None:
        data = load_dataset(cfg.dataset, cfg.resolved_data_dir(), download=cfg.download and ctx.is_main, T=cfg.T,
                            image_size=cfg.image_size)
    _check_labels(data)
    model, teacher = _setup_model(cfg, data, ctx)
    train_loader, test_loader = make_loaders(cfg, data, ctx)
    steps_per_epoch = len(train_loader)
    optimizer = make_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum, cfg.nesterov)
    scheduler = make_scheduler(optimizer, cfg.schedule, cfg.epochs * steps_per_epoch,
                               int(round(cfg.warmup_epochs * steps_per_epoch)), cfg.min_lr_ratio)
    scaler = torch.amp.GradScaler("cuda") if (cfg.amp == "fp16" and device.type == "cuda") else None

    start_epoch, global_step, metrics, best = 0, 0, [], -1.0
    if resumed is not None:
        start_epoch, global_step, metrics, best = _restore(resumed, model, optimizer, scheduler, scaler, cfg)

    if ctx.is_main:
        import yaml

        (out_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        _write_csv(out_dir / "metrics.csv", metrics)
        n_params = sum(p.numel() for p in model.parameters())
        log.info("training %s (%.2fM parameters) on %s: %d steps/epoch of %d x %d process(es), device %s%s",
                 cfg.model, n_params / 1e6, data.info.name, steps_per_epoch, cfg.batch_size, ctx.world_size, device,
                 "" if cfg.online == "none" else f", online {cfg.online}")
    tb = _tensorboard(cfg, out_dir, ctx)
    run_model = _runnable(model, cfg, ctx)
    meta = {"model": cfg.model, "model_kwargs": model_arguments(cfg, data), "dataset": data.info.to_dict(),
            "xorsnn_config": cfg.to_dict()}

    test = {"loss": math.nan, "acc": math.nan}
    for epoch in range(start_epoch, cfg.epochs):
        train_loader.set_epoch(epoch)
        stats, global_step = _train_epoch(run_model, train_loader, optimizer, scheduler, scaler, cfg, ctx, epoch,
                                          global_step, teacher)
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            test = evaluate(model if not cfg.compile else run_model, test_loader, ctx, cfg)
        row = {"epoch": epoch + 1, "train_loss": stats["loss"], "train_acc": stats["acc"],
               "test_loss": test["loss"], "test_acc": test["acc"], "lr": optimizer.param_groups[0]["lr"],
               "epoch_time_s": stats["time"], "train_img_per_s": stats["img_per_s"],
               "wall_time_s": time.perf_counter() - t_start}
        metrics.append(row)
        is_best = test["acc"] > best  # False while the accuracy is NaN (not evaluated yet)
        best = test["acc"] if is_best else best
        _check_state(named_state(model), ctx, f"at the end of epoch {epoch + 1} (before its checkpoint)")
        if ctx.is_main:
            _log_epoch(cfg, epoch, stats, test, row, tb)
            _write_csv(out_dir / "metrics.csv", metrics)
            state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "scaler": scaler.state_dict() if scaler is not None else None, "global_step": global_step,
                     "metrics": metrics, "best_test_acc": best, "rng": _rng_state(device), "config": cfg.to_dict()}
            save_checkpoint(out_dir, model, state, meta, epoch + 1, is_best=is_best, keep_last=cfg.keep_last)
        ctx.barrier()
    if tb is not None:
        tb.close()
    wall = time.perf_counter() - t_start
    final = metrics[-1]["test_acc"] if metrics else math.nan
    if ctx.is_main:
        _write_result(out_dir, cfg, data, ctx, best, final, start_epoch, wall)
    return TrainResult(metrics, best, final, out_dir, model, wall, cfg)
