"""autoinit: pick a network's weight initialization by measurement.

- :func:`init_model` initializes a model with a named scheme (:func:`list_schemes`).
- :func:`register_scheme` adds a scheme of your own.
- :class:`AutoInit` is the Lightning callback: ``Trainer(callbacks=[AutoInit()])``.
- :func:`tune` picks the init for a LightningModule by short trial trainings; it returns a :class:`TuneResult`.
"""

from autoinit.errors import AutoInitError
from autoinit.initialize import init_model
from autoinit.report import InitReport, ReportRow
from autoinit.schemes.registry import InitContext, list_schemes, register_scheme

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


def __getattr__(name: str):
    # Lightning is imported only when the callback or the tuner is used: `import autoinit` stays light for init_model.
    if name == "AutoInit":
        from autoinit.callback import AutoInit

        return AutoInit
    if name in ("tune", "TuneResult"):
        from autoinit.tuner import api

        return getattr(api, name)
    raise AttributeError(f"module 'autoinit' has no attribute {name!r}")
