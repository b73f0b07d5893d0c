"""The trainer in-process: loss falls, LR schedule, bf16 autocast, NaN guard, run-keyed resume."""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings

import pytest
import torch

from claritycore import config
from claritycore.data.packing import extract_store
from claritycore.experiment import resolve
from claritycore.training import NonFiniteLossError, lr_at, trainer
from claritycore.training import checkpoint as ckpt
from claritycore.training.losses import PIXEL_LOSSES
from claritycore.weights import load_model
from tests.helpers import (
    SAMPLE,
    checkpoint_files,
    forward_dtypes,
    history,
    latest,
    quick_options,
    run,
    tiny_experiment,
    tiny_images,
    tiny_store,
)


def test_loss_falls_on_sample_crops(tmp_path):
    """The lite ×2 preset's model on crops of the bundled sample images learns within 24 steps."""
    images = tmp_path / "sample"
    images.mkdir()
    for name in ("astronaut.png", "coffee.png"):
        shutil.copy(SAMPLE / "train" / name, images)
    store = tmp_path / "store"
    extract_store(images, store, 2, workers=1)
    # The preset's model and lr; constant lr so a short run is not cut short by the decay.
    overrides = {"steps": 24, "batch_size": 4, "patch_size": 32, "scheduler": "constant"}
    experiment = resolve("rrdbnet-litex2", overrides)
    options = quick_options(log_every=2, save_every=24)
    run(tmp_path, experiment, options, store)
    losses = [row["train/loss"] for row in history(tmp_path / "ckpt")]
    assert len(losses) == 12
    assert losses[-1] < 0.5 * losses[0], losses


def test_lr_schedule_is_a_function_of_the_step():
    cosine = tiny_experiment(steps=100, lr=1e-3, min_lr=1e-5, warmup_steps=10).training
    assert lr_at(0, cosine) == pytest.approx(1e-4)
    assert lr_at(10, cosine) == pytest.approx(1e-3)
    assert lr_at(55, cosine) == pytest.approx((1e-3 + 1e-5) / 2)
    assert lr_at(100, cosine) == pytest.approx(1e-5)
    multi = tiny_experiment(
        steps=100, lr=1.0, scheduler="multistep", milestones=[0.5, 0.8]
    ).training
    assert [lr_at(s, multi) for s in (49, 50, 79, 80)] == [1.0, 0.5, 0.5, 0.25]


def test_bf16_autocast_on_cpu(tmp_path, monkeypatch):
    """precision=bf16 runs the forward in bfloat16 on the CPU and still trains."""
    seen = forward_dtypes(monkeypatch)
    experiment = tiny_experiment()
    run(tmp_path, experiment, quick_options(precision="bf16"), tiny_store(tmp_path))
    assert seen and set(seen) == {torch.bfloat16}
    rows = history(tmp_path / "ckpt")
    assert all(math.isfinite(r["train/loss"]) for r in rows) and len(rows) == 6


@pytest.mark.parametrize(("avx512_bf16", "amx"), [(True, False), (False, True), (False, False)])
def test_auto_precision_on_cpu_is_bf16_only_where_the_cpu_has_native_bf16(
    tmp_path, monkeypatch, avx512_bf16, amx
):
    """`auto` with amp on picks bf16 on a CPU that reports AVX512-BF16 or AMX, else fp32."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    native = avx512_bf16 or amx
    cpu = torch.device("cpu")
    assert trainer.amp_settings(cpu, True, "auto") == (torch.bfloat16 if native else None, False)
    assert trainer.amp_settings(cpu, False, "auto") == (None, False)  # amp off: fp32
    assert trainer.amp_settings(cpu, True, "fp32") == (None, False)  # forced
    seen = forward_dtypes(monkeypatch)
    run(tmp_path, tiny_experiment(steps=1), quick_options(precision="auto"), tiny_store(tmp_path))
    assert set(seen) == {torch.bfloat16 if native else torch.float32}
    # What `auto` resolved to is recorded, in the checkpoint and in model.pt's metadata.
    resolved = "bf16" if native else "fp32"
    assert latest(tmp_path / "ckpt")["precision"] == resolved
    assert load_model(tmp_path / "model.pt")[1]["precision"] == resolved


def test_nan_loss_is_skipped_once_and_stops_when_it_persists(tmp_path, monkeypatch):
    store, experiment = tiny_store(tmp_path), tiny_experiment(steps=12)
    calls = {"n": 0}
    bad_steps: set[int] = {2}

    def poisoned_l1(sr, hr):
        calls["n"] += 1
        loss = torch.nn.functional.l1_loss(sr, hr)
        return loss * math.nan if calls["n"] - 1 in bad_steps else loss

    monkeypatch.setitem(trainer.PIXEL_LOSSES, "l1", poisoned_l1)
    run(tmp_path / "once", experiment, quick_options(save_every=4), store)
    rows = history(tmp_path / "once" / "ckpt")
    assert [r["train/skipped_steps"] for r in rows] == [0, 0, 1] + [0] * 9
    final = latest(tmp_path / "once" / "ckpt")
    assert all(torch.isfinite(t).all() for t in final["model"].values())

    calls["n"], bad_steps = 0, set(range(5, 100))
    options = quick_options(save_every=4, max_nonfinite=3)
    with pytest.raises(NonFiniteLossError, match="inf/NaN for 3 steps"):
        run(tmp_path / "stops", experiment, options, store)
    saved = checkpoint_files(tmp_path / "stops" / "ckpt")
    assert [p.name for p in saved] == ["step_000000004.pt"]
    last_good = latest(tmp_path / "stops" / "ckpt")
    assert all(torch.isfinite(t).all() for t in last_good["model"].values())


def test_only_an_unfinished_run_of_the_same_config_seed_and_data_resumes(tmp_path):
    store, first = tiny_store(tmp_path), tiny_experiment(steps=4)
    run(tmp_path, first, quick_options(save_every=2), store)
    done = [row["train/loss"] for row in history(tmp_path / "ckpt")]
    # A finished run is trained anew (DVC reruns `train` only when an input changed) and,
    # being deterministic, logs the same losses.
    run(tmp_path, first, quick_options(save_every=2), store)
    assert [row["train/loss"] for row in history(tmp_path / "ckpt")] == done
    # Another config, seed or training data is another run key: its own folder, trained anew.
    other = tiny_experiment(steps=4, lr=1e-3)
    run(tmp_path, other, quick_options(save_every=2), store)
    assert [r["step"] for r in history(tmp_path / "ckpt")] == [1, 2, 3, 4]
    assert latest(tmp_path / "ckpt")["config_hash"] == other.config_hash() != first.config_hash()
    key = latest(tmp_path / "ckpt")["run_key"]
    assert key == ckpt.run_key(other, 0, store) != ckpt.run_key(first, 0, store)
    assert key != ckpt.run_key(other, 1, store)
    more = extract_store(
        tiny_images(tmp_path / "more", count=4), tmp_path / "more_x2", 2, workers=1
    )
    assert key != ckpt.run_key(other, 0, more.path)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == sorted(
        [key, ckpt.run_key(first, 0, store)]
    )
    # A checkpoint moved into another run's folder by hand is still refused by its key.
    first_dir = tmp_path / "ckpt" / ckpt.run_key(first, 0, store)
    (first_dir / "step_000000004.pt").unlink()  # as if killed after step 2...
    stray = tmp_path / "ckpt" / key / "step_000000002.pt"
    stray.rename(first_dir / "step_000000002.pt")  # ...and step 2 replaced by another run's
    with pytest.warns(UserWarning, match="not resuming"):
        run(tmp_path, first, quick_options(save_every=2), store)


def test_resume_replays_dvclive_history_from_step_zero(tmp_path):
    store, experiment = tiny_store(tmp_path), tiny_experiment(steps=6)
    live = tmp_path / "live"
    options = quick_options(save_every=3)
    val = tiny_images(tmp_path / "valid", count=1, size=40)
    run(tmp_path, experiment, options, store, live_dir=live, val_dir=val)
    # Killed after step 3's checkpoint; as DVC does before a stage runs, outputs are deleted.
    checkpoint_files(tmp_path / "ckpt")[-1].unlink()
    shutil.rmtree(live)
    run(tmp_path, experiment, options, store, live_dir=live, val_dir=val)
    lines = (live / "plots" / "metrics" / "train" / "loss.tsv").read_text().split()
    assert lines[:2] == ["step", "loss"] and [int(s) for s in lines[2::2]] == [1, 2, 3, 4, 5, 6]
    summary = json.loads((live / "metrics.json").read_text())
    # One bicubic baseline per set, in evaluate's eval.json: none in dvclive's summary.
    assert set(summary) == {"train", "val", "step"} and set(summary["val"]) == {"psnr_y", "ssim_y"}
    rows = (live / "plots" / "metrics" / "val" / "psnr_y.tsv").read_text().split()
    assert [int(s) for s in rows[2::2]] == [6]


def test_pretrained_weights_initialise_the_model(tmp_path):
    store = tiny_store(tmp_path)
    run(tmp_path / "a", tiny_experiment(steps=3), quick_options(), store)
    source = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["state_dict"]
    # One step at a negligible lr: the result must sit on the pretrained weights.
    tuned = tiny_experiment(steps=1, lr=1e-12, scheduler="constant")
    pretrained = tmp_path / "a" / "model.pt"
    run(tmp_path / "b", tuned, quick_options(), store, pretrained=pretrained)
    result = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["state_dict"]
    for name, tensor in source.items():
        torch.testing.assert_close(result[name], tensor, rtol=0, atol=1e-9, msg=name)
    wider = tiny_experiment(steps=1, num_feat=12)
    fits = r"does not fit the generator: conv_first.weight is \(12, 3, 3, 3\) in the model and \(8,"
    with pytest.raises(ValueError, match=fits):
        run(tmp_path / "c", wider, quick_options(), store, pretrained=pretrained)


def test_fp16_with_grad_scaler_trains_and_resumes_bitwise(tmp_path, monkeypatch):
    """The CUDA fp16 path (autocast + GradScaler + fused Adam), run on the CPU: it trains, the
    scaler's state is checkpointed, and a resumed run ends on the same weights."""
    seen = forward_dtypes(monkeypatch)
    store, experiment = tiny_store(tmp_path), tiny_experiment(steps=6)
    options = quick_options(precision="fp16")
    run(tmp_path / "whole", experiment, options, store)
    assert set(seen) == {torch.float16}
    saved = latest(tmp_path / "whole" / "ckpt")
    assert saved["scaler"]["scale"] == 2.0**16 and saved["scaler"]["_growth_tracker"] == 6
    assert saved["precision"] == "fp16"
    assert load_model(tmp_path / "whole" / "model.pt")[1]["precision"] == "fp16"
    assert all(math.isfinite(r["train/loss"]) for r in saved["history"])

    run(tmp_path / "resumed", experiment, options, store)
    checkpoint_files(tmp_path / "resumed" / "ckpt")[-1].unlink()  # killed after step 3
    run(tmp_path / "resumed", experiment, options, store)
    assert latest(tmp_path / "resumed" / "ckpt")["scaler"]["_growth_tracker"] == 6  # restored
    whole = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)["state_dict"]
    resumed = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)["state_dict"]
    for name, tensor in whole.items():
        assert torch.equal(resumed[name], tensor), name


def test_channels_last_and_compile_give_the_eager_result(tmp_path):
    """The CUDA defaults (channels_last, torch.compile) run on the CPU too and train the same
    model as the plain eager NCHW loop; the saved weights carry no compile prefixes."""
    store, experiment = tiny_store(tmp_path), tiny_experiment(steps=4)
    run(tmp_path / "eager", experiment, quick_options(), store)
    options = quick_options(channels_last=True, compile=True)
    run(tmp_path / "fast", experiment, options, store)
    eager = torch.load(tmp_path / "eager" / "model.pt", weights_only=True)["state_dict"]
    fast = torch.load(tmp_path / "fast" / "model.pt", weights_only=True)["state_dict"]
    assert fast.keys() == eager.keys()
    for name, tensor in eager.items():
        torch.testing.assert_close(fast[name], tensor, rtol=0, atol=1e-6, msg=name)


def test_every_configurable_loss_has_a_function():
    assert tuple(PIXEL_LOSSES) == config.LOSSES


def test_default_workers_fit_a_two_core_machine(tmp_path, monkeypatch):
    """`workers: auto` starts at most one loader process per available CPU: on 2 cores, 2
    workers and no DataLoader warning about too many of them."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    options = quick_options(workers=config.TrainOptions().workers)
    assert options.workers == "auto" and options.loader_workers == 2
    started = []
    loader = trainer.DataLoader.__init__

    def spying_init(self, *args, **kwargs):
        started.append(kwargs["num_workers"])
        loader(self, *args, **kwargs)

    monkeypatch.setattr(trainer.DataLoader, "__init__", spying_init)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(tmp_path, tiny_experiment(steps=2), options, tiny_store(tmp_path))
    assert started == [2]
    assert not [w for w in caught if "worker" in str(w.message)], [str(w.message) for w in caught]


def test_a_finished_run_deletes_its_checkpoints(tmp_path, monkeypatch):
    """Once model.pt is written the run's checkpoints go (a finished run is never resumed);
    other runs' checkpoints, which may be resumed, stay."""
    store, experiment = tiny_store(tmp_path), tiny_experiment(steps=4)
    other = tmp_path / "ckpt" / "another-run"
    other.mkdir(parents=True)
    (other / "step_000000002.pt").write_bytes(b"a killed run's checkpoint")
    saved = []
    save = ckpt.save
    monkeypatch.setattr(ckpt, "save", lambda *a, **kw: saved.append(save(*a, **kw)) or saved[-1])
    run(tmp_path, experiment, quick_options(save_every=2, keep_checkpoints=False), store)
    assert [p.name for p in saved] == ["step_000000002.pt", "step_000000004.pt"]
    assert (tmp_path / "model.pt").is_file()
    assert not saved[0].parent.exists()
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["another-run"]
    run(tmp_path / "kept", experiment, quick_options(save_every=2), store)  # keep_checkpoints
    assert [
        s
        for s, _ in ckpt.list_checkpoints(
            saved[0].parent.parent.parent / "kept" / "ckpt" / saved[0].parent.name
        )
    ] == [2, 4]
