"""The search protocol: what a study searches and how it is driven, one class per ``tune.search`` kind.

:class:`Search` is the base with the default of every hook (as Optuna's ``BasePruner`` / ``NopPruner`` and
Ray Tune's ``TrialScheduler`` / ``FIFOScheduler``): trials are taken until the study holds ``n_trials`` good
ones (:func:`~autoinit.tuner.records.stop_rule.next_action`), no sampler of its own and no pruning. The
sampled searches (:mod:`~autoinit.tuner.search.sampled`) and the halving search
(:mod:`~autoinit.tuner.search.halving`) override what they do otherwise; nothing outside this layer asks
which kind a study runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import optuna

from autoinit.tuner.records.counts import good_trials, progress
from autoinit.tuner.records.stop_rule import Action, next_action
from autoinit.tuner.sources.settings import TuneSettings


class Search:
    """A study's search over ``schemes`` under ``settings`` (its ``check_settings`` runs first)."""

    # Whether a scheme hopeless at gain 1 is pre-screened away (``tune.prescreen``) before its trials.
    prescreens: ClassVar[bool] = True
    # Whether the sampler proposes from measured trials: a population then asks a share of the trials left
    # per batch (:func:`~autoinit.tuner.population.study.batch_trials`), not all at once.
    model_based: ClassVar[bool] = False

    def __init__(self, settings: TuneSettings, schemes: Sequence[str]) -> None:
        self.check_settings(settings)
        self.settings, self.schemes = settings, list(schemes)

    @classmethod
    def check_settings(cls, settings: TuneSettings) -> None:
        """Refuse, in one line, settings this search cannot use."""

    def check(self) -> None:
        """Refuse, in one line, before any training, a study this search cannot run."""

    def sampler(self, worker: int = 0) -> optuna.samplers.BaseSampler:
        """The study's sampler in process ``worker``: seeded, for a search that queues every trial itself."""
        return optuna.samplers.RandomSampler(seed=self.settings.sampler_seed)

    def pruner(self) -> optuna.pruners.BasePruner:
        return optuna.pruners.NopPruner()

    def prepare(self, study: optuna.Study) -> None:
        """Called when the study is created or resumed: queue what the search starts from."""

    def target_trials(self) -> int:
        """The good trials the study is done at."""
        return self.settings.n_trials

    def next_action(self, study: optuna.Study) -> tuple[Action, int]:
        """What a trial process does next, and how many trials it may take: called under the claim lock."""
        p = progress(study)
        n = self.target_trials()
        return next_action(p.good, p.running, p.waiting, n), n - p.good - p.running

    def finished(self, study: optuna.Study) -> bool:
        """Whether a study holds everything this search would run: the one answer to "is anything left to
        run?" (the run, the launcher, resume and reuse ask it); by default, ``target_trials`` good trials."""
        return good_trials(study) >= self.target_trials()

    def total(self, study: optuna.Study) -> int:
        """The trials a progress bar counts to."""
        return self.target_trials()

    def status(self, study: optuna.Study, done: int) -> str:
        """What a run's first line says after ``{done} trials done``."""
        s = self.settings
        left = max(0, self.target_trials() - done)
        return f", {left} to run — {len(self.schemes)} schemes, {s.steps} steps × {s.seeds} seeds per trial"
