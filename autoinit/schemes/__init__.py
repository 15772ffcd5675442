"""The scheme library: one :class:`Scheme` object a scheme, with its formula, paper and example.

Tensor-level functions (usable on their own, like ``torch.nn.init``): :func:`uniform`, :func:`normal`,
:func:`orthogonal_`, :func:`delta_orthogonal`, :func:`looks_linear`, :func:`yam_chow_`. Registered
schemes, by name, are listed by :func:`list_schemes` and applied to a whole model by
:func:`autoinit.init_model`; :func:`register_scheme` (a per-block function, optionally with a model pass)
and :func:`register` (a whole :class:`Scheme`) add your own.
"""

from autoinit.schemes import builtins  # noqa: F401  (registers the built-in schemes, in order)
from autoinit.schemes.auto import AUTO_TABLE, recommend
from autoinit.schemes.base import DataUse, EmbeddingRule, InitContext, OwnValue, PassContext, Pick, Scheme
from autoinit.schemes.data_dependent import yam_chow_
from autoinit.schemes.options import Option
from autoinit.schemes.orthogonal import delta_orthogonal, looks_linear
from autoinit.schemes.orthogonal import orthogonal as orthogonal_
from autoinit.schemes.registry import (
    builtin_scheme_names,
    get_scheme,
    list_schemes,
    register,
    register_scheme,
)
from autoinit.schemes.variance import TRUNCATED_STD, normal, uniform

SchemeInfo = Scheme  # the name before schemes became objects with hooks

__all__ = [
    "AUTO_TABLE",
    "TRUNCATED_STD",
    "DataUse",
    "EmbeddingRule",
    "InitContext",
    "Option",
    "OwnValue",
    "PassContext",
    "Pick",
    "Scheme",
    "SchemeInfo",
    "builtin_scheme_names",
    "delta_orthogonal",
    "get_scheme",
    "list_schemes",
    "looks_linear",
    "normal",
    "orthogonal_",
    "recommend",
    "register",
    "register_scheme",
    "uniform",
    "yam_chow_",
]
