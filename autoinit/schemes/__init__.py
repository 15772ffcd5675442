"""The scheme library: one function a scheme, with its formula and paper in the docstring.

Tensor-level functions (usable on their own, like ``torch.nn.init``): :func:`uniform`, :func:`normal`,
:func:`orthogonal`, :func:`delta_orthogonal`, :func:`looks_linear`, :func:`yam_chow_`. Registered
schemes, by name, are listed by :func:`list_schemes` and applied to a whole model by
:func:`autoinit.init_model`.
"""

from autoinit.schemes import auto, data_dependent, orthogonal, variance  # noqa: F401  (registers schemes)
from autoinit.schemes.auto import AUTO_TABLE, recommend
from autoinit.schemes.data_dependent import yam_chow_
from autoinit.schemes.orthogonal import delta_orthogonal, looks_linear
from autoinit.schemes.orthogonal import orthogonal as orthogonal_
from autoinit.schemes.registry import (
    InitContext,
    SchemeInfo,
    get_scheme,
    list_schemes,
    register_scheme,
)
from autoinit.schemes.variance import TRUNCATED_STD, normal, uniform

__all__ = [
    "AUTO_TABLE",
    "TRUNCATED_STD",
    "InitContext",
    "SchemeInfo",
    "delta_orthogonal",
    "get_scheme",
    "list_schemes",
    "looks_linear",
    "normal",
    "orthogonal_",
    "recommend",
    "register_scheme",
    "uniform",
    "yam_chow_",
]
