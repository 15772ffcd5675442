"""The study's lifecycle: a run killed outright leaves its trial RUNNING in the journal; resuming fails it."""

import subprocess
import sys
import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from autoinit.tuner.execution.loop import worker_id
from autoinit.tuner.records.record import STUDY_ATTR_ANCHORS, STUDY_ATTR_POINT_KEYS, TrialRecord, TrialStatus
from autoinit.tuner.sources.config import TuneConfig
from autoinit.tuner.storage import backend as storage
from autoinit.tuner.storage.owner import process_start
from autoinit.tuner.study.lifecycle import (
    create_study,
    fail_lost_trials,
    fail_trials_of,
    fail_trials_of_dead_local_workers,
    retry_interrupted,
)

pytestmark = pytest.mark.multiprocess


def test_trials_of_dead_local_processes_are_failed_and_queued_again(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "j")))
    study = optuna.create_study(storage=storage)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    for worker in (worker_id(gone.pid), worker_id(), "elsewhere:1"):
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        TrialRecord.write(trial, worker=worker)
    assert fail_trials_of_dead_local_workers(study) == [0]
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING, TrialState.WAITING]
    assert "gone" in TrialRecord.of(trials[0]).error
    assert TrialRecord.of(trials[3]).retry_of == 0


def _journal_study(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "j")))
    return optuna.create_study(storage=storage)


def _running(study, **record):
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    if record:
        TrialRecord.write(trial, **record)
    return trial


def test_lost_trials_pid_reused_lease_expired_or_never_owned(tmp_path):
    study = _journal_study(tmp_path)
    now = time.time()
    me = process_start()
    _running(study, worker=worker_id(), worker_start=me)  # 0: alive
    _running(study, worker=worker_id(), worker_start=me.rsplit(":", 1)[0] + ":1")  # 1: its pid reused
    _running(study, worker="elsewhere:1", lease_until=now + 30)  # 2: another host, lease held
    _running(study, worker="elsewhere:2", lease_until=now - 1)  # 3: another host, lease expired
    _running(study)  # 4: killed before it recorded an owner
    assert fail_lost_trials(study, lease_seconds=30, now=now) == [1, 3]
    assert fail_lost_trials(study, lease_seconds=30, now=now + 60) == [2, 4]
    trials = study.get_trials()
    assert [t.state for t in trials[:5]] == [TrialState.RUNNING] + [TrialState.FAIL] * 4
    assert sorted(TrialRecord.of(t).retry_of for t in trials[5:]) == [1, 2, 3, 4]
    assert all(t.state == TrialState.WAITING for t in trials[5:])


def test_a_retry_keeps_the_whole_point_and_the_anchor_flag(tmp_path):
    study = _journal_study(tmp_path)
    study.set_user_attr(STUDY_ATTR_POINT_KEYS, ["gain", "scheme"])
    study.enqueue_trial({"scheme": "orthogonal", "gain": 1.0}, user_attrs=TrialRecord.attrs(anchor=True))
    anchor = study.ask()
    anchor.suggest_categorical("scheme", ["orthogonal", "lsuv"])  # killed before its gain was suggested
    sampled = study.ask()
    sampled.suggest_categorical("scheme", ["orthogonal", "lsuv"])  # killed before its gain was chosen
    for t in (anchor, sampled):
        TrialRecord.write(t, worker="gone:1")
    assert fail_trials_of(study, "gone:1", "died") == [0, 1]
    trials = study.get_trials()
    assert len(trials) == 3  # the sampled trial had no whole point to queue again
    retry = trials[2]
    assert storage.queued_params(retry) == {"scheme": "orthogonal", "gain": 1.0}
    assert TrialRecord.of(retry).anchor and TrialRecord.of(retry).retry_of == 0


def test_interrupted_trials_are_queued_again_once_failed_ones_never(tmp_path):
    study = _journal_study(tmp_path)
    interrupted = _running(study)
    study.tell(interrupted, state=TrialState.FAIL)
    failed = _running(study, status=TrialStatus.FAILED, error="ValueError: boom")
    study.tell(failed, state=TrialState.FAIL)
    assert retry_interrupted(study) == [0]
    assert retry_interrupted(study) == []  # once
    assert [TrialRecord.of(t).retry_of for t in study.get_trials()] == [None, None, 0]


def _config(tmp_path, **tune):
    path = tmp_path / "c.yaml"
    model = {"class_path": "autoinit.templates.DeepMLP", "init_args": {"depth": 3, "width": 8, "in_features": 8}}
    data = {"class_path": "autoinit.templates.TeacherData", "init_args": {"n": 64, "features": 8}}
    tune = {"schemes": ["kaiming_normal", "orthogonal"], "search": "tpe", "output": str(tmp_path / "out"), **tune}
    path.write_text(yaml.safe_dump({"model": model, "data": data, "tune": tune}))
    return TuneConfig(path, [])


def test_anchors_are_queued_once_per_study(tmp_path):
    config = _config(tmp_path)
    schemes = ["default", "kaiming_normal", "orthogonal"]
    study = create_study(config, schemes)
    queued = [storage.queued_params(t) for t in study.get_trials()]
    assert queued == [{"scheme": s, "gain": 1.0} for s in schemes]
    assert study.user_attrs[STUDY_ATTR_ANCHORS] == queued
    first = study.ask()  # one runs, is interrupted; the others wait: a resume queues none of them again
    study.tell(first, state=TrialState.FAIL)
    again = create_study(config, schemes).get_trials()
    assert [t.state for t in again] == [TrialState.FAIL, TrialState.WAITING, TrialState.WAITING, TrialState.WAITING]
    assert [storage.queued_params(t) for t in again[1:]] == [*queued[1:], queued[0]]
    assert TrialRecord.of(again[3]).retry_of == 0 and TrialRecord.of(again[3]).anchor
