"""Trials on top of the population engine: K points × ``seeds`` members trained as populations, each point
getting the :class:`~autoinit.tuner.trials.trial.TrialResult` a sequential
:func:`~autoinit.tuner.trials.trial.run_trial` gives it — the same curves, status and pruner reports.

A sequential trial reports the running mean loss at step ``seed·steps + t``. Here all seeds train at once:
seed 0's reports go to the pruner live (a pruned point stops all its members at once, which is where a
sequential trial saves its work too), and the later seeds' reports are replayed in order when the
population ends, so a trial's intermediate values, curves and status are those of the sequential trial.

Also: :func:`probe` (can this config train as a population at all, and if not why), :func:`member_bytes`
and :func:`population_size` (how many members fit in memory).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence

import torch
from lightning.pytorch.utilities.seed import isolate_rng

from autoinit.errors import one_line
from autoinit.noise import quiet_vmap_fallback
from autoinit.tuner.common.noise import quiet_lightning
from autoinit.tuner.population.engine import (
    Member,
    PopulationFailed,
    PopulationUnsupported,
    device_of,
    static_reason,
    train_population,
)
from autoinit.tuner.records.record import TrialStatus
from autoinit.tuner.search.space import Point
from autoinit.tuner.sources.config import TuneConfig
from autoinit.tuner.trials.trial import Reporter, TrialResult, release_memory

# Members a population is never cut below when halving after an out-of-memory.
_MIN_MEMBERS = 1
# A member's peak memory over its stacked parameters: weights, gradients, two optimizer moments and the
# copy taken for a per-member lr_scale.
_STATE_COPIES = 5


def probe(config: TuneConfig) -> str | None:
    """None when ``config`` trains as a population; otherwise why not, in a few words. Static checks
    first, then one step of a two-member population (``.item()`` or data-dependent control flow in
    ``training_step``, an op without a batching rule, a non-element-wise optimizer all show there)."""
    if (why := static_reason(config)) is not None:
        return why
    members = [Member(scheme="default", gain=1.0, seed=seed) for seed in (0, 1)]
    # vmap's per-member loop for an op without a batching rule (attention on CPU) is exact, only slower:
    # not a reason to fall back.
    with isolate_rng(), quiet_vmap_fallback():
        try:
            outcomes = train_population(config, members, steps=1)
        except (PopulationUnsupported, PopulationFailed) as exc:
            return _in_words(str(exc))
        except Exception as exc:  # building the model or data: the sequential trial reports it in full
            return f"the probe step failed: {one_line(exc)}"
    if any(o.error for o in outcomes):
        return f"initialization failed in the probe: {next(o.error for o in outcomes if o.error)}"
    return None


# torch.vmap's messages for what it cannot batch, said as what they mean for the user's code.
_VMAP_LIMITS = (
    (
        r"Batching rule not implemented for (aten::\w+(?:\.\w+)*)",
        "{0} (in the model's forward) cannot be vectorized over members — torch.vmap has no rule for it",
    ),
    (
        r"vmap: It looks like you're calling \.item\(\)",
        "the training step calls .item() (reads a tensor's value in Python), which torch.vmap cannot do for "
        "all members at once — keep it out of training_step/forward (self.log takes tensors) to train "
        "populations",
    ),
    (
        r"vmap: It looks like you're attempting to use a Tensor in some data-dependent control flow",
        "the training step branches in Python on a tensor's value (an `if` on a tensor), which torch.vmap "
        "cannot do for all members at once — use torch.where to train populations",
    ),
)


def _in_words(reason: str) -> str:
    """torch's message for what vmap cannot batch, said as what it means for the user."""
    for pattern, words in _VMAP_LIMITS:
        if (found := re.search(pattern, reason)) is not None:
            return words.format(*found.groups())
    return reason


def member_bytes(config: TuneConfig) -> int:
    """One member's peak memory in a population: its parameters and buffers with their gradients and
    optimizer state, plus the activations its ``training_step`` keeps for the backward pass (measured
    from one forward of the first batch)."""
    from autoinit import data

    with isolate_rng():
        torch.manual_seed(config.settings.data_seed)
        model, datamodule = config.build()
        batch = data.first_batch(model, datamodule)
        state = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
        saved: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        model.train()
        # a failing step is the probe's to report; count what was saved so far. No trainer is attached
        # here, so Lightning would warn about every self.log: noise, not the user's to act on.
        with (
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
            contextlib.suppress(Exception),
            quiet_lightning(),
        ):
            model.training_step(batch, 0)
    return _STATE_COPIES * state + sum(saved.values())


def free_bytes(device: torch.device) -> int:
    """Memory a population may still use on ``device``: free GPU memory, or the system's available RAM."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def population_size(config: TuneConfig, *, cap: int | None = None) -> int:
    """How many members one population holds: ``tune.population_memory_fraction`` of the free memory
    over one member's peak, at most ``cap`` (``tune.population`` when it is a number)."""
    budget = config.settings.population_memory_fraction * free_bytes(device_of(config))
    size = max(_MIN_MEMBERS, int(budget // max(1, member_bytes(config))))
    return min(size, cap) if cap is not None else size


def run_population_trials(
    config: TuneConfig,
    points: Sequence[Point],
    reports: Sequence[Reporter | None],
    *,
    max_members: int | None = None,
) -> list[TrialResult | Exception]:
    """Every point's result of :func:`iter_population_trials`, in the points' order."""
    return [result for _, result in iter_population_trials(config, points, reports, max_members=max_members)]


def iter_population_trials(
    config: TuneConfig,
    points: Sequence[Point],
    reports: Sequence[Reporter | None],
    *,
    max_members: int | None = None,
) -> Iterator[tuple[int, TrialResult | Exception]]:
    """Train every point's seeds as populations of at most ``max_members`` members; yields, per point as
    its population finishes, its index and the ``TrialResult`` of a sequential trial or the exception that
    failed it (its initialization). A caller records each at once: a Ctrl-C in a later population loses
    none that finished.

    Raises :class:`PopulationFailed` when a population fails in a way no member owns, after halving it
    on an out-of-memory down to one point; the caller then runs the points not yielded sequentially.
    """
    seeds = config.settings.seeds
    per_chunk = max(1, (max_members or len(points) * seeds) // seeds)
    start = 0
    while start < len(points):
        chunk = range(start, min(len(points), start + per_chunk))
        try:
            results = _run_chunk(config, [points[i] for i in chunk], [reports[i] for i in chunk])
        except PopulationFailed as exc:
            if not exc.out_of_memory or per_chunk == 1:
                raise
            per_chunk //= 2  # shrink and go on: nothing of this chunk was recorded yet
            release_memory()
            continue
        start = chunk.stop
        release_memory()
        yield from zip(chunk, results, strict=True)


def _run_chunk(
    config: TuneConfig, points: Sequence[Point], reports: Sequence[Reporter | None]
) -> list[TrialResult | Exception]:
    s = config.settings
    seeds, steps, every = s.seeds, s.steps, s.report_every
    members = [Member(scheme=p.scheme, gain=p.gain, lr_scale=p.lr_scale, seed=k) for p in points for k in range(seeds)]
    pruned_live: set[int] = set()

    def watch(step: int, curves: Mapping[int, list[float]]) -> set[int]:
        stop: set[int] = set()
        for m, curve in curves.items():
            point, seed = divmod(m, seeds)
            if seed != 0 or reports[point] is None:
                continue
            if reports[point](step, sum(curve) / len(curve)):
                pruned_live.add(point)
                stop |= {point * seeds + k for k in range(seeds)}
        return stop

    start = time.perf_counter()
    outcomes = train_population(config, members, watch=watch)
    share = (time.perf_counter() - start) / max(1, len(points))
    results: list[TrialResult | Exception] = []
    for i, report in enumerate(reports):
        mine = outcomes[i * seeds : (i + 1) * seeds]
        error = next((o.error for o in mine if o.error), None)
        if error is not None:
            results.append(RuntimeError(error))
            continue
        results.append(_replay([o.curve for o in mine], i in pruned_live, report, steps, every, share))
    return results


def _replay(
    curves: list[list[float]], pruned_live: bool, report: Reporter | None, steps: int, every: int, seconds: float
) -> TrialResult:
    """The sequential trial's result from its seeds' full curves, with seed 0's reports already made live
    and the later seeds' reports made now, in the order a sequential trial makes them."""
    result = TrialResult(seconds=seconds)
    history: list[float] = []
    for seed, full in enumerate(curves):
        values: list[float] = []
        for t, value in enumerate(full, 1):
            values.append(value)
            if not math.isfinite(value):
                result.curves.append(values)
                result.status = TrialStatus.DIVERGED
                return result
            step = seed * steps + t
            if seed > 0 and report is not None and step % every == 0:
                seen = history + values
                if report(step, sum(seen) / len(seen)):
                    result.curves.append(values)
                    result.status = TrialStatus.PRUNED
                    return result
        result.curves.append(values)
        history.extend(values)
        if seed == 0 and pruned_live:
            result.status = TrialStatus.PRUNED
            return result
    return result
