"""``lsuv``: layer-sequential unit variance (Mishkin & Matas 2016)."""

from __future__ import annotations

from torch import nn

from autoinit.schemes.base import DataUse, EmbeddingRule, InitContext, PassContext, Pick, Scheme
from autoinit.schemes.data_dependent import is_linear_or_conv, lsuv_layer, pass_layers, sequential_pass
from autoinit.schemes.options import Option, integer, number

TOL = Option(name="tol", doc="relative tolerance on Var(out) (default 0.1)", check=number(above=0.0), default=0.1)
MAX_ITER = Option(name="max_iter", doc="rescales per layer at most (default 10)", check=integer(at_least=1), default=10)


def orthogonal_first(ctx: InitContext) -> Pick:
    # Mishkin & Matas's orthonormal pre-init, rescaled by the pass.
    return Pick("orthogonal")


def lsuv_pass(pctx: PassContext) -> None:
    """LSUV: orthogonal weights, then per Linear/Conv in forward order on ``sample_input``,
    W ← W·g/√Var(out) until |Var(out) − g²| ≤ tol·g² (Mishkin & Matas 2016, Algorithm 1).

    Example: ``init_model(model, "lsuv", sample_input=x, tol=0.1)``
    """
    tol = float(pctx.options.get("tol", TOL.default))
    max_iter = int(pctx.options.get("max_iter", MAX_ITER.default))
    layers = pass_layers(pctx, lambda b: is_linear_or_conv(b.layer))

    def init(module: nn.Module, args: tuple) -> object:
        b = layers[module]
        out, note = lsuv_layer(
            module, args, pctx.gain**2, tol, max_iter, pctx.variance, lambda factor: pctx.rescale(b, factor)
        )
        pctx.relabel(b, "lsuv", note)
        return out

    reached = sequential_pass(pctx.model, pctx.sample_input, dict.fromkeys(layers, init))
    for module, b in layers.items():
        if module not in reached:
            pctx.relabel(b, "orthogonal", "lsuv: not reached by sample_input, left orthogonal")


LSUV = Scheme(
    name="lsuv",
    formula="orthogonal, then layer by layer in forward order W ← W·g/√Var(out) until |Var(out) − g²| ≤ tol·g²",
    paper="Mishkin & Matas 2016, All you need is a good init",
    example='init_model(model, "lsuv", sample_input=x, tol=0.1)',
    pick=orthogonal_first,
    model_pass=lsuv_pass,
    options=(TOL, MAX_ITER),
    data=DataUse.REQUIRED,
    embeddings=EmbeddingRule.NORMAL,
    shardable_pass=True,
)
