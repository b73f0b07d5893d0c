"""The training run, top to bottom: options, small helpers, then one loop.

Data: the dataset draws sample i as a pure function of (seed, i), and step k uses the global
samples [k·B, (k+1)·B); DDP rank r of W takes its B/W slice of each. So resuming needs only the
step, and 1 process with batch B sees the same samples as W processes with B/W. With
`realesrgan` degradation the loader yields HR crops and each sample's drawn degradation, and
the LR is synthesised here, batched on the training device (per-batch choices are a pure
function of (seed, step)).

The step is `l1_step` or, for a GAN stage, `adversarial_step` (steps.py); the loop around them
is the same. A GAN stage's first `adversarial.d_init_steps` steps are `discriminator_step`s, which
leave the generator as it is, so the loop skips its update.
"""

from __future__ import annotations

import copy
import math
import random
import shutil
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler

from claritycore import interop, weights
from claritycore.config import EvalOptions, RunOptions, TrainingConfig
from claritycore.data.benchmark_sets import set_images
from claritycore.data.dataset import HRPatchDataset, PairedPatchDataset
from claritycore.degradation import collate_hr_draws
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
from claritycore.scoring import COMPARISONS, load_references, score_set
from claritycore.training import checkpoint, distributed
from claritycore.training.ema import ema_copy, ema_updater
from claritycore.training.live import MetricLog
from claritycore.training.losses import LOSSES
from claritycore.training.steps import (
    adversarial_step,
    batch_maker,
    build_adversary,
    discriminator_step,
    grads_found_inf,
    l1_step,
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


def _optimizer_step(optimizer: torch.optim.Optimizer, scaler, found_inf: torch.Tensor) -> None:
    """Step unless the gradients hold inf/NaN, without a host sync: the fused Adam kernel reads
    `found_inf` on the device (the protocol GradScaler itself uses)."""
    if scaler.is_enabled():
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.found_inf = found_inf
        optimizer.step()


def read_pretrained(path: Path) -> torch.nn.Module:
    """The model in a `--pretrained` file; an unreadable file is a one-line ConfigError."""
    try:
        return interop.load_weights(path)[0]
    except weights.WeightsError as error:
        raise ConfigError(f"--pretrained: {error}") from None


def _load_pretrained(model: torch.nn.Module, path: Path) -> None:
    pretrained = read_pretrained(path)
    try:
        model.load_state_dict(pretrained.state_dict())
    except RuntimeError:
        raise ConfigError(
            f"--pretrained {path} holds {pretrained.config}, which does not fit this run's "
            f"{model.config}; pick weights of the same architecture"
        ) from None


def train(
    experiment: ExperimentConfig,
    *,
    train_store: Path,
    val_dir: Path | None,
    output: Path,
    checkpoints: Path,
    options: RunOptions = RunOptions(),
    live_dir: Path | None = None,
    resume: bool = True,
    pretrained: Path | None = None,
) -> Path:
    """Train `experiment` on the image store `train_store`; write `output` (a model.pt).

    Checkpoints go to `checkpoints/<run key>/` (the config, seed and training data); with
    `resume`, the newest one there is continued. `pretrained`: initial weights (any file
    `interop.load_weights` reads). With `options.devices` > 1 (and not already under torchrun)
    spawns one process per device.
    """
    args = (experiment, Path(train_store), val_dir, Path(output), Path(checkpoints))
    args += (options, live_dir, resume, pretrained)
    if options.devices > 1 and not distributed.launched():
        cpu = resolve_device(options.device).type == "cpu"
        distributed.spawn(_run, options.devices, args, cpu=cpu)
        return Path(output)
    return _run(*args)


def finish_stage(
    experiment: ExperimentConfig,
    *,
    base: Path,
    base_live_dir: Path,
    output: Path,
    live_dir: Path,
    **train_args: Any,
) -> Path:
    """The pipeline's second stage: a GAN experiment trains from the first stage's model
    `base` (`train_args` as for `train`), logging to `live_dir`; any other experiment's model
    is `base` itself, copied to `output` with its curves (`base_live_dir` to `live_dir`)."""
    if experiment.adversarial is not None:
        return train(experiment, output=output, live_dir=live_dir, pretrained=base, **train_args)
    output.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(base, output)
    shutil.rmtree(live_dir, ignore_errors=True)
    shutil.copytree(base_live_dir, live_dir)
    return output


def _run(
    experiment: ExperimentConfig,
    train_store: Path,
    val_dir: Path | None,
    output: Path,
    checkpoints: Path,
    options: RunOptions,
    live_dir: Path | None,
    resume: bool,
    pretrained: Path | None,
) -> Path:
    """The whole run in one process (one rank of a DDP world)."""
    cfg, scale = experiment.training, experiment.model.scale
    dist = distributed.setup(options.device)
    device, is_main = dist.device, dist.is_main
    if cfg.batch_size % dist.world_size:
        raise ConfigError(
            f"batch_size={cfg.batch_size} does not split over {dist.world_size} processes; "
            f"use a batch size divisible by {dist.world_size} or change --devices"
        )
    # Decided once: precision, memory format and compilation; the loop has no device branches.
    on_cuda = device.type == "cuda"
    amp_dtype, use_scaler = amp_settings(device, cfg.amp, options.precision)
    autocast = torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)
    # Recorded in checkpoints and model.pt: `amp` alone does not say what a run computed in.
    precision = next(name for name, dtype in PRECISION_DTYPES.items() if dtype is amp_dtype)
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    auto_layout = channels_last_auto(device, amp_dtype)
    channels_last = auto_layout if options.channels_last == "auto" else options.channels_last
    use_compile = on_cuda if options.compile == "auto" else options.compile
    # Training batches all have one shape, so cuDNN's per-shape algorithm search pays off.
    torch.backends.cudnn.benchmark |= on_cuda
    console = Console(quiet=not is_main)

    random.seed(options.seed)
    np.random.seed(options.seed)
    torch.manual_seed(options.seed)  # same initial weights on every rank
    model = AutoModel.from_config(experiment.model).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema = ema_copy(model) if cfg.ema else None
    # Fused Adam: one kernel per step, and it honours `found_inf` without a host sync.
    optimizer = torch.optim.Adam(
        model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=True
    )
    step, history = 0, []
    key = checkpoint.run_key(experiment, options.seed, train_store, pretrained)
    distributed.require_same_data(key, str(train_store), dist)
    checkpoint_dir = checkpoints / key

    def wrap(module: nn.Module) -> nn.Module:
        ids = [device.index] if on_cuda else None
        return DistributedDataParallel(module, device_ids=ids) if dist.enabled else module

    adversary, vgg_sha256 = None, None
    if experiment.adversarial is not None:
        adversary, vgg_sha256 = build_adversary(experiment, options, device, use_scaler, wrap)
    # The newest checkpoint on any node: nodes need no shared checkpoint storage.
    read_latest = partial(checkpoint.load_latest, checkpoint_dir, key)
    state = distributed.newest_state(read_latest, dist) if resume else None
    if state is not None and state["step"] >= cfg.steps:
        # A finished run is trained again when asked: DVC reruns `train` only when its code
        # or inputs changed, and then the old result must not come back.
        console.print(f"checkpoint in {checkpoint_dir} is of a finished run; training anew")
        state = None
    if state is not None:
        step, history = checkpoint.restore(
            state, model=model, ema=ema, optimizer=optimizer, scaler=scaler, adversary=adversary
        )
        console.print(f"resuming from step {step:,} ({checkpoint_dir})")
        del state
    elif pretrained is not None:
        _load_pretrained(model, Path(pretrained))
        if ema is not None:
            ema.load_state_dict(model.state_dict())
    log = MetricLog(live_dir, history, main=is_main)
    # Validation is `evaluate`'s scoring with its default inference options: for the same
    # weights and images the figures are equal. It logs PSNR/SSIM only: no NIQE/LPIPS cost.
    val_options = EvalOptions(device=str(device), perceptual=False)
    references = []
    if is_main and val_dir is not None and options.val_images:
        files = set_images(Path(val_dir), scale)[: options.val_images]
        warn = console.print
        references = list(
            load_references(files, scale, on_skip=lambda why: warn(f"[yellow]skipped[/] {why}"))
        )

    step_model = torch.compile(model) if use_compile else model
    if dist.enabled:
        step_model = DistributedDataParallel(
            step_model, device_ids=[device.index] if on_cuda else None, gradient_as_bucket_view=True
        )
    length, synthesised = cfg.steps * cfg.batch_size, experiment.degradation.type != "bicubic"
    dataset = (
        HRPatchDataset(train_store, patch_size=cfg.patch_size, seed=options.seed, length=length,
                       degradation=experiment.degradation)
        if synthesised
        else PairedPatchDataset(train_store, patch_size=cfg.patch_size, seed=options.seed,
                                length=length)
    )  # fmt: skip
    make_batch = batch_maker(experiment, options.seed, device, channels_last)
    loader = DataLoader(
        dataset,
        batch_sampler=StepBatches(step, cfg.steps, cfg.batch_size, dist.rank, dist.world_size),
        num_workers=options.loader_workers,
        pin_memory=on_cuda,
        prefetch_factor=4 if options.loader_workers else None,
        collate_fn=collate_hr_draws if synthesised else None,
    )
    loss_fn = LOSSES[cfg.loss]
    if adversary is None:
        run_step = partial(l1_step, step_model, loss_fn=loss_fn, autocast=autocast, scaler=scaler)
    else:
        run_step = partial(
            adversarial_step, step_model, adversary=adversary, autocast=autocast, scaler=scaler,
            found_inf=grads_found_inf,
        )  # fmt: skip
    # adversarial.d_init_steps: steps [0, d_init_steps) train the discriminator alone.
    d_init_steps = 0 if adversary is None else adversary.config.d_init_steps
    run_d_step = partial(discriminator_step, step_model, adversary=adversary, autocast=autocast,
                         found_inf=grads_found_inf)  # fmt: skip
    params = list(model.parameters())
    update_ema = ema_updater(ema, model, cfg.ema_decay) if ema is not None else None
    # Device-side accumulators: read back only at log time, so steps never wait on the host.
    zero = torch.zeros((), device=device)
    good_steps, streak, worst = zero.clone(), zero.clone(), zero.clone()
    loss_sums: dict[str, torch.Tensor] = {}
    last_saved: Path | None = None

    def check_finite() -> None:
        if worst.item() >= options.max_nonfinite:
            raise NonFiniteLossError(
                f"the loss was inf/NaN for {int(worst.item())} steps in a row (limit "
                f"{options.max_nonfinite}) before step {step:,}; those steps were skipped and no "
                f"checkpoint was written after them (last good: {last_saved or 'none'}). Lower "
                "--lr, set grad_clip, check the training images, or train without AMP"
            )

    console.print(
        f"[bold]{experiment.label}[/]: {cfg.steps:,} steps, batch {cfg.batch_size} "
        f"({dist.world_size} × {cfg.batch_size // dist.world_size}), patch {cfg.patch_size}, "
        f"{device}, precision {precision}, channels_last {channels_last}, "
        f"compile {use_compile}"
    )
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=console, disable=not is_main,
    )  # fmt: skip
    task = progress.add_task("training", total=cfg.steps, completed=step)
    # A short run still draws a curve: at least ~10 loss points, whatever log_every says.
    log_every = min(options.log_every, max(1, cfg.steps // 10))
    # The log window: steps and loss sums since the last log row, and the seconds spent in
    # validation and checkpoints meanwhile, which step_ms leaves out.
    window_start, tick, paused = step, time.perf_counter(), 0.0
    start_step, run_start = step, time.perf_counter()
    model.train()
    with progress:
        for item in loader:
            batch = make_batch(item, step)
            learning_rate = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate
            if adversary is not None:
                # The discriminator follows the generator's schedule at its own peak.
                for group in adversary.optimizer.param_groups:
                    group["lr"] = learning_rate * adversary.config.d_lr / cfg.lr
            if step < d_init_steps:
                # No generator gradient, so no generator update; its EMA, equal to it, stays.
                losses, found_inf = run_d_step(batch)
                grad_norm = zero
            else:
                losses = run_step(batch)
                scaler.unscale_(optimizer)  # no-op without a scaler; clipping needs true grads
                if cfg.grad_clip is None:
                    grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params])
                else:
                    grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                # Gradients are all-reduced, so every rank sees the same verdict.
                found_inf = (~torch.isfinite(grad_norm)).float()
                _optimizer_step(optimizer, scaler, found_inf)
                optimizer.zero_grad(set_to_none=True)
            if update_ema is not None:
                update_ema(step)
            for name, value in losses.items():
                kept = torch.where(found_inf > 0, 0.0, value.float())
                loss_sums[name] = loss_sums[name] + kept if name in loss_sums else kept
            good_steps += 1 - found_inf
            streak.mul_(found_inf).add_(found_inf)
            torch.maximum(worst, streak, out=worst)
            step += 1
            progress.advance(task)

            # A row ends the discriminator-only phase, so no row mixes the two phases' terms.
            if step % log_every == 0 or step in (cfg.steps, d_init_steps):
                check_finite()
                now = time.perf_counter()
                # Every rank reaches this step: average the loss sums over the global batch.
                names = list(loss_sums)
                stacked = torch.stack([*(loss_sums[n] for n in names), good_steps])
                *totals, good = distributed.mean_over_ranks(stacked, dist).tolist()
                elapsed, done = now - tick - paused, step - window_start
                row = {
                    "train/lr": learning_rate,
                    "train/grad_norm": float(grad_norm),
                    "train/patches_per_s": done * cfg.batch_size / elapsed,
                    "train/step_ms": 1000 * elapsed / done,
                    "train/skipped_steps": done - good,
                }
                if adversary is not None:
                    row["train/lr_d"] = learning_rate * adversary.config.d_lr / cfg.lr
                if good:
                    means = zip(names, (total / good for total in totals), strict=True)
                    row |= {f"train/{name}": mean for name, mean in means}
                log.log(step, row)
                progress.update(task, description=f"loss {row.get('train/loss', math.nan):.4f}")
                loss_sums.clear(), good_steps.zero_()
                window_start, tick, paused = step, time.perf_counter(), 0.0
            if step % options.val_every == 0 or step == cfg.steps:
                started = time.perf_counter()
                if references:
                    # A copy: inference switches the weights' memory format and mode.
                    shipped = copy.deepcopy(ema if ema is not None else model)
                    scored = score_set(
                        shipped, references, scale=scale, options=val_options, crops=COMPARISONS
                    )
                    figures = scored.means()
                    log.log(step, {f"val/{k}": figures[k] for k in ("psnr_y", "ssim_y")})
                    log.images({f"val/{name}.png": crop for name, crop in scored.crops.items()})
                    console.print(
                        f"step {step:,}: PSNR-Y {figures['psnr_y']:.3f} dB "
                        f"({figures['gain_psnr_y']:+.3f} over bicubic on {figures['images']} "
                        f"images), SSIM-Y {figures['ssim_y']:.4f}"
                    )
                paused += time.perf_counter() - started
            if step % options.save_every == 0 or step == cfg.steps:
                started = time.perf_counter()
                check_finite()
                if is_main:
                    last_saved = checkpoint.save(
                        checkpoint_dir, key=key, step=step, experiment=experiment, model=model,
                        ema=ema, optimizer=optimizer, scaler=scaler, history=log.history,
                        precision=precision, adversary=adversary,
                    )  # fmt: skip
                paused += time.perf_counter() - started

    if is_main:
        final = ema if ema is not None else model
        weights.save_model(
            output, final, experiment=experiment.to_dict(), step=step, ema=ema is not None,
            precision=precision, vgg19_sha256=vgg_sha256,
        )  # fmt: skip
        if not options.keep_checkpoints:
            checkpoint.remove(checkpoint_dir)  # only disk space now: a finished run is not resumed
        log.close()
        seconds = time.perf_counter() - run_start
        last_val = next((r for r in reversed(log.history) if "val/psnr_y" in r), None)
        console.print(
            f"[green]done[/]: {step - start_step:,} steps in {seconds:.1f} s"
            + (f", PSNR-Y {last_val['val/psnr_y']:.3f} dB" if last_val else "")
            + f" → {output}"
        )
    distributed.teardown(dist)
    return output
