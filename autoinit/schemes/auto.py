"""``auto``: per layer, the scheme the literature recommends for the activation that follows it; in a
residual branch with no normalization, the branch's layers are scaled (Fixup's inner rule, GPT-2's
output rule)."""

from __future__ import annotations

import math

import torch
from torch import nn

from autoinit.schemes.base import EmbeddingRule, InitContext, OwnValue, Pick, Scheme
from autoinit.schemes.options import DISTRIBUTION, MODE, Option, one_of
from autoinit.schemes.registry import get_scheme

# (activations, scheme, reason) — docs/schemes.md's table of what auto picks shows these.
AUTO_TABLE: list[tuple[tuple[str, ...], str, str]] = [
    (
        ("relu", "leaky_relu", "prelu", "rrelu", "relu6"),
        "kaiming_normal",
        "He et al. 2015: a = √(2/(1+slope²)) keeps the variance of rectified signals; trains 30-layer ReLU nets",
    ),
    (
        ("fed by crelu",),
        "looks_linear",
        "Balduzzi et al. 2017: W = [U, −U] makes a CReLU net linear at init, so gradients do not shatter",
    ),
    (
        ("tanh", "softsign", "hardtanh"),
        "xavier_uniform",
        "Glorot & Bengio 2010: the normalized init was derived for symmetric saturating units",
    ),
    (
        ("tanh (conv, out ≥ in)",),
        "delta_orthogonal",
        "Xiao et al. 2018: delta-orthogonal kernels give dynamical isometry to deep tanh CNNs",
    ),
    (
        ("sigmoid", "hardsigmoid", "logsigmoid"),
        "xavier_uniform",
        "Glorot & Bengio 2010 (Yam–Chow needs data: pick yam_chow with a sample_input)",
    ),
    (("selu",), "lecun_normal", "Klambauer et al. 2017: self-normalizing nets need Var(w) = 1/n_in"),
    (
        ("attention q, k, v",),
        "xavier_uniform",
        "Vaswani et al. 2017 / PyTorch: q·kᵀ must start small so attention is near uniform",
    ),
    (("linear",), "orthogonal", "Saxe et al. 2014: orthogonal weights make a linear map an exact isometry"),
    (
        ("gelu", "silu", "elu", "celu", "mish", "softplus", "hardswish", "other"),
        "kaiming_normal",
        "He et al. 2015 with the activation's own gain a = 1/√E[φ(z)²]",
    ),
]

_BY_ACTIVATION = {act: scheme for acts, scheme, _ in AUTO_TABLE for act in acts}

# auto's residual rule (docs/schemes.md shows these rows under the activation table).
RESIDUAL_TABLE: list[tuple[str, str, str]] = [
    (
        "inside a residual branch with no normalization (in it or after its sum)",
        "the activation's scheme × L^(−1/(2m−2))",
        "Zhang et al. 2019 (Fixup): an SGD step changes the output by Θ(η) only if the m layers of each of the "
        "L branches shrink by L^(−1/(2m−2)); measured on the residual MLP, without it auto diverged at "
        "learning rates where this trains",
    ),
    (
        "last layer of such a branch",
        "the activation's scheme × 1/√(2L)",
        "Radford et al. 2019 (GPT-2): each branch adds at most Var/(2L), so the stream's variance stays below "
        "e^½ ≈ 1.65× its start for any L (He init doubles it per branch); not zero as in Fixup, so the inner "
        "layers get a gradient from the first step",
    ),
    (
        "residual branch with normalization (BN/LN in the branch, or post-norm)",
        "unchanged",
        "the norm keeps each branch's input at unit variance; measured on the ResNet and GPT templates "
        "(docs/schemes.md)",
    ),
]


def residual_scale(ctx: InitContext) -> float:
    """auto's factor for a block in a residual branch with no normalization (in it or after its sum):
    L^(−1/(2m−2)) inside the branch, 1/√(2L) for its last layer; 1 for every other block (every block of
    a model without residual connections)."""
    r = ctx.residual
    if r is None or r.normalized or r.kind not in ("inner", "output"):
        return 1.0
    if r.writes_stream:
        return 1.0 / math.sqrt(2 * r.L)
    return float(r.L) ** (-1.0 / (2 * r.m - 2)) if r.m > 1 else 1.0


def recommend(ctx: InitContext) -> str:
    """The scheme ``auto`` picks for one block."""
    if ctx.fed_by is not None and ctx.fed_by.name == "crelu":
        return "looks_linear"
    if isinstance(ctx.layer, nn.MultiheadAttention):
        return "xavier_uniform"  # q, k, v: Vaswani et al. 2017 and PyTorch's own choice
    name = ctx.activation.name
    if name == "tanh" and isinstance(ctx.layer, nn.modules.conv._ConvNd):
        layer = ctx.layer
        if not layer.transposed and layer.out_channels >= layer.in_channels:
            return "delta_orthogonal"
    if name == "crelu":
        return "looks_linear"  # the layer before a CReLU: orthogonal with gain 1, as in a looks-linear net
    return _BY_ACTIVATION.get(name, "kaiming_normal")


def pick(ctx: InitContext) -> Pick:
    """``auto``'s choice for one block, shown in the report as ``auto→<scheme>``."""
    scale = residual_scale(ctx)
    if scale == 1.0:
        return Pick(recommend(ctx), label="auto→{}")
    r = ctx.residual
    assert r is not None
    if r.writes_stream:
        rule, note = "×1/√(2L)", f"×1/√(2L) = {scale:.3g}: last layer of a branch, no normalization (L={r.L})"
    else:
        rule, note = "×L^(−1/(2m−2))", f"×L^(−1/(2m−2)) = {scale:.3g}: no normalization (L={r.L}, m={r.m})"
    return Pick(recommend(ctx), label="auto→{}" + rule, note=note, scale=scale)


def auto_scheme(tensor: torch.Tensor, ctx: InitContext) -> None:
    """Auto: per layer, the scheme the literature recommends for the activation that follows it (He 2015,
    Glorot 2010, Saxe 2014, Klambauer 2017, Balduzzi 2017, Xiao 2018; see :data:`AUTO_TABLE`); in a
    residual branch without normalization, inner layers × L^(−1/(2m−2)) (Zhang et al. 2019) and the last
    layer × 1/√(2L) (Radford et al. 2019): :data:`RESIDUAL_TABLE`.

    Example: ``init_model(model, "auto", sample_input=x)``
    """
    fn = get_scheme(recommend(ctx)).fn
    assert fn is not None  # recommend() names per-block schemes only
    fn(tensor, ctx)
    scale = residual_scale(ctx)
    if scale != 1.0:
        tensor.mul_(scale)


OWN = Option(
    name="own",
    doc="'keep' (default): a parameter whose value the model's author chose (not PyTorch's default) is kept "
    "as built; 'replace': auto's rule everywhere",
    check=one_of("keep", "replace"),
    default="keep",
)


def keep_authored(own: OwnValue) -> str | None:
    """auto keeps what the model's author chose (Hugging Face's N(0, 0.02) and 1/√(2L) projections, timm's
    truncated-normal position embeddings, torchvision's fan-out convs and zero-γ): autoinit has no rule
    known to beat a library's tuned init, and replacing it made every library model we tried train worse."""
    if own.options.get("own", OWN.default) != "keep":
        return None
    why = own.authored()
    return None if why is None else f"the model's own init kept: {why}"


AUTO = Scheme(
    name="auto",
    formula="per layer, by the activation that follows it (table below); in a residual branch without "
    "normalization, inner layers × L^(−1/(2m−2)), the last layer × 1/√(2L); a parameter whose author chose its "
    "init (not PyTorch's default) is kept as built",
    paper="He 2015, Glorot 2010, Saxe 2014, Klambauer 2017, Balduzzi 2017, Xiao 2018, Zhang 2019, Radford 2019",
    example='init_model(model, "auto", sample_input=x)',
    fn=auto_scheme,
    pick=pick,
    keep=keep_authored,
    options=(MODE, DISTRIBUTION, OWN),
    embeddings=EmbeddingRule.NORMAL,
)
