"""Run by tests/test_sharded.py: every 2-process CPU case (gloo, ModelParallelStrategy) in one launch, since
starting two Python processes that import torch and Lightning costs more than the fits themselves. Usage:
``sharded_fits.py OUT_DIR``; it writes, per case (``OUT_DIR/<case>-rank<N>.pt``: every parameter's gathered
full tensor as training starts, per rank):

- ``meta``: a WideMLP (96 MiB) built under ``trainer.init_module(empty_init=True)``, AutoInit kaiming_normal;
  also ``meta-rank<N>.json`` with the peak RSS growth (MiB) while AutoInit ran. First, in a fresh process,
  so no earlier fit's freed memory hides a growth.
- ``fsdp-<scheme>``: ShardedNet under FSDP2, every per-block scheme and lsuv, ``sharded_draw="full"``.
- ``tp-<scheme>``: TensorParallelNet (column-, row-parallel and replicated Linear), three schemes and lsuv.
- ``local-kaiming_normal``: ShardedNet, ``sharded_draw="local"``.
- ``resume-saved`` / ``resume-resumed``: a one-step fit saved as a distributed checkpoint, then a fit
  resumed from it with AutoInit (another seed), gathered once training starts.

Ends cleanly: a barrier, then ``destroy_process_group()`` (Lightning destroys the group at exit only for
NCCL; a gloo group left alive at interpreter exit can abort the process, "terminate called without an
active exception"), and rank 0 waits for rank 1 and exits non-zero if it did not exit cleanly.
"""

import json
import os
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from torch.distributed.tensor import DTensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sharded_models import PER_BLOCK, TP_SCHEMES, ShardedNet, TensorParallelNet, WideMLP

from autoinit import AutoInit


def gathered(module):
    return {
        n: (p.full_tensor() if isinstance(p, DTensor) else p).detach().clone() for n, p in module.named_parameters()
    }


class Gather(pl.Callback):
    """Saves every parameter's gathered full tensor, on every rank, at ``hook``: ``on_fit_start`` (right
    after AutoInit) or ``on_train_start`` (after ModelParallelStrategy restored a checkpoint)."""

    def __init__(self, path, hook="on_fit_start"):
        self.path = path
        setattr(self, hook, self._save)

    def _save(self, trainer, pl_module):
        torch.save(gathered(pl_module), f"{self.path}-rank{trainer.global_rank}.pt")


def _rss_mib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    raise RuntimeError(field)


class PeakBefore(pl.Callback):
    def on_fit_start(self, trainer, pl_module):
        Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
        self.start = _rss_mib("VmRSS")


class PeakAfter(pl.Callback):
    def __init__(self, before, path):
        self.before, self.path = before, path

    def on_fit_start(self, trainer, pl_module):
        info = {"peak_growth_mib": _rss_mib("VmHWM") - self.before.start}
        Path(f"{self.path}-rank{trainer.global_rank}.json").write_text(json.dumps(info))


def trainer(out, *, data_parallel=2, steps=0, callbacks=()):
    return pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy=ModelParallelStrategy(data_parallel_size=data_parallel, tensor_parallel_size=2 // data_parallel),
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
        default_root_dir=out,
    )


def start_ranks_apart():
    torch.manual_seed(1000 + int(os.environ.get("LOCAL_RANK", "0")))  # AutoInit must not rely on equal RNGs


def finish(timings, out):
    """Both ranks past their last collective, then the process group destroyed on each; rank 0 reaps rank 1."""
    rank = torch.distributed.get_rank()
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    if rank != 0:
        return 0
    Path(out, "timings.json").write_text(json.dumps(timings))
    failed = []
    while True:  # Lightning's launcher started rank 1 as our child and does not wait for it
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if os.waitstatus_to_exitcode(status) != 0:
            failed.append(f"child {pid} exited with {os.waitstatus_to_exitcode(status)}")
    if failed:
        print("; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    out = Path(sys.argv[1])
    timings = {}

    def timed(case, fn):
        begin = time.perf_counter()
        fn()
        timings[case] = round(time.perf_counter() - begin, 2)

    def meta():
        before = PeakBefore()
        autoinit = AutoInit("kaiming_normal", seed=5, verbose=False)
        t = trainer(out, callbacks=[before, autoinit, PeakAfter(before, out / "meta"), Gather(out / "meta")])
        with t.init_module(empty_init=True):
            model = WideMLP()
        assert all(p.is_meta for p in model.parameters())  # built on meta, materialized by the strategy
        t.fit(model)

    def init_fits(case, cls, data_parallel, draw, schemes):
        for scheme in schemes:
            start_ranks_apart()
            callbacks = [AutoInit(scheme, seed=123, verbose=False, sharded_draw=draw), Gather(out / f"{case}-{scheme}")]
            trainer(out, data_parallel=data_parallel, callbacks=callbacks).fit(cls())

    def resume():
        first = trainer(out, steps=1, callbacks=[AutoInit("orthogonal", seed=1, verbose=False)])
        first.fit(ShardedNet())
        first.save_checkpoint(out / "ckpt")
        torch.save(gathered(first.lightning_module), out / f"resume-saved-rank{first.global_rank}.pt")
        callbacks = [AutoInit("orthogonal", seed=2, verbose=False), Gather(out / "resume-resumed", "on_train_start")]
        trainer(out, steps=2, callbacks=callbacks).fit(ShardedNet(), ckpt_path=out / "ckpt")

    timed("meta", meta)
    timed("fsdp", lambda: init_fits("fsdp", ShardedNet, 2, "full", [*PER_BLOCK, "lsuv"]))
    timed("tp", lambda: init_fits("tp", TensorParallelNet, 1, "full", [*TP_SCHEMES, "lsuv"]))
    timed("local", lambda: init_fits("local", ShardedNet, 2, "local", ["kaiming_normal"]))
    timed("resume", resume)
    sys.exit(finish(timings, out))
