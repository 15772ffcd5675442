"""``as_built``: the model's own init — every parameter kept as the model's constructor (or
``configure_model``) gave it. The tuner's baseline: what a user of a model library already has."""

from __future__ import annotations

from autoinit.schemes.base import DataUse, OwnValue, Scheme


def keep_all(own: OwnValue) -> str:
    """Every parameter as built.

    Example: ``init_model(model, "as_built")`` writes nothing and reports each parameter's std.
    """
    return "the model's own init (as_built)"


AS_BUILT = Scheme(
    name="as_built",
    formula="nothing written: each parameter keeps the value the model's constructor gave it (g is not used)",
    paper="the model library's own init (Hugging Face's _init_weights, timm, torchvision, PyTorch's defaults)",
    example='init_model(model, "as_built")',
    keep=keep_all,
    data=DataUse.NONE,
    uses_gain=False,
    shardable_pass=True,
)
