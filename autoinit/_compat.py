"""Every use of a private Lightning or Optuna API, in one place.

Each accessor names the public behaviour it stands for; ``tests/test_compat.py`` calls every one against
the installed versions, so an upgrade that moves one of them fails loudly there, not deep in a trial.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
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
    return storage_of(study) if has_heartbeat(study) else None


def journal_detail_ops() -> frozenset[int]:
    """The journal op codes of a trial's details — a parameter, an intermediate value, a user or system
    attribute (``optuna.storages.journal._storage.JournalOperation``, not exported)."""
    from optuna.storages.journal._storage import JournalOperation as Op

    ops = (Op.SET_TRIAL_PARAM, Op.SET_TRIAL_INTERMEDIATE_VALUE, Op.SET_TRIAL_USER_ATTR, Op.SET_TRIAL_SYSTEM_ATTR)
    return frozenset(int(op) for op in ops)


def journal_state_ops() -> frozenset[int]:
    """The journal op codes that set a trial's state (its ``state`` field, RUNNING when absent): a trial's
    creation and its state change (``JournalOperation``, not exported)."""
    from optuna.storages.journal._storage import JournalOperation as Op

    return frozenset(int(op) for op in (Op.CREATE_TRIAL, Op.SET_TRIAL_STATE_VALUES))


def queued_params(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The parameters a trial was queued with (``enqueue_trial`` keeps them in the ``fixed_params``
    system attribute until the trial suggests them), merged with those it suggested."""
    return {**trial.system_attrs.get("fixed_params", {}), **trial.params}


def retried_numbers(trial: optuna.trial.FrozenTrial) -> list[int]:
    """The trials an RDB heartbeat's ``RetryHeartbeatStaleTrialCallback`` made ``trial`` a retry of."""
    history = trial.system_attrs.get("retry_history", [])
    failed = trial.system_attrs.get("failed_trial")
    return [*history, *([failed] if failed is not None else [])]


def has_heartbeat(study: optuna.Study) -> bool:
    """Whether the study's storage fails the trials of silent processes itself (an RDB with heartbeats;
    ``optuna.storages._heartbeat.is_heartbeat_enabled``, which also sees through Optuna's storage cache)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(storage_of(study))


class _SamplerView:
    """A study as a sampler reads it: Optuna's samplers list trials through ``Study._get_trials`` and
    order them by ``number``; here each trial has the number ``number_of`` gives it."""

    def __init__(self, study: optuna.Study, number_of: Callable[[optuna.trial.FrozenTrial], int]) -> None:
        self._study, self._number_of = study, number_of

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _renumbered(self, trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
        out = []
        for t in trials:
            number = self._number_of(t)
            if number != t.number:
                t = copy.copy(t)
                t.number = number
            out.append(t)
        return sorted(out, key=lambda t: t.number)

    def _get_trials(self, deepcopy: bool = True, states: Any = None, use_cache: bool = False) -> list[Any]:
        return self._renumbered(self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache))

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list[Any]:
        return self._renumbered(self._study.get_trials(deepcopy=deepcopy, states=states))


def sampler_view(study: optuna.Study, number_of: Callable[[optuna.trial.FrozenTrial], int]) -> optuna.Study:
    """``study`` for a sampler to read, its trials renumbered (and reordered) by ``number_of``."""
    return _SamplerView(study, number_of)  # type: ignore[return-value]
