"""Scheme options: each a name, a value check and a line of documentation.

An option no chosen scheme takes, or a value its check refuses, is a one-line error before any work.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autoinit.errors import AutoInitError

Check = Callable[[Any], "str | None"]  # None when the value is fine, else what is needed ("> 0 (a number)")


def _anything(value: Any) -> str | None:
    return None


@dataclass(frozen=True, kw_only=True)
class Option:
    """One option a scheme takes. ``check(value)`` returns None or what the value must be.

    ``names_scheme``: the value is another scheme's name (Yam–Chow's ``fallback``), whose own options are then
    accepted too.
    """

    name: str
    doc: str = ""
    check: Check = _anything
    default: Any = None
    names_scheme: bool = False

    def validate(self, scheme: str, value: Any) -> None:
        need = self.check(value)
        if need is not None:
            raise AutoInitError(f"scheme '{scheme}': {self.name}={value!r} is not valid: need {self.name} {need}")


def one_of(*values: Any) -> Check:
    def check(value: Any) -> str | None:
        ok = isinstance(value, str) and value in values
        return None if ok else "to be one of " + ", ".join(map(repr, values))

    return check


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(*, above: float | None = None, at_least: float | None = None, allow_none: bool = False) -> Check:
    """A finite number (not a bool), optionally > ``above`` or >= ``at_least``."""
    if above is not None:
        need = f"> {above:g} (a number)"
    elif at_least is not None:
        need = f">= {at_least:g} (a number)"
    else:
        need = "to be a finite number"

    def check(value: Any) -> str | None:
        if value is None and allow_none:
            return None
        if not _is_number(value):
            return need
        if (above is not None and value <= above) or (at_least is not None and value < at_least):
            return need
        return None

    return check


def integer(*, at_least: int) -> Check:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= at_least
        return None if ok else f">= {at_least} (an int)"

    return check


# Options the engine applies around every scheme that initializes block by block.
BIAS_STD = Option(
    name="bias_std",
    doc="biases from N(0, bias_std²) instead of zeros",
    check=number(at_least=0.0, allow_none=True),
)
FORGET_BIAS = Option(
    name="forget_bias",
    doc="the effective forget-gate bias of an LSTM (put in bias_ih)",
    check=number(allow_none=True),
)
RECURRENT = Option(
    name="recurrent",
    doc="'orthogonal' (recurrent weights orthogonal·g) or 'scheme' (the scheme's own rule)",
    check=one_of("orthogonal", "scheme"),
    default="orthogonal",
)


def _head(value: Any) -> str | None:
    return None if value in (None, "zero", "prior") else "to be one of 'zero', 'prior' (or None)"


HEAD = Option(
    name="head",
    doc="the classifier head (the last Linear/Conv whose output is the model's output; needs sample_input): "
    "'zero' (weight and bias 0) or 'prior' (weight 0, bias −log(num_classes))",
    check=_head,
)
EMBEDDINGS = Option(
    name="embeddings",
    doc="'own' (default): an embedding table whose init the model's author chose (not PyTorch's N(0, 1)) is "
    "kept as built; 'scheme': the scheme's embedding rule redraws it",
    check=one_of("own", "scheme"),
    default="own",
)
BLOCK_OPTIONS: tuple[Option, ...] = (BIAS_STD, FORGET_BIAS, RECURRENT, HEAD, EMBEDDINGS)

MODE = Option(name="mode", doc="'fan_in' (default) or 'fan_out': which fan n is", check=one_of("fan_in", "fan_out"))
DISTRIBUTION = Option(
    name="distribution",
    doc="'normal' (default) or 'truncated_normal' (cut at ±2σ', std kept)",
    check=one_of("normal", "truncated_normal"),
)
