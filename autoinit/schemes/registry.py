"""The scheme registry: every scheme by name, with its formula, its paper and the options it takes."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from autoinit.activations import Activation
from autoinit.errors import AutoInitError


@dataclass
class InitContext:
    """What a scheme knows about the block it initializes.

    ``gain`` is the user's multiplier g (1.0 = the textbook formula); ``act_gain`` is the gain a of the
    activation that follows the layer.
    """

    fan_in: int
    fan_out: int
    act_gain: float
    activation: Activation
    gain: float = 1.0
    generator: torch.Generator | None = None
    options: dict[str, Any] = field(default_factory=dict)
    fed_by: Activation | None = None
    layer: Any = None  # the nn.Module the block belongs to
    label: str = ""


SchemeFn = Callable[[torch.Tensor, InitContext], None]


@dataclass(frozen=True)
class SchemeInfo:
    name: str
    fn: SchemeFn | None  # None for the model-level schemes the engine runs itself (default, lsuv, ...)
    formula: str
    paper: str
    options: tuple[str, ...] = ()
    needs_data: bool = False


# Options every scheme accepts (the engine applies them around the scheme).
COMMON_OPTIONS = ("bias_std", "recurrent", "forget_bias", "fallback")

_REGISTRY: dict[str, SchemeInfo] = {}


def register_scheme(
    name: str,
    *,
    formula: str = "user-defined",
    paper: str = "",
    options: tuple[str, ...] = (),
    needs_data: bool = False,
) -> Callable[[SchemeFn], SchemeFn]:
    """Decorator that registers ``fn(tensor, ctx)`` as a scheme, after which
    ``init_model(model, scheme=name)`` uses it for every weight block (biases stay zero, norm layers 1/0).

    ``ctx`` is an :class:`InitContext` with the block's fans, the gain of the activation that follows it
    and the user's gain; the function fills ``tensor`` in place.
    """

    def decorator(fn: SchemeFn) -> SchemeFn:
        _REGISTRY[name] = SchemeInfo(name, fn, formula, paper, tuple(options), needs_data)
        return fn

    return decorator


def register_model_scheme(
    name: str, formula: str, paper: str, options: tuple[str, ...] = (), needs_data: bool = False
) -> None:
    """Register a scheme the engine runs at model level (it needs more than one block at a time)."""
    _REGISTRY[name] = SchemeInfo(name, None, formula, paper, tuple(options), needs_data)


def list_schemes() -> list[str]:
    """Names of every registered scheme, built-in and user-registered, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def get_scheme(name: str) -> SchemeInfo:
    """The scheme called ``name``; a one-line error naming the closest valid scheme otherwise."""
    _load_builtins()
    if not isinstance(name, str) or name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1, cutoff=0.4)
        hint = f"did you mean '{close[0]}'?" if close else f"valid: {', '.join(sorted(_REGISTRY))}"
        raise AutoInitError(f"unknown scheme '{name}': {hint} (autoinit.list_schemes() lists them all)")
    return _REGISTRY[name]


def check_options(info: SchemeInfo, options: dict[str, Any]) -> None:
    valid = set(info.options) | set(COMMON_OPTIONS)
    for key in options:
        if key not in valid:
            raise AutoInitError(
                f"unknown option '{key}' for scheme '{info.name}': valid options are {', '.join(sorted(valid))}"
            )


def _load_builtins() -> None:
    # Importing the modules registers their schemes; done lazily to keep import order simple.
    from autoinit.schemes import auto, data_dependent, orthogonal, variance  # noqa: F401


# The built-in schemes in the order the tuner's ``schemes: all`` tries them as anchors (PyTorch's default first).
ALL_SCHEMES = (
    "default",
    "auto",
    "kaiming_normal",
    "kaiming_uniform",
    "xavier_uniform",
    "xavier_normal",
    "lecun_normal",
    "lecun_uniform",
    "orthogonal",
    "delta_orthogonal",
    "looks_linear",
    "lsuv",
    "yam_chow",
)


def builtin_scheme_names() -> list[str]:
    """The built-in schemes, PyTorch's default first, in the order the tuner tries them."""
    registered = set(list_schemes())
    return [name for name in ALL_SCHEMES if name in registered]
