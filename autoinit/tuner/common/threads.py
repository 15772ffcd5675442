"""How many CPU threads a training step gets: a small step trains on one thread, in a population and in a
sequential trial alike."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch

# On CPU, a step below this many floating-point operations trains on one thread: its ops are too small to
# split, and split ops wait on each other when the machine is busy (the quick start's population trained
# 10× slower on 2 threads than on 1 at a load average of 3.5 on 2 cores, a small GRU's sequential trial
# 50× slower; the same on an idle machine). A rule on the work, not on the load: the thread count changes
# float rounding, and a study's scores must not depend on how busy the machine was.
ONE_THREAD_BELOW_FLOPS = 5e9


def step_flops(params: Mapping[str, torch.Tensor], batch: Any) -> float:
    """A step's floating-point operations, roughly: 6 × parameters × rows of the batch (forward and
    backward of a dense layer per row; a row is the batch tensor's leading dims but its last)."""
    leaves: list[torch.Tensor] = []

    def collect(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            leaves.append(value)
        elif isinstance(value, Mapping):
            for v in value.values():
                collect(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                collect(v)

    collect(batch)
    rows = max((t.numel() // max(1, t.shape[-1]) if t.dim() > 1 else t.numel() for t in leaves), default=1)
    return 6.0 * sum(p.numel() for p in params.values()) * rows


def one_thread_for(device: torch.device, params: Mapping[str, torch.Tensor], batch: Any) -> bool:
    """Whether a step over ``params`` and ``batch`` on ``device`` should train on one CPU thread."""
    return device.type == "cpu" and torch.get_num_threads() > 1 and step_flops(params, batch) < ONE_THREAD_BELOW_FLOPS


@contextmanager
def small_step_threads(device: torch.device, params: Mapping[str, torch.Tensor], batch: Any) -> Iterator[None]:
    """While held, one CPU thread where :func:`one_thread_for` says so (else the threads as they are): for
    the work around a small step too — an init's small QRs and passes wait on each other's threads on a
    busy machine (orthogonal's 32×32 QR: 0.1 ms on one thread, 1–3 ms on two at a load of 6 on 2 cores)."""
    before = torch.get_num_threads()
    if one_thread_for(device, params, batch):
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
