"""``yam_chow``: weights sized so each unit's non-saturated region covers its input box (Yam & Chow 2000)."""

from __future__ import annotations

from typing import Any

from torch import nn

from autoinit.errors import AutoInitError
from autoinit.schemes.base import DataUse, EmbeddingRule, InitContext, PassContext, Pick, Scheme
from autoinit.schemes.data_dependent import pass_layers, sequential_pass, yam_chow_eligible, yam_chow_layer
from autoinit.schemes.options import Option
from autoinit.schemes.registry import registered_schemes


def _per_block_names() -> list[str]:
    return [s.name for s in registered_schemes() if s.per_block and s.model_pass is None]


def _check_fallback(value: Any) -> str | None:
    names = _per_block_names()
    return None if isinstance(value, str) and value in names else f"to be a per-block scheme: one of {', '.join(names)}"


FALLBACK = Option(
    name="fallback",
    doc="the scheme for the layers Yam–Chow cannot cover (default 'auto')",
    check=_check_fallback,
    default="auto",
    names_scheme=True,
)


def fallback_first(ctx: InitContext) -> Pick:
    # Every block gets the fallback; the pass then overwrites the layers Yam–Chow covers.
    return Pick(ctx.options.get("fallback", FALLBACK.default), note=yam_chow_eligible(ctx.layer, ctx.activation) or "")


def _eligible(pctx: PassContext) -> dict[nn.Module, Any]:
    return pass_layers(pctx, lambda b: yam_chow_eligible(b.layer, b.activation) is None)


def needs_saturating_layer(pctx: PassContext) -> None:
    """Yam–Chow's precondition: some Linear/Conv layer is followed by a saturating activation."""
    if not _eligible(pctx):
        raise AutoInitError(
            "yam_chow found no Linear/Conv layer followed by a saturating activation "
            "(sigmoid, tanh...): pick another scheme for this model"
        )


def yam_chow_pass(pctx: PassContext) -> None:
    """Yam–Chow: per Linear/Conv followed by a saturating activation, in forward order on ``sample_input``,
    W ~ U(±w_max), w_max = g·(W_ns/D)·√(3/N), D = √Σ(x_max,i − x_min,i)², b_j = −Σ_i W_ji·C_i
    (Yam & Chow 2000).

    Example: ``init_model(model, "yam_chow", sample_input=x, fallback="kaiming_normal")``
    """
    layers = _eligible(pctx)

    def init(module: nn.Module, args: tuple) -> Any:
        b = layers[module]
        bias_name = f"{b.layer_name}.bias" if b.layer_name else "bias"
        set_bias = module.bias is not None and bias_name in pctx.blocks
        out, note = yam_chow_layer(
            module, b.tensor, args, b.activation, b.fed_by, pctx.gain, pctx.generator_for(b.tensor), set_bias
        )
        pctx.relabel(b, "yam_chow", note)
        if set_bias:
            pctx.relabel(pctx.blocks[bias_name][0], "yam_chow", "−Σ_i W_ji·C_i (centre of the input box)")
        return out

    reached = sequential_pass(pctx.model, pctx.sample_input, dict.fromkeys(layers, init))
    for module, b in layers.items():
        if module not in reached:
            pctx.annotate(b, "yam_chow: not reached by sample_input")


YAM_CHOW = Scheme(
    name="yam_chow",
    formula="U(±w_max), w_max = g·(W_ns/D)·√(3/N), D = √Σ(x_max,i − x_min,i)², b_j = −Σ_i W_ji·C_i per row; W_ns "
    "is the width where φ' ≥ max φ'/20 (8.71 for the sigmoid; the paper rounds to 8.72); first-layer box from "
    "`sample_input`, hidden layers' from the previous activation's range; other layers get `fallback`",
    paper="Yam & Chow 2000, A weight initialization method for improving training speed in feedforward nets",
    example='init_model(model, "yam_chow", sample_input=x, fallback="kaiming_normal")',
    pick=fallback_first,
    model_pass=yam_chow_pass,
    check=needs_saturating_layer,
    options=(FALLBACK,),
    data=DataUse.REQUIRED,
    embeddings=EmbeddingRule.NORMAL,
)
