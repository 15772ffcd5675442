"""Variance-scaling schemes: Xavier/Glorot, Kaiming/He, LeCun.

Each draws i.i.d. weights whose variance is set by the layer's fans so that the signal's variance neither
shrinks nor grows from layer to layer. ``g`` is the user's gain, ``a`` the gain of the activation that
follows the layer (see :mod:`autoinit.activations`).
"""

from __future__ import annotations

import math

import torch

from autoinit.errors import AutoInitError
from autoinit.schemes.base import InitContext, Scheme
from autoinit.schemes.options import DISTRIBUTION, MODE

# std of N(0, 1) truncated to [-2, 2]: dividing by it makes a truncated normal's std the formula's, as
# Keras and JAX do (torch.nn.init.trunc_normal_ does not).
TRUNCATED_STD = 0.87962566103423978


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


def xavier_uniform(tensor: torch.Tensor, ctx: InitContext) -> None:
    """Xavier/Glorot uniform: W ~ U(±g·√(6/(n_in+n_out))), so Var(W) = 2/(n_in+n_out) balances the forward
    and backward variance (Glorot & Bengio 2010).

    Example: ``init_model(model, "xavier_uniform")``
    """
    uniform(tensor, ctx.gain * math.sqrt(6.0 / (ctx.fan_in + ctx.fan_out)), ctx.generator)


def xavier_normal(tensor: torch.Tensor, ctx: InitContext) -> None:
    """Xavier/Glorot normal: W ~ N(0, σ²), σ = g·√(2/(n_in+n_out)) (Glorot & Bengio 2010).

    Example: ``init_model(model, "xavier_normal", distribution="truncated_normal")``
    """
    _normal_ctx(tensor, ctx.gain * math.sqrt(2.0 / (ctx.fan_in + ctx.fan_out)), ctx)


def kaiming_uniform(tensor: torch.Tensor, ctx: InitContext) -> None:
    """Kaiming/He uniform: W ~ U(±g·a·√(3/n)), n = n_in (``mode="fan_out"``: n_out), a the gain of the
    activation after the layer (He et al. 2015).

    Example: ``init_model(model, "kaiming_uniform", mode="fan_out")``
    """
    uniform(tensor, ctx.gain * ctx.act_gain * math.sqrt(3.0 / _fan(ctx)), ctx.generator)


def kaiming_normal(tensor: torch.Tensor, ctx: InitContext) -> None:
    """Kaiming/He normal: W ~ N(0, σ²), σ = g·a/√n, n = n_in (``mode="fan_out"``: n_out) (He et al. 2015).

    Example: ``init_model(model, "kaiming_normal", gain=1.0)``
    """
    _normal_ctx(tensor, ctx.gain * ctx.act_gain / math.sqrt(_fan(ctx)), ctx)


def lecun_uniform(tensor: torch.Tensor, ctx: InitContext) -> None:
    """LeCun uniform: W ~ U(±g·√(3/n_in)), Var(W) = 1/n_in (LeCun et al. 1998).

    Example: ``init_model(model, "lecun_uniform")``
    """
    uniform(tensor, ctx.gain * math.sqrt(3.0 / ctx.fan_in), ctx.generator)


def lecun_normal(tensor: torch.Tensor, ctx: InitContext) -> None:
    """LeCun normal: W ~ N(0, σ²), σ = g/√n_in, the self-normalizing choice for SELU nets (LeCun et al.
    1998; Klambauer et al. 2017).

    Example: ``init_model(model, "lecun_normal")``
    """
    _normal_ctx(tensor, ctx.gain / math.sqrt(ctx.fan_in), ctx)


_GLOROT = "Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward networks"
_HE = "He et al. 2015, Delving deep into rectifiers"
_LECUN = "LeCun et al. 1998, Efficient BackProp"

XAVIER_UNIFORM = Scheme(
    name="xavier_uniform",
    formula="U(±g·√(6/(n_in+n_out)))",
    paper=_GLOROT,
    example='init_model(model, "xavier_uniform")',
    fn=xavier_uniform,
    iid=True,
)
XAVIER_NORMAL = Scheme(
    name="xavier_normal",
    formula="N(0, σ = g·√(2/(n_in+n_out)))",
    paper=_GLOROT,
    example='init_model(model, "xavier_normal", distribution="truncated_normal")',
    fn=xavier_normal,
    iid=True,
    options=(DISTRIBUTION,),
)
KAIMING_UNIFORM = Scheme(
    name="kaiming_uniform",
    formula="U(±g·a·√(3/n)), n = n_in (mode='fan_out': n_out)",
    paper=_HE,
    example='init_model(model, "kaiming_uniform", mode="fan_out")',
    fn=kaiming_uniform,
    iid=True,
    options=(MODE,),
)
KAIMING_NORMAL = Scheme(
    name="kaiming_normal",
    formula="N(0, σ = g·a/√n), n = n_in (mode='fan_out': n_out)",
    paper=_HE,
    example='init_model(model, "kaiming_normal", gain=1.0)',
    fn=kaiming_normal,
    iid=True,
    options=(MODE, DISTRIBUTION),
)
LECUN_UNIFORM = Scheme(
    name="lecun_uniform",
    formula="U(±g·√(3/n_in))",
    paper=_LECUN,
    example='init_model(model, "lecun_uniform")',
    fn=lecun_uniform,
    iid=True,
)
LECUN_NORMAL = Scheme(
    name="lecun_normal",
    formula="N(0, σ = g/√n_in)",
    paper=_LECUN + "; Klambauer et al. 2017 (SELU)",
    example='init_model(model, "lecun_normal")',
    fn=lecun_normal,
    iid=True,
    options=(DISTRIBUTION,),
)
