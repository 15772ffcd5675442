"""Reference models and data modules for tune configs and examples. All data is generated in code or
shipped by a package (scikit-learn's digits): nothing is downloaded.

Models: :class:`DeepMLP` (a deep plain MLP with a chosen activation), :class:`SmallCNN`,
:class:`SmallTransformer`, :class:`LSTMClassifier`. Data: :class:`TeacherData` (classification labels
from a random teacher network), :class:`DigitsData` (8×8 digit images), :class:`SequenceData` (token
sequences labelled by their majority token).

The models set no ``example_input_array`` on purpose: data-dependent schemes (LSUV, Yam–Chow) and the
activation trace then see a real training batch, whatever data module the model is paired with — a
synthetic example of the wrong scale would make LSUV normalize the wrong signal.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from autoinit.nn import CReLU

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "linear": nn.Identity,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "softsign": nn.Softsign,
    "crelu": CReLU,
}


def make_activation(name: str) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}': valid are {', '.join(sorted(_ACTIVATIONS))}")
    return _ACTIVATIONS[name]()


class _Classifier(pl.LightningModule):
    """Cross-entropy training with SGD (momentum) or Adam; LightningCLI's `optimizer:` overrides it."""

    def __init__(self, lr: float, optimizer: str, momentum: float) -> None:
        super().__init__()
        self.lr, self.optimizer_name, self.momentum = lr, optimizer, momentum

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        if self.optimizer_name == "adam":
            return torch.optim.Adam(self.parameters(), lr=self.lr)
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=self.momentum)


class DeepMLP(_Classifier):
    """``depth`` Linear layers of ``width`` units with ``activation`` between them, no normalization and
    no residuals — the setting where initialization decides whether training starts at all."""

    def __init__(
        self,
        in_features: int = 32,
        classes: int = 10,
        depth: int = 20,
        width: int = 64,
        activation: str = "relu",
        lr: float = 0.01,
        optimizer: str = "sgd",
        momentum: float = 0.9,
        bias: bool = True,
    ) -> None:
        super().__init__(lr, optimizer, momentum)
        self.save_hyperparameters()
        widen = 2 if activation == "crelu" else 1
        layers: list[nn.Module] = [nn.Linear(in_features, width, bias=bias), make_activation(activation)]
        for _ in range(depth - 2):
            layers += [nn.Linear(width * widen, width, bias=bias), make_activation(activation)]
        layers.append(nn.Linear(width * widen, classes, bias=bias))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class SmallCNN(_Classifier):
    """``depth`` 3×3 convolutions of ``channels`` channels (no normalization), global average pooling and
    a linear head; for 8×8 single-channel images (scikit-learn's digits)."""

    def __init__(
        self,
        in_channels: int = 1,
        classes: int = 10,
        depth: int = 4,
        channels: int = 16,
        activation: str = "relu",
        lr: float = 0.01,
        optimizer: str = "sgd",
        momentum: float = 0.9,
    ) -> None:
        super().__init__(lr, optimizer, momentum)
        self.save_hyperparameters()
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(depth):
            layers += [nn.Conv2d(c, channels, 3, padding=1), make_activation(activation)]
            c = channels
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


class SmallTransformer(_Classifier):
    """Token embedding + learned positions, ``depth`` post-norm Transformer encoder layers, mean pooling
    and a linear head."""

    def __init__(
        self,
        vocab: int = 16,
        seq_len: int = 16,
        classes: int = 16,
        d_model: int = 32,
        heads: int = 4,
        depth: int = 2,
        lr: float = 0.001,
        optimizer: str = "adam",
        momentum: float = 0.9,
    ) -> None:
        super().__init__(lr, optimizer, momentum)
        self.save_hyperparameters()
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(seq_len, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, 2 * d_model, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        return self.head(self.encoder(self.embed(tokens) + self.pos(positions)).mean(1))


class LSTMClassifier(_Classifier):
    """Token embedding, a (stacked) LSTM, and a linear head on the last hidden state."""

    def __init__(
        self,
        vocab: int = 16,
        classes: int = 16,
        embed: int = 32,
        hidden: int = 64,
        layers: int = 1,
        lr: float = 0.01,
        optimizer: str = "adam",
        momentum: float = 0.9,
    ) -> None:
        super().__init__(lr, optimizer, momentum)
        self.save_hyperparameters()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(tokens))
        return self.head(out[:, -1])


class _TensorData(pl.LightningDataModule):
    def __init__(self, batch_size: int, seed: int) -> None:
        super().__init__()
        self.batch_size, self.seed = batch_size, seed
        self.dataset: TensorDataset | None = None

    def make(self, g: torch.Generator) -> TensorDataset:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is None:
            self.dataset = self.make(torch.Generator().manual_seed(self.seed))

    def train_dataloader(self) -> DataLoader:
        self.setup()
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=True, drop_last=True)


class TeacherData(_TensorData):
    """Inputs x ~ N(0, I); labels from a random 2-layer tanh teacher network: a learnable, non-linear
    classification task of any size."""

    def __init__(
        self, n: int = 4096, features: int = 32, classes: int = 10, batch_size: int = 64, seed: int = 0
    ) -> None:
        super().__init__(batch_size, seed)
        self.n, self.features, self.classes = n, features, classes

    def make(self, g: torch.Generator) -> TensorDataset:
        hidden = 4 * self.features
        w1 = torch.randn(self.features, hidden, generator=g) / math.sqrt(self.features)
        w2 = torch.randn(hidden, self.classes, generator=g) / math.sqrt(hidden)
        x = torch.randn(self.n, self.features, generator=g)
        return TensorDataset(x, (torch.tanh(2 * x @ w1) @ w2).argmax(1))


class DigitsData(_TensorData):
    """scikit-learn's 1797 handwritten digits (8×8, shipped with the package), scaled to [0, 1]; images
    of shape (1, 8, 8), or flat vectors of 64 with ``flat=True``."""

    def __init__(self, batch_size: int = 64, flat: bool = False, seed: int = 0) -> None:
        super().__init__(batch_size, seed)
        self.flat = flat

    def make(self, g: torch.Generator) -> TensorDataset:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
        x = x if self.flat else x.reshape(-1, 1, 8, 8)
        return TensorDataset(x, torch.tensor(digits.target, dtype=torch.long))


class SequenceData(_TensorData):
    """Random token sequences labelled by their most frequent token (ties: the smallest): the model must
    aggregate over the whole sequence."""

    def __init__(self, n: int = 4096, vocab: int = 16, seq_len: int = 16, batch_size: int = 64, seed: int = 0) -> None:
        super().__init__(batch_size, seed)
        self.n, self.vocab, self.seq_len = n, vocab, seq_len

    def make(self, g: torch.Generator) -> TensorDataset:
        tokens = torch.randint(0, self.vocab, (self.n, self.seq_len), generator=g)
        counts = torch.nn.functional.one_hot(tokens, self.vocab).sum(1)
        return TensorDataset(tokens, counts.argmax(1))
