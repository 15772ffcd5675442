"""The tuner's flat module paths before it was split into layers (autoinit 0.1), still importable for one
release: importing one warns (``DeprecationWarning``) and gives the module at its new path, the same object.

Paths that are a layer's package now (``autoinit.tuner.records``, ``.storage``, ``.study``) need no entry:
the package re-exports the old module's public names; a name that moved to another layer
(``autoinit.tuner.study.good_trials``) is the package's ``moved`` export (``common/exports.py``), which warns.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

# old module -> its module now (under autoinit.tuner)
MOVED: dict[str, str] = {
    "noise": "common.noise",
    "filelock": "common.filelock",
    "threads": "common.threads",
    "scores": "records.scores",
    "stop_rule": "records.stop_rule",
    "settings": "sources.settings",
    "source": "sources.source",
    "config": "sources.config",
    "spec": "sources.spec",
    "proxy": "sources.proxy",
    "trainer_keys": "sources.trainer_keys",
    "journal": "storage.journal",
    "owner": "storage.owner",
    "search_space": "search.space",
    "halving": "search.halving",
    "trial": "trials.trial",
    "ddp_trial": "trials.ddp",
    "objective": "trials.objective",
    "screening": "trials.screening",
    "trial_log": "trials.loggers",
    "functional": "population.functional",
    "population_trials": "population.trials",
    "population_study": "population.study",
    "loop": "execution.loop",
    "launcher": "execution.launcher",
    "worker": "execution.worker",
    "verdicts": "report.verdicts",
    "outputs": "report.outputs",
    "pick": "report.pick",
    "result": "report.result",
    "transfer": "report.transfer",
}

_PREFIX = "autoinit.tuner."


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path and loads it as the module at its new one (its own ``__spec__`` kept)."""

    def find_spec(self, fullname: str, path: object = None, target: ModuleType | None = None):
        old = fullname.removeprefix(_PREFIX)
        if not fullname.startswith(_PREFIX) or old not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = _PREFIX + MOVED[spec.name.removeprefix(_PREFIX)]
        warnings.warn(
            f"{spec.name} moved to {new}: import it from there (the old path goes in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        module = importlib.import_module(new)
        self._specs = {**getattr(self, "_specs", {}), spec.name: module.__spec__}
        return module

    def exec_module(self, module: ModuleType) -> None:
        # the import system set the old path's spec on the module: give it back its own
        module.__spec__ = self._specs.pop(module.__spec__.name)


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
