"""The stop rule every trial process follows, and the loop that applies it."""

import optuna
import pytest
from optuna.trial import TrialState

from autoinit.tuner.execution.loop import ClaimLock, optimize
from autoinit.tuner.records.stop_rule import Action, StopReason, WorkerExit, next_action
from autoinit.tuner.sources.settings import TuneSettings

RUN, WAIT, STOP = Action.RUN, Action.WAIT, Action.STOP


@pytest.mark.parametrize(
    ("good", "running", "waiting", "n_trials", "action"),
    [
        (0, 0, 0, 3, RUN),  # a fresh study: sample
        (0, 0, 4, 3, RUN),  # anchors queued: take one
        (1, 1, 2, 3, RUN),  # one more is needed: a queued one first
        (2, 0, 1, 3, RUN),
        (2, 1, 0, 3, WAIT),  # the last trial runs elsewhere
        (2, 1, 1, 3, WAIT),  # a queued anchor the study no longer needs: do not start it (the overshoot)
        (1, 2, 5, 3, WAIT),
        (0, 3, 1, 3, WAIT),
        (2, 0, 0, 3, RUN),  # a dead worker's trial was failed: running fell, its retry is next
        (3, 0, 0, 3, STOP),
        (3, 1, 2, 3, STOP),  # done, whatever still runs or waits
        (4, 0, 0, 3, STOP),
        (0, 0, 0, 1, RUN),
        (0, 1, 0, 1, WAIT),
    ],
)
def test_next_action(good, running, waiting, n_trials, action):
    assert next_action(good, running, waiting, n_trials) is action


def test_worker_exit_codes():
    assert WorkerExit.for_reason(StopReason.DONE) == 0
    assert WorkerExit.for_reason(StopReason.TIMEOUT) == 0
    assert WorkerExit.for_reason(StopReason.FAILING) == 3
    assert WorkerExit.for_reason(StopReason.EXIT) == 75


def test_loop_does_not_start_a_queued_trial_the_study_no_longer_needs(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    study.ask()  # a trial running elsewhere: with it the study reaches n_trials
    study.enqueue_trial({"x": 1.0})  # a queued anchor
    ran = []
    reason = optimize(
        study,
        lambda trial: ran.append(trial.number) or 0.0,
        TuneSettings(n_trials=1, timeout=1.0),
        lock=ClaimLock(tmp_path / "lock"),
    )
    assert reason == StopReason.TIMEOUT and ran == []
    assert [t.state for t in study.get_trials()] == [TrialState.RUNNING, TrialState.WAITING]


def test_loop_takes_the_queued_trial_once_the_running_one_is_failed(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    dead = study.ask()
    study.tell(dead, state=TrialState.FAIL)  # what a launcher or a stale heartbeat does to a dead worker's trial
    study.enqueue_trial({"x": 1.0})  # its retry
    reason = optimize(
        study,
        lambda trial: trial.suggest_float("x", 0.0, 2.0),
        TuneSettings(n_trials=1),
        lock=ClaimLock(tmp_path / "lock"),
    )
    assert reason == StopReason.DONE
    retry = study.get_trials()[1]
    assert retry.state == TrialState.COMPLETE and retry.params == {"x": 1.0}
    assert len(study.get_trials()) == 2
