"""How far a study is: its good (complete or pruned), running and waiting trials, the counts the stop rule
(:func:`~autoinit.tuner.records.stop_rule.next_action`) decides from."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from autoinit.tuner.records.record import GOOD_STATES


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
