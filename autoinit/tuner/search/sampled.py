"""The sampled searches: an Optuna sampler proposes the points (``tune.search``: tpe, gp, random, grid),
starting from the anchors, until the study holds ``n_trials`` good trials; the configured pruner stops poor
trials early."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import optuna

from autoinit.tuner.common.noise import quiet_optuna_experimental
from autoinit.tuner.records.record import STUDY_ATTR_ANCHORS, TrialRecord
from autoinit.tuner.search.base import Search
from autoinit.tuner.search.space import SeededPerTrial, anchors, make_pruner
from autoinit.tuner.sources.settings import TuneSettings


class SampledSearch(Search):
    """A search an Optuna sampler walks, seeded per trial from the study's state (:class:`SeededPerTrial`)."""

    def make(self, seed: int) -> optuna.samplers.BaseSampler:
        """The sampler for one trial, seeded with ``seed``."""
        raise NotImplementedError

    def sampler(self, worker: int = 0) -> optuna.samplers.BaseSampler:
        """Parallel workers (``worker``) propose different points; a resumed study proposes what an
        uninterrupted one would."""

        def make(seed: int) -> optuna.samplers.BaseSampler:
            with quiet_optuna_experimental():
                return self.make(seed)

        return SeededPerTrial(make, self.settings.sampler_seed + worker)

    def pruner(self) -> optuna.pruners.BasePruner:
        return make_pruner(self.settings, len(self.schemes))

    def prepare(self, study: optuna.Study) -> None:
        """Queue the anchors (the model's own init, every scheme at its textbook gain) once per study."""
        if STUDY_ATTR_ANCHORS in study.user_attrs:
            return
        points = anchors(self.settings, self.schemes)
        # A study made by an earlier autoinit queued its anchors without recording it.
        if not any(TrialRecord.of(t).anchor for t in study.get_trials(deepcopy=False)):
            for params in points:
                # skip_if_exists: another machine on the same RDB storage may be queuing them right now
                study.enqueue_trial(params, user_attrs=TrialRecord.attrs(anchor=True), skip_if_exists=True)
        study.set_user_attr(STUDY_ATTR_ANCHORS, points)


class RandomSearch(SampledSearch):
    def make(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=seed)


class TPESearch(SampledSearch):
    model_based: ClassVar[bool] = True

    def make(self, seed: int) -> optuna.samplers.BaseSampler:
        # constant_liar: trials asked together (a population, parallel workers) spread out instead of all
        # landing on the same promising point. The model starts after the anchors.
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=len(self.schemes), multivariate=True, constant_liar=True
        )


class GPSearch(SampledSearch):
    model_based: ClassVar[bool] = True

    def make(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=len(self.schemes))


class GridSearch(SampledSearch):
    """Every point of the grid (schemes × :meth:`~TuneSettings.grid_gains` × :meth:`~TuneSettings.grid_lr_scales`)
    once, in one fixed order, the same in every process (the seed shuffles that order, so ``worker`` does not
    change it); the grid holds the anchors' points, so none is queued."""

    def __init__(self, settings: TuneSettings, schemes: Sequence[str]) -> None:
        super().__init__(settings, schemes)
        space: dict[str, list[Any]] = {"scheme": self.schemes}
        if settings.gain_is_searched:
            space["gain"] = settings.grid_gains()
        if settings.lr_scale is not None:
            space["lr_scale"] = settings.grid_lr_scales()
        self.space = space

    def sampler(self, worker: int = 0) -> optuna.samplers.BaseSampler:
        return optuna.samplers.GridSampler(self.space, seed=self.settings.sampler_seed)

    def prepare(self, study: optuna.Study) -> None:
        pass

    def target_trials(self) -> int:
        """``n_trials``, or the grid's size when it has fewer points."""
        s = self.settings
        return min(s.n_trials, len(self.schemes) * len(s.grid_gains()) * len(s.grid_lr_scales()))
