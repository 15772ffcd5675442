"""What the study searches: the anchor points, the parameters a trial suggests, and the sampler and
pruner that walk the space."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna

from autoinit.tuner.noise import quiet_optuna_experimental
from autoinit.tuner.records import TrialRecord
from autoinit.tuner.settings import Range, TuneSettings


@dataclass(frozen=True)
class Point:
    """One point of the search space: what a trial trains."""

    scheme: str
    gain: float
    lr_scale: float = 1.0


def anchors(settings: TuneSettings, schemes: list[str]) -> list[dict[str, Any]]:
    """PyTorch's default first, then every scheme at its textbook gain: the search's anchor points."""
    params: dict[str, Any] = {}
    if settings.gain_is_searched:
        params["gain"] = settings.anchor_gain()
    if settings.lr_scale is not None:
        params["lr_scale"] = settings.anchor_lr_scale()
    return [{"scheme": s, **params} for s in schemes]


def suggest(trial: optuna.Trial, settings: TuneSettings, schemes: list[str]) -> Point:
    """The point ``trial`` trains (a queued trial gets its fixed parameters back)."""
    s = settings
    scheme = trial.suggest_categorical("scheme", schemes)
    if isinstance(s.gain, Range):
        gain = trial.suggest_float("gain", s.gain.low, s.gain.high, log=s.gain.log)
    elif isinstance(s.gain, list):
        gain = trial.suggest_categorical("gain", [float(g) for g in s.gain])
    else:
        gain = float(s.gain)
        TrialRecord.write(trial, fixed_gain=gain)
    lr_scale = 1.0
    if s.lr_scale is not None:
        lr_scale = trial.suggest_float("lr_scale", s.lr_scale.low, s.lr_scale.high, log=s.lr_scale.log)
    return Point(scheme, gain, lr_scale)


def make_sampler(settings: TuneSettings, schemes: list[str]) -> optuna.samplers.BaseSampler:
    """The configured sampler; the model-based ones start after the anchors."""
    seed = settings.sampler_seed
    n_anchors = len(schemes)
    with quiet_optuna_experimental():
        if settings.sampler == "grid":
            space: dict[str, list[Any]] = {"scheme": schemes}
            if settings.gain_is_searched:
                space["gain"] = settings.grid_gains()
            if settings.lr_scale is not None:
                space["lr_scale"] = settings.grid_lr_scales()
            return optuna.samplers.GridSampler(space, seed=seed)
        if settings.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if settings.sampler == "gp":
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_anchors)
        # constant_liar: trials asked together (a population, parallel workers) spread out instead of
        # all landing on the same promising point.
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_anchors, multivariate=True, constant_liar=True)


def target_trials(settings: TuneSettings, schemes: list[str]) -> int:
    """``n_trials``, or the grid's size when a grid search has fewer points."""
    if settings.sampler != "grid":
        return settings.n_trials
    size = len(schemes) * len(settings.grid_gains()) * len(settings.grid_lr_scales())
    return min(settings.n_trials, size)


def make_pruner(settings: TuneSettings, n_anchors: int) -> optuna.pruners.BasePruner:
    """The configured pruner; the median pruner spares the anchors."""
    total = settings.steps * settings.seeds
    if settings.pruner == "none":
        return optuna.pruners.NopPruner()
    if settings.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=max(settings.report_every, settings.steps // 4), max_resource=total
        )
    # The anchors all run to the end; after them a trial is stopped once its running mean loss is worse
    # than the median of earlier trials at the same step, past the first quarter of its first seed.
    return optuna.pruners.MedianPruner(
        n_startup_trials=n_anchors, n_warmup_steps=max(1, settings.steps // 4), interval_steps=1
    )
