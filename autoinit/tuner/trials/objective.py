"""The Optuna objective: suggest a point, pre-screen it, train it (in this process or as DDP ranks),
record what happened on the trial, and return its score."""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from autoinit.errors import one_line
from autoinit.noise import quiet_already_reported
from autoinit.tuner.records.record import TrialRecord, TrialStatus
from autoinit.tuner.records.scores import downsample, is_stalled, mean_curve, trial_score
from autoinit.tuner.search.registry import search_type
from autoinit.tuner.search.space import Fidelity, Point, suggest
from autoinit.tuner.sources.source import TrialSource
from autoinit.tuner.trials.ddp import run_ddp_trial, trial_devices
from autoinit.tuner.trials.loggers import trial_logger
from autoinit.tuner.trials.screening import screened_out
from autoinit.tuner.trials.trial import TrialResult, pruner_reporter, run_trial

Start = Callable[[optuna.Trial], "Point | float"]
Finish = Callable[[optuna.Trial, Point, Callable[[], TrialResult]], float]
Train = Callable[[optuna.Trial, Point], TrialResult]


class _OneLineTrialFailures(logging.Filter):
    """Optuna logs a failed trial with its full traceback; the trial's record already holds the error in
    one line (trials.csv, the console), so the log keeps Optuna's one-line message only."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        return True


def _one_line_trial_failures() -> None:
    logger = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, _OneLineTrialFailures) for f in logger.filters):
        logger.addFilter(_OneLineTrialFailures())


def config_at(config: TrialSource, fidelity: Fidelity | None) -> TrialSource:
    """``config`` training ``fidelity``'s steps × seeds (itself when None or already the full fidelity); the
    copy shares what was built once (``prepare_data`` ran)."""
    s = config.settings
    if fidelity is None or fidelity.is_full(s):
        return config
    at = copy.copy(config)
    at.settings = dataclasses.replace(s, steps=fidelity.steps, seeds=fidelity.seeds)
    return at


def make_objective(config: TrialSource, schemes: list[str]) -> Callable[[optuna.Trial], float]:
    """The objective every trial process of the study runs."""
    start, finish, train = objective_parts(config, schemes)

    def objective(trial: optuna.Trial) -> float:
        point = start(trial)
        if not isinstance(point, Point):
            return point  # measured before
        return finish(trial, point, lambda: train(trial, point))

    return objective


def objective_parts(config: TrialSource, schemes: list[str]) -> tuple[Start, Finish, Train]:
    """The objective in its three parts, for a caller that trains many trials at once (a population):
    ``start(trial)`` suggests and screens the point (raises TrialPruned when pre-screened; returns the
    value of an identical trial measured before), ``train(trial, point)`` trains it, and
    ``finish(trial, point, result)`` records the result (``result()`` gives it or raises the trial's error) and
    returns the score or raises TrialPruned."""
    s = config.settings
    prescreens = search_type(s).prescreens
    _one_line_trial_failures()
    world_size = trial_devices(config)
    log_trial = trial_logger(config) if s.log_trials else None  # a logger it cannot use: error now

    def train(trial: optuna.Trial, point: Point) -> TrialResult:
        if world_size > 1:
            return run_ddp_trial(config, trial, point, world_size)
        at = config_at(config, point.fidelity)
        return run_trial(at, point.scheme, point.gain, lr_scale=point.lr_scale, report=pruner_reporter(trial))

    def start(trial: optuna.Trial) -> Point | float:
        record = TrialRecord.of(trial)
        point = dataclasses.replace(suggest(trial, s, schemes), fidelity=Fidelity.from_attr(record.fidelity))
        # The halving search's short round 0 is its screen (in a population, cheaper than a pre-screen pass).
        if prescreens and not record.anchor and (why := screened_out(config, point.scheme, point.gain)):
            TrialRecord.write(trial, status=TrialStatus.PRESCREENED, prescreen=why)
            raise optuna.TrialPruned("pre-screened")

        # A point already measured (TPE re-proposes categorical points) costs nothing: same config, same
        # seeds, same fidelity, same result.
        for done in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if (
                done.params == trial.params
                and done.number != trial.number
                and TrialRecord.of(done).fidelity == record.fidelity
            ):
                TrialRecord.write(trial, **TrialRecord.of(done).measured(), seconds=0.0, duplicate_of=done.number)
                return float(done.value)
        return point

    def finish(trial: optuna.Trial, point: Point, result_of: Callable[[], TrialResult]) -> float:
        try:
            result = result_of()
        except Exception as exc:
            TrialRecord.write(trial, status=TrialStatus.FAILED, error=one_line(exc))
            raise
        TrialRecord.write(
            trial,
            curve=downsample(mean_curve(result.curves)),
            seconds=result.seconds,
            steps_trained=sum(len(c) for c in result.curves),
            status=result.status,
        )
        if log_trial is not None:
            log_trial(trial.number, point, result)
        if result.status == TrialStatus.DIVERGED:
            # Recorded as pruned with a huge last value: TPE puts it in the bad group, ranked last.
            trial.report(1e30, s.steps * s.seeds)
            raise optuna.TrialPruned("diverged")
        if result.status == TrialStatus.PRUNED:
            raise optuna.TrialPruned()
        score, std = trial_score(result.curves, s.objective, s.threshold)
        seed_scores = [trial_score([c], s.objective, s.threshold)[0] for c in result.curves]
        TrialRecord.write(trial, score_std=std, stalled=is_stalled(result.curves), seed_scores=seed_scores)
        fidelity = point.fidelity
        if fidelity is not None and not fidelity.is_full(s):
            # A halving round's screening trial: its score is not comparable with full-fidelity ones, so for
            # Optuna it is pruned at its last step (the best trial stays a fully trained one).
            TrialRecord.write(trial, score=score, status=TrialStatus.SCREENED)
            with quiet_already_reported():  # the live report of the last step may hold it already
                trial.report(score, fidelity.member_steps())
            raise optuna.TrialPruned("screened")
        return score

    return start, finish, train
