"""The scheme registry: one :class:`~autoinit.schemes.base.Scheme` per name.

Built-ins are registered by :mod:`autoinit.schemes.builtins` (imported with the package); this module
imports no scheme, so nothing here forms an import cycle.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

from autoinit.errors import AutoInitError
from autoinit.schemes.base import DataUse, EmbeddingRule, InitContext, ModelPass, Pick, Scheme, SchemeFn
from autoinit.schemes.options import BLOCK_OPTIONS, Option

_REGISTRY: dict[str, Scheme] = {}
_BUILTINS: list[str] = []

# Names other libraries give the same formulas. Suggested in the error, never aliased: a config keeps one
# meaning. Keras's normal initializers are truncated normals.
_TRUNCATED = " with distribution='truncated_normal'"
_OTHER_NAMES: dict[str, tuple[str, str]] = {
    "he_normal": ("kaiming_normal", _TRUNCATED),
    "he_uniform": ("kaiming_uniform", ""),
    "he": ("kaiming_normal", ""),
    "msra": ("kaiming_normal", ""),
    "glorot_normal": ("xavier_normal", _TRUNCATED),
    "glorot_uniform": ("xavier_uniform", ""),
    "glorot": ("xavier_uniform", ""),
    "variance_scaling": ("kaiming_normal", _TRUNCATED),
    "saxe": ("orthogonal", ""),
    "pytorch": ("default", ""),
    "torch": ("default", ""),
}


def register(scheme: Scheme) -> Scheme:
    """Register a :class:`Scheme` object (replacing one of the same name) and return it."""
    if not isinstance(scheme, Scheme):
        raise AutoInitError(f"register() takes an autoinit.schemes.Scheme, got {type(scheme).__name__}")
    _REGISTRY[scheme.name] = scheme
    return scheme


def register_scheme(
    name: str,
    *,
    formula: str = "user-defined",
    paper: str = "",
    example: str = "",
    options: tuple[str | Option, ...] = (),
    needs_data: bool = False,
    data: DataUse | None = None,
    embeddings: EmbeddingRule = EmbeddingRule.SCHEME,
    model_pass: ModelPass | None = None,
    check: ModelPass | None = None,
    pick: Callable[[InitContext], Pick] | None = None,
) -> Callable[[SchemeFn | None], SchemeFn | None]:
    """Decorator that registers ``fn(tensor, ctx)`` as a scheme, after which
    ``init_model(model, scheme=name)`` uses it for every weight block (biases stay zero, norm layers 1/0).

    ``ctx`` is an :class:`InitContext` with the block's fans, the gain of the activation that follows it
    and the user's gain; the function fills ``tensor`` in place. ``model_pass(pctx)`` (a
    :class:`~autoinit.schemes.base.PassContext`) then runs once over the whole model; decorate ``None``
    (``register_scheme(..., model_pass=f)(None)``) for a scheme that is only a model pass. ``options``:
    names (any value) or :class:`~autoinit.schemes.options.Option` objects (checked values).
    """

    def decorator(fn: SchemeFn | None) -> SchemeFn | None:
        register(
            Scheme(
                name=name,
                formula=formula,
                paper=paper,
                example=example,
                fn=fn,
                pick=pick,
                model_pass=model_pass,
                check=check,
                options=tuple(o if isinstance(o, Option) else Option(name=o) for o in options),
                data=data if data is not None else DataUse.REQUIRED if needs_data else DataUse.OPTIONAL,
                embeddings=embeddings,
            )
        )
        return fn

    return decorator


def register_builtins(schemes: list[Scheme]) -> None:
    """Register the built-ins, remembering their order (:func:`builtin_scheme_names`)."""
    for scheme in schemes:
        register(scheme)
        if scheme.name not in _BUILTINS:
            _BUILTINS.append(scheme.name)


def builtin_scheme_names() -> list[str]:
    """The built-in schemes in registration order (``default`` first; the tuner's ``schemes: all``)."""
    return list(_BUILTINS)


def registered_schemes() -> list[Scheme]:
    """Every registered scheme: built-ins in registration order, then the user's."""
    return list(_REGISTRY.values())


def list_schemes() -> list[str]:
    """Names of every registered scheme, built-in and user-registered, sorted."""
    return sorted(_REGISTRY)


def get_scheme(name: str) -> Scheme:
    """The scheme called ``name``; a one-line error naming the closest valid scheme otherwise."""
    if isinstance(name, str) and name in _REGISTRY:
        return _REGISTRY[name]
    key = str(name).strip().lower().replace("-", "_").rstrip("_")
    if key in _REGISTRY:
        hint = f"did you mean '{key}'?"
    elif key in _OTHER_NAMES:
        target, extra = _OTHER_NAMES[key]
        hint = f"did you mean '{target}'{extra}? (autoinit's name for what other libraries call {key})"
    else:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1, cutoff=0.4)
        hint = f"did you mean '{close[0]}'?" if close else f"valid: {', '.join(sorted(_REGISTRY))}"
    raise AutoInitError(f"unknown scheme '{name}': {hint} (autoinit.list_schemes() lists them all)")


def accepted_options(scheme: Scheme, options: Mapping[str, Any]) -> dict[str, Option]:
    """The options ``scheme`` takes given ``options``: its own, the engine's per-block ones, and those of a
    scheme an option of it names (Yam–Chow's fallback). Values naming a scheme are checked here."""
    accepted: dict[str, Option] = {}
    seen: set[str] = set()

    def collect(s: Scheme) -> None:
        seen.add(s.name)
        for opt in (*s.options, *(BLOCK_OPTIONS if s.per_block else ())):
            accepted.setdefault(opt.name, opt)
        for opt in s.options:
            if opt.names_scheme:
                target = options.get(opt.name, opt.default)
                opt.validate(s.name, target)
                if target not in seen:
                    collect(get_scheme(target))

    collect(scheme)
    return accepted


def check_options(scheme: Scheme, options: Mapping[str, Any]) -> None:
    """A one-line error for an option no chosen scheme takes, or a value its check refuses."""
    accepted = accepted_options(scheme, options)
    for key, value in options.items():
        if key not in accepted:
            valid = f"valid options are {', '.join(sorted(accepted))}" if accepted else "it takes no options"
            raise AutoInitError(f"unknown option '{key}' for scheme '{scheme.name}': {valid}")
        accepted[key].validate(scheme.name, value)
