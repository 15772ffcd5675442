"""Tune, then train: pick the init for a model with `autoinit tune`, then fit with the winner.

    python examples/tune_then_train.py

Runs the quick-start tune (about a minute on 2 CPU cores), then trains the same model for 300 steps with
`AutoInit.from_file(best.yaml)` and with PyTorch's default init, and prints both final losses.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl

from autoinit import AutoInit
from autoinit.templates import DeepMLP, DigitsData
from autoinit.tuner.run import tune
from autoinit.tuner.sources.config import TuneConfig

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"


class LastLoss(pl.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def train(callbacks: list[pl.Callback]) -> float:
    pl.seed_everything(0, verbose=False)
    record = LastLoss()
    model = DeepMLP(in_features=64, classes=10, depth=20, width=32, lr=0.02)
    pl.Trainer(
        max_steps=300,
        accelerator="auto",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[*callbacks, record],
    ).fit(model, datamodule=DigitsData(flat=True))
    return sum(record.losses[-30:]) / 30


def main() -> None:
    config = TuneConfig(CONFIG, ["--tune.output=autoinit-out/tune-then-train"])
    tune(config)
    best = config.output / "best.yaml"
    tuned = train([AutoInit.from_file(best)])
    default = train([])
    print(f"mean loss over the last 30 of 300 steps: tuned init {tuned:.3f}, PyTorch default {default:.3f}")


if __name__ == "__main__":
    main()
