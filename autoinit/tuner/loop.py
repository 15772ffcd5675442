"""The loop every trial process runs: take trials from the shared study until it holds ``n_trials`` good
(complete or pruned) trials. Used in-process (one worker), by each worker process, and by the same
command run on several machines against one RDB storage."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna

from autoinit.tuner import storage
from autoinit.tuner.records import TrialRecord
from autoinit.tuner.settings import TuneSettings
from autoinit.tuner.stop_rule import Action, StopReason, next_action
from autoinit.tuner.study import progress

# Stop a process whose first trials all fail: the config or the model is broken, not the init.
FAILS_BEFORE_GIVING_UP = 3
WAIT_SECONDS = 0.5
CLAIM_LOCK_NAME = ".claim.lock"

OnTrial = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]
# run_batch(study, room, claim, release): ask at most `room` trials, claim(trial) each once it is RUNNING,
# release() the claim lock when all are, then train and tell them (a population: autoinit.tuner.population_study)
RunBatch = Callable[[optuna.Study, int, Callable[[optuna.Trial], None], Callable[[], None]], None]


def worker_id(pid: int | None = None) -> str:
    """Who runs a trial: recorded on it so a launcher can fail the trials of a worker that died."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


class ClaimLock:
    """An exclusive lock, shared by the processes of one output folder, held from reading the study's
    progress until this process's next trial is RUNNING (or the launcher has failed and re-queued a dead
    worker's trials): two processes cannot both see one trial missing and both start it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


def claim_lock(output: Path) -> ClaimLock:
    return ClaimLock(output / CLAIM_LOCK_NAME)


def optimize(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    settings: TuneSettings,
    *,
    lock: ClaimLock,
    on_trial: OnTrial | None = None,
    should_exit: Callable[[], bool] = lambda: False,
    run_batch: RunBatch | None = None,
) -> StopReason:
    """Run trials one at a time until the study is done; returns why it stopped (EXIT: ``should_exit``
    asked this process to make way for a fresh one)."""
    start = time.monotonic()
    ran = failed_in_a_row = 0
    me = worker_id()

    def claimed(trial: optuna.Trial) -> float:
        # The trial is RUNNING now, so every other process counts it: the claim is made.
        TrialRecord.write(trial, worker=me)
        lock.release()
        return objective(trial)

    while True:
        if settings.timeout is not None and time.monotonic() - start > settings.timeout:
            return StopReason.TIMEOUT
        lock.acquire()
        try:
            p = progress(study)
            action = next_action(p.good, p.running, p.waiting, settings.n_trials)
            if action == Action.STOP:
                return StopReason.DONE
            if action == Action.WAIT:
                # The last trials run elsewhere. If one of their processes died, the RDB heartbeat makes
                # the trial stale: fail it here, and its retry is queued for this process to take.
                storage.fail_stale_trials(study)
            elif run_batch is not None:
                run_batch(
                    study,
                    settings.n_trials - p.good - p.running,
                    lambda t: TrialRecord.write(t, worker=me),
                    lock.release,
                )
            else:
                study.optimize(claimed, n_trials=1, catch=(Exception,))
        finally:
            lock.release()
        if action == Action.WAIT:
            time.sleep(WAIT_SECONDS)
            continue
        last = max(
            (t for t in study.get_trials(deepcopy=False) if TrialRecord.of(t).worker == me),
            key=lambda t: t.number,
            default=None,
        )
        ran += 1
        if last is not None and on_trial is not None:
            on_trial(study, last)
        if last is not None and last.state == optuna.trial.TrialState.FAIL:
            failed_in_a_row += 1
            if failed_in_a_row == ran and ran >= FAILS_BEFORE_GIVING_UP:
                return StopReason.FAILING
        else:
            failed_in_a_row = 0
        if should_exit():
            return StopReason.EXIT
