"""``default``: every module's own ``reset_parameters()``, as at construction, then weights × g."""

from __future__ import annotations

import torch
from torch import nn

from autoinit.schemes.base import DataUse, PassContext, Scheme


def reset_default(module: nn.Module) -> bool:
    """Call the module's own reset (``reset_parameters`` or ``_reset_parameters``); False if it has none."""
    for attr in ("reset_parameters", "_reset_parameters"):
        fn = getattr(module, attr, None)
        if callable(fn):
            fn()
            return True
    return False


def default_pass(pctx: PassContext) -> None:
    """PyTorch's default: each module's ``reset_parameters()`` (kaiming_uniform with a=√5 for Linear/Conv,
    N(0, 1) for Embedding...) under the seeded global RNG, then weights × g.

    Example: ``init_model(model, "default", seed=0)``
    """
    names_by_module: dict[nn.Module, list[str]] = {}
    for name in list(pctx.blocks) + list(pctx.left_alone):
        names_by_module.setdefault(pctx.layer_of(name), []).append(name)
    with pctx.global_rng():
        # Children before parents, as at construction (MultiheadAttention zeroes out_proj.bias after
        # out_proj has reset itself).
        for module in reversed(list(dict(pctx.model.named_modules()).values())):
            own = names_by_module.get(module, [])
            if not any(n in pctx.blocks for n in own):
                continue
            # A reset rewrites every parameter of the module: put back the ones the user left out.
            keep = {n: pctx.params[n].detach().clone() for n in own if n in pctx.left_alone}
            with pctx.materialized(own):
                has_reset = reset_default(module)
                for n in own:
                    if n not in pctx.blocks or not has_reset:
                        continue
                    for b in pctx.blocks[n]:
                        if b.role in ("weight", "recurrent", "embedding") and pctx.gain != 1.0:
                            with torch.no_grad():
                                b.tensor.mul_(pctx.gain)
                        pctx.record(b, "default")
            with torch.no_grad():
                for n, value in keep.items():
                    pctx.params[n].copy_(value)
            if not has_reset:
                for n in own:
                    if n in pctx.blocks:
                        pctx.keep(n, f"{type(module).__name__} has no reset_parameters(): the model's own init kept")


DEFAULT = Scheme(
    name="default",
    formula="the module's own `reset_parameters()`, then weights × g",
    paper="PyTorch (kaiming_uniform with a=√5 for Linear/Conv, N(0,1) for Embedding)",
    example='init_model(model, "default", seed=0)',
    model_pass=default_pass,
    data=DataUse.NONE,
    shardable_pass=True,
)
