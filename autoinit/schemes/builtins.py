"""Registers every built-in scheme, in the order the tuner tries them (the model's own init, then
PyTorch's ``default``, first)."""

from __future__ import annotations

from autoinit.schemes.as_built import AS_BUILT
from autoinit.schemes.auto import AUTO
from autoinit.schemes.default import DEFAULT
from autoinit.schemes.lsuv import LSUV
from autoinit.schemes.orthogonal import DELTA_ORTHOGONAL, LOOKS_LINEAR, ORTHOGONAL
from autoinit.schemes.registry import register_builtins
from autoinit.schemes.residual import DEPTH_SCALED, FIXUP, ZERO_RESIDUAL
from autoinit.schemes.variance import (
    KAIMING_NORMAL,
    KAIMING_UNIFORM,
    LECUN_NORMAL,
    LECUN_UNIFORM,
    XAVIER_NORMAL,
    XAVIER_UNIFORM,
)
from autoinit.schemes.yam_chow import YAM_CHOW

BUILTINS = [
    AS_BUILT,
    DEFAULT,
    AUTO,
    KAIMING_NORMAL,
    KAIMING_UNIFORM,
    XAVIER_UNIFORM,
    XAVIER_NORMAL,
    LECUN_NORMAL,
    LECUN_UNIFORM,
    ORTHOGONAL,
    DELTA_ORTHOGONAL,
    LOOKS_LINEAR,
    LSUV,
    YAM_CHOW,
    # For residual networks (they refuse a model without residual connections: `schemes: all` skips them).
    FIXUP,
    ZERO_RESIDUAL,
    DEPTH_SCALED,
]

register_builtins(BUILTINS)
