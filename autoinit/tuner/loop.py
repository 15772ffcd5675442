"""The loop every trial process runs: take trials from the shared study until it holds ``n_trials`` good
(complete or pruned) trials. Used in-process (one worker), by each worker process, and by the same
command run on several machines against one RDB storage."""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from autoinit.tuner.settings import TuneSettings
from autoinit.tuner.study import GOOD_STATES

# Stop a process whose first trials all fail: the config or the model is broken, not the init.
FAILS_BEFORE_GIVING_UP = 3


def worker_id() -> str:
    """Who runs a trial: recorded on it so a launcher can fail the trials of a worker that died."""
    return f"{socket.gethostname()}:{os.getpid()}"


def optimize(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    settings: TuneSettings,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    should_exit: Callable[[], bool] = lambda: False,
) -> str:
    """Run trials one at a time until the study is done; returns why it stopped: "done", "timeout",
    "failing" or "exit" (``should_exit`` asked this worker to make way for a fresh one)."""
    start = time.monotonic()
    ran = failed_in_a_row = 0

    def tagged(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", worker_id())
        return objective(trial)

    while True:
        if settings.timeout is not None and time.monotonic() - start > settings.timeout:
            return "timeout"
        trials = study.get_trials(deepcopy=False, states=(*GOOD_STATES, TrialState.RUNNING, TrialState.WAITING))
        good = sum(t.state in GOOD_STATES for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        if good >= settings.n_trials:
            return "done"
        if good + running >= settings.n_trials and not waiting:
            # The last trials run elsewhere. If one of their processes died, the RDB heartbeat makes the
            # trial stale: fail it here, and its retry is queued as WAITING for this process to take.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            time.sleep(0.5)
            continue
        study.optimize(tagged, n_trials=1, catch=(Exception,))
        last = max(
            (t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("worker") == worker_id()),
            key=lambda t: t.number,
            default=None,
        )
        ran += 1
        if last is not None and on_trial is not None:
            on_trial(study, last)
        if last is not None and last.state == TrialState.FAIL:
            failed_in_a_row += 1
            if failed_in_a_row == ran and ran >= FAILS_BEFORE_GIVING_UP:
                return "failing"
        else:
            failed_in_a_row = 0
        if should_exit():
            return "exit"
