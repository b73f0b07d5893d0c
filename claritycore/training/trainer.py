"""The training run in phases: setup decides everything once into a frozen `Run`; `_start`
resumes or initialises; the loop steps, logs, validates and saves; `_finish` writes model.pt.

Data: the dataset draws sample i as a pure function of (seed, i), and step k uses the global
samples [k·B, (k+1)·B); DDP rank r of W takes its B/W slice of each. So resuming needs only the
step, and 1 process with batch B sees the same samples as W processes with B/W. How a sample
becomes a training pair is the experiment's pair source (pair_sources.py).

The step is `pixel_step` or, for a GAN stage, `adversarial_step` (steps.py); the loop around
them is the same. A GAN stage's first `adversarial.d_init_steps` steps are `discriminator_step`s,
which leave the generator as it is, so the loop applies no generator update for them.
"""

from __future__ import annotations

import copy
import math
import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler

from claritycore import pretrained, weights
from claritycore.config import EvaluateOptions, TrainingConfig, TrainOptions
from claritycore.data.benchmark_sets import set_images
from claritycore.data.published import Role
from claritycore.device import (
    PRECISION_DTYPES,
    channels_last_auto,
    cpu_has_native_bf16,
    cuda_half_dtype,
    resolve_device,
)
from claritycore.errors import ConfigError, UserError
from claritycore.experiment import ExperimentConfig
from claritycore.models import AutoModel
from claritycore.pretrained import StartFile
from claritycore.scoring import COMPARISONS, load_references, score_set
from claritycore.training import checkpoint, distributed
from claritycore.training.ema import ema_copy, ema_updater
from claritycore.training.live import MetricLog
from claritycore.training.losses import PIXEL_LOSSES
from claritycore.training.pair_sources import PAIR_SOURCES, Batch, BatchContext, PairSource
from claritycore.training.steps import (
    Adversary,
    adversarial_step,
    build_adversary,
    discriminator_step,
    grads_found_inf,
    optimizer_step,
    pixel_step,
)


class NonFiniteLossError(UserError, RuntimeError):
    """The loss stayed inf/NaN for too many steps in a row."""


def lr_at(step: int, cfg: TrainingConfig) -> float:
    """Learning rate for `step`: a pure function of the step, so resuming needs nothing else."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.scheduler == "constant":
        return cfg.lr
    if cfg.scheduler == "multistep":
        passed = sum(step >= round(m * cfg.steps) for m in cfg.milestones)
        return cfg.lr * cfg.lr_gamma**passed
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def amp_settings(
    device: torch.device, amp: bool, precision: str
) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None for fp32, whether a GradScaler is needed).

    `auto` with `amp`: on CUDA bf16 where supported, else fp16; on a CPU with native bf16
    (AVX512-BF16 or AMX) bf16 (measured: lite ×2 steps 1.65× faster, no loss in PSNR); fp32
    on other CPUs, which have no bf16 instructions, and on other devices.
    """
    dtype: torch.dtype | None
    if precision == "auto":
        if amp and device.type == "cuda":
            dtype = cuda_half_dtype()
        elif amp and device.type == "cpu" and cpu_has_native_bf16():
            dtype = torch.bfloat16
        else:
            return None, False
    else:
        dtype = PRECISION_DTYPES[precision]
    return dtype, dtype is torch.float16


class StepBatches(Sampler[list[int]]):
    """Sample indices of steps [start, steps): this rank's slice of each global batch."""

    def __init__(self, start: int, steps: int, batch: int, rank: int, world: int) -> None:
        self.start, self.steps, self.batch = start, steps, batch
        self.local = batch // world
        self.offset = rank * self.local

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.steps):
            first = step * self.batch + self.offset
            yield list(range(first, first + self.local))

    def __len__(self) -> int:
        return self.steps - self.start


@dataclass(frozen=True)
class TrainJob:
    """What `train` was asked to do, in one picklable value (DDP workers receive it whole)."""

    experiment: ExperimentConfig
    train_store: Path
    val_dir: Path | None
    output: Path
    checkpoints: Path
    options: TrainOptions
    live_dir: Path | None
    resume: bool
    pretrained: StartFile | None  # the generator's start file
    pretrained_d: StartFile | None  # the discriminator's (a GAN stage's only)


def train(
    experiment: ExperimentConfig,
    *,
    train_store: Path,
    val_dir: Path | None,
    output: Path,
    checkpoints: Path,
    options: TrainOptions = TrainOptions(),
    live_dir: Path | None = None,
    resume: bool = True,
    pretrained: Path | StartFile | None = None,
    pretrained_d: StartFile | None = None,
) -> Path:
    """Train `experiment` on the image store `train_store`; write `output` (a model.pt).

    Checkpoints go to `checkpoints/<run key>/` (the config, seed and training data); with
    `resume`, the newest one there is continued. `pretrained`: the generator's initial weights
    (any file `interop.reads`; a path is loaded strictly), `pretrained_d` the discriminator's
    (a GAN stage's only). With `options.devices` > 1 (and not already under torchrun) spawns
    one process per device.
    """
    if isinstance(pretrained, (str, Path)):
        pretrained = StartFile(str(pretrained), Path(pretrained))
    job = TrainJob(
        experiment, Path(train_store), val_dir, Path(output), Path(checkpoints), options,
        live_dir, resume, pretrained, pretrained_d if experiment.adversarial else None,
    )  # fmt: skip
    if options.devices > 1 and not distributed.launched():
        cpu = resolve_device(options.device).type == "cpu"
        distributed.spawn(_run, options.devices, (job,), cpu=cpu)
        return job.output
    return _run(job)


def finish_stage(
    experiment: ExperimentConfig,
    *,
    psnr_model: Path,
    psnr_live_dir: Path,
    output: Path,
    live_dir: Path,
    started_from: StartFile | None,
    **train_args: Any,
) -> Path:
    """The pipeline's second stage: a GAN experiment trains from the PSNR stage's model
    `psnr_model` (`train_args` as for `train`), logging to `live_dir`; any other experiment's
    model is `psnr_model` itself, copied to `output` with its curves (`psnr_live_dir` to
    `live_dir`). So is a GAN experiment `started_from` a generator file: it has no PSNR stage,
    and the first stage trained it whole."""
    if experiment.adversarial is not None and started_from is None:
        return train(
            experiment, output=output, live_dir=live_dir, pretrained=psnr_model, **train_args
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(psnr_model, output)
    shutil.rmtree(live_dir, ignore_errors=True)
    shutil.copytree(psnr_live_dir, live_dir)
    return output


@dataclass(frozen=True)
class Run:
    """Everything setup decides, fixed for the whole run: the loop reads it, never changes it.
    (The modules and optimizers inside change their state, not which they are.)"""

    job: TrainJob
    dist: distributed.Dist
    precision: str  # what the run computes in: bf16, fp16 or fp32
    channels_last: bool
    compiled: bool
    scaler: torch.amp.GradScaler
    model: nn.Module  # the plain generator: what is saved
    ema: nn.Module | None
    optimizer: torch.optim.Optimizer
    adversary: Adversary | None
    vgg_sha256: str | None
    # What model.pt records of the start files: each role's name, file, sha256, strictness and
    # the tensors that start fresh or go unused.
    starts: dict[str, dict[str, Any]]
    step_fn: Callable[[Batch], dict[str, torch.Tensor]]
    # adversarial.d_init_steps: steps [0, d_init_steps) train the discriminator alone.
    d_init_steps: int
    d_step_fn: Callable[[Batch], tuple[dict[str, torch.Tensor], torch.Tensor]] | None
    make_batch: Callable[[tuple, int], Batch]
    pair_source: PairSource
    params: list[nn.Parameter]  # the generator's, listed once (not on every step)
    update_ema: Callable[[int], None] | None
    key: str
    checkpoint_dir: Path
    references: list
    console: Console
    log_every: int

    @property
    def cfg(self) -> TrainingConfig:
        return self.job.experiment.training

    @property
    def options(self) -> TrainOptions:
        return self.job.options


def _ddp(module: nn.Module, dist: distributed.Dist, **kwargs: Any) -> nn.Module:
    """`module` wrapped for data-parallel training, or itself in a single process."""
    if not dist.enabled:
        return module
    device_ids = [dist.device.index] if dist.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, **kwargs)


def _setup(job: TrainJob) -> Run:
    """Decide everything once: devices and precision, the networks, the step and its data."""
    experiment, options, cfg = job.experiment, job.options, job.experiment.training
    dist = distributed.setup(options.device)
    device = dist.device
    if cfg.batch_size % dist.world_size:
        raise ConfigError(
            f"batch_size={cfg.batch_size} does not split over {dist.world_size} processes; "
            f"use a batch size divisible by {dist.world_size} or change --devices"
        )
    # Precision, memory format and compilation are decided here; the loop has no device branches.
    on_cuda = device.type == "cuda"
    amp_dtype, use_scaler = amp_settings(device, cfg.amp, options.precision)
    autocast = torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)
    # Recorded in checkpoints and model.pt: `amp` alone does not say what a run computed in.
    precision = next(name for name, dtype in PRECISION_DTYPES.items() if dtype is amp_dtype)
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    auto_layout = channels_last_auto(device, amp_dtype)
    channels_last = auto_layout if options.channels_last == "auto" else options.channels_last
    compiled = on_cuda if options.compile == "auto" else options.compile
    # Training batches all have one shape, so cuDNN's per-shape algorithm search pays off.
    torch.backends.cudnn.benchmark |= on_cuda

    # Networks, in a fixed order: each initialisation draws from the seeded generator.
    random.seed(options.seed)
    np.random.seed(options.seed)
    torch.manual_seed(options.seed)  # same initial weights on every rank
    model = AutoModel.from_config(experiment.model).to(device)
    if channels_last:
        # `Module.to` takes memory_format, which torch's overloads leave out.
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    ema = ema_copy(model) if cfg.ema else None
    # Fused Adam: one kernel per step, and it honours `found_inf` without a host sync.
    optimizer = torch.optim.Adam(
        model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=True
    )
    key = checkpoint.run_key(
        experiment, options.seed, job.train_store, job.pretrained, job.pretrained_d
    )
    distributed.require_same_data(key, str(job.train_store), dist)
    adversary, vgg_sha256 = None, None
    if experiment.adversarial is not None:
        adversary, vgg_sha256 = build_adversary(
            experiment.adversarial, cfg.patch_size, options, device, use_scaler,
            partial(_ddp, dist=dist),
        )  # fmt: skip

    # The step: the pixel step, or the adversarial one for a GAN stage, on the compiled and
    # DDP-wrapped generator; its batches come from the experiment's pair source.
    step_model = cast(nn.Module, torch.compile(model)) if compiled else model
    step_model = _ddp(step_model, dist, gradient_as_bucket_view=True)
    if adversary is None:
        step_fn = partial(
            pixel_step, step_model, loss_fn=PIXEL_LOSSES[cfg.loss], autocast=autocast,
            scaler=scaler,
        )  # fmt: skip
    else:
        step_fn = partial(
            adversarial_step, step_model, adversary=adversary, autocast=autocast, scaler=scaler,
            found_inf=grads_found_inf,
        )  # fmt: skip
    d_step_fn = None if adversary is None else partial(
        discriminator_step, step_model, adversary=adversary, autocast=autocast,
        found_inf=grads_found_inf,
    )  # fmt: skip
    pair_source = PAIR_SOURCES[experiment.degradation.type]
    context = BatchContext(
        experiment.degradation, experiment.model.scale, cfg.patch_size, options.seed, device,
        channels_last,
    )  # fmt: skip
    console = Console(quiet=not dist.is_main)
    starts = _start_records(job, model, adversary, console)
    return Run(
        job=job, dist=dist, precision=precision, channels_last=channels_last, compiled=compiled,
        scaler=scaler, model=model, ema=ema, optimizer=optimizer, adversary=adversary,
        vgg_sha256=vgg_sha256, starts=starts, step_fn=step_fn, d_step_fn=d_step_fn,
        d_init_steps=0 if adversary is None else adversary.config.d_init_steps,
        make_batch=partial(pair_source.make_batch, context),
        pair_source=pair_source, params=list(model.parameters()),
        update_ema=None if ema is None else ema_updater(ema, model, cfg.ema_decay),
        key=key, checkpoint_dir=job.checkpoints / key,
        references=_validation_references(job, dist, console), console=console,
        # A short run still draws a curve: at least ~10 loss points, whatever log_every says.
        log_every=min(options.log_every, max(1, cfg.steps // 10)),
    )  # fmt: skip


def _start_records(
    job: TrainJob, model: nn.Module, adversary: Adversary | None, console: Console
) -> dict[str, dict[str, Any]]:
    """Each start file's record for model.pt, with the tensors that start fresh (logged)."""
    networks: dict[Role, tuple[StartFile | None, nn.Module]] = {
        "generator": (job.pretrained, model)
    }
    if adversary is not None:
        networks["discriminator"] = (job.pretrained_d, adversary.discriminator)
    records: dict[str, dict[str, Any]] = {}
    for role, (start, network) in networks.items():
        if start is None:
            continue
        own = {k: tuple(v.shape) for k, v in network.state_dict().items()}
        fit = pretrained.compare(own, pretrained.file_shapes(start.path, role))
        records[role] = start.record() | {"fresh": fit.fresh, "unused": fit.unused}
        if note := pretrained.describe_fit(role, start.name, fit):
            console.print(note, highlight=False, soft_wrap=True)
    return records


def _validation_references(job: TrainJob, dist: distributed.Dist, console: Console) -> list:
    """The validation images, read once on the main process (none elsewhere, or if unasked)."""
    if not dist.is_main or job.val_dir is None or not job.options.val_images:
        return []
    scale = job.experiment.model.scale
    files = set_images(Path(job.val_dir), scale)[: job.options.val_images]
    skipped = partial(_warn_skipped, console)
    return list(load_references(files, scale, on_skip=skipped))


def _warn_skipped(console: Console, why: str) -> None:
    console.print(f"[yellow]skipped[/] {why}")


def _start(run: Run) -> tuple[int, list[dict[str, float]]]:
    """(first step, metric history): the newest checkpoint of this run key on any node when
    resuming, else step 0 from the initial or `pretrained` weights."""
    job, cfg = run.job, run.cfg
    # The newest checkpoint on any node: nodes need no shared checkpoint storage.
    read_latest = partial(checkpoint.load_latest, run.checkpoint_dir, run.key)
    state = distributed.newest_state(read_latest, run.dist) if job.resume else None
    if state is not None and state["step"] >= cfg.steps:
        # A finished run is trained again when asked: DVC reruns `train` only when its code
        # or inputs changed, and then the old result must not come back.
        run.console.print(f"checkpoint in {run.checkpoint_dir} is of a finished run; training anew")
        state = None
    if state is not None:
        step, history = checkpoint.restore(
            state, model=run.model, ema=run.ema, optimizer=run.optimizer, scaler=run.scaler,
            adversary=run.adversary,
        )  # fmt: skip
        run.console.print(f"resuming from step {step:,} ({run.checkpoint_dir})")
        return step, history
    if job.pretrained is not None:
        pretrained.load(run.model, job.pretrained, "generator")
        if run.ema is not None:
            run.ema.load_state_dict(run.model.state_dict())
    if job.pretrained_d is not None and run.adversary is not None:
        pretrained.load(run.adversary.discriminator, job.pretrained_d, "discriminator")
    return 0, []


def _loader(run: Run, start: int) -> DataLoader:
    """Steps [start, steps) of the sample stream: this rank's slice of each global batch."""
    cfg, options, job = run.cfg, run.options, run.job
    dataset = run.pair_source.open_dataset(
        job.train_store, patch_size=cfg.patch_size, seed=options.seed,
        length=cfg.steps * cfg.batch_size, degradation=job.experiment.degradation,
    )  # fmt: skip
    return DataLoader(
        dataset,
        batch_sampler=StepBatches(start, cfg.steps, cfg.batch_size, run.dist.rank,
                                  run.dist.world_size),
        num_workers=options.loader_workers,
        pin_memory=run.dist.device.type == "cuda",
        prefetch_factor=4 if options.loader_workers else None,
        collate_fn=run.pair_source.collate,
    )  # fmt: skip


def _set_learning_rates(run: Run, step: int) -> float:
    """Set the generator's rate for `step` (and the discriminator's, which follows the same
    schedule scaled to its own peak); returns the generator's."""
    learning_rate = lr_at(step, run.cfg)
    for group in run.optimizer.param_groups:
        group["lr"] = learning_rate
    if run.adversary is not None:
        for group in run.adversary.optimizer.param_groups:
            group["lr"] = learning_rate * run.adversary.config.d_lr / run.cfg.lr
    return learning_rate


def _train_step(
    run: Run, batch: Batch, step: int
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """One step's losses, the generator's gradient norm and 1.0 if the step was skipped."""
    if step < run.d_init_steps and run.d_step_fn is not None:
        # The discriminator alone: no generator gradient, so no generator update (its EMA,
        # equal to it, stays so); the discriminator's verdict stands for the step's.
        losses, found_inf = run.d_step_fn(batch)
        return losses, torch.zeros_like(found_inf), found_inf
    losses = run.step_fn(batch)
    return losses, *_apply_update(run, step)


def _apply_update(run: Run, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip, check and apply the generator's gradients, then the EMA: (grad norm, 1.0 if the
    step was skipped for inf/NaN gradients), both on the device."""
    run.scaler.unscale_(run.optimizer)  # no-op without a scaler; clipping needs true gradients
    if run.cfg.grad_clip is None:
        grad_norm = torch.nn.utils.get_total_norm(
            [p.grad for p in run.params if p.grad is not None]
        )
    else:
        grad_norm = torch.nn.utils.clip_grad_norm_(run.params, run.cfg.grad_clip)
    # Gradients are all-reduced, so every rank sees the same verdict.
    found_inf = (~torch.isfinite(grad_norm)).float()
    optimizer_step(run.optimizer, run.scaler, found_inf)
    run.optimizer.zero_grad(set_to_none=True)
    if run.update_ema is not None:
        run.update_ema(step)
    return grad_norm, found_inf


class LossWindow:
    """The loss terms summed since the last log row, and the inf/NaN streaks, as device
    tensors: read back only when a row is logged, so steps never wait on the host."""

    def __init__(self, device: torch.device, step: int) -> None:
        zero = torch.zeros((), device=device)
        self.good_steps, self.streak, self.worst = zero.clone(), zero.clone(), zero.clone()
        self.sums: dict[str, torch.Tensor] = {}
        self.start_step, self.tick, self.paused = step, time.perf_counter(), 0.0

    def add(self, losses: dict[str, torch.Tensor], found_inf: torch.Tensor) -> None:
        for name, value in losses.items():
            kept = torch.where(found_inf > 0, 0.0, value.float())
            self.sums[name] = self.sums[name] + kept if name in self.sums else kept
        self.good_steps += 1 - found_inf
        self.streak.mul_(found_inf).add_(found_inf)
        torch.maximum(self.worst, self.streak, out=self.worst)

    def check_finite(self, limit: int, step: int, last_saved: Path | None) -> None:
        """NonFiniteLossError once the loss has been inf/NaN for `limit` steps in a row."""
        if self.worst.item() >= limit:
            raise NonFiniteLossError(
                f"the loss was inf/NaN for {int(self.worst.item())} steps in a row (limit "
                f"{limit}) before step {step:,}; those steps were skipped and no checkpoint "
                f"was written after them (last good: {last_saved or 'none'}). Lower --lr, set "
                "grad_clip, check the training images, or train without AMP"
            )

    def row(self, step: int, batch_size: int, dist: distributed.Dist) -> dict[str, float]:
        """The window's means over the global batch and its speed, then a new window. Time
        spent validating and saving (`paused`) is left out of the step time."""
        names = list(self.sums)
        stacked = torch.stack([*(self.sums[n] for n in names), self.good_steps])
        *totals, good = distributed.mean_over_ranks(stacked, dist).tolist()
        elapsed, done = time.perf_counter() - self.tick - self.paused, step - self.start_step
        row = {
            "train/patches_per_s": done * batch_size / elapsed,
            "train/step_ms": 1000 * elapsed / done,
            "train/skipped_steps": done - good,
        }
        if good:
            row |= {
                f"train/{name}": total / good for name, total in zip(names, totals, strict=True)
            }
        self.sums.clear()
        self.good_steps.zero_()
        self.start_step, self.tick, self.paused = step, time.perf_counter(), 0.0
        return row


def _validate(run: Run, log: MetricLog, step: int) -> None:
    """Score the shipped weights (the EMA if kept) on the validation images and log it.

    This is `evaluate`'s scoring with its default inference options, so for the same weights
    and images the figures are equal; PSNR/SSIM only (NIQE and LPIPS are not
    imported by training: editing them leaves `train` cached)."""
    if not run.references:
        return
    # A copy: inference switches the weights' memory format and mode.
    shipped = copy.deepcopy(run.ema if run.ema is not None else run.model)
    options = EvaluateOptions(device=str(run.dist.device))
    scale = run.job.experiment.model.scale
    scored = score_set(shipped, run.references, scale=scale, options=options, crops=COMPARISONS)
    figures = scored.means()
    log.log(step, {f"val/{k}": figures[k] for k in ("psnr_y", "ssim_y")})
    log.images({f"val/{name}.png": crop for name, crop in scored.crops.items()})
    run.console.print(
        f"step {step:,}: PSNR-Y {figures['psnr_y']:.3f} dB ({figures['gain_psnr_y']:+.3f} over "
        f"bicubic on {figures['images']} images), SSIM-Y {figures['ssim_y']:.4f}"
    )


def _save(run: Run, log: MetricLog, step: int) -> Path | None:
    """A resumable checkpoint of everything trained (rank 0 writes it); its path."""
    if not run.dist.is_main:
        return None
    return checkpoint.save(
        run.checkpoint_dir, key=run.key, step=step, experiment=run.job.experiment,
        model=run.model, ema=run.ema, optimizer=run.optimizer, scaler=run.scaler,
        history=log.history, precision=run.precision, adversary=run.adversary,
    )  # fmt: skip


def _progress(run: Run, start: int) -> tuple[Progress, TaskID]:
    cfg, dist = run.cfg, run.dist
    run.console.print(
        f"[bold]{run.job.experiment.label}[/]: {cfg.steps:,} steps, batch {cfg.batch_size} "
        f"({dist.world_size} × {cfg.batch_size // dist.world_size}), patch {cfg.patch_size}, "
        f"{dist.device}, precision {run.precision}, channels_last {run.channels_last}, "
        f"compile {run.compiled}"
    )
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=run.console, disable=not dist.is_main,
    )  # fmt: skip
    return progress, progress.add_task("training", total=cfg.steps, completed=start)


def _finish(run: Run, log: MetricLog, step: int, trained: int, seconds: float) -> None:
    """model.pt (the EMA if kept), the checkpoints' removal and the summary line; rank 0."""
    if not run.dist.is_main:
        return
    job = run.job
    final = run.ema if run.ema is not None else run.model
    weights.save_model(
        job.output, final, experiment=job.experiment.to_dict(), step=step,
        ema=run.ema is not None, precision=run.precision, vgg19_sha256=run.vgg_sha256,
        pretrained=run.starts,
    )  # fmt: skip
    if not run.options.keep_checkpoints:
        checkpoint.remove(run.checkpoint_dir)  # only disk space now: a finished run is not resumed
    log.close()
    last_val = next((r for r in reversed(log.history) if "val/psnr_y" in r), None)
    run.console.print(
        f"[green]done[/]: {trained:,} steps in {seconds:.1f} s"
        + (f", PSNR-Y {last_val['val/psnr_y']:.3f} dB" if last_val else "")
        + f" → {job.output}"
    )


def _run(job: TrainJob) -> Path:
    """The whole run in one process (one rank of a DDP world): setup, the loop, finish."""
    run = _setup(job)
    start, history = _start(run)
    log = MetricLog(job.live_dir, history, main=run.dist.is_main)
    loader = _loader(run, start)
    cfg, options = run.cfg, run.options
    window, last_saved = LossWindow(run.dist.device, start), None
    progress, task = _progress(run, start)
    step, started = start, time.perf_counter()
    run.model.train()
    with progress:
        for item in loader:
            # One step: the batch, the rates for this step, the losses, the update.
            batch = run.make_batch(item, step)
            learning_rate = _set_learning_rates(run, step)
            losses, grad_norm, found_inf = _train_step(run, batch, step)
            window.add(losses, found_inf)
            step += 1
            progress.advance(task)
            last = step == cfg.steps

            # Log: the window's mean losses and speed (every rank: the means are all-reduced).
            # A row also ends the discriminator-only phase, so no row mixes the two phases.
            if step % run.log_every == 0 or last or step == run.d_init_steps:
                window.check_finite(options.max_nonfinite, step, last_saved)
                row = {"train/lr": learning_rate, "train/grad_norm": float(grad_norm)}
                if run.adversary is not None:
                    row["train/lr_d"] = learning_rate * run.adversary.config.d_lr / cfg.lr
                log.log(step, row | window.row(step, cfg.batch_size, run.dist))
                loss = log.history[-1].get("train/loss")
                # Discriminator-only rows have no generator loss.
                shown = "D only" if loss is None else f"loss {loss:.4f}"
                progress.update(task, description=shown)

            # Validate and save: their time is kept out of the logged step time.
            if step % options.val_every == 0 or last:
                paused = time.perf_counter()
                _validate(run, log, step)
                window.paused += time.perf_counter() - paused
            if step % options.save_every == 0 or last:
                paused = time.perf_counter()
                window.check_finite(options.max_nonfinite, step, last_saved)
                last_saved = _save(run, log, step) or last_saved
                window.paused += time.perf_counter() - paused

    _finish(run, log, step, step - start, time.perf_counter() - started)
    distributed.teardown(run.dist)
    return job.output
