"""autoinit: pick a network's weight initialization by measurement.

- :func:`init_model` initializes a model with a named scheme (:func:`list_schemes`).
- :func:`register_scheme` adds a scheme of your own.
- :class:`AutoInit` is the Lightning callback: ``Trainer(callbacks=[AutoInit()])``.
- :func:`tune` picks the init for a LightningModule by short trial trainings; it returns a :class:`TuneResult`.
"""

from typing import TYPE_CHECKING

from autoinit.errors import AutoInitError

if TYPE_CHECKING:
    from autoinit.callback import AutoInit
    from autoinit.initialize import init_model
    from autoinit.report import InitReport, ReportRow
    from autoinit.schemes.registry import InitContext, list_schemes, register_scheme
    from autoinit.tuner.api import TuneResult, tune

__version__ = "0.1.0"

__all__ = [
    "AutoInit",
    "AutoInitError",
    "InitContext",
    "InitReport",
    "ReportRow",
    "TuneResult",
    "__version__",
    "init_model",
    "list_schemes",
    "register_scheme",
    "tune",
]

# Each public name's module, imported on first use: `import autoinit` (and so every `autoinit` command's
# start, `--help` included) imports neither torch nor Lightning until a name needs them.
_LAZY = {
    "AutoInit": "autoinit.callback",
    "init_model": "autoinit.initialize",
    "InitReport": "autoinit.report",
    "ReportRow": "autoinit.report",
    "InitContext": "autoinit.schemes.registry",
    "list_schemes": "autoinit.schemes.registry",
    "register_scheme": "autoinit.schemes.registry",
    "tune": "autoinit.tuner.api",
    "TuneResult": "autoinit.tuner.api",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'autoinit' has no attribute {name!r}")
