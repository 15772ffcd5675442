"""Models for tests/test_sharded.py, shared by the 2-process scripts and the single-process reference."""

import json
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

# The schemes the 2-process fits initialize and tests/test_sharded.py checks, bit for bit.
PER_BLOCK = [
    "default",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
    "delta_orthogonal",
    "auto",
]
TP_SCHEMES = ["kaiming_normal", "orthogonal", "auto"]


class ShardedNet(pl.LightningModule):
    """Conv → tanh → conv → relu → linear → LayerNorm → gelu → attention → linear, plus an embedding with a
    padding row, built in configure_model and sharded per layer with FSDP2 (``shard=True``). Uneven sizes
    (7 classes, 11 embeddings) give uneven shards."""

    def __init__(self, shard: bool = True):
        super().__init__()
        self.shard = shard
        self.example_input_array = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(7))
        self.net = None

    def configure_model(self):
        if self.net is not None:
            return
        self.net = nn.ModuleDict(
            {
                "conv1": nn.Conv2d(3, 8, 3, padding=1),
                "conv2": nn.Conv2d(8, 8, 3, padding=1),
                "fc": nn.Linear(512, 64),
                "norm": nn.LayerNorm(64),
                "attn": nn.MultiheadAttention(16, 2, batch_first=True),
                "emb": nn.Embedding(11, 64, padding_idx=0),
                "head": nn.Linear(64, 7),
            }
        )
        if self.shard:
            for layer in self.net.values():
                fully_shard(layer, mesh=self.device_mesh["data_parallel"])
            fully_shard(self, mesh=self.device_mesh["data_parallel"])

    def forward(self, x):
        n = self.net
        h = torch.relu(n["conv2"](torch.tanh(n["conv1"](x))))
        h = torch.nn.functional.gelu(n["norm"](n["fc"](h.flatten(1))))
        s = h.view(h.shape[0], 4, 16)
        h = n["attn"](s, s, s, need_weights=False)[0].reshape(h.shape[0], 64)
        h = h + n["emb"](torch.ones(h.shape[0], dtype=torch.long, device=h.device))
        return n["head"](h)

    def training_step(self, batch, batch_idx):
        return self(batch[0]).logsumexp(-1).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        data = torch.utils.data.TensorDataset(torch.randn(16, 3, 8, 8, generator=g))
        return torch.utils.data.DataLoader(data, batch_size=4)


class TensorParallelNet(pl.LightningModule):
    """A column-parallel Linear (Shard(0)) feeding a row-parallel Linear (Shard(1)) through a ReLU, then a
    Linear whose weight is replicated on the tensor-parallel mesh (``Replicate``)."""

    def __init__(self, shard: bool = True):
        super().__init__()
        self.shard = shard
        self.example_input_array = torch.randn(4, 16, generator=torch.Generator().manual_seed(7))
        self.up = self.down = self.out = None

    def configure_model(self):
        if self.up is not None:
            return
        self.up, self.down, self.out = nn.Linear(16, 32), nn.Linear(32, 24), nn.Linear(24, 5)
        if self.shard:
            tp = self.device_mesh["tensor_parallel"]
            parallelize_module(self, tp, {"up": ColwiseParallel(), "down": RowwiseParallel()})
            from torch.distributed.tensor import Replicate, distribute_module, distribute_tensor

            def replicate(name, module, mesh):
                for pname, p in list(module.named_parameters(recurse=False)):
                    module.register_parameter(pname, nn.Parameter(distribute_tensor(p, mesh, [Replicate()])))

            distribute_module(
                self.out,
                tp,
                replicate,
                input_fn=lambda mod, inputs, mesh: tuple(
                    torch.distributed.tensor.DTensor.from_local(t, mesh, [Replicate()]) for t in inputs
                ),
                output_fn=lambda mod, out, mesh: out.to_local(),
            )

    def forward(self, x):
        return self.out(self.down(torch.relu(self.up(x))))

    def training_step(self, batch, batch_idx):
        return self(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        data = torch.utils.data.TensorDataset(torch.randn(16, 16, generator=g))
        return torch.utils.data.DataLoader(data, batch_size=4)


class WideMLP(pl.LightningModule):
    """Six 2048×2048 Linear layers (96 MiB in float32), built in ``__init__`` (so under
    ``trainer.init_module(empty_init=True)`` on the meta device) and sharded in configure_model."""

    def __init__(self, shard: bool = True, width: int = 2048, depth: int = 6):
        super().__init__()
        self.shard = shard
        self.layers = nn.Sequential(*(m for _ in range(depth) for m in (nn.Linear(width, width), nn.ReLU())))
        # Built under init_module(empty_init=True): name the device, or the example input is on meta too.
        self.example_input_array = torch.randn(2, width, generator=torch.Generator().manual_seed(7), device="cpu")

    def configure_model(self):
        if self.shard:
            for m in self.layers:
                if isinstance(m, nn.Linear):
                    fully_shard(m, mesh=self.device_mesh["data_parallel"])
            fully_shard(self, mesh=self.device_mesh["data_parallel"])

    def forward(self, x):
        return self.layers(x)

    def training_step(self, batch, batch_idx):
        return self(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-3)

    def train_dataloader(self):
        data = torch.utils.data.TensorDataset(torch.randn(8, 2048, generator=torch.Generator().manual_seed(0)))
        return torch.utils.data.DataLoader(data, batch_size=2)


class SmallShardedMLP(pl.LightningModule):
    """A small ReLU MLP in the layout Lightning documents for ModelParallelStrategy: layers built in
    ``__init__``, each Linear ``fully_shard``-ed in configure_model (so ``autoinit tune`` can probe the
    unsharded model in its own process). Trains on its own fixed random regression data. With ``record``
    (a folder), each rank appends what its fit started with to ``record/rank<N>.jsonl``."""

    def __init__(self, width: int = 16, depth: int = 3, shard: bool = True, record: str | None = None):
        super().__init__()
        self.shard, self.record = shard, record
        self.layers = nn.Sequential(*(m for _ in range(depth) for m in (nn.Linear(width, width), nn.ReLU())))
        self.head = nn.Linear(width, 1)
        self.example_input_array = torch.randn(8, width, generator=torch.Generator().manual_seed(7), device="cpu")

    def configure_model(self):
        if self.shard:
            for m in [*self.layers, self.head]:
                if isinstance(m, nn.Linear):
                    fully_shard(m, mesh=self.device_mesh["data_parallel"])
            fully_shard(self, mesh=self.device_mesh["data_parallel"])

    def forward(self, x):
        return self.head(self.layers(x))

    def on_train_start(self):
        if self.record is None:
            return
        autoinit = next(c for c in self.trainer.callbacks if type(c).__name__ == "AutoInit")
        weight = self.layers[0].weight
        line = {
            "world_size": self.trainer.world_size,
            "strategy": type(self.trainer.strategy).__name__,
            "sharded": all(isinstance(p, DTensor) for p in self.parameters()),
            "local_rows": weight.to_local().shape[0] if isinstance(weight, DTensor) else weight.shape[0],
            "scheme": autoinit.summary.get("scheme"),
            "initialized": autoinit.summary.get("initialized"),
        }
        with open(Path(self.record, f"rank{self.global_rank}.jsonl"), "a") as f:
            f.write(json.dumps(line) + "\n")

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(64, self.example_input_array.shape[1], generator=g)
        data = torch.utils.data.TensorDataset(x, x[:, :1].sin() + 0.1 * torch.randn(64, 1, generator=g))
        return torch.utils.data.DataLoader(data, batch_size=8)
