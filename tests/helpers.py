"""Small Lightning models and data shared by the callback and tuner tests."""

from __future__ import annotations

import hashlib
import os

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def blobs(n: int = 256, features: int = 8, classes: int = 3, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, features, generator=g) * 2
    y = torch.randint(0, classes, (n,), generator=g)
    x = centres[y] + torch.randn(n, features, generator=g)
    return TensorDataset(x, y)


class TinyClassifier(pl.LightningModule):
    def __init__(
        self,
        features: int = 8,
        width: int = 32,
        depth: int = 3,
        classes: int = 3,
        lr: float = 0.05,
        lazy: bool = False,
        example: bool = False,
        batch_size: int = 16,
        shuffle: bool = True,
        n: int = 256,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = None if lazy else self._build()
        if example:
            self.example_input_array = torch.randn(4, features)

    def _build(self) -> nn.Module:
        h = self.hparams
        layers: list[nn.Module] = [nn.Linear(h.features, h.width), nn.ReLU()]
        for _ in range(h.depth - 1):
            layers += [nn.Linear(h.width, h.width), nn.ReLU()]
        return nn.Sequential(*layers, nn.Linear(h.width, h.classes))

    def configure_model(self) -> None:
        if self.net is None:
            self.net = self._build()

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def train_dataloader(self):
        return DataLoader(
            blobs(self.hparams.n, self.hparams.features, self.hparams.classes),
            batch_size=self.hparams.batch_size,
            shuffle=self.hparams.shuffle,
        )


class RecordBatches(pl.Callback):
    """Hashes of every training batch, and the parameters as training starts."""

    def __init__(self):
        self.hashes: list[str] = []
        self.start_params: dict[str, torch.Tensor] = {}

    def on_train_start(self, trainer, pl_module):
        self.start_params = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.hashes.append(hashlib.sha256(batch[0].numpy().tobytes()).hexdigest()[:16])


def trainer(tmp_path, callbacks, **kwargs) -> pl.Trainer:
    defaults = dict(
        accelerator="cpu",
        devices=1,
        max_steps=5,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    defaults.update(kwargs)
    return pl.Trainer(callbacks=callbacks, **defaults)


class FlakyMLP(pl.LightningModule):
    """A DeepMLP-like model whose training_step raises for one scheme (user code that fails), or raises
    KeyboardInterrupt once while ``interrupt_file`` exists (a user's Ctrl-C)."""

    def __init__(self, fail_scheme: str = "", interrupt_file: str = "", interrupt_scheme: str = "orthogonal"):
        super().__init__()
        self.fail_scheme, self.interrupt_file, self.interrupt_scheme = fail_scheme, interrupt_file, interrupt_scheme
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)

    def _scheme(self) -> str:
        from autoinit import AutoInit

        return next((c.scheme for c in self.trainer.callbacks if isinstance(c, AutoInit)), "")

    def training_step(self, batch, batch_idx):
        import os

        scheme = self._scheme()
        if scheme == self.fail_scheme or self.fail_scheme == "*":
            raise ValueError(f"boom in user code under {scheme}")
        if self.interrupt_file and scheme == self.interrupt_scheme and os.path.exists(self.interrupt_file):
            os.remove(self.interrupt_file)
            raise KeyboardInterrupt
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


class BlobsData(pl.LightningDataModule):
    def __init__(self, n: int = 256, batch_size: int = 16):
        super().__init__()
        self.n, self.batch_size = n, batch_size

    def train_dataloader(self):
        return DataLoader(blobs(self.n), batch_size=self.batch_size, shuffle=True)


class ResidualMLP(pl.LightningModule):
    """A residual MLP trained on dict batches ``{"x": ..., "y": ...}``."""

    def __init__(self, features: int = 8, width: int = 16, blocks: int = 3, classes: int = 3, lr: float = 0.05):
        super().__init__()
        self.lr = lr
        self.inp = nn.Linear(features, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width)) for _ in range(blocks)
        )
        self.out = nn.Linear(width, classes)

    def forward(self, x):
        h = torch.relu(self.inp(x))
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)

    def training_step(self, batch, batch_idx):
        return nn.functional.cross_entropy(self(batch["x"]), batch["y"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class DictBlobsData(pl.LightningDataModule):
    """``blobs`` as dict samples, so batches are dicts."""

    def __init__(self, n: int = 256, batch_size: int = 16):
        super().__init__()
        self.n, self.batch_size = n, batch_size

    def train_dataloader(self):
        data = blobs(self.n)
        samples = [{"x": x, "y": y} for x, y in zip(data.tensors[0], data.tensors[1], strict=True)]
        return DataLoader(samples, batch_size=self.batch_size, shuffle=True)


class BlockingMLP(FlakyMLP):
    """In a worker process of ``--workers`` (not in the launcher's checks), ``training_step`` says it started
    (an empty file ``started-<pid>`` in ``folder``) and waits until ``folder/release`` exists: a trial that
    stays RUNNING for as long as a test needs, whatever the machine's speed."""

    def __init__(self, folder: str = ""):
        super().__init__()
        self.folder = folder

    def training_step(self, batch, batch_idx):
        import sys
        import time
        from pathlib import Path

        main = getattr(sys.modules["__main__"], "__spec__", None)
        if self.folder and main is not None and main.name == "autoinit.tuner.execution.worker":
            folder = Path(self.folder)
            (folder / f"started-{os.getpid()}").touch()
            while not (folder / "release").exists():
                time.sleep(0.05)
        return super().training_step(batch, batch_idx)


def process_gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (gone, or a zombie not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


class HandRMSNorm(nn.Module):
    """An RMSNorm written out by hand, as Hugging Face's LlamaRMSNorm and T5LayerNorm are: no torch norm class."""

    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
