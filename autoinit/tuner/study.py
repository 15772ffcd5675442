"""The study's lifecycle: create it (or load it to resume), open it from a worker, and fail the trials of
processes that died so their parameters run again."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from autoinit.errors import AutoInitError
from autoinit.tuner import storage
from autoinit.tuner.records import (
    GOOD_STATES,
    STUDY_ATTR_CONFIG_SHA256,
    STUDY_ATTR_SCHEMES,
    TrialRecord,
)
from autoinit.tuner.search_space import anchors, make_pruner, make_sampler
from autoinit.tuner.source import TrialSource


@dataclass(frozen=True)
class Progress:
    """How far the study is: good (complete or pruned), running and waiting (queued) trials."""

    good: int
    running: int
    waiting: int


def progress(study: optuna.Study) -> Progress:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return Progress(
        good=sum(s in GOOD_STATES for s in states),
        running=states.count(TrialState.RUNNING),
        waiting=states.count(TrialState.WAITING),
    )


def good_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=GOOD_STATES))


def create_study(config: TrialSource, schemes: list[str]) -> optuna.Study:
    """Create the study, or load it to resume; the config must be the one it was made from."""
    s = config.settings
    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(
        study_name=config.study_name,
        storage=storage.open_storage(s, config.output),
        sampler=make_sampler(s, schemes),
        pruner=make_pruner(s, len(schemes)),
        direction="minimize",
        load_if_exists=True,
    )
    sha = config.sha256()
    stored = study.user_attrs.get(STUDY_ATTR_CONFIG_SHA256)
    if stored is None:
        study.set_user_attr(STUDY_ATTR_CONFIG_SHA256, sha)
        study.set_user_attr(STUDY_ATTR_SCHEMES, schemes)
    elif stored != sha:
        raise AutoInitError(
            f"study '{config.study_name}' in this storage was made from a different config: "
            "pass another --tune.study_name (or --tune.output) to start a new study"
        )
    if not storage.is_rdb(storage.storage_target(s, config.output)):
        fail_trials_of_dead_local_workers(study)
    if s.sampler != "grid":
        # Enqueue each anchor not yet measured or queued; an anchor whose trial failed (an interrupted
        # run) is queued again, which Optuna's skip_if_exists would not do.
        live = (*GOOD_STATES, TrialState.WAITING, TrialState.RUNNING)
        seen = [t.params for t in study.get_trials(deepcopy=False, states=live)]
        for params in anchors(s, schemes):
            if params not in seen:
                study.enqueue_trial(params, user_attrs=TrialRecord.attrs(anchor=True))
    return study


def load_study(config: TrialSource, sampler_seed_offset: int = 0) -> tuple[optuna.Study, list[str]]:
    """The study a launcher created, opened by one of its workers (each with its own sampler seed, so
    parallel workers do not propose the same points)."""
    optuna.logging.set_verbosity(logging.WARNING)
    study_storage = storage.open_storage(config.settings, config.output)
    probe = optuna.load_study(study_name=config.study_name, storage=study_storage)
    schemes = list(probe.user_attrs[STUDY_ATTR_SCHEMES])
    s = dataclasses.replace(config.settings, sampler_seed=config.settings.sampler_seed + sampler_seed_offset)
    study = optuna.load_study(
        study_name=config.study_name,
        storage=study_storage,
        sampler=make_sampler(s, schemes),
        pruner=make_pruner(s, len(schemes)),
    )
    return study, schemes


def fail_trials_of(study: optuna.Study, worker: str, why: str) -> list[int]:
    """Mark the running trials of a dead worker failed and queue their parameters again."""
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if TrialRecord.of(t).worker == worker:
            storage.record_on(study, t, error=why)
            if not storage.fail_trial(study, t):
                continue
            study.enqueue_trial(t.params, user_attrs=TrialRecord.attrs(retry_of=t.number))
            failed.append(t.number)
    return failed


def fail_trials_of_dead_local_workers(study: optuna.Study) -> list[int]:
    """Fail (and queue again) the running trials of processes on this machine that no longer exist — a
    run killed outright leaves its trial RUNNING in a journal file, which has no heartbeat."""
    host = socket.gethostname()
    failed = []
    workers = {TrialRecord.of(t).worker for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    for worker in sorted(w for w in workers if w is not None):
        name, _, pid = worker.rpartition(":")
        if name == host and pid.isdigit() and not _alive(int(pid)):
            failed += fail_trials_of(study, worker, f"worker {worker} was gone when the study was resumed")
    return failed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
