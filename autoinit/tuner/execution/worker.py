"""A worker process of ``autoinit tune --workers N``: pulls trials from the shared study until it is done.

Its exit code is a :class:`~autoinit.tuner.records.stop_rule.WorkerExit`: done, failing (its first trials all
failed), or replace me (memory kept growing, or out of memory).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from autoinit.interrupts import INTERRUPTED, die_with, sigterm_is_ctrl_c
from autoinit.tuner.records.record import TrialRecord
from autoinit.tuner.records.stop_rule import WorkerExit


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class MemoryWatch:
    """Asks for a fresh process when memory grew ``limit_mb`` since the first trial, or after an OOM."""

    def __init__(self, limit_mb: float) -> None:
        self.limit_mb = limit_mb
        self.baseline: float | None = None
        self.out_of_memory = False

    def after_trial(self, study, trial) -> None:
        if "out of memory" in TrialRecord.of(trial).error.lower():
            self.out_of_memory = True
        used = _rss_mb() + (torch.cuda.memory_reserved() / 2**20 if torch.cuda.is_available() else 0.0)
        if self.baseline is None:
            self.baseline = used
        self.grown = used - self.baseline

    def should_exit(self) -> bool:
        if self.limit_mb == 0:
            return True
        return self.out_of_memory or (self.baseline is not None and self.grown > self.limit_mb)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="autoinit-worker")
    parser.add_argument("--config", required=True)
    parser.add_argument("--overrides", default="[]")
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--launcher", type=int, default=0, help="the launcher's pid: this worker dies with it")
    args = parser.parse_args(argv)
    sigterm_is_ctrl_c()
    if args.launcher:
        die_with(args.launcher)  # a worker never trains on unsupervised: it stops as at Ctrl-C
    try:
        return _run(args)
    except KeyboardInterrupt:
        return INTERRUPTED


def _run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)

    import dataclasses

    from autoinit.tuner.execution.loop import claim_lock, optimize
    from autoinit.tuner.population.study import population_runner
    from autoinit.tuner.search.registry import search_for
    from autoinit.tuner.sources.config import TuneConfig
    from autoinit.tuner.storage import backend as storage
    from autoinit.tuner.study.lifecycle import load_study
    from autoinit.tuner.trials.objective import make_objective
    from autoinit.tuner.trials.trial import freeze_startup_objects

    config = TuneConfig(args.config, storage.inherited_overrides(json.loads(args.overrides)))
    study, schemes = load_study(config, sampler_seed_offset=args.index)
    search = search_for(config.settings, schemes)
    settings = dataclasses.replace(config.settings, n_trials=search.target_trials())
    watch = MemoryWatch(config.settings.max_worker_growth_mb)
    freeze_startup_objects()
    reason = optimize(
        study,
        make_objective(config, schemes),
        settings,
        lock=claim_lock(config.output),
        on_trial=watch.after_trial,
        should_exit=watch.should_exit,
        run_batch=population_runner(config, schemes, lambda line: print(line, flush=True)),
        search=search,
    )
    return int(WorkerExit.for_reason(reason))


if __name__ == "__main__":
    sys.exit(main())
