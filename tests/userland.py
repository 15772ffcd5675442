"""A new user's code, written as users write it: a residual network trained on dict batches, a datamodule
that writes its data in ``prepare_data`` and reads it in ``setup`` (the MNIST/CIFAR pattern), a model with
its own data hooks, and a one-shot stream. Importable as ``userland`` (tests/ is on sys.path), so configs
can name its classes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

FEATURES, CLASSES = 8, 3


def make_samples(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, FEATURES, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long()


class DictDataset(Dataset):
    """Samples as dicts, so the default collate gives ``{"x": (B, F), "y": (B,)}`` batches."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, input_key: str = "x") -> None:
        self.x, self.y, self.input_key = x, y, input_key

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {self.input_key: self.x[i], "y": self.y[i]}


class Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(torch.relu(self.fc1(h)))


class ResidualDictNet(pl.LightningModule):
    """forward(x); training batches are dicts (the input under ``input_key``). ``mode`` makes it misbehave
    on purpose."""

    def __init__(self, width: int = 32, blocks: int = 3, mode: str = "ok", input_key: str = "x") -> None:
        super().__init__()
        self.mode, self.input_key = mode, input_key
        self.stem = nn.Linear(FEATURES, width)
        self.blocks = nn.Sequential(*[Residual(width) for _ in range(blocks)])
        self.head = nn.Linear(width, CLASSES)
        self.seen: list[str] = []  # hashes of the batches training_step received

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "forward_error":
            raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied (16x{x.shape[1]} and 7x32)")
        return self.head(self.blocks(torch.relu(self.stem(x))))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int):
        x = batch[self.input_key]
        self.seen.append(hashlib.sha256(x.numpy().tobytes()).hexdigest()[:16])
        loss = nn.functional.cross_entropy(self(x), batch["y"])
        self.log("train_loss", loss)  # needs a Trainer
        self.log("step", float(self.trainer.global_step))
        if self.mode == "none":
            return None
        if self.mode == "dict_no_loss":
            return {"train_loss": loss}
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


class FileData(pl.LightningDataModule):
    """Downloads (writes) in prepare_data, loads in setup: setup alone raises FileNotFoundError."""

    def __init__(
        self, root: str, n: int = 128, batch_size: int = 16, shuffle: bool = True, input_key: str = "x"
    ) -> None:
        super().__init__()
        self.root, self.n, self.batch_size, self.shuffle = Path(root), n, batch_size, shuffle
        self.input_key = input_key
        self.dataset: DictDataset | None = None

    def prepare_data(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        torch.save(make_samples(self.n), self.root / "data.pt")
        with open(self.root / "prepare_calls", "a") as f:  # how often the "download" ran
            f.write(f"{os.getpid()}\n")

    def setup(self, stage: str) -> None:
        x, y = torch.load(self.root / "data.pt")
        self.dataset = DictDataset(x, y, self.input_key)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=self.shuffle, drop_last=True)


class OwnLoaderNet(pl.LightningModule):
    """No datamodule: prepare_data, setup and train_dataloader on the model; (x, y) tuple batches."""

    def __init__(self, root: str, n: int = 64, width: int = 16) -> None:
        super().__init__()
        self.root, self.n = Path(root), n
        self.net = nn.Sequential(nn.Linear(FEATURES, width), nn.Tanh(), nn.Linear(width, CLASSES))
        self.data: torch.utils.data.TensorDataset | None = None

    def prepare_data(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        torch.save(make_samples(self.n, seed=1), self.root / "own.pt")

    def setup(self, stage: str) -> None:
        self.data = torch.utils.data.TensorDataset(*torch.load(self.root / "own.pt"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=16, shuffle=True)


class OneShotStream(IterableDataset):
    """A stream that can be read once, like a socket or a generator over a remote shard: every iterator
    shares the same position."""

    def __init__(self, n: int = 96) -> None:
        x, y = make_samples(n, seed=2)
        self._it = iter([(x[i], y[i]) for i in range(n)])

    def __iter__(self):
        return self._it


class StreamNet(pl.LightningModule):
    def __init__(self, example: bool = False) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, CLASSES))
        self.stream = OneShotStream()
        self.seen: list[str] = []
        if example:
            self.example_input_array = torch.zeros(2, FEATURES)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.seen.append(hashlib.sha256(x.numpy().tobytes()).hexdigest()[:16])
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)

    def train_dataloader(self):
        return DataLoader(self.stream, batch_size=8)


def to_input(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """A batch_to_input for configs: ``batch_to_input: userland.to_input``."""
    return batch["features"]
