"""What trials are built from: the protocol that a YAML tune config (:class:`~autoinit.tuner.sources.config.TuneConfig`)
and a Python spec (:class:`~autoinit.tuner.sources.spec.PythonSpec`) both satisfy, so ``autoinit tune`` and
``autoinit.tune()`` run the same study, storage, loop and outputs code.

Also the callbacks a trial drops (the trainer keys it sets are in :mod:`autoinit.tuner.sources.trainer_keys`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import lightning.pytorch as pl

from autoinit.tuner.sources.settings import TuneSettings

# Trainer callbacks a short trial has no use for (it writes no checkpoint, logs nothing, shows no bar).
DROPPED_CALLBACKS = (
    "ModelCheckpoint",
    "EarlyStopping",
    "LearningRateMonitor",
    "ProgressBar",
    "ModelSummary",
    "RichProgressBar",
    "TQDMProgressBar",
    "RichModelSummary",
    "AutoInit",
    "DeviceStatsMonitor",
)


def build_for_seed(source: TrialSource, seed: int) -> tuple[pl.LightningModule, pl.LightningDataModule | None]:
    """The model and data of init seed ``seed``: built with every RNG seeded with ``seed``, so the model's
    own init (what its constructor draws) varies by seed as it does for the user; then every RNG is put to
    ``tune.data_seed``, so the data order is the same for every seed of every trial."""
    pl.seed_everything(seed, verbose=False)
    built = source.build()
    pl.seed_everything(source.settings.data_seed, verbose=False)
    return built


def is_dropped_callback(callback: Any) -> bool:
    """Whether a trial leaves this trainer callback out (by its class or any base class: a subclass of
    ModelCheckpoint is a checkpoint callback too)."""
    return any(cls.__name__ in DROPPED_CALLBACKS for cls in type(callback).__mro__)


def trial_trainer_kwargs(trainer: dict[str, Any]) -> dict[str, Any]:
    """The Trainer arguments a trial starts from: the configured ones, less the logger and the dropped
    callbacks (``run_trial`` sets the keys :mod:`~autoinit.tuner.sources.trainer_keys` names itself)."""
    out = dict(trainer)
    callbacks = out.pop("callbacks", None) or []
    callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
    out["callbacks"] = [c for c in callbacks if not is_dropped_callback(c)]
    out.pop("logger", None)
    return out


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``{"dotted.key": value}``."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _short(value: Any, width: int = 40) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 1] + "…"


def describe_changes(stored: dict[str, Any], now: dict[str, Any], limit: int = 3) -> str:
    """The keys whose value differs between a study's stored measured config and the current one, as
    ``"tune.steps (8 → 9)"``, the first ``limit`` of them; "" when none does."""
    missing = object()
    keys = [*stored, *(k for k in now if k not in stored)]
    changed = [k for k in keys if stored.get(k, missing) != now.get(k, missing)]
    shown = [f"{k} ({_short(stored.get(k, '(unset)'))} → {_short(now.get(k, '(unset)'))})" for k in changed]
    more = f" and {len(changed) - limit} more" if len(changed) > limit else ""
    return ", ".join(shown[:limit]) + more


@runtime_checkable
class TrialSource(Protocol):
    """What the tuner needs from whatever its trials are built from.

    Attributes:
        settings: the ``tune`` section.
        path, overrides: a tune YAML and its command-line overrides, from which worker processes and DDP
            ranks rebuild the source (a Python spec writes one when its model and data are importable, and
            raises a one-line error saying why not otherwise).
    """

    settings: TuneSettings

    @property
    def study_name(self) -> str: ...

    @property
    def output(self) -> Path: ...

    @property
    def path(self) -> Path: ...

    @property
    def overrides(self) -> list[str]: ...

    def build(self) -> tuple[pl.LightningModule, pl.LightningDataModule | None]:
        """A fresh model and datamodule (None: the model's own data hooks) for one trial."""
        ...

    def trainer_kwargs(self) -> dict[str, Any]:
        """The Trainer arguments a trial starts from (see :func:`trial_trainer_kwargs`)."""
        ...

    def logger(self) -> Any:
        """The trainer's logger as configured: a Logger, a list of them, True/None (Lightning's default) or
        False. Trials never log to it, except their loss curves with ``tune.log_trials``."""
        ...

    @property
    def batch_to_input(self) -> Any:
        """``tune.batch_to_input`` loaded, or None (the default batch → input rule)."""
        ...

    def sha256(self) -> str:
        """Hash of everything that changes what a trial measures."""
        ...

    def measured(self) -> dict[str, Any]:
        """What :meth:`sha256` hashes, as ``{"dotted.key": value}`` (stored with the study)."""
        ...

    def changes_from(self, stored: dict[str, Any], limit: int = 3) -> str:
        """The keys that differ from a study's stored :meth:`measured` config (see :func:`describe_changes`)."""
        ...

    def dump(self) -> dict[str, Any]:
        """The source as plain data."""
        ...

    def argument_keys(self) -> list[str]:
        """The model's and data's arguments as dotted config keys (``model.init_args.width``): what
        ``tune.proxy`` may change."""
        ...

    def derive(self, changes: dict[str, Any], *, study_name: str, output: Path) -> TrialSource:
        """This source with the model's and data's arguments ``changes`` (dotted keys) set, no ``tune.proxy``,
        and the given study name and output folder: a proxy of the model (:mod:`autoinit.tuner.sources.proxy`)."""
        ...
