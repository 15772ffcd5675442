"""The measuring machinery of the data-dependent schemes (:mod:`~autoinit.schemes.lsuv`,
:mod:`~autoinit.schemes.yam_chow`).

LSUV and Yam–Chow initialize layer by layer in forward order on a real batch: one forward pass with a
hook on every layer that, at the layer's first call, sets its weights from the input it actually receives
and recomputes its output, so each later layer sees the already-initialized signal.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from autoinit.activations import Activation, non_saturated_width, output_range
from autoinit.detect import eval_mode, is_linear, run_model
from autoinit.errors import AutoInitError
from autoinit.schemes.base import PassContext
from autoinit.schemes.variance import uniform

if TYPE_CHECKING:
    from autoinit.layers import Block

LayerInit = Callable[[nn.Module, tuple], Any]


def sequential_pass(model: nn.Module, sample_input: Any, layer_inits: dict[nn.Module, LayerInit]) -> set[nn.Module]:
    """Run one forward pass; at its first call each layer in ``layer_inits`` is initialized from its
    actual input by ``layer_inits[layer](layer, args)``, which returns the layer's new output. Returns the
    layers the pass reached."""
    reached: set[nn.Module] = set()

    def hook(module: nn.Module, args: tuple, output: Any) -> Any:
        if module in reached:
            return None
        reached.add(module)
        return layer_inits[module](module, args)

    # First among the layer's forward hooks: it sees the layer as its forward did (FSDP2's post-forward
    # hook reshards the weights; a tensor-parallel output hook turns the output local) and later hooks see
    # the re-initialized output.
    handles = [m.register_forward_hook(hook, prepend=True) for m in layer_inits]
    try:
        with eval_mode(model):
            run_model(model, sample_input)
    finally:
        for h in handles:
            h.remove()
    return reached


def lsuv_layer(
    module: nn.Module,
    args: tuple,
    target_var: float,
    tol: float,
    max_iter: int,
    variance: Callable[[torch.Tensor], float],
    rescale: Callable[[float], None],
) -> tuple[Any, str]:
    """Rescale one layer's weight (``rescale(factor)``) until its output variance (``variance(out)``) is
    within ``tol``·target of ``target_var`` (Mishkin & Matas 2016, Algorithm 1). Returns the new output and a
    note for the report."""
    out = module.forward(*args)
    var = variance(out)
    iters = 0
    while abs(var - target_var) > tol * target_var and iters < max_iter:
        if not math.isfinite(var) or var <= 0.0:
            return out, f"output variance {var:.3g}: left orthogonal"
        rescale(math.sqrt(target_var / var))
        out = module.forward(*args)
        var = variance(out)
        iters += 1
    return out, f"Var(out)={var:.3g} after {iters} rescale(s)"


def input_box(x: torch.Tensor, module: nn.Module, fed_by: Activation | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per input feature (Linear) or channel (conv), the lowest and highest value the layer sees: the
    feeding activation's range when it is bounded (Yam & Chow's rule for hidden layers), else the range
    measured on the batch."""
    linear = is_linear(module)
    channels = x.shape[-1] if linear else module.in_channels  # a Linear (either layout) maps the last dimension
    bounded = output_range(fed_by) if fed_by is not None else None
    if bounded is not None:
        lo, hi = bounded
        return x.new_full((channels,), lo), x.new_full((channels,), hi)
    flat = x.reshape(-1, channels) if linear else x.transpose(0, 1).reshape(channels, -1).T
    return flat.amin(0), flat.amax(0)


def yam_chow_(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    x_min: torch.Tensor,
    x_max: torch.Tensor,
    width: float,
    gain: float = 1.0,
    groups: int = 1,
    generator: torch.Generator | None = None,
) -> float:
    """Yam & Chow (2000): W ~ U(±w_max), w_max = g·(W_ns/D)·√(3/N), with D = √Σ_i(x_max,i − x_min,i)² the
    diagonal of the input box and N the fan-in, so the hyperplanes bounding the activation's non-saturated
    region of width W_ns enclose the box; then b_j = −Σ_i W_ji·C_i centres that region on the box's centre
    C for every output row j. A conv kernel's inputs are its channels repeated over the receptive field.
    Returns w_max (of the last group)."""
    rf = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    per_in = weight.shape[1]
    per_out = weight.shape[0] // groups
    centre = (x_min + x_max) / 2
    w_max = 0.0
    with torch.no_grad():
        for g in range(groups):
            lo, hi = x_min[g * per_in : (g + 1) * per_in], x_max[g * per_in : (g + 1) * per_in]
            diag = math.sqrt(rf * float(((hi - lo) ** 2).sum()))
            if diag == 0.0:
                raise AutoInitError(
                    "yam_chow: the sample input is constant, so its input box has no size: "
                    "pass a sample_input with varied values"
                )
            w_max = gain * (width / diag) * math.sqrt(3.0 / (per_in * rf))
            rows = weight[g * per_out : (g + 1) * per_out]
            uniform(rows, w_max, generator)
            if bias is not None:
                summed = rows.reshape(per_out, per_in, rf).sum(-1)
                bias[g * per_out : (g + 1) * per_out] = -(summed @ centre[g * per_in : (g + 1) * per_in])
    return w_max


def yam_chow_layer(
    module: nn.Module,
    weight: torch.Tensor,
    args: tuple,
    activation: Activation,
    fed_by: Activation | None,
    gain: float,
    generator: torch.Generator | None,
    set_bias: bool = True,
) -> tuple[Any, str]:
    """Yam–Chow on one layer from its actual input; ``weight``: its block, (out, in, *kernel) whatever the
    layer's storage layout."""
    x_min, x_max = input_box(args[0], module, fed_by)
    width = non_saturated_width(activation)
    bias = module.bias.data if set_bias and module.bias is not None else None
    w_max = yam_chow_(weight, bias, x_min, x_max, width, gain, getattr(module, "groups", 1), generator)
    note = f"W_ns={width:.3g} after {activation}, w_max={w_max:.3g}"
    return module.forward(*args), note + ("" if bias is not None else "; bias not set")


def yam_chow_eligible(module: nn.Module, activation: Activation) -> str | None:
    """Why Yam–Chow cannot initialize this layer, or None when it can."""
    if not is_linear_or_conv(module) or getattr(module, "transposed", False):
        return f"yam_chow covers Linear and Conv layers, not {type(module).__name__}"
    if not math.isfinite(non_saturated_width(activation)):
        return f"yam_chow needs a saturating activation after the layer ({activation} never saturates)"
    return None


def is_linear_or_conv(module: nn.Module) -> bool:
    """The layers the measuring schemes initialize: Linear (either layout) and conv."""
    return is_linear(module) or isinstance(module, nn.modules.conv._ConvNd)


def pass_layers(pctx: PassContext, eligible: Callable[[Block], bool]) -> dict[nn.Module, Block]:
    """The layers a measuring pass initializes: those whose whole weight is one eligible block."""
    layers: dict[nn.Module, Block] = {}
    for b in pctx.weight_blocks():
        # The block's size, not its storage or layout: a sharded model's blocks are planned on global-shape
        # stand-ins, a transposed linear's block is its weight's transpose.
        if eligible(b) and b.tensor.numel() == b.layer.weight.numel():
            layers[b.layer] = b
    return layers
