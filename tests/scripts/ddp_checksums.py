"""Run by tests/test_callback.py: a 2-process CPU DDP fit (gloo) with AutoInit; each rank writes a checksum
of every parameter as training starts to OUT_DIR/rank<N>.json."""

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import TinyClassifier

from autoinit import AutoInit


class Checksums(pl.Callback):
    def on_train_start(self, trainer, pl_module):
        sums = {k: float(v.double().sum()) + float((v.double() ** 2).sum()) for k, v in pl_module.state_dict().items()}
        Path(sys.argv[1], f"rank{trainer.global_rank}.json").write_text(json.dumps(sums))


if __name__ == "__main__":
    torch.manual_seed(1000 + int(__import__("os").environ.get("LOCAL_RANK", "0")))  # ranks start different
    model = TinyClassifier(lazy=True)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[AutoInit("kaiming_normal", seed=123, verbose=False), Checksums()],
        default_root_dir=sys.argv[1],
    )
    trainer.fit(model)
    # End cleanly: Lightning destroys the process group at exit only for NCCL, and a gloo group left alive at
    # interpreter exit can abort the process on a loaded machine ("terminate called without an active
    # exception", exit -6; as in sharded_fits.py).
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
