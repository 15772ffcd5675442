"""The trial record: one type that writes and reads a trial's user attrs."""

import optuna
import pytest
from optuna.trial import TrialState

from autoinit.tuner.records import record as records
from autoinit.tuner.records.record import TrialRecord, TrialStatus, trial_status


@pytest.fixture
def study():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study()


def test_write_then_read_round_trips(study):
    trial = study.ask()
    TrialRecord.write(trial, worker="h:1", status=TrialStatus.DIVERGED, curve=[2.0, 1.0], stalled=False)
    study.tell(trial, state=TrialState.PRUNED)
    frozen = study.get_trials()[0]
    assert frozen.user_attrs == {"worker": "h:1", "status": "diverged", "curve": [2.0, 1.0], "stalled": False}
    record = TrialRecord.of(frozen)
    assert record.worker == "h:1" and record.status is TrialStatus.DIVERGED and record.curve == [2.0, 1.0]
    assert record.error == "" and record.seconds is None and not record.anchor
    assert trial_status(frozen) is TrialStatus.DIVERGED


def test_a_misspelt_field_is_an_error():
    with pytest.raises(TypeError):
        TrialRecord.attrs(erorr="x")
    with pytest.raises(TypeError):
        TrialRecord("h:1")  # keyword-only


def test_attr_keys_are_stable():
    assert TrialRecord.attrs(fixed_gain=1.5, retry_of=3, anchor=True, duplicate_of=2) == {
        records.ATTR_FIXED_GAIN: 1.5,
        records.ATTR_RETRY_OF: 3,
        records.ATTR_ANCHOR: True,
        records.ATTR_DUPLICATE_OF: 2,
    }
    assert (records.ATTR_FIXED_GAIN, records.ATTR_RETRY_OF, records.ATTR_ANCHOR) == ("gain", "retry_of", "anchor")


def test_status_of_each_state(study):
    done = study.ask()
    study.tell(done, 1.0)
    pruned = study.ask()
    study.tell(pruned, state=TrialState.PRUNED)
    screened = study.ask()
    TrialRecord.write(screened, status=TrialStatus.PRESCREENED)
    study.tell(screened, state=TrialState.PRUNED)
    failed = study.ask()
    TrialRecord.write(failed, status=TrialStatus.FAILED)
    study.tell(failed, state=TrialState.FAIL)
    study.ask()
    study.enqueue_trial({"x": 1.0})
    assert [trial_status(t) for t in study.get_trials()] == [
        TrialStatus.COMPLETE,
        TrialStatus.PRUNED,
        TrialStatus.PRESCREENED,
        TrialStatus.FAILED,
        TrialStatus.RUNNING,
        TrialStatus.WAITING,
    ]


def test_measured_fields_copy_what_was_measured_only():
    record = TrialRecord(worker="h:1", anchor=True, status=TrialStatus.COMPLETE, curve=[1.0], score_std=0.1)
    assert record.measured() == {"status": TrialStatus.COMPLETE, "curve": [1.0], "score_std": 0.1, "stalled": False}


def test_statuses_rank_best_first():
    ranked = [s for s in TrialStatus if s.ranked]
    assert ranked == [
        TrialStatus.COMPLETE,
        TrialStatus.SCREENED,
        TrialStatus.PRUNED,
        TrialStatus.PRESCREENED,
        TrialStatus.DIVERGED,
    ]
    assert sorted(ranked, key=lambda s: s.rank) == ranked
