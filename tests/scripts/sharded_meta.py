"""Run by tests/test_sharded.py: a WideMLP (96 MiB) built on the meta device with
``trainer.init_module(empty_init=True)``, sharded over 2 CPU ranks by ModelParallelStrategy, initialized by
AutoInit. Each rank writes OUT_DIR/meta-rank<N>.json with the peak RSS growth (MiB) while AutoInit ran,
and rank 0 the gathered parameters to OUT_DIR/meta.pt."""

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from torch.distributed.tensor import DTensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sharded_models import WideMLP

from autoinit import AutoInit


def _rss_mib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    raise RuntimeError(field)


class Before(pl.Callback):
    def on_fit_start(self, trainer, pl_module):
        Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
        self.start = _rss_mib("VmRSS")
        self.was_meta = any(p.is_meta for p in pl_module.parameters())


class After(pl.Callback):
    def __init__(self, before, out):
        self.before, self.out = before, out

    def on_fit_start(self, trainer, pl_module):
        growth = _rss_mib("VmHWM") - self.before.start
        info = {"peak_growth_mib": growth, "was_meta": self.before.was_meta}
        Path(self.out, f"meta-rank{trainer.global_rank}.json").write_text(json.dumps(info))
        full = {n: p.full_tensor() if isinstance(p, DTensor) else p.detach() for n, p in pl_module.named_parameters()}
        if trainer.is_global_zero:
            torch.save(full, f"{self.out}/meta.pt")


if __name__ == "__main__":
    out = sys.argv[1]
    before = Before()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy=ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1),
        max_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[
            before,
            AutoInit(sys.argv[2] if len(sys.argv) > 2 else "kaiming_normal", seed=5, verbose=False),
            After(before, out),
        ],
        default_root_dir=out,
    )
    with trainer.init_module(empty_init=True):
        model = WideMLP()
    assert all(p.is_meta for p in model.parameters())
    trainer.fit(model)
