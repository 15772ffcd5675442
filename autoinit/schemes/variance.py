"""Variance-scaling schemes: Xavier/Glorot, Kaiming/He, LeCun.

Each draws i.i.d. weights whose variance is set by the layer's fans so that the signal's variance neither
shrinks nor grows from layer to layer. ``g`` is the user's gain, ``a`` the gain of the activation that
follows the layer (see :mod:`autoinit.activations`).
"""

from __future__ import annotations

import math

import torch

from autoinit.errors import AutoInitError
from autoinit.schemes.registry import InitContext, register_scheme

# std of N(0, 1) truncated to [-2, 2]: dividing by it makes a truncated normal's std the formula's, as
# Keras and JAX do (torch.nn.init.trunc_normal_ does not).
TRUNCATED_STD = 0.87962566103423978

_NORMAL_OPTIONS = ("distribution",)


def uniform(tensor: torch.Tensor, bound: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill with U(−bound, bound) in place."""
    with torch.no_grad():
        return tensor.uniform_(-bound, bound, generator=generator)


def normal(
    tensor: torch.Tensor,
    std: float,
    generator: torch.Generator | None = None,
    distribution: str = "normal",
) -> torch.Tensor:
    """Fill with N(0, std²) in place; ``distribution="truncated_normal"`` cuts at ±2σ' with
    σ' = std / 0.87962566 so the result's std is still ``std``."""
    with torch.no_grad():
        if distribution == "normal":
            return tensor.normal_(0.0, std, generator=generator)
        if distribution == "truncated_normal":
            s = std / TRUNCATED_STD
            return torch.nn.init.trunc_normal_(tensor, 0.0, s, -2.0 * s, 2.0 * s, generator=generator)
    raise AutoInitError(f"unknown distribution '{distribution}': use 'normal' or 'truncated_normal'")


def _fan(ctx: InitContext) -> int:
    mode = ctx.options.get("mode", "fan_in")
    if mode not in ("fan_in", "fan_out"):
        raise AutoInitError(f"unknown mode '{mode}': use 'fan_in' or 'fan_out'")
    return ctx.fan_in if mode == "fan_in" else ctx.fan_out


def _normal_ctx(tensor: torch.Tensor, std: float, ctx: InitContext) -> None:
    normal(tensor, std, ctx.generator, ctx.options.get("distribution", "normal"))


@register_scheme(
    "xavier_uniform",
    formula="U(±g·√(6/(n_in+n_out)))",
    paper="Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward networks",
)
def xavier_uniform(tensor: torch.Tensor, ctx: InitContext) -> None:
    uniform(tensor, ctx.gain * math.sqrt(6.0 / (ctx.fan_in + ctx.fan_out)), ctx.generator)


@register_scheme(
    "xavier_normal",
    formula="N(0, σ = g·√(2/(n_in+n_out)))",
    paper="Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward networks",
    options=_NORMAL_OPTIONS,
)
def xavier_normal(tensor: torch.Tensor, ctx: InitContext) -> None:
    _normal_ctx(tensor, ctx.gain * math.sqrt(2.0 / (ctx.fan_in + ctx.fan_out)), ctx)


@register_scheme(
    "kaiming_uniform",
    formula="U(±g·a·√(3/n)), n = n_in (mode='fan_out': n_out)",
    paper="He et al. 2015, Delving deep into rectifiers",
    options=("mode",),
)
def kaiming_uniform(tensor: torch.Tensor, ctx: InitContext) -> None:
    uniform(tensor, ctx.gain * ctx.act_gain * math.sqrt(3.0 / _fan(ctx)), ctx.generator)


@register_scheme(
    "kaiming_normal",
    formula="N(0, σ = g·a/√n), n = n_in (mode='fan_out': n_out)",
    paper="He et al. 2015, Delving deep into rectifiers",
    options=("mode", *_NORMAL_OPTIONS),
)
def kaiming_normal(tensor: torch.Tensor, ctx: InitContext) -> None:
    _normal_ctx(tensor, ctx.gain * ctx.act_gain / math.sqrt(_fan(ctx)), ctx)


@register_scheme(
    "lecun_uniform",
    formula="U(±g·√(3/n_in))",
    paper="LeCun et al. 1998, Efficient BackProp",
)
def lecun_uniform(tensor: torch.Tensor, ctx: InitContext) -> None:
    uniform(tensor, ctx.gain * math.sqrt(3.0 / ctx.fan_in), ctx.generator)


@register_scheme(
    "lecun_normal",
    formula="N(0, σ = g/√n_in)",
    paper="LeCun et al. 1998, Efficient BackProp; Klambauer et al. 2017 (SELU)",
    options=_NORMAL_OPTIONS,
)
def lecun_normal(tensor: torch.Tensor, ctx: InitContext) -> None:
    _normal_ctx(tensor, ctx.gain / math.sqrt(ctx.fan_in), ctx)
