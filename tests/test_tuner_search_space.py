"""The search space's sampler and pruner: anchors are never pruned; proposals depend on the study alone."""

import optuna
import pytest
from optuna.trial import TrialState

from autoinit.tuner.records.record import TrialRecord
from autoinit.tuner.search.registry import make_sampler
from autoinit.tuner.search.space import make_pruner
from autoinit.tuner.sources.settings import TuneSettings

SCHEMES = ["default", "kaiming_normal", "orthogonal"]


def _study_with_good_trials(pruner, storage=None):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="spare", storage=storage, pruner=pruner)
    for value in [1 + i / 100 for i in range(20)]:  # enough for every Hyperband bracket
        trial = study.ask()
        for step in range(1, 31):
            trial.report(value, step)
            trial.should_prune()  # Hyperband records its rungs as it is asked
        study.tell(trial, value)
    return study


def _pruned(study, n, **attrs):
    """How many of ``n`` trials (with record ``attrs``) far worse than every trial before are pruned."""
    count = 0
    for _ in range(n):
        trial = study.ask()
        TrialRecord.write(trial, **attrs)
        decisions = []
        for step in range(1, 31):
            trial.report(9.0, step)
            decisions.append(trial.should_prune())
        count += any(decisions)
        study.tell(trial, state=TrialState.FAIL)
    return count


@pytest.mark.parametrize("kind", ["median", "hyperband"])
def test_an_anchor_or_its_retry_is_never_pruned(kind):
    settings = TuneSettings(search="tpe", pruner=kind, steps=30, seeds=1, report_every=10)
    study = _study_with_good_trials(make_pruner(settings, n_anchors=3))
    assert _pruned(study, 10) > 0  # the same curve without the flag is pruned
    assert _pruned(study, 10, anchor=True) == 0
    assert _pruned(study, 10, anchor=True, retry_of=1) == 0


def test_a_heartbeat_retry_of_an_anchor_is_spared(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback()
    storage = optuna.storages.RDBStorage(url, heartbeat_interval=1, heartbeat_stale_trial_callback=retry)
    rdb = _study_with_good_trials(make_pruner(TuneSettings(search="tpe", steps=30, seeds=1), n_anchors=3), storage)
    stale = rdb.ask()
    TrialRecord.write(stale, anchor=True)
    retry(rdb, rdb.get_trials(deepcopy=False)[-1])  # what a stale heartbeat does
    again = rdb.ask()
    assert TrialRecord.of(again).anchor
    for step in range(1, 31):
        again.report(9.0, step)
        assert not again.should_prune()


def _propose(sampler, measured):
    """The point ``sampler`` proposes after the ``measured`` (gain, value) trials."""
    study = optuna.create_study(sampler=sampler)
    dist = {"gain": optuna.distributions.FloatDistribution(0.5, 2.0, log=True)}
    for gain, value in measured:
        study.add_trial(optuna.create_trial(params={"gain": gain}, distributions=dist, value=value))
    trial = study.ask()
    return trial.suggest_float("gain", 0.5, 2.0, log=True)


def test_proposals_depend_on_the_measured_trials_not_on_the_process():
    settings = TuneSettings(search="tpe", sampler_seed=3)
    measured = [(0.5, 2.0), (1.0, 1.0), (2.0, 1.5), (0.8, 1.2)]
    fresh = _propose(make_sampler(settings, SCHEMES), measured)
    used = make_sampler(settings, SCHEMES)
    for _ in range(5):  # a long-lived sampler that has proposed before (the process before a resume)
        _propose(used, measured[:2])
    assert _propose(used, measured) == fresh
    assert _propose(make_sampler(settings, SCHEMES, worker=1), measured) != fresh  # workers differ
