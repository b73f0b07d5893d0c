"""The run's metric log: a history kept for checkpoints, mirrored to dvclive on rank 0."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Diagnostics: drawn as curves (dvclive/plots) but kept out of dvclive/metrics.json, so that
# `dvc exp show` has the loss and validation scores, not a column per diagnostic.
CURVES_ONLY = frozenset(
    {"train/lr", "train/grad_norm", "train/patches_per_s", "train/step_ms", "train/skipped_steps"}
)


class MetricLog:
    """Records `{step, name: value}` rows. On the main process with a `live_dir`, each row also
    goes to dvclive; elsewhere it is a null logger, so callers never check ranks.

    DVC deletes a stage's outputs before it runs and a fresh `Live` clears its folder, so a
    resumed run replays the history saved in its checkpoint: the curves continue from step 0.
    """

    def __init__(self, live_dir: Path | None, history: list[dict[str, float]], *, main: bool):
        self.history = list(history)
        self.live = None
        if main and live_dir is not None:
            from dvclive import Live  # only rank 0 pays for the import

            self.live = Live(str(live_dir), dvcyaml=False, save_dvc_exp=False)
            for row in self.history:
                self._write(row)
            self.live.make_summary()

    def _write(self, row: dict[str, float]) -> None:
        live = self.live
        if live is None:
            return
        live.step = int(row["step"])
        for name, value in row.items():
            if name != "step":
                live.log_metric(name, value)
            if name in CURVES_ONLY:
                # dvclive nests "train/lr" as {"train": {"lr": ...}} in its summary.
                section, key = name.split("/")
                live.summary[section].pop(key)

    def log(self, step: int, values: dict[str, float]) -> None:
        """Append a row at `step` (kept in the history, so checkpoints carry it)."""
        row = {"step": step, **values}
        self.history.append(row)
        if self.live is not None:
            self._write(row)
            self.live.make_summary()

    def images(self, images: dict[str, np.ndarray]) -> None:
        if self.live is not None:
            for name, image in images.items():
                self.live.log_image(name, image)

    def close(self) -> None:
        if self.live is not None:
            self.live.end()
