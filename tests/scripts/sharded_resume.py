"""Run by tests/test_sharded.py: a 2-process FSDP2 fit of one step saved as a distributed checkpoint, then a
fit resumed from it with AutoInit (another seed). Rank 0 saves the gathered parameters after the first fit
(OUT_DIR/saved.pt) and as the resumed fit starts training (OUT_DIR/resumed.pt)."""

import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from torch.distributed.tensor import DTensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sharded_models import ShardedNet

from autoinit import AutoInit


def gathered(module):
    return {
        n: (p.full_tensor() if isinstance(p, DTensor) else p).detach().clone() for n, p in module.named_parameters()
    }


class Gather(pl.Callback):
    # ModelParallelStrategy restores after on_fit_start (where AutoInit runs): look once training starts.
    def __init__(self, path):
        self.path = path

    def on_train_start(self, trainer, pl_module):
        full = gathered(pl_module)
        if trainer.is_global_zero:
            torch.save(full, self.path)


def trainer(out, steps, callbacks):
    return pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy=ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1),
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        default_root_dir=out,
    )


if __name__ == "__main__":
    out = Path(sys.argv[1])
    first = trainer(out, 1, [AutoInit("orthogonal", seed=1, verbose=False)])
    first.fit(ShardedNet())
    first.save_checkpoint(out / "ckpt")
    full = gathered(first.lightning_module)
    if first.is_global_zero:
        torch.save(full, out / "saved.pt")
    second = trainer(out, 2, [AutoInit("orthogonal", seed=2, verbose=False), Gather(out / "resumed.pt")])
    second.fit(ShardedNet(), ckpt_path=out / "ckpt")
