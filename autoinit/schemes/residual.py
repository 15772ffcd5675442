"""Schemes for residual networks: ``fixup``, ``zero_residual`` (SkipInit), ``depth_scaled`` (GPT-2).

A residual network adds each branch's output to a stream, x ← x + f(x); with unit-variance branches the
stream's variance grows with the number of branches L (2^L-fold under He init, whose branches preserve
their input's variance). These schemes start the branches small. They read the structure a traced forward
pass finds (:class:`autoinit.detect.Branch`): ``ctx.residual`` says whether a block is inside a branch or
writes into the stream (its last layer), with the branch's L and m; so each needs ``sample_input``
(``DataUse.TRACE``) and refuses a model without residual connections (its ``check``).
"""

from __future__ import annotations

import math
from typing import Any

from autoinit.errors import AutoInitError
from autoinit.schemes.base import DataUse, EmbeddingRule, InitContext, PassContext, Pick, Scheme
from autoinit.schemes.options import Option
from autoinit.schemes.registry import registered_schemes


def needs_residual(scheme: str) -> Any:
    """The precondition check of a residual scheme: the traced model has residual connections."""

    def check(pctx: PassContext) -> None:
        if not pctx.graph.residual:
            raise AutoInitError(
                f"{scheme} needs residual connections (x + f(x), found by tracing sample_input) and this model has "
                "none: pick a plain scheme such as 'auto' or 'kaiming_normal'"
            )

    return check


# ---- fixup ---------------------------------------------------------------------------------------------


def fixup_factor(L: int, m: int) -> float:
    """Fixup's scale of a branch's inner layers over He init: L^(−1/(2m−2)) (Zhang et al. 2019, eq. 5)."""
    return float(L) ** (-1.0 / (2 * m - 2)) if m > 1 else 1.0


def fixup_pick(ctx: InitContext) -> Pick:
    """Fixup: He init (kaiming_normal), with every branch's inner layers × L^(−1/(2m−2)), every branch's
    last layer 0 and the classifier head 0 (Zhang, Dauphin & Ma 2019, Fixup, §3).

    Example: ``init_model(resnet, "fixup", sample_input=x)``
    """
    r = ctx.residual
    if ctx.head:
        return Pick("kaiming_normal", label="fixup→zeros", note="classifier head: 0 (Fixup)", scale=0.0)
    if r is None or r.kind not in ("inner", "output"):
        return Pick("kaiming_normal", label="fixup→{}")
    if r.writes_stream:
        note = f"last layer of branch {r.branch + 1}: 0 (Fixup)"
        return Pick("kaiming_normal", label="fixup→zeros", note=note, scale=0.0)
    s = fixup_factor(r.L, r.m)
    note = f"×L^(−1/(2m−2)) = {s:.3g} (L={r.L}, m={r.m})"
    return Pick("kaiming_normal", label="fixup→{}×L^(−1/(2m−2))", note=note, scale=s)


FIXUP = Scheme(
    name="fixup",
    formula="He (kaiming_normal) init; a residual branch's inner layers × L^(−1/(2m−2)) (L branches along the "
    "stream, m weighted layers per branch), its last layer 0, the classifier head 0; needs residual connections",
    paper="Zhang, Dauphin & Ma 2019, Fixup initialization: residual learning without normalization",
    example='init_model(resnet, "fixup", sample_input=x)',
    pick=fixup_pick,
    check=needs_residual("fixup"),
    data=DataUse.TRACE,
    embeddings=EmbeddingRule.NORMAL,
)


# ---- zero_residual (SkipInit) ----------------------------------------------------------------------------


def auto_first(ctx: InitContext) -> Pick:
    # Everything by auto's per-activation rule (not its residual scaling: SkipInit's branches start at
    # zero instead); the model pass then zeroes each branch's output.
    return Pick("auto", label="{}", plain=True)


def zero_residual_pass(pctx: PassContext) -> None:
    """Zero-residual (SkipInit): every weight by ``auto``, then each residual branch starts at zero — the γ
    of the branch's last normalization layer (ResNet's last BN) when it has one, else the weight of its last
    layer — so every block is the identity at init (Goyal et al. 2017; De & Smith 2020).

    Example: ``init_model(resnet, "zero_residual", sample_input=x)``
    """
    every = [b for blocks in pctx.blocks.values() for b in blocks if b.residual is not None]
    # A branch ending in a norm whose γ has no block here (a hand-written norm: only its module knows which
    # γ is the identity) starts at zero by its last layer instead, as a branch with no output norm does.
    zero_gamma = {b.residual.branch for b in every if b.role == "norm_weight" and b.residual.kind == "output_norm"}
    for b in every:
        r = b.residual
        if b.role == "norm_weight" and r.kind == "output_norm":
            b.tensor.zero_()
            pctx.relabel(b, "zeros", f"γ of branch {r.branch + 1}'s last norm: 0 (Goyal et al. 2017)")
        elif b.role == "weight" and r.writes_stream and r.branch not in zero_gamma:
            b.tensor.zero_()
            pctx.relabel(b, "zeros", f"last layer of branch {r.branch + 1}: 0 (SkipInit)")


ZERO_RESIDUAL = Scheme(
    name="zero_residual",
    formula="`auto` (per activation), then each residual branch's output 0: the γ of its last normalization "
    "layer when it has one, else its last layer's weight; needs residual connections",
    paper="Goyal et al. 2017, Accurate, large minibatch SGD (zero γ); De & Smith 2020, SkipInit",
    example='init_model(resnet, "zero_residual", sample_input=x)',
    pick=auto_first,
    model_pass=zero_residual_pass,
    check=needs_residual("zero_residual"),
    data=DataUse.TRACE,
    embeddings=EmbeddingRule.NORMAL,
)


# ---- depth_scaled (GPT-2) --------------------------------------------------------------------------------


def _check_base(value: Any) -> str | None:
    # The base fills every block, so it must be a per-block scheme (no model pass), and not this one.
    names = [s.name for s in registered_schemes() if s.per_block and s.model_pass is None and s.name != "depth_scaled"]
    return None if isinstance(value, str) and value in names else f"to be a per-block scheme: one of {', '.join(names)}"


BASE = Option(
    name="base",
    doc="the scheme for every weight before the branch outputs are scaled (default 'auto')",
    check=_check_base,
    default="auto",
    names_scheme=True,
)


def depth_scaled_pick(ctx: InitContext) -> Pick:
    """Depth-scaled: any ``base`` scheme (default ``auto``), with the last layer of every residual branch
    × 1/√(2L), L the branches along the stream, so the stream's variance stays bounded as L grows (Radford et
    al. 2019, GPT-2, who count one block of attention + MLP as one layer: their 1/√N_layers is 1/√(L/2)).

    Example: ``init_model(gpt, "depth_scaled", sample_input=x, base="xavier_uniform")``
    """
    base = ctx.options.get("base", BASE.default)
    r = ctx.residual
    if r is None or not r.writes_stream:
        return Pick(base, label="depth_scaled→{}", plain=True)  # the base's own rule, not auto's residual one
    s = 1.0 / math.sqrt(2 * r.L)
    return Pick(base, label="depth_scaled→{}×1/√(2L)", note=f"×1/√(2L) = {s:.3g} (L={r.L})", scale=s)


DEPTH_SCALED = Scheme(
    name="depth_scaled",
    formula="`base` (default `auto`), the last layer of each residual branch × 1/√(2L); needs residual connections",
    paper="Radford et al. 2019, Language models are unsupervised multitask learners (GPT-2)",
    example='init_model(gpt, "depth_scaled", sample_input=x, base="xavier_uniform")',
    pick=depth_scaled_pick,
    check=needs_residual("depth_scaled"),
    options=(BASE,),
    data=DataUse.TRACE,
    embeddings=EmbeddingRule.NORMAL,
)
