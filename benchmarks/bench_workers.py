"""Trials per minute with 1 and 2 worker processes on one machine (CPU-bound config).

Runs `autoinit tune` on the quick-start model with the pruner off (every trial the same length), once
per worker count, and counts trials per minute between the first trial's start and the last one's end
(process start-up excluded). Run by hand:

    .ci/in-venv python benchmarks/bench_workers.py [--trials 16] [--workers 1,2]

Target: at least 1.7x with 2 workers on a CPU-bound config (this machine: 2 cores).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
from optuna.trial import TrialState


def trials_per_minute(config: str, workers: int, trials: int, extra: list[str]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        cmd = [
            sys.executable,
            "-m",
            "autoinit.cli",
            "tune",
            config,
            "--workers",
            str(workers),
            f"--tune.output={out}",
            f"--tune.n_trials={trials}",
            "--tune.pruner=none",
            "--tune.study_name=bench",
            *extra,
        ]
        subprocess.run(cmd, check=True, capture_output=True)
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "study.journal")))
        done = [
            t
            for t in optuna.load_study(study_name="bench", storage=storage).get_trials()
            if t.state == TrialState.COMPLETE
        ]
        span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
        return len(done) / span * 60, span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("extra", nargs="*", help="more config overrides")
    args = parser.parse_args()
    rates = {}
    print("| workers | trials | span s | trials/min | speed-up |")
    print("|---|---|---|---|---|")
    for n in map(int, args.workers.split(",")):
        rate, span = trials_per_minute(args.config, n, args.trials, args.extra)
        rates[n] = rate
        print(f"| {n} | {args.trials} | {span:.1f} | {rate:.1f} | {rate / rates[min(rates)]:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
