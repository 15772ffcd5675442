"""Activations: their names, gains, output ranges and non-saturated widths.

The gain ``a`` of an activation φ is the factor that keeps a layer's output variance from shrinking or
growing through φ. PyTorch's ``calculate_gain`` values are used where they exist (ReLU √2, leaky ReLU
√(2/(1+slope²)), tanh 5/3, sigmoid and identity 1); SELU gets 1, the self-normalizing choice (Klambauer et
al. 2017). Any other activation gets the gain computed numerically as a = 1/√E[φ(z)²], z ~ N(0, 1) — the
same rule that gives ReLU its √2 (He et al. 2015).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

from autoinit.nn import CReLU


@dataclass(frozen=True)
class Activation:
    """An activation function, by name, with its one parameter where it has one (leaky ReLU's slope)."""

    name: str
    param: float | None = None

    def __str__(self) -> str:
        return self.name if self.param is None else f"{self.name}({self.param:g})"

    @property
    def is_linear(self) -> bool:
        return self.name == "linear"


LINEAR = Activation("linear")

# Activation callables by name; `param` is passed where the function takes one.
_FUNCTIONS = {
    "linear": lambda x, p: x,
    "relu": lambda x, p: F.relu(x),
    "crelu": lambda x, p: F.relu(x),  # per output element: CReLU's halves are relu(x) and relu(-x)
    "leaky_relu": lambda x, p: F.leaky_relu(x, 0.01 if p is None else p),
    "prelu": lambda x, p: F.leaky_relu(x, 0.25 if p is None else p),
    "rrelu": lambda x, p: F.leaky_relu(x, (1 / 8 + 1 / 3) / 2),
    "relu6": lambda x, p: F.relu6(x),
    "elu": lambda x, p: F.elu(x, 1.0 if p is None else p),
    "celu": lambda x, p: F.celu(x, 1.0 if p is None else p),
    "selu": lambda x, p: F.selu(x),
    "gelu": lambda x, p: F.gelu(x),
    "silu": lambda x, p: F.silu(x),
    "mish": lambda x, p: F.mish(x),
    "softplus": lambda x, p: F.softplus(x, 1.0 if p is None else p),
    "tanh": lambda x, p: torch.tanh(x),
    "sigmoid": lambda x, p: torch.sigmoid(x),
    "hardtanh": lambda x, p: F.hardtanh(x),
    "hardsigmoid": lambda x, p: F.hardsigmoid(x),
    "hardswish": lambda x, p: F.hardswish(x),
    "softsign": lambda x, p: F.softsign(x),
    "logsigmoid": lambda x, p: F.logsigmoid(x),
    "tanhshrink": lambda x, p: F.tanhshrink(x),
}

KNOWN_ACTIVATIONS = frozenset(_FUNCTIONS)

# Module classes that are activations, and how to read their parameter.
_MODULES: dict[type[nn.Module], tuple[str, str | None]] = {
    nn.ReLU: ("relu", None),
    CReLU: ("crelu", None),
    nn.LeakyReLU: ("leaky_relu", "negative_slope"),
    nn.PReLU: ("prelu", None),
    nn.RReLU: ("rrelu", None),
    nn.ReLU6: ("relu6", None),
    nn.ELU: ("elu", "alpha"),
    nn.CELU: ("celu", "alpha"),
    nn.SELU: ("selu", None),
    nn.GELU: ("gelu", None),
    nn.SiLU: ("silu", None),
    nn.Mish: ("mish", None),
    nn.Softplus: ("softplus", "beta"),
    nn.Tanh: ("tanh", None),
    nn.Sigmoid: ("sigmoid", None),
    nn.Hardtanh: ("hardtanh", None),
    nn.Hardsigmoid: ("hardsigmoid", None),
    nn.Hardswish: ("hardswish", None),
    nn.Softsign: ("softsign", None),
    nn.LogSigmoid: ("logsigmoid", None),
    nn.Tanhshrink: ("tanhshrink", None),
}

# Output ranges of the bounded activations (Yam & Chow take the next layer's input box from them).
_RANGES = {
    "sigmoid": (0.0, 1.0),
    "tanh": (-1.0, 1.0),
    "hardtanh": (-1.0, 1.0),
    "softsign": (-1.0, 1.0),
    "hardsigmoid": (0.0, 1.0),
    "relu6": (0.0, 6.0),
}


def activation_of_module(module: nn.Module) -> Activation | None:
    """The activation a module computes, or None when it is not an activation module. A module class not
    listed here (a library's own, such as Hugging Face's ``NewGELUActivation``) is known by its values."""
    for cls, (name, attr) in _MODULES.items():
        if type(module) is cls or (cls is CReLU and isinstance(module, CReLU)):
            param = getattr(module, attr) if attr else None
            if name == "prelu":
                param = float(module.weight.detach().flatten()[0])
            return Activation(name, None if param is None else float(param))
    return _activation_by_values(module)


# A parameterless leaf module that matches a known activation on z ∈ [−8, 8] to within _MATCH_TOL computes it:
# the tanh-approximated GELU (GPT-2's gelu_new) is 5·10⁻⁴ from the exact one, QuickGELU x·σ(1.702x) 0.02; the
# closest two distinct known ones (sigmoid, hardsigmoid) are 0.07 apart. The identity (dropout in eval mode)
# is no activation; CReLU changes the shape, and PReLU/RReLU have a weight or draw at random.
_MATCH_TOL = 0.03
_PROBE_RANGE, _PROBE_POINTS = 8.0, 321
_BY_VALUES = tuple(n for n in _FUNCTIONS if n not in ("linear", "crelu", "prelu", "rrelu"))


def _activation_by_values(module: nn.Module) -> Activation | None:
    if next(module.parameters(), None) is not None or next(module.buffers(), None) is not None:
        return None
    if next(module.children(), None) is not None:
        return None
    z = torch.linspace(-_PROBE_RANGE, _PROBE_RANGE, _PROBE_POINTS)
    training = module.training
    try:
        # forward, not __call__: the user's hooks do not see the probe; eval and a forked RNG: no random draw
        # (dropout) leaves a trace.
        module.train(False)
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            y = module.forward(z.clone())
    except Exception:  # not an elementwise function of one tensor
        return None
    finally:
        module.train(training)
    if not isinstance(y, torch.Tensor) or y.shape != z.shape or not bool(torch.isfinite(y).all()):
        return None
    distance = {n: float((y.float() - _FUNCTIONS[n](z, None)).abs().max()) for n in _BY_VALUES}
    best = min(distance, key=distance.__getitem__)
    return Activation(best) if distance[best] <= _MATCH_TOL else None


def activation_from_name(name: str, param: float | None = None) -> Activation | None:
    """Normalize a function name (``relu_``, ``leaky_relu``, ``expit``...) to an Activation, if it is one."""
    key = name.rstrip("_").lower()
    key = {"expit": "sigmoid", "swish": "silu", "identity": "linear"}.get(key, key)
    return Activation(key, param) if key in _FUNCTIONS else None


def apply(act: Activation, x: torch.Tensor) -> torch.Tensor:
    """Evaluate the activation on a tensor."""
    return _FUNCTIONS[act.name](x, act.param)


def gain(act: Activation) -> float:
    """The gain ``a`` of an activation (see the module docstring for the rule)."""
    if act.name in ("linear", "sigmoid", "selu"):
        return 1.0
    if act.name == "tanh":
        return 5.0 / 3.0
    if act.name == "relu":
        return math.sqrt(2.0)
    if act.name == "leaky_relu":
        slope = 0.01 if act.param is None else act.param
        return math.sqrt(2.0 / (1.0 + slope**2))
    return _numerical_gain(act.name, act.param)


@cache
def _numerical_gain(name: str, param: float | None) -> float:
    # E[φ(z)²] by the trapezoid rule on [-12, 12]: the Gaussian tail beyond is below 1e-32.
    z = torch.linspace(-12.0, 12.0, 240_001, dtype=torch.float64)
    pdf = torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    second_moment = torch.trapezoid(_FUNCTIONS[name](z, param) ** 2 * pdf, z).item()
    return 1.0 / math.sqrt(second_moment)


def output_range(act: Activation) -> tuple[float, float] | None:
    """The activation's output range when it is bounded on both sides, else None."""
    return _RANGES.get(act.name)


@cache
def _non_saturated_width(name: str, param: float | None) -> float:
    with torch.enable_grad():
        z = torch.linspace(-60.0, 60.0, 1_200_001, dtype=torch.float64, requires_grad=True)
        (deriv,) = torch.autograd.grad(_FUNCTIONS[name](z, param).sum(), z)
    keep = deriv >= deriv.max() / 20.0
    if keep[0] or keep[-1]:
        return math.inf  # the derivative never falls to 1/20 of its maximum: no saturation
    idx = keep.nonzero().flatten()
    return float(z[idx[-1]].detach() - z[idx[0]].detach())


def non_saturated_width(act: Activation) -> float:
    """Width W_ns of the region where φ'(z) ≥ max φ' / 20 (Yam & Chow 2000): 8.72 for the sigmoid.

    Infinite for activations that never saturate on both sides (ReLU, identity...).
    """
    return _non_saturated_width(act.name, act.param)
