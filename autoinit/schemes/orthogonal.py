"""Orthogonal schemes: orthogonal (Saxe), delta-orthogonal for convs (Xiao), looks-linear (Balduzzi)."""

from __future__ import annotations

import torch

from autoinit.errors import AutoInitError
from autoinit.schemes.base import EmbeddingRule, InitContext, PassContext, Scheme


def orthogonal(tensor: torch.Tensor, scale: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A (semi-)orthogonal matrix times ``scale``: W·Wᵀ = scale²·I when rows ≤ columns, else Wᵀ·W = scale²·I.

    Tensors of more than two dimensions are flattened to (rows, everything else), as
    ``torch.nn.init.orthogonal_`` does.
    """
    return torch.nn.init.orthogonal_(tensor, gain=scale, generator=generator)


def orthogonal_scheme(tensor: torch.Tensor, ctx: InitContext) -> None:
    """Orthogonal: W (semi-)orthogonal with W·Wᵀ = (g·a)²·I, so a linear layer is an exact isometry
    (Saxe et al. 2014).

    Example: ``init_model(model, "orthogonal")``
    """
    orthogonal(tensor, ctx.gain * ctx.act_gain, ctx.generator)


def delta_orthogonal(
    tensor: torch.Tensor,
    scale: float,
    groups: int = 1,
    transposed: bool = False,
    generator: torch.Generator | None = None,
    label: str = "",
) -> torch.Tensor:
    """A conv kernel that is zero except its spatial centre, which holds an orthogonal matrix times
    ``scale`` per group, so the convolution is an isometry of its channels at init (Xiao et al. 2018).

    Needs out_channels ≥ in_channels (per group): with fewer outputs than inputs no kernel preserves norms.
    """
    if tensor.dim() < 3:
        return orthogonal(tensor, scale, generator)
    rows, cols = tensor.shape[0], tensor.shape[1]  # conv: (out, in/g); transposed: (in, out/g)
    n_out, n_in = (cols * groups, rows) if transposed else (rows, cols * groups)
    if n_out < n_in:
        raise AutoInitError(
            f"delta_orthogonal needs out_channels >= in_channels, but layer '{label}' has {n_out} < {n_in}: "
            "use scheme 'orthogonal' for it (exclude=...) or widen the layer"
        )
    centre = tuple(k // 2 for k in tensor.shape[2:])
    with torch.no_grad():
        tensor.zero_()
        per_group = rows // groups
        tap = torch.empty(rows, cols, dtype=tensor.dtype, device=tensor.device)
        for g in range(groups):
            orthogonal(tap[g * per_group : (g + 1) * per_group], scale, generator)
        tensor[(slice(None), slice(None), *centre)] = tap
    return tensor


def delta_orthogonal_scheme(tensor: torch.Tensor, ctx: InitContext) -> None:
    """Delta-orthogonal: a conv kernel zero except its centre tap, an orthogonal matrix × g·a, so the
    convolution is an isometry of its channels (Xiao et al. 2018); non-conv layers get plain orthogonal.

    Example: ``init_model(cnn, "delta_orthogonal")``
    """
    layer = ctx.layer
    groups = getattr(layer, "groups", 1)
    transposed = bool(getattr(layer, "transposed", False))
    delta_orthogonal(tensor, ctx.gain * ctx.act_gain, groups, transposed, ctx.generator, ctx.label)


def looks_linear(
    tensor: torch.Tensor, scale: float, generator: torch.Generator | None = None, label: str = ""
) -> torch.Tensor:
    """W = [U, −U] along the input dimension with U orthogonal times ``scale``: fed by
    CReLU(x) = [relu(x), relu(−x)], the layer computes U·x, so the network is linear at init
    (Balduzzi et al. 2017)."""
    half = tensor.shape[1] // 2
    if tensor.shape[1] % 2:
        raise AutoInitError(
            f"looks_linear: layer '{label}' has an odd input size {tensor.shape[1]}, so it is not fed by a CReLU"
        )
    with torch.no_grad():
        u = orthogonal(torch.empty_like(tensor[:, :half]), scale, generator)
        tensor[:, :half] = u
        tensor[:, half:] = -u
    return tensor


def looks_linear_scheme(tensor: torch.Tensor, ctx: InitContext) -> None:
    """Looks-linear: a layer fed by a CReLU gets W = [U, −U] with U orthogonal × g, so the network is
    linear at init and its gradients do not shatter (Balduzzi et al. 2017); other layers orthogonal × g.

    Example: ``init_model(crelu_net, "looks_linear")``
    """
    if ctx.fed_by is not None and ctx.fed_by.name == "crelu":
        looks_linear(tensor, ctx.gain, ctx.generator, ctx.label)
    else:
        # In a looks-linear net a CReLU acts as the identity at init, so no activation gain applies.
        orthogonal(tensor, ctx.gain * (1.0 if ctx.activation.name == "crelu" else ctx.act_gain), ctx.generator)


def needs_crelu(pctx: PassContext) -> None:
    """looks_linear's precondition: some layer is fed by a CReLU."""
    if not any(b.fed_by is not None and b.fed_by.name == "crelu" for b in pctx.weight_blocks()):
        raise AutoInitError(
            "looks_linear needs layers fed by a CReLU, and this model has none: "
            "use autoinit.nn.CReLU as the activation, or pick 'orthogonal'"
        )


ORTHOGONAL = Scheme(
    name="orthogonal",
    formula="(semi-)orthogonal, W·Wᵀ = (g·a)²·I",
    paper="Saxe et al. 2014, Exact solutions to the nonlinear dynamics of learning in deep linear networks",
    example='init_model(model, "orthogonal")',
    fn=orthogonal_scheme,
    embeddings=EmbeddingRule.NORMAL,
)
DELTA_ORTHOGONAL = Scheme(
    name="delta_orthogonal",
    formula="conv kernel zero except its centre tap, an orthogonal matrix × g·a; plain orthogonal for non-conv "
    "layers; needs out_channels ≥ in_channels (one-line error otherwise)",
    paper="Xiao et al. 2018, Dynamical isometry and a mean field theory of CNNs",
    example='init_model(cnn, "delta_orthogonal")',
    fn=delta_orthogonal_scheme,
    embeddings=EmbeddingRule.NORMAL,
)
LOOKS_LINEAR = Scheme(
    name="looks_linear",
    formula="layers fed by `autoinit.nn.CReLU`: W = [U, −U], U orthogonal × g, so the net is linear at init; "
    "other layers orthogonal × g",
    paper="Balduzzi et al. 2017, The shattered gradients problem",
    example='init_model(crelu_net, "looks_linear")',
    fn=looks_linear_scheme,
    check=needs_crelu,
    embeddings=EmbeddingRule.NORMAL,
)
