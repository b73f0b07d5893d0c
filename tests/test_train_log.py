"""The trainer's log rows: the window between two rows, whatever validation and checkpoints do."""

from __future__ import annotations

import json
import time

import pytest

from claritycore.training import trainer
from claritycore.training.live import CURVES_ONLY, MetricLog
from tests.helpers import history, quick_options, run, tiny_experiment, tiny_images, tiny_store

VALIDATION_SECONDS = 0.6


def test_window_ignores_validation_and_checkpoints_between_log_rows(tmp_path, monkeypatch):
    """val_every < log_every: each row still counts the steps since the previous row, and the
    seconds spent validating are not charged to the training steps."""

    score_set = trainer.score_set

    def slow_scoring(*args, **kwargs):
        time.sleep(VALIDATION_SECONDS)
        return score_set(*args, **kwargs)

    monkeypatch.setattr(trainer, "score_set", slow_scoring)
    options = quick_options(log_every=3, val_every=2, save_every=5)
    valid = tiny_images(tmp_path / "valid", count=1, size=24)
    run(tmp_path, tiny_experiment(steps=30), options, tiny_store(tmp_path), val_dir=valid)
    rows = [row for row in history(tmp_path / "ckpt") if "train/step_ms" in row]
    assert sum("val/psnr_y" in row for row in history(tmp_path / "ckpt")) == 15
    assert [r["step"] for r in rows] == list(range(3, 31, 3))
    assert [r["train/skipped_steps"] for r in rows] == [0] * 10
    for row in rows:
        # The 3-step window holds one or two validations (0.6 s each): charged to the steps,
        # they would add 200-400 ms to every step of this 8-channel model.
        assert 0 < row["train/step_ms"] < 1000 * VALIDATION_SECONDS / 3, row
        assert row["train/patches_per_s"] * row["train/step_ms"] / 1000 == pytest.approx(4)


def test_a_short_run_logs_its_loss_ten_times(tmp_path):
    """log_every=50 in a 20-step run would give one point: the trainer logs every 2 steps."""
    run(tmp_path, tiny_experiment(steps=20), quick_options(log_every=50, save_every=20),
        tiny_store(tmp_path))  # fmt: skip
    assert [r["step"] for r in history(tmp_path / "ckpt")] == list(range(2, 21, 2))


def test_diagnostics_are_curves_not_summary_metrics(tmp_path):
    """`dvc exp show` reads dvclive/metrics.json: the loss and scores, not the diagnostics."""
    live = tmp_path / "dvclive"
    log = MetricLog(live, [], main=True)
    for step in (1, 2):
        log.log(step, {"train/loss": 0.5 / step, **{name: 1.0 for name in CURVES_ONLY}})
    log.log(2, {"val/psnr_y": 30.0})
    log.close()
    summary = json.loads((live / "metrics.json").read_text())
    assert summary == {"train": {"loss": 0.25}, "val": {"psnr_y": 30.0}, "step": 2}
    for name in CURVES_ONLY:
        rows = (live / "plots" / "metrics" / f"{name}.tsv").read_text().splitlines()
        assert len(rows) == 3, name  # header + two steps
