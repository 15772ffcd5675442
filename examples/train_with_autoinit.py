"""Train a 20-layer plain ReLU MLP on generated data, with PyTorch's default init and with AutoInit,
and print the first steps of both loss curves. Needs no download; runs on CPU in about ten seconds.

    .ci/in-venv python examples/train_with_autoinit.py
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from autoinit import AutoInit


def make_data(n: int = 2048, features: int = 32, classes: int = 10) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(features, classes, generator=g)
    x = torch.randn(n, features, generator=g)
    return TensorDataset(x, (x @ teacher).argmax(1))


class DeepMLP(pl.LightningModule):
    def __init__(self, depth: int = 20, width: int = 64, lr: float = 0.01):
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(32, width), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Linear(width, width), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(width, 10))
        self.lr = lr
        self.losses: list[float] = []

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.losses.append(loss.item())
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)

    def train_dataloader(self):
        return DataLoader(make_data(), batch_size=64, shuffle=True)


def train(callbacks: list[pl.Callback]) -> list[float]:
    pl.seed_everything(0, verbose=False)
    model = DeepMLP()
    pl.Trainer(
        max_steps=200,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    ).fit(model)
    return model.losses


def main() -> None:
    default = train([])
    auto = train([AutoInit("auto", seed=0, verbose=False)])
    print(f"{'step':>5}  {'PyTorch default':>16}  {'AutoInit(auto)':>15}")
    for step in (0, 10, 25, 50, 100, 150, 199):
        print(f"{step:>5}  {default[step]:>16.3f}  {auto[step]:>15.3f}")
    print(f"mean loss over 200 steps: default {sum(default) / len(default):.3f}, AutoInit {sum(auto) / len(auto):.3f}")


if __name__ == "__main__":
    main()
