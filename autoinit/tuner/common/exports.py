"""A package's public names, each imported from its private module on first use (PEP 562), so importing a
layer of the tuner costs nothing until a name is used (``autoinit tune --help`` imports no torch)."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, exports: dict[str, str], moved: dict[str, str] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose ``exports`` map a public name to the module
    (relative to ``package``) that defines it. ``moved`` maps a name the package's old flat module had to
    the module (absolute) that holds it now: still importable from here for one release, with a
    ``DeprecationWarning``."""
    moved = moved or {}

    def __getattr__(name: str) -> Any:
        if name in moved:
            warnings.warn(
                f"{package}.{name} moved to {moved[name]}.{name}: import it from there (the old path goes in "
                "the next release)",
                DeprecationWarning,
                stacklevel=2,
            )
            value = getattr(importlib.import_module(moved[name]), name)
            # kept on the package: `from package import name` asks twice (hasattr, then getattr), warn once
            setattr(importlib.import_module(package), name, value)
            return value
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    def __dir__() -> list[str]:
        return sorted({*importlib.import_module(package).__dict__, *exports})

    return __getattr__, __dir__
