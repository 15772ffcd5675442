"""The one exception type autoinit raises for bad input, and the one way a user's exception is summarized."""

from __future__ import annotations


class AutoInitError(ValueError):
    """Bad input to autoinit: the message is one line that names the problem and the fix."""


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` — how an exception raised in the user's code (a model's
    ``__init__``, ``forward``, ``training_step``) is quoted in autoinit's one-line errors and trial records,
    keeping the user's own words."""
    text = str(exc).strip()
    first = text.splitlines()[0].strip() if text else ""
    if isinstance(exc, KeyError) and first.startswith(("'", '"')):
        first = first.strip("'\"")  # KeyError quotes its message
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
