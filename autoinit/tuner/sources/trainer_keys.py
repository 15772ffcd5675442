"""The one table of what a trial does with each key of the config's ``trainer`` section.

A trial trains exactly ``tune.steps`` optimizer steps per seed, whatever the trainer section says: keys that
would stop it early, keep it training past the pruner or cut it at a time limit (``max_time``, ``min_steps``,
``fast_dev_run``...) are set by the trial itself. The sequential trial (:func:`trial_values`), the study hash
(:func:`measured_trainer`) and the population check (:func:`population_accepts`) all read this table.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch


class KeyUse(enum.Enum):
    """How a trial treats a trainer key."""

    SET = "set"  # the trial gives it its own value: the config's value changes nothing a trial trains
    UNMEASURED = "unmeasured"  # reaches the Trainer as configured; changes nothing a trial measures
    TRAINS = "trains"  # reaches the Trainer as configured and can change what a trial trains


class _Steps:
    """Stands for ``tune.steps`` (the trial's own step count) in the table."""

    def __repr__(self) -> str:
        return "tune.steps"


STEPS: Any = _Steps()


def _unset(value: Any) -> bool:
    return value in (None, False)


def _any(value: Any) -> bool:
    return True


@dataclass(frozen=True)
class TrainerKey:
    """One trainer key's rule. ``value``: what a trial sets it to (``SET``); ``population``: the values a
    population trains exactly as a sequential trial does (``TRAINS``; other uses never stop a population)."""

    use: KeyUse
    value: Any = None
    population: Callable[[Any], bool] = _unset

    @property
    def hashed(self) -> bool:
        """Whether the key is part of the study hash (it can change what a trial trains)."""
        return self.use is KeyUse.TRAINS

    def population_accepts(self, value: Any) -> bool:
        return self.use is not KeyUse.TRAINS or self.population(value)


def _set(value: Any) -> TrainerKey:
    return TrainerKey(KeyUse.SET, value)


def _trains(population: Callable[[Any], bool] = _unset) -> TrainerKey:
    return TrainerKey(KeyUse.TRAINS, population=population)


# The precisions a population trains, with the autocast dtype each runs its steps under (None: full precision).
POPULATION_AUTOCAST: Mapping[Any, torch.dtype | None] = {
    None: None,
    "32-true": None,
    "32": None,
    32: None,
    "bf16-mixed": torch.bfloat16,
}

TRAINER_KEYS: Mapping[str, TrainerKey] = {
    # how long a trial trains: tune.steps optimizer steps, no more, no fewer
    "max_steps": _set(STEPS),
    "max_epochs": _set(-1),
    "min_steps": _set(None),  # would keep a pruned or diverged trial training
    "min_epochs": _set(None),
    "max_time": _set(None),  # would cut a trial at a wall-clock limit and score it as complete
    "fast_dev_run": _set(False),  # would train one step
    # what a trial does not do: log, checkpoint, show progress, validate, test, predict
    "logger": _set(False),
    "enable_checkpointing": _set(False),
    "enable_progress_bar": _set(False),
    "enable_model_summary": _set(False),
    "enable_autolog_hparams": _set(False),
    "limit_val_batches": _set(0),
    "num_sanity_val_steps": _set(0),
    "val_check_interval": _set(None),  # an int one larger than an epoch is an error even with no validation
    "check_val_every_n_epoch": _set(1),
    "limit_test_batches": _set(None),
    "limit_predict_batches": _set(None),
    # passed as configured, measured by nothing
    "default_root_dir": TrainerKey(KeyUse.UNMEASURED),
    "log_every_n_steps": TrainerKey(KeyUse.UNMEASURED),
    # passed as configured: part of what a trial trains (a population trains only the values it accepts)
    "accelerator": _trains(lambda v: v in (None, "auto", "cpu", "gpu", "cuda")),
    "devices": _trains(lambda v: v in (None, 1, "1", "auto") or (isinstance(v, list) and len(v) == 1)),
    "num_nodes": _trains(lambda v: v in (None, 1)),
    "strategy": _trains(lambda v: v in (None, "auto", "single_device")),
    "precision": _trains(lambda v: v in POPULATION_AUTOCAST),
    "callbacks": _trains(lambda v: not v),
    "gradient_clip_val": _trains(_any),
    "gradient_clip_algorithm": _trains(lambda v: v in (None, "norm", "value")),
    "accumulate_grad_batches": _trains(_any),
    "limit_train_batches": _trains(lambda v: v in (None, 1.0)),
    "overfit_batches": _trains(lambda v: v in (None, 0, 0.0)),
    "reload_dataloaders_every_n_epochs": _trains(lambda v: v in (None, 0)),
    "plugins": _trains(lambda v: not v),
    "detect_anomaly": _trains(lambda v: not v),
    "deterministic": _trains(_any),
    "benchmark": _trains(_any),
    "inference_mode": _trains(_any),
    "use_distributed_sampler": _trains(_any),
    "profiler": _trains(_any),
    "barebones": _trains(_any),
    "sync_batchnorm": _trains(_any),
    "model_registry": _trains(_any),
}

_UNKNOWN = _trains()  # a key the table does not know: measured, and a population trains only its unset value


def rule(key: str) -> TrainerKey:
    """The rule for ``key`` (a key the table does not name counts as one that trains)."""
    return TRAINER_KEYS.get(key, _UNKNOWN)


def trial_values(steps: int) -> dict[str, Any]:
    """The Trainer arguments every trial sets itself, over whatever the config gives them."""
    return {key: steps if r.value is STEPS else r.value for key, r in TRAINER_KEYS.items() if r.use is KeyUse.SET}


def measured_trainer(trainer: Mapping[str, Any]) -> dict[str, Any]:
    """The trainer section less the keys that change nothing a trial trains (what the study hash holds)."""
    return {k: v for k, v in trainer.items() if rule(k).hashed}


def population_accepts(key: str, value: Any) -> bool:
    """Whether a population trains ``key: value`` exactly as a sequential trial does."""
    return rule(key).population_accepts(value)
