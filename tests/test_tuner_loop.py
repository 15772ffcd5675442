"""The trial loop: it records a trial's owner, keeps its lease, and never waits on a dead process."""

import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from autoinit.tuner.execution.loop import ClaimLock, optimize, worker_id
from autoinit.tuner.records.record import TrialRecord
from autoinit.tuner.records.stop_rule import StopReason
from autoinit.tuner.sources.settings import TuneSettings
from autoinit.tuner.storage.owner import process_start


def _journal_study(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "j")))
    return optuna.create_study(storage=storage)


def test_a_running_trial_records_its_owner_and_holds_a_lease(tmp_path):
    study = _journal_study(tmp_path)
    seen = []

    def objective(trial):
        frozen = study.get_trials(deepcopy=False)[trial.number]
        seen.append((TrialRecord.of(frozen), time.time()))
        return trial.suggest_float("x", 0.0, 1.0)

    settings = TuneSettings(n_trials=2, heartbeat_interval=5)
    assert optimize(study, objective, settings, lock=ClaimLock(tmp_path / "lock")) == StopReason.DONE
    for record, now in seen:
        assert record.worker == worker_id() and record.worker_start == process_start()
        assert now < record.lease_until <= now + 3 * 5


@pytest.mark.multiprocess
def test_a_dead_processs_trial_is_failed_and_run_again_not_waited_on(tmp_path):
    study = _journal_study(tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = study.ask()
    dead.suggest_float("x", 0.0, 1.0)
    TrialRecord.write(dead, worker=worker_id(gone.pid))
    settings = TuneSettings(n_trials=1, timeout=60)  # the timeout only turns a hang into a failure
    reason = optimize(study, lambda t: t.suggest_float("x", 0.0, 1.0), settings, lock=ClaimLock(tmp_path / "lock"))
    assert reason == StopReason.DONE
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].params == trials[0].params and TrialRecord.of(trials[1]).retry_of == 0


def test_ctrl_c_in_a_trial_is_recorded_on_it(tmp_path):
    study = _journal_study(tmp_path)

    def objective(trial):
        trial.suggest_float("x", 0.0, 1.0)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        optimize(study, objective, TuneSettings(n_trials=1), lock=ClaimLock(tmp_path / "lock"))
    trial = study.get_trials()[0]
    assert trial.state == TrialState.FAIL and "interrupted" in TrialRecord.of(trial).error


def test_population_trials_beat_from_their_claim_on_a_heartbeat_storage(tmp_path):
    """Each trial of a batch has a heartbeat row as soon as it is claimed: a process killed while it claims
    the rest leaves trials that go stale, not trials that run forever."""
    import sqlite3

    from autoinit.tuner.storage.owner import keep_alive

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'hb.db'}", heartbeat_interval=60)
    study = optuna.create_study(storage=storage)

    def beating():
        with sqlite3.connect(tmp_path / "hb.db") as db:
            return db.execute("select count(*) from trial_heartbeats").fetchone()[0]

    with keep_alive(study, 60) as claim:
        for n in range(3):
            claim(study.ask())
            assert beating() == n + 1
            assert TrialRecord.of(study.get_trials(deepcopy=False)[n]).worker == worker_id()
