"""What the study searches: the anchor points, the parameters a trial suggests, and the sampler and
pruner that walk the space."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from autoinit import _compat
from autoinit.tuner.records.record import GOOD_STATES, TrialRecord
from autoinit.tuner.sources.settings import Range, TuneSettings
from autoinit.tuner.storage import backend as storage
from autoinit.tuner.storage.owner import worker_id


@dataclass(frozen=True)
class Fidelity:
    """How much training a trial gets: ``steps`` per seed over ``seeds`` init seeds, in round ``round`` of
    the halving search. A trial without one trains at the study's full ``tune.steps`` × ``tune.seeds``."""

    round: int
    steps: int
    seeds: int

    def member_steps(self) -> int:
        return self.steps * self.seeds

    def is_full(self, settings: TuneSettings) -> bool:
        return (self.steps, self.seeds) == (settings.steps, settings.seeds)

    def to_attr(self) -> dict[str, int]:
        return {"round": self.round, "steps": self.steps, "seeds": self.seeds}

    @classmethod
    def from_attr(cls, value: dict[str, int] | None) -> Fidelity | None:
        return None if value is None else cls(int(value["round"]), int(value["steps"]), int(value["seeds"]))


@dataclass(frozen=True)
class Point:
    """One point of the search space: what a trial trains (at ``fidelity``, or the study's full one)."""

    scheme: str
    gain: float
    lr_scale: float = 1.0
    fidelity: Fidelity | None = None


def anchors(settings: TuneSettings, schemes: list[str]) -> list[dict[str, Any]]:
    """The model's own init first, then every scheme at its textbook gain: the search's anchor points."""
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


class SeededPerTrial(optuna.samplers.BaseSampler):
    """A sampler made afresh for every trial, seeded from ``seed`` and the number of good trials the study
    holds, and shown each retry in the place of the trial it retries: what it proposes depends on the
    measured points alone, not on how many processes (a resume, a replaced worker) the study has seen.

    One long-lived seeded sampler would not do: a fresh process restarts its random stream, every trial (a
    queued one too) advances it, and TPE weighs trials in the order of their numbers.
    """

    def __init__(self, make: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self._make, self._seed = make, seed
        self._inner = make(seed)
        self._view: optuna.Study | None = None

    def _study(self, study: optuna.Study) -> optuna.Study:
        return self._view if self._view is not None and self._view._study is study else study  # type: ignore[attr-defined]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trials = study.get_trials(deepcopy=False)
        good = sum(t.state in GOOD_STATES for t in trials)
        parents = {t.number: min(origins) for t in trials if (origins := storage.retry_of(t))}

        def original(t: FrozenTrial) -> int:
            number = t.number
            while number in parents and parents[number] < number:
                number = parents[number]
            return number

        # A population asks several trials before any is measured: each one this process already runs
        # (claimed earlier in the batch) moves the seed on, so the batch's trials differ. Sequential trials
        # never see one (``batch`` is 0), so their proposals stay those of the measured points alone.
        me = worker_id()
        batch = sum(
            t.state == TrialState.RUNNING and t.number != trial.number and TrialRecord.of(t).worker == me
            for t in trials
        )
        self._inner = self._make((self._seed * 1_000_003 + good + 999_983 * batch) % 2**31)
        self._view = _compat.sampler_view(study, original)
        self._inner.before_trial(self._view, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._inner.infer_relative_search_space(self._study(study), trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._inner.sample_relative(self._study(study), trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._inner.sample_independent(self._study(study), trial, param_name, param_distribution)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._inner.after_trial(self._study(study), trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


def make_pruner(settings: TuneSettings, n_anchors: int) -> optuna.pruners.BasePruner:
    """The configured pruner of a sampled search; it never prunes an anchor (nor an anchor's retry, which is one
    too)."""
    total = settings.steps * settings.seeds
    if settings.pruner == "none":
        return optuna.pruners.NopPruner()
    if settings.pruner == "hyperband":
        return AnchorSparingHyperbandPruner(
            min_resource=max(settings.report_every, settings.steps // 4), max_resource=total
        )
    # After the anchors a trial is stopped once its running mean loss is worse than the median of earlier
    # trials at the same step, past the first quarter of its first seed.
    return AnchorSparingMedianPruner(
        n_startup_trials=n_anchors, n_warmup_steps=max(1, settings.steps // 4), interval_steps=1
    )


class _SparesAnchors:
    """Mixed into a pruner: anchors run to the end, whenever they run. A retried anchor runs after other
    trials completed, where the bare pruner would judge it like a sampled point."""

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if TrialRecord.of(trial).anchor:
            return False
        return super().prune(study, trial)  # type: ignore[misc]


class AnchorSparingMedianPruner(_SparesAnchors, optuna.pruners.MedianPruner):
    """Optuna's median pruner, sparing anchors."""


class AnchorSparingHyperbandPruner(_SparesAnchors, optuna.pruners.HyperbandPruner):
    """Optuna's Hyperband pruner (still recognised as one by TPE's brackets), sparing anchors."""
