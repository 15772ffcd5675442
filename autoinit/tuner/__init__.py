"""``autoinit tune``: pick a scheme and gain by short trial trainings, driven by Optuna.

Public surface (imported lazily, so ``import autoinit.tuner`` stays cheap):

- :class:`TuneConfig`, :class:`TuneSettings`, :class:`Range`: a tune config and its ``tune`` section;
- :func:`tune`: run (or resume) a study and write its outputs;
- :class:`TrialRecord`, :class:`TrialStatus`: what a trial records and how it ended;
- :func:`next_action`, :class:`Action`, :class:`StopReason`, :class:`WorkerExit`: the stop rule shared by
  every trial process, why a process stopped, and a worker's exit code.

Modules, by concern: ``settings`` and ``config`` (the config), ``search_space`` (anchors, suggestions,
sampler, pruner), ``screening`` (applicable schemes, pre-screen), ``scores`` (a curve's score),
``trial`` (training one point), ``objective`` (the Optuna objective), ``records`` (the trial record),
``storage`` (Optuna storage access), ``owner`` (who runs a trial: pid, start time, lease), ``study``
(create, load, resume, fail dead trials, queue interrupted ones again), ``stop_rule``,
``loop``, ``launcher``, ``worker``, ``ddp_trial`` (execution), ``outputs``, ``run``, ``noise``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TuneConfig": "autoinit.tuner.config",
    "TuneSettings": "autoinit.tuner.settings",
    "Range": "autoinit.tuner.settings",
    "tune": "autoinit.tuner.run",
    "TrialRecord": "autoinit.tuner.records",
    "TrialStatus": "autoinit.tuner.records",
    "next_action": "autoinit.tuner.stop_rule",
    "Action": "autoinit.tuner.stop_rule",
    "StopReason": "autoinit.tuner.stop_rule",
    "WorkerExit": "autoinit.tuner.stop_rule",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'autoinit.tuner' has no attribute '{name}'")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return [*globals(), *__all__]
