"""``autoinit tune``: pick a scheme and gain by short trial trainings, driven by Optuna.

Public surface (imported lazily, so ``import autoinit.tuner`` stays cheap):

- :class:`TuneConfig`, :class:`TuneSettings`, :class:`Range`: a tune config and its ``tune`` section;
- :func:`tune`: run (or resume) a study and write its outputs;
- :class:`TrialRecord`, :class:`TrialStatus`: what a trial records and how it ended;
- :func:`next_action`, :class:`Action`, :class:`StopReason`, :class:`WorkerExit`: the stop rule shared by
  every trial process, why a process stopped, and a worker's exit code.

The tuner is built in layers, each a package that imports only the layers above it in this list
(``tests/test_architecture.py`` holds it so); each package re-exports its modules' public names:

0. ``common``: noise silencing (re-exported from :mod:`autoinit.noise`), a file lock, CPU thread counts (no
   tuner dependency);
1. ``records``: the trial record, best.yaml's record (``best``: :class:`Pick`), a loss curve's score, the
   stop rule;
2. ``sources``: the ``tune`` settings, the :class:`TrialSource` protocol a YAML config and a Python spec
   both satisfy, the proxy, the trainer keys a trial sets;
3. ``storage``: the Optuna storage, the journal's lock, who owns a trial (pid, start time, lease, the one
   keep-alive);
4. ``search``: the space (anchors, points, fidelities), samplers and pruners, the halving search;
5. ``study``: create, load and resume a study, fail and retry lost trials;
6. ``trials``: training one point (sequential, DDP), the objective, screening, trial loggers;
7. ``population``: trials trained together as one stacked model;
8. ``execution``: the in-process loop, the launcher and its worker processes;
9. ``report``: trial rows and output files, verdicts, the pick, the transfer check, :class:`TuneResult`;
10. the entry points here: ``run`` (config → study → outputs), ``api`` (``autoinit.tune``), ``reuse``
    (finding a config's study, and reusing it when finished).

The flat module paths of autoinit 0.1 (``autoinit.tuner.halving`` ...) still import, with a
``DeprecationWarning``, for one release (:mod:`autoinit.tuner._moved`).
"""

from __future__ import annotations

import importlib
from typing import Any

from autoinit.tuner import _moved

_moved.install()

_EXPORTS = {
    "TuneConfig": "autoinit.tuner.sources.config",
    "TuneSettings": "autoinit.tuner.sources.settings",
    "Range": "autoinit.tuner.sources.settings",
    "tune": "autoinit.tuner.run",
    "TrialRecord": "autoinit.tuner.records.record",
    "TrialStatus": "autoinit.tuner.records.record",
    "next_action": "autoinit.tuner.records.stop_rule",
    "Action": "autoinit.tuner.records.stop_rule",
    "StopReason": "autoinit.tuner.records.stop_rule",
    "WorkerExit": "autoinit.tuner.records.stop_rule",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'autoinit.tuner' has no attribute '{name}'")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return [*globals(), *__all__]
