# %% [markdown]
# # Tune the init from Python, then train with it
#
# Notebook-style (each `# %%` is a cell in VS Code / Jupytext); runs on CPU in well under a minute:
#
#     .ci/in-venv python examples/tune_in_python.py
#
# The model is a 12-layer plain ReLU MLP (no normalization, no residuals): under PyTorch's default init
# its signal fades with depth and it barely learns at first — the kind of net whose init matters.

# %%
from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

import autoinit


class DeepNet(pl.LightningModule):
    def __init__(self, depth: int = 12, width: int = 32, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        layers: list[nn.Module] = [nn.Linear(16, width), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Linear(width, width), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(width, 4))
        self.losses: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = nn.functional.cross_entropy(self(batch["x"]), batch["y"])
        self.losses.append(loss.item())
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)


class TeacherBatches(pl.LightningDataModule):
    """Labels from a random teacher network; dict batches {"x", "y"}."""

    def __init__(self, n: int = 2048, batch_size: int = 64) -> None:
        super().__init__()
        self.n, self.batch_size = n, batch_size

    def setup(self, stage: str) -> None:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(self.n, 16, generator=g)
        y = (x @ torch.randn(16, 4, generator=g)).argmax(1)
        self.samples = [{"x": xi, "y": yi} for xi, yi in zip(x, y, strict=True)]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.samples, batch_size=self.batch_size, shuffle=True)


# %% [markdown]
# ## Tune
# The model goes in as a class with its arguments (every trial builds a fresh one); the data as a
# datamodule class. Any `tune` key of a YAML config is a keyword here.

# %%
result = autoinit.tune(
    DeepNet,
    model_args={"depth": 12, "width": 32},
    datamodule=TeacherBatches,
    trainer={"accelerator": "cpu"},
    schemes=["kaiming_normal", "xavier_uniform", "orthogonal"],
    steps=40,
    seeds=2,
    output="autoinit-out/tune-in-python",
)
print(result)
print(f"pick: {result.scheme} gain={result.gain:.3g}, {result.improvement:+.0%} vs PyTorch's default")

# %% [markdown]
# `result.ranking` holds every measured trial, best first; `result.plot()` is the loss-curve figure
# (a notebook shows it inline); `result.to_yaml(path)` writes the pick as `best.yaml`.

# %%
for row in result.ranking[:5]:
    print(f"#{row.number:<3} {row.scheme:<15} gain={row.gain:<6.3g} score={row.score}")
result.plot().savefig("autoinit-out/tune-in-python/curves_from_python.png")


# %% [markdown]
# ## Train with the pick
# `result.callback()` is an `AutoInit` set to the pick; it also logs the pick and its improvement to the
# trainer's loggers as hyperparameters.


# %%
def train(callbacks: list[pl.Callback]) -> float:
    pl.seed_everything(0, verbose=False)
    model = DeepNet(depth=12, width=32)
    pl.Trainer(
        max_steps=150,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    ).fit(model, datamodule=TeacherBatches())
    return sum(model.losses[-30:]) / 30


tuned = train([result.callback(verbose=False)])
default = train([])
print(f"mean loss over the last 30 of 150 steps: tuned init {tuned:.3f}, PyTorch default {default:.3f}")
