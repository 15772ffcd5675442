"""A worker process of ``autoinit tune --workers N``: pulls trials from the shared study until it is done.

Exit codes: 0 done, 3 its first trials all failed, 75 replace me (memory kept growing, or out of memory).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

REPLACE_ME = 75
FAILING = 3


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
        if "out of memory" in trial.user_attrs.get("error", "").lower():
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
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    import dataclasses

    from autoinit.tuner.config import TuneConfig
    from autoinit.tuner.optimize import optimize
    from autoinit.tuner.study import load_study, make_objective, target_trials
    from autoinit.tuner.trial import freeze_startup_objects

    config = TuneConfig(args.config, json.loads(args.overrides))
    study, schemes = load_study(config, sampler_seed_offset=args.index)
    settings = dataclasses.replace(config.settings, n_trials=target_trials(config.settings, schemes))
    watch = MemoryWatch(config.settings.max_worker_growth_mb)
    freeze_startup_objects()
    reason = optimize(study, make_objective(config, schemes), settings, watch.after_trial, watch.should_exit)
    return {"exit": REPLACE_ME, "failing": FAILING}.get(reason, 0)


if __name__ == "__main__":
    sys.exit(main())
