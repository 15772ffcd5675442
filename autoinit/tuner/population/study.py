"""Population trials in the study: each batch asks K Optuna trials at once (TPE's constant liar spreads
them out), trains their points as one population, and tells them one by one — every member is an
ordinary Optuna trial with the intermediate values, user attrs and state a sequential trial has, so
resume, workers, RDB storages, dead-worker recovery and ``optuna-dashboard`` work as before.

:func:`population_runner` decides once per process (``tune.population`` and a one-step probe) and returns
the batch runner :func:`autoinit.tuner.execution.loop.optimize` takes, or None for sequential trials.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from autoinit.tuner.common.noise import quiet_population_ask
from autoinit.tuner.population.engine import PopulationFailed
from autoinit.tuner.population.trials import iter_population_trials, population_size, probe
from autoinit.tuner.search.registry import search_type
from autoinit.tuner.search.space import Point
from autoinit.tuner.sources.config import TuneConfig
from autoinit.tuner.sources.settings import TuneSettings
from autoinit.tuner.storage import backend as storage
from autoinit.tuner.trials.objective import config_at, objective_parts
from autoinit.tuner.trials.trial import TrialResult, pruner_reporter

# A model-based sampler's batch after the queued trials: this share of the trials still to run, so the
# sampler and the pruner learn from each batch before the next is asked (measured: README, Population trials).
MODEL_BASED_BATCH_SHARE = 0.25


def batch_trials(settings: TuneSettings, *, room: int, waiting: int, max_trials: int) -> int:
    """How many trials one population batch asks. Queued trials (the anchors, retries, a search's enqueued
    round) go whole; a model-based sampler (tpe, gp) then gets a quarter of what is left per batch, so it
    proposes from measured trials and the median pruner has complete trials to prune against — one batch
    of the whole study would be proposed blind and never pruned. Random and grid points take all the room.
    """
    k = min(room, max_trials)
    if not search_type(settings).model_based:
        return max(1, k)
    if waiting > 0:
        return max(1, min(k, waiting))
    return max(1, min(k, math.ceil(room * MODEL_BASED_BATCH_SHARE)))


def population_runner(
    config: TuneConfig, schemes: list[str], note: Callable[[str], None]
) -> Callable[[optuna.Study, int, Callable[[optuna.Trial], None], Callable[[], None]], None] | None:
    """The batch runner for ``optimize(run_batch=...)``, or None (with a one-line note saying why) when
    the study runs sequential trials."""
    s = config.settings
    if s.population == "off":
        return None
    if (why := probe(config)) is not None:
        note(f"sequential trials: {why}")
        return None
    cap = s.population if isinstance(s.population, int) else None
    size = population_size(config, cap=cap)
    note(f"population trials: up to {max(1, size // s.seeds)} trials ({size} members) trained at once")
    return PopulationBatch(config, schemes, max_members=size, note=note)


class PopulationBatch:
    """Ask up to ``max_members // seeds`` trials, train them as populations, tell them."""

    def __init__(
        self, config: TuneConfig, schemes: list[str], *, max_members: int, note: Callable[[str], None]
    ) -> None:
        self.config, self.max_members, self.note = config, max_members, note
        self.start, self.finish, self.train = objective_parts(config, schemes)

    def __call__(
        self, study: optuna.Study, room: int, claim: Callable[[optuna.Trial], None], release: Callable[[], None]
    ) -> None:
        s = self.config.settings
        waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        k = batch_trials(s, room=room, waiting=waiting, max_trials=max(1, self.max_members // s.seeds))
        trials: list[optuna.Trial] = []
        told: set[int] = set()

        def tell(trial: optuna.Trial, outcome: Callable[[], float | Point]) -> Point | None:
            try:
                value = outcome()
            except optuna.TrialPruned:
                _tell(study, trial, state=TrialState.PRUNED)
            except Exception:
                _tell(study, trial, state=TrialState.FAIL)  # finish() recorded the error
            else:
                if isinstance(value, Point):
                    return value  # to train
                _tell(study, trial, value)
            told.add(trial.number)
            return None

        try:
            todo: list[tuple[optuna.Trial, Point]] = []
            try:
                # Each trial is started (suggested, pre-screened) as soon as it is asked, so a pre-screened
                # or already-measured one is finished at once and its record holds its own time only.
                for _ in range(k):
                    with quiet_population_ask():
                        trial = study.ask()
                    claim(trial)
                    trials.append(trial)
                    if (point := tell(trial, lambda t=trial: self.start(t))) is not None:
                        todo.append((trial, point))
            finally:
                release()
            if not todo:
                return
            # Trials of one fidelity (steps × seeds: a halving round) train as one population.
            groups: dict[object, list[tuple[optuna.Trial, Point]]] = {}
            for trial, point in todo:
                groups.setdefault(point.fidelity, []).append((trial, point))
            # (each trial is vouched for from its claim on: the loop's heartbeat or lease, see owner.keep_alive)
            for group in groups.values():
                self._train(study, group, tell)
        except BaseException:
            for trial in trials:
                if trial.number not in told:
                    _tell(study, trial, state=TrialState.FAIL)
            raise

    def _train(
        self,
        study: optuna.Study,
        todo: list[tuple[optuna.Trial, Point]],
        tell: Callable[[optuna.Trial, Callable[[], float | Point]], Point | None],
    ) -> None:
        config = config_at(self.config, todo[0][1].fidelity)
        reports = [pruner_reporter(trial) for trial, _ in todo]
        left = dict(enumerate(todo))
        try:
            # each trial is told as its population finishes: a Ctrl-C in a later one fails only the untold
            for i, result in iter_population_trials(
                config, [p for _, p in todo], reports, max_members=self.max_members
            ):
                trial, point = left.pop(i)
                tell(trial, lambda t=trial, p=point, r=result: self.finish(t, p, _result_of(r)))
        except PopulationFailed as exc:
            if storage.unreachable(exc) is not None:
                raise  # the storage is down, not the population: sequential trials would fail the same way
            self.note(f"population failed ({exc}): running these {len(left)} trials sequentially")
            for trial, point in left.values():
                tell(trial, lambda t=trial, p=point: self.finish(t, p, lambda: self.train(t, p)))


def _tell(study: optuna.Study, trial: optuna.Trial, value: float | None = None, **kw: object) -> None:
    """``study.tell``, except that a GridSampler whose grid is now exhausted may not stop the study from
    outside ``optimize`` (it raises after the trial is stored): the loop's stop rule stops it instead."""
    try:
        study.tell(trial, value, **kw)  # type: ignore[arg-type]
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


def _result_of(result: TrialResult | Exception) -> Callable[[], TrialResult]:
    def get() -> TrialResult:
        if isinstance(result, Exception):
            raise result
        return result

    return get
