"""Reference models and data modules for tune configs and examples. All data is generated in code or
shipped by a package (scikit-learn's digits): nothing is downloaded.

Models: :class:`DeepMLP` (a deep plain MLP with a chosen activation), :class:`SmallCNN`,
:class:`SmallTransformer`, :class:`LSTMClassifier`; residual networks: :class:`ResNetCNN` (BasicBlocks
with BatchNorm), :class:`ResidualMLP` (no normalization), :class:`SmallGPT` (pre-LN, tied embeddings).
Data: :class:`TeacherData` (classification labels from a random teacher network), :class:`DigitsData` (8×8
digit images), :class:`SequenceData` (token sequences labelled by their majority token),
:class:`MarkovData` (next-token prediction on sequences from a random order-2 Markov chain), and two
character-level text tasks on the standard library's own sources (:mod:`autoinit.corpus`), in Hugging Face's
dict batches: :class:`StdlibTextLM` (next-character prediction) and :class:`StdlibTextClasses` (which module
a snippet comes from). Hugging Face ``transformers`` models: :mod:`autoinit.templates_hf`.

The models set no ``example_input_array`` on purpose: data-dependent schemes (LSUV, Yam–Chow) and the
activation trace then see a real training batch, whatever data module the model is paired with — a
synthetic example of the wrong scale would make LSUV normalize the wrong signal.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from autoinit import corpus
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


class ResidualMLP(_Classifier):
    """A stem Linear, ``blocks`` residual blocks x ← x + W₂·φ(W₁·x) of ``width`` units (m = 2 layers per
    branch), no normalization, and a linear head: without normalization, the branches must start small
    or the stream's variance grows with depth (Zhang et al. 2019)."""

    def __init__(
        self,
        in_features: int = 64,
        classes: int = 10,
        blocks: int = 16,
        width: int = 64,
        activation: str = "relu",
        lr: float = 0.05,
        optimizer: str = "sgd",
        momentum: float = 0.9,
    ) -> None:
        super().__init__(lr, optimizer, momentum)
        self.save_hyperparameters()
        self.stem = nn.Linear(in_features, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), make_activation(activation), nn.Linear(width, width))
            for _ in range(blocks)
        )
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x.flatten(1))
        for block in self.blocks:
            x = x + block(x)
        return self.head(x)


class BasicBlock(nn.Module):
    """ResNet's basic block (He et al. 2016): conv–BN–ReLU–conv–BN added to the input (through a strided
    1×1 conv + BN when the shape changes), then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.downsample(x))


class ResNetCNN(_Classifier):
    """A small ResNet for 8×8 images: a 3×3 stem conv + BN + ReLU, ``stages`` stages of ``blocks``
    BasicBlocks (channels doubling and stride 2 from the second stage on), global average pooling and a
    linear head."""

    def __init__(
        self,
        in_channels: int = 1,
        classes: int = 10,
        channels: int = 8,
        stages: int = 2,
        blocks: int = 2,
        lr: float = 0.05,
        optimizer: str = "sgd",
        momentum: float = 0.9,
    ) -> None:
        super().__init__(lr, optimizer, momentum)
        self.save_hyperparameters()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()
        )
        layers: list[nn.Module] = []
        c = channels
        for s in range(stages):
            c_out = channels * 2**s
            for b in range(blocks):
                layers.append(BasicBlock(c, c_out, stride=2 if s > 0 and b == 0 else 1))
                c = c_out
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)).mean((2, 3)))


class GPTBlock(nn.Module):
    """A pre-LN Transformer block (GPT-2): x ← x + proj(attn(LN(x))), x ← x + fc2(GELU(fc1(LN(x))))."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, 4 * d_model)
        self.fc2 = nn.Linear(4 * d_model, d_model)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.ln1(x))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.ln2(x))))


class SmallGPT(_Classifier):
    """A small GPT-style language model: token + learned position embeddings, ``depth`` pre-LN blocks, a
    final LayerNorm and an output layer tied to the token embedding (its weight *is* the embedding table).
    The features are scaled by 1/√d_model before the tied output, as T5 does, so logits start at unit
    scale. Trained on next-token prediction: ``forward(tokens)`` gives logits (batch, time, vocab) and the
    batch is ``(tokens, next tokens)``."""

    def __init__(
        self,
        vocab: int = 8,
        seq_len: int = 16,
        d_model: int = 32,
        heads: int = 4,
        depth: int = 2,
        lr: float = 0.01,
        optimizer: str = "adam",
        momentum: float = 0.9,
    ) -> None:
        super().__init__(lr, optimizer, momentum)
        self.save_hyperparameters()
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(seq_len, d_model)
        self.blocks = nn.ModuleList(GPTBlock(d_model, heads) for _ in range(depth))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab, bias=False)
        self.head.weight = self.tok.weight  # tied input/output embeddings

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.tok(tokens) + self.pos(torch.arange(tokens.shape[1], device=tokens.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x) * self.hparams.d_model**-0.5)

    def training_step(self, batch, batch_idx):
        tokens, targets = batch
        return nn.functional.cross_entropy(self(tokens).flatten(0, 1), targets.flatten())


class _TensorData(pl.LightningDataModule):
    def __init__(self, batch_size: int, seed: int) -> None:
        super().__init__()
        self.batch_size, self.seed = batch_size, seed
        self.dataset: Dataset | None = None

    def make(self, g: torch.Generator) -> Dataset:
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
    """scikit-learn's 1797 handwritten digits (8×8, shipped with the package), scaled to [0, 1] (or, with
    ``standardize=True``, to mean 0 and std 1 over the dataset, as Hugging Face's image processors
    normalize pixels); images of shape (1, 8, 8), or flat vectors of 64 with ``flat=True``."""

    def __init__(self, batch_size: int = 64, flat: bool = False, standardize: bool = False, seed: int = 0) -> None:
        super().__init__(batch_size, seed)
        self.flat, self.standardize = flat, standardize

    def make(self, g: torch.Generator) -> TensorDataset:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
        if self.standardize:
            x = (x - x.mean()) / x.std()
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


class MarkovData(_TensorData):
    """Token sequences from a random order-2 Markov chain (each pair of previous tokens makes a few next
    tokens likely: transition rows drawn from a Dirichlet(``concentration``)), for next-token prediction:
    batches are ``(tokens[:-1], tokens[1:])``. The model must look two tokens back, so attention matters."""

    def __init__(
        self,
        n: int = 2048,
        vocab: int = 8,
        seq_len: int = 16,
        concentration: float = 0.1,
        batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, seed)
        self.n, self.vocab, self.seq_len, self.concentration = n, vocab, seq_len, concentration

    def make(self, g: torch.Generator) -> TensorDataset:
        v = self.vocab
        gamma = torch._standard_gamma(torch.full((v * v, v), self.concentration), generator=g)
        table = gamma / gamma.sum(1, keepdim=True)
        tokens = torch.empty(self.n, self.seq_len + 1, dtype=torch.long)
        tokens[:, :2] = torch.randint(0, v, (self.n, 2), generator=g)
        for t in range(2, self.seq_len + 1):
            rows = table[tokens[:, t - 2] * v + tokens[:, t - 1]]
            tokens[:, t] = torch.multinomial(rows, 1, generator=g).squeeze(1)
        return TensorDataset(tokens[:, :-1], tokens[:, 1:])


class DictDataset(Dataset):
    """Equal-length tensors by name; an item is a dict of their rows, so a batch is a dict of stacked rows
    (Hugging Face's ``input_ids``/``labels`` batches)."""

    def __init__(self, **tensors: torch.Tensor) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {name: t[i] for name, t in self.tensors.items()}


class StdlibTextLM(_TensorData):
    """Next-character prediction on the first ``chars`` characters of the standard library's sources
    (:func:`autoinit.corpus.corpus`, vocabulary of 97), cut into consecutive windows of ``seq_len``.
    Batches are ``{"input_ids", "labels"}`` with ``labels == input_ids``: a causal LM shifts them itself."""

    def __init__(self, chars: int = 200_000, seq_len: int = 64, batch_size: int = 16, seed: int = 0) -> None:
        super().__init__(batch_size, seed)
        self.chars, self.seq_len = chars, seq_len

    def make(self, g: torch.Generator) -> DictDataset:
        ids = corpus.corpus(self.chars)
        windows = ids[: len(ids) // self.seq_len * self.seq_len].view(-1, self.seq_len)
        return DictDataset(input_ids=windows, labels=windows.clone())


class StdlibTextClasses(_TensorData):
    """Which of ``classes`` standard-library modules (:data:`autoinit.corpus.STDLIB_MODULES`, in order) a
    snippet of ``seq_len`` characters comes from: ``n`` snippets a module, at random offsets. Batches are
    ``{"input_ids", "attention_mask", "labels"}`` (the mask is all ones: snippets are never padded)."""

    def __init__(self, classes: int = 2, n: int = 512, seq_len: int = 64, batch_size: int = 32, seed: int = 0) -> None:
        super().__init__(batch_size, seed)
        if not 2 <= classes <= len(corpus.STDLIB_MODULES):
            raise ValueError(f"classes must be between 2 and {len(corpus.STDLIB_MODULES)}, got {classes}")
        self.classes, self.n, self.seq_len = classes, n, seq_len

    def make(self, g: torch.Generator) -> DictDataset:
        snippets, labels = [], []
        for label, name in enumerate(corpus.STDLIB_MODULES[: self.classes]):
            ids = corpus.encode(corpus.module_text(name))
            starts = torch.randint(0, len(ids) - self.seq_len, (self.n,), generator=g)
            snippets.append(ids[starts[:, None] + torch.arange(self.seq_len)])
            labels.append(torch.full((self.n,), label))
        input_ids = torch.cat(snippets)
        return DictDataset(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), labels=torch.cat(labels))
