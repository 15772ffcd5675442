"""The loop every trial process runs: take trials from the shared study until it holds ``n_trials`` good
(complete or pruned) trials. Used in-process (one worker), by each worker process, and by the same
command run on several machines against one RDB storage."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import optuna

from autoinit.tuner.common.filelock import FileLock
from autoinit.tuner.records.record import TrialRecord
from autoinit.tuner.records.stop_rule import Action, StopReason
from autoinit.tuner.search.base import Search
from autoinit.tuner.sources.settings import TuneSettings
from autoinit.tuner.storage import backend as storage
from autoinit.tuner.storage.owner import LEASE_INTERVALS, keep_alive, worker_id
from autoinit.tuner.study.lifecycle import fail_lost_trials

__all__ = ["ClaimLock", "OnTrial", "Search", "claim_lock", "optimize", "worker_id"]

# Stop a process whose first trials all fail: the config or the model is broken, not the init.
FAILS_BEFORE_GIVING_UP = 3
WAIT_SECONDS = 0.5
CLAIM_LOCK_NAME = ".claim.lock"

OnTrial = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]
# run_batch(study, room, claim, release): ask at most `room` trials, claim(trial) each once it is RUNNING,
# release() the claim lock when all are, then train and tell them (a population: autoinit.tuner.population.study)
RunBatch = Callable[[optuna.Study, int, Callable[[optuna.Trial], None], Callable[[], None]], None]


class ClaimLock(FileLock):
    """An exclusive lock, shared by the processes of one output folder, held from reading the study's
    progress until this process's next trial is RUNNING (or the launcher has failed and re-queued a dead
    worker's trials): two processes cannot both see one trial missing and both start it."""


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
    search: Search | None = None,
) -> StopReason:
    """Run trials one at a time (or a batch at a time with ``run_batch``) until ``search`` says the study is
    done (by default the base search: ``settings.n_trials`` good trials). Returns why it stopped (EXIT:
    ``should_exit`` asked this process to make way for a fresh one)."""
    search = search or Search(settings, ())
    start = time.monotonic()
    ran = failed_in_a_row = 0
    me = worker_id()
    heartbeat = storage.has_heartbeat(study)
    lease_seconds = LEASE_INTERVALS * settings.heartbeat_interval

    def claimed(trial: optuna.Trial) -> float:
        # The trial is RUNNING now, so every other process counts it: the claim is made. Its owner is
        # recorded before the claim lock is released: no process sees a trial nobody owns.
        with keep_alive(study, settings.heartbeat_interval, optuna_beats=True) as claim:
            claim(trial)
            lock.release()
            return _run(objective, trial)

    while True:
        if settings.timeout is not None and time.monotonic() - start > settings.timeout:
            return StopReason.TIMEOUT
        lock.acquire()
        try:
            # A trial whose process died never finishes: fail it and queue its point again, before the
            # stop rule counts it as running (a study never waits on a dead process). On an RDB its
            # heartbeat goes stale too; a trial claimed but never beaten for is caught by its owner here.
            if heartbeat:
                storage.fail_stale_trials(study)
            fail_lost_trials(study, lease_seconds=lease_seconds)
            action, room = search.next_action(study)
            if action == Action.STOP:
                return StopReason.DONE
            if action == Action.WAIT:
                pass  # the last trials run elsewhere: look again (above) after a while
            elif run_batch is not None:
                with keep_alive(study, settings.heartbeat_interval) as claim:
                    run_batch(study, room, claim, lock.release)
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


def _run(objective: Callable[[optuna.Trial], float], trial: optuna.Trial) -> float:
    try:
        return objective(trial)
    except KeyboardInterrupt:
        # Optuna fails the trial; the record says why, and a resume queues its point again.
        TrialRecord.write(trial, error="interrupted (Ctrl-C): queued again when the study is resumed")
        raise
