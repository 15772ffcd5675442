"""Every use of a private Lightning or Optuna API, in one place.

Each accessor names the public behaviour it stands for; ``tests/test_compat.py`` calls every one against
the installed versions, so an upgrade that moves one of them fails loudly there, not deep in a trial.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState


def train_dataloader_of(trainer: Any) -> Any:
    """The train dataloader a ``Trainer`` is about to fit on, before the fit loop has built it
    (Lightning 2.x: ``trainer.fit_loop._data_source``; no public accessor exists at ``on_fit_start``)."""
    return trainer.fit_loop._data_source.dataloader()


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The storage's id of a trial (``Trial._trial_id``), needed to reopen it from another process."""
    return trial._trial_id


def reopen_trial(study: optuna.Study, trial_id: int) -> optuna.Trial:
    """A live ``Trial`` handle on a running trial of ``study`` owned by another process (a DDP rank)."""
    return optuna.trial.Trial(study, trial_id)


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage behind a study (``Study._storage``)."""
    return study._storage


def set_trial_user_attr(study: optuna.Study, trial: optuna.trial.FrozenTrial, key: str, value: Any) -> None:
    """Set a user attribute on a trial this process does not hold a ``Trial`` handle for."""
    storage_of(study).set_trial_user_attr(trial._trial_id, key, value)


def fail_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
    """Mark another process's RUNNING trial FAIL; False when it finished in the meantime."""
    try:
        return storage_of(study).set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    except RuntimeError:  # Optuna refuses to change a finished trial
        return False


def configure_optimizers_output(conf: Any) -> tuple[list, list]:
    """What ``configure_optimizers`` returned, as Lightning reads it: the optimizers and the scheduler
    configs (``LRSchedulerConfig``: scheduler, interval, frequency, reduce_on_plateau...), parsed by
    Lightning's own ``_configure_optimizers`` and ``_configure_schedulers_automatic_opt`` so every return
    form it accepts is accepted (``None``: no optimizer)."""
    from lightning.pytorch.core.optimizer import _configure_optimizers, _configure_schedulers_automatic_opt

    if conf is None:
        return [], []
    optimizers, schedulers, monitor = _configure_optimizers(conf)
    return optimizers, _configure_schedulers_automatic_opt(schedulers, monitor)


def attach_trainer_view(module: Any, view: Any) -> None:
    """Make ``module.trainer`` (and ``global_step``, ``current_epoch``) read ``view`` outside a fit
    (``LightningModule._trainer``; the public setter accepts only a ``Trainer``)."""
    module._trainer = view


def heartbeat_storage(study: optuna.Study) -> Any | None:
    """The study's storage when it records trial heartbeats (an RDB storage with ``heartbeat_interval``),
    else None (``optuna.storages._heartbeat.is_heartbeat_enabled``, not exported)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    storage = storage_of(study)
    return storage if is_heartbeat_enabled(storage) else None
