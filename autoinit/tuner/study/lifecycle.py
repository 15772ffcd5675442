"""The study's lifecycle: create it (or load it to resume), open it from a worker, fail the trials of
processes that died so their parameters run again, and queue again what an interrupted run left undone.

What a study measures does not depend on how often it was interrupted: the anchors are queued once per
study (recorded in its user attrs), a trial whose process died or was interrupted is queued again with its
full point (once), and a sampled trial lost before it chose its whole point is proposed again by the
sampler, which is seeded per trial from the study's own state (see :mod:`autoinit.tuner.search.space`).
"""

from __future__ import annotations

import math
import time

import optuna
from optuna.trial import TrialState

from autoinit.errors import AutoInitError
from autoinit.noise import quiet_optuna_info
from autoinit.tuner.records.record import (
    STUDY_ATTR_CONFIG,
    STUDY_ATTR_CONFIG_SHA256,
    STUDY_ATTR_POINT_KEYS,
    STUDY_ATTR_SCHEMES,
    TrialRecord,
    TrialStatus,
)
from autoinit.tuner.search.registry import search_for
from autoinit.tuner.search.space import anchors
from autoinit.tuner.sources.source import TrialSource
from autoinit.tuner.storage import backend as storage
from autoinit.tuner.storage import owner


def create_study(
    config: TrialSource, schemes: list[str], study_storage: optuna.storages.BaseStorage | None = None
) -> optuna.Study:
    """Create the study, or load it to resume; the config must be the one it was made from.
    ``study_storage``: the config's storage when the caller has it open already.

    On a resume, the trials of processes that are gone are failed, and every trial that was lost or
    interrupted (not failed by the user's code) is queued again, once.
    """
    s = config.settings
    search = search_for(s, schemes)
    quiet_optuna_info()
    study = optuna.create_study(
        study_name=config.study_name,
        storage=study_storage or storage.open_storage(s, config.output),
        sampler=search.sampler(),
        pruner=search.pruner(),
        direction="minimize",
        load_if_exists=True,
    )
    sha = config.sha256()
    stored = study.user_attrs.get(STUDY_ATTR_CONFIG_SHA256)
    if stored is None:
        study.set_user_attr(STUDY_ATTR_CONFIG_SHA256, sha)
        study.set_user_attr(STUDY_ATTR_SCHEMES, schemes)
        study.set_user_attr(STUDY_ATTR_POINT_KEYS, sorted(anchors(s, schemes)[0]))
        study.set_user_attr(STUDY_ATTR_CONFIG, config.measured())
    elif stored != sha:
        changed = config.changes_from(study.user_attrs.get(STUDY_ATTR_CONFIG) or {})
        raise AutoInitError(
            f"study '{config.study_name}' in this storage was made from a different config"
            + (f" (changed: {changed})" if changed and STUDY_ATTR_CONFIG in study.user_attrs else "")
            + ": change it back to resume, or pass another --tune.study_name (or --tune.output) to start a new study"
        )
    # On an RDB too: a trial whose process died before its first heartbeat never goes stale.
    fail_lost_trials(study, lease_seconds=owner.LEASE_INTERVALS * s.heartbeat_interval)
    retry_interrupted(study)
    search.prepare(study)
    return study


def load_study(config: TrialSource, sampler_seed_offset: int = 0) -> tuple[optuna.Study, list[str]]:
    """The study a launcher created, opened by one of its workers (each with its own sampler seed, so
    parallel workers do not propose the same points)."""
    quiet_optuna_info()
    study_storage = storage.open_storage(config.settings, config.output)
    probe = optuna.load_study(study_name=config.study_name, storage=study_storage)
    schemes = list(probe.user_attrs[STUDY_ATTR_SCHEMES])
    search = search_for(config.settings, schemes)
    study = optuna.load_study(
        study_name=config.study_name,
        storage=study_storage,
        sampler=search.sampler(sampler_seed_offset),
        pruner=search.pruner(),
    )
    return study, schemes


def queue_retry(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> int | None:
    """Queue the point of a failed trial again (an anchor's retry is an anchor too); returns the retry's
    number, or None for a sampled trial lost before it chose its whole point: nothing was measured, and
    the sampler proposes the point again."""
    params = storage.queued_params(trial)
    keys = study.user_attrs.get(STUDY_ATTR_POINT_KEYS)
    if keys is not None and not set(keys) <= set(params):
        return None
    record = TrialRecord.of(trial)
    attrs = TrialRecord.attrs(retry_of=trial.number, anchor=record.anchor)
    if record.fidelity is not None:  # a halving round's point: its retry trains at the same fidelity
        attrs.update(TrialRecord.attrs(fidelity=record.fidelity))
    study.enqueue_trial(params, user_attrs=attrs)
    return max(t.number for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def fail_and_retry(study: optuna.Study, trial: optuna.trial.FrozenTrial, why: str) -> bool:
    """Mark another process's RUNNING trial failed (recording why) and queue its point again; False when
    it finished in the meantime."""
    storage.record_on(study, trial, error=why)
    if not storage.fail_trial(study, trial):
        return False
    queue_retry(study, trial)
    return True


def fail_trials_of(study: optuna.Study, worker: str, why: str) -> list[int]:
    """Mark the running trials of a dead worker failed and queue their parameters again."""
    return [
        t.number
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if TrialRecord.of(t).worker == worker and fail_and_retry(study, t, why)
    ]


def fail_lost_trials(study: optuna.Study, *, lease_seconds: float, now: float | None = None) -> list[int]:
    """Fail (and queue again) every RUNNING trial whose owner is known to be gone: its process on this host
    no longer exists (or its pid now belongs to another process), its lease expired (another host), or it
    never recorded an owner and started more than ``lease_seconds`` ago: a study never waits on a dead
    process (on an RDB, the heartbeat covers a process on another host once it has beaten)."""
    now = time.time() if now is None else now
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        record = TrialRecord.of(t)
        why = owner.lost_why(record, now=now)
        if why is None and record.worker is None:
            started = t.datetime_start.timestamp() if t.datetime_start else math.inf
            if now - started > lease_seconds:
                why = "its process died before recording itself on the trial"
        if why is not None and fail_and_retry(study, t, why):
            failed.append(t.number)
    return failed


def fail_trials_of_dead_local_workers(study: optuna.Study) -> list[int]:
    """Fail (and queue again) the running trials of processes on this machine that no longer exist — a
    run killed outright leaves its trial RUNNING in a journal file, which has no heartbeat."""
    return fail_lost_trials(study, lease_seconds=math.inf, now=-math.inf)


def retry_interrupted(study: optuna.Study) -> list[int]:
    """Queue again, once, every failed trial the user's code did not fail: interrupted (Ctrl-C), its
    process gone, its heartbeat stale. Returns the numbers of the trials queued again."""
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in storage.retry_of(t)}
    queued = []
    for t in trials:
        if t.state != TrialState.FAIL or t.number in retried:
            continue
        if TrialRecord.of(t).status == TrialStatus.FAILED:  # the user's code raised: it would again
            continue
        if queue_retry(study, t) is not None:
            queued.append(t.number)
    return queued
