"""The model's own init: is a parameter's value what PyTorch's ``reset_parameters`` draws, or a choice of
the model's author (Hugging Face's ``_init_weights``, timm's ``trunc_normal_(std=.02)``, torchvision's
Kaiming fan-out convs and zero-γ BatchNorm, a raw ``nn.Parameter`` made by hand)?

The answer is a distribution test, not a lookup of model or module names: a fresh default draw of the
parameter's own module (``reset_parameters`` on a copy, under a forked RNG) is compared with the value
the model has — both constant and equal, or a two-sample Kolmogorov–Smirnov test that cannot tell them
apart (p ≥ 10⁻³ on up to 2¹⁶ elements each, enough to tell U(−√3σ, √3σ) from N(0, σ²) of the same σ on a
768×768 matrix) — means PyTorch's default. Anything else is the author's choice.

A small parameter gets a second test, on its tails: the default of a Linear or Conv is uniform and bounded,
and a 64-value 1×1 conv of 4 → 16 channels under ResNet's kaiming_normal(fan_out) — std 0.35 against the
default's 0.29 — is beyond KS's power on 64 values, yet about 10 of them lie past the bound 1/√4 that no
default draw reaches. So the reference holds up to 2¹² values (further default draws of the module), and
k values of the parameter beyond the reference's largest magnitude have the exact, distribution-free
p-value C(n, k)/C(n + m, k) (the k largest of the pooled magnitudes all from the parameter).
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

# Below this p-value the value is not a draw of the module's default init.
_P_AUTHORED = 1e-3
_MAX_SAMPLES = 2**16
# A smaller parameter's reference grows by further default draws to this many values, at most _MAX_REDRAWS
# of them: the tail test's power on n values grows with the reference's size m (p = C(n,k)/C(n+m,k)).
_MIN_REFERENCE = 2**12
_MAX_REDRAWS = 64


# Parameters autoinit wrote in this process: a value autoinit drew is not the model's own init (a model
# initialized twice — head="prior", then head="zero" — gets the second scheme's rule, not the first's values).
# By id, holding weak references (a WeakSet would compare tensors with ==, which is elementwise).
_WRITTEN: dict[int, weakref.ref[torch.Tensor]] = {}


def mark_written(params: Iterable[torch.Tensor]) -> None:
    """Record that autoinit wrote these parameters: :func:`authored` no longer calls them the model's own."""
    for p in params:
        key = id(p)
        _WRITTEN[key] = weakref.ref(p, lambda _, key=key: _WRITTEN.pop(key, None))


def written(t: torch.Tensor) -> bool:
    """Whether autoinit wrote ``t`` in this process."""
    ref = _WRITTEN.get(id(t))
    return ref is not None and ref() is t


def default_draw(module: nn.Module) -> nn.Module | None:
    """A copy of ``module`` with its own parameters redrawn by its ``reset_parameters()`` (PyTorch's default),
    the global RNG left as it was; None when the module has no reset (its values are its author's)."""
    if not callable(getattr(module, "reset_parameters", None)) and not callable(
        getattr(module, "_reset_parameters", None)
    ):
        return None
    from autoinit.schemes.default import reset_default  # the one definition of "the module's own reset"

    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        fresh = copy.deepcopy(module)
        try:
            reset_default(fresh)
        except Exception:  # a reset that needs state the copy lacks: treat the values as the author's
            return None
    return fresh


# Module types whose default draw depends on nothing but their parameters' shapes (fans from the weight's
# shape): their grown references are shared by every module of the same shapes, so a model of 300 equal
# layers draws them once. Any other module's are computed for its own default draw.
_SHAPE_ONLY_DEFAULTS = (
    nn.Linear,
    nn.Bilinear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)
# At most this many values are redrawn to grow one module's references (a small bias beside a large weight
# would otherwise redraw the weight 63 times): past it the reference stays the one draw.
_REDRAW_VALUES = 2**20
_BY_SHAPES: dict[tuple[Any, ...], dict[str, torch.Tensor]] = {}
_BY_DRAW: weakref.WeakKeyDictionary[nn.Module, dict[str, torch.Tensor]] = weakref.WeakKeyDictionary()


def reference_values(fresh: nn.Module, pname: str) -> torch.Tensor:
    """``fresh.<pname>``'s values (``fresh``: a :func:`default_draw`), with more default draws of the module
    (seeds 1, 2, …) appended while they number under ``_MIN_REFERENCE``: the reference sample of the tail
    test. Computed once per module type and shapes where the draw depends on nothing else."""
    params = dict(fresh.named_parameters(recurse=False))
    if isinstance(fresh, _SHAPE_ONLY_DEFAULTS):
        key = (type(fresh), *((n, tuple(t.shape), t.dtype) for n, t in params.items()))
        cache: dict[Any, dict[str, torch.Tensor]] | weakref.WeakKeyDictionary = _BY_SHAPES
    else:
        key, cache = fresh, _BY_DRAW
    if key not in cache:
        cache[key] = _grown(fresh, params)
    return cache[key][pname]


def _grown(fresh: nn.Module, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    from autoinit.schemes.default import reset_default

    draws = {name: [_sample(t)] for name, t in params.items()}
    smallest = min((t.numel() for t in params.values()), default=_MIN_REFERENCE)
    total = sum(t.numel() for t in params.values())
    redraws = min(_MAX_REDRAWS, -(-_MIN_REFERENCE // max(smallest, 1)), _REDRAW_VALUES // max(total, 1)) - 1
    if redraws > 0:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            again = copy.deepcopy(fresh)
            for seed in range(1, redraws + 1):
                torch.manual_seed(seed)
                reset_default(again)
                for name, t in again.named_parameters(recurse=False):
                    if t.numel() < _MIN_REFERENCE:
                        draws[name].append(_sample(t).clone())  # a view of what the next draw rewrites
    return {name: torch.cat(d) for name, d in draws.items()}


def _sample(t: torch.Tensor) -> torch.Tensor:
    flat = t.detach().reshape(-1).float().cpu()
    if flat.numel() > _MAX_SAMPLES:
        step = flat.numel() // _MAX_SAMPLES
        flat = flat[: step * _MAX_SAMPLES : step]
    return flat


def same_distribution(value: torch.Tensor, reference: torch.Tensor) -> bool:
    """Whether ``value`` could be a draw of the distribution ``reference`` was drawn from (see the module
    docstring); exact for constant tensors."""
    a, b = _sample(value), _sample(reference)
    if a.numel() == 0:
        return True
    const_a, const_b = bool((a == a[0]).all()), bool((b == b[0]).all())
    if const_a or const_b:
        return const_a and const_b and bool(a[0] == b[0])
    if not torch.isfinite(a).all():
        return False
    if _tail_pvalue(a, b) < _P_AUTHORED:
        return False
    from scipy.stats import ks_2samp

    return float(ks_2samp(a.numpy(), b.numpy()).pvalue) >= _P_AUTHORED


def _tail_pvalue(a: torch.Tensor, b: torch.Tensor) -> float:
    """The chance that at least k of ``a``'s n values lie beyond the largest magnitude of ``b``'s m values
    when both are draws of one distribution, k being how many do: C(n, k)/C(n + m, k), exact whatever the
    distribution (every ordering of the pooled magnitudes is equally likely)."""
    # numpy: on a busy machine torch's pool threads wait on each other for ops this small (~1 ms each)
    x, y = a.numpy(), b.numpy()
    n, m = x.size, y.size
    k = int((np.abs(x) > np.abs(y).max()).sum())
    p = 1.0
    for i in range(k):
        p *= (n - i) / (n + m - i)
        if p < _P_AUTHORED:
            break
    return p


def authored(module: nn.Module, pname: str, fresh: nn.Module | None) -> str | None:
    """Why ``module.<pname>`` holds its author's init rather than PyTorch's default (``fresh``: the
    module's :func:`default_draw`); None when it looks like PyTorch's default."""
    kind = type(module).__name__
    value = getattr(module, pname, None)
    if isinstance(value, torch.Tensor) and written(value):
        return None
    if fresh is None:
        return f"{kind} has no reset_parameters(): its values are the model's own"
    reference = getattr(fresh, pname, None)
    if not isinstance(value, torch.Tensor) or not isinstance(reference, torch.Tensor):
        return None
    if value.is_meta or value.shape != reference.shape:
        return None
    if value.dim() >= 2 and not _plausible(value):
        return None  # memory never initialized (empty_init, to_empty), not a choice: let the scheme draw
    # One draw first; a small parameter that passes has its tails asked again against the grown reference
    # (the tail test only: a second KS test at the same level would double its false alarms).
    if same_distribution(value, reference) and (
        reference.numel() >= _MIN_REFERENCE
        or bool((reference == reference.reshape(-1)[:1]).all())
        or _tail_pvalue(_sample(value), reference_values(fresh, pname)) >= _P_AUTHORED
    ):
        return None
    return f"set by the model (std {_std(value):.3g}; {kind}'s reset_parameters() gives std {_std(reference):.3g})"


def authored_parameters(model: nn.Module) -> dict[str, str]:
    """Parameter name -> why it holds the model's own init, for every parameter whose value is not
    PyTorch's default for its module (empty: the model's own init is PyTorch's default)."""
    out: dict[str, str] = {}
    seen: set[int] = set()
    for mname, module in model.named_modules():
        own = [(p, t) for p, t in module.named_parameters(recurse=False) if id(t) not in seen]
        if not own:
            continue
        fresh = default_draw(module)
        for pname, t in own:
            seen.add(id(t))
            why = authored(module, pname, fresh)
            if why is not None:
                out[f"{mname}.{pname}" if mname else pname] = why
    return out


def _plausible(weight: torch.Tensor) -> bool:
    """A weight matrix some init could have given: finite, not all zeros, no entry above 10³."""
    flat = _sample(weight)
    return bool(torch.isfinite(flat).all()) and bool(flat.any()) and float(flat.abs().max()) <= 1e3


def _std(t: torch.Tensor) -> float:
    flat = _sample(t)
    return float(flat.std()) if flat.numel() > 1 else float(flat.abs().sum())
