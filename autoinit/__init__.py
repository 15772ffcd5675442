"""autoinit: pick a network's weight initialization by measurement.

- :func:`init_model` initializes a model with a named scheme (:func:`list_schemes`).
- :func:`register_scheme` adds a scheme of your own.
"""

from autoinit.errors import AutoInitError
from autoinit.initialize import init_model
from autoinit.report import InitReport, ReportRow
from autoinit.schemes.registry import InitContext, list_schemes, register_scheme

__version__ = "0.1.0"

__all__ = [
    "AutoInitError",
    "InitContext",
    "InitReport",
    "ReportRow",
    "__version__",
    "init_model",
    "list_schemes",
    "register_scheme",
]
