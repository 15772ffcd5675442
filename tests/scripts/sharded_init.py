"""Run by tests/test_sharded.py: 2-process CPU fits (gloo) under ModelParallelStrategy with AutoInit, one per
scheme; as training starts each rank saves the gathered full tensor of every parameter to
OUT_DIR/<scheme>-rank<N>.pt. Usage: sharded_init.py OUT_DIR MODEL(fsdp|tp) DRAW(full|local) SCHEME..."""

import os
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from torch.distributed.tensor import DTensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sharded_models import ShardedNet, TensorParallelNet

from autoinit import AutoInit, init_model


class Gather(pl.Callback):
    """Saves the gathered parameters and, made in the same process (QR results depend on the process's
    BLAS threading), single-process init_model on an unsharded copy with the same seed."""

    def __init__(self, path, scheme, reference):
        self.path, self.scheme, self.reference = path, scheme, reference

    def on_fit_start(self, trainer, pl_module):
        full = {
            n: (p.full_tensor() if isinstance(p, DTensor) else p).detach().clone()
            for n, p in pl_module.named_parameters()
        }
        torch.save(full, f"{self.path}-rank{trainer.global_rank}.pt")
        if self.reference:
            copy = type(pl_module)(shard=False)
            copy.configure_model()
            init_model(copy, self.scheme, seed=123, sample_input=copy.example_input_array)
            torch.save(
                {n: p.detach() for n, p in copy.named_parameters()}, f"{self.path}-reference{trainer.global_rank}.pt"
            )


if __name__ == "__main__":
    out, model_kind, draw, *schemes = sys.argv[1:]
    for scheme in schemes:
        torch.manual_seed(1000 + int(os.environ.get("LOCAL_RANK", "0")))  # ranks start different
        if model_kind == "fsdp":
            model, strategy = ShardedNet(), ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1)
        else:
            model, strategy = TensorParallelNet(), ModelParallelStrategy(data_parallel_size=1, tensor_parallel_size=2)
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=2,
            strategy=strategy,
            max_steps=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[
                AutoInit(scheme, seed=123, verbose=False, sharded_draw=draw),
                Gather(f"{out}/{scheme}", scheme, draw == "full"),
            ],
            default_root_dir=out,
        )
        trainer.fit(model)
