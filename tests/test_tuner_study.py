"""The study's lifecycle: a run killed outright leaves its trial RUNNING in the journal; resuming fails it."""

import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from autoinit.tuner.loop import worker_id
from autoinit.tuner.records import TrialRecord
from autoinit.tuner.study import fail_trials_of_dead_local_workers

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
