"""``init_model``: initialize every parameter of a model in place with one scheme, layer by layer."""

from __future__ import annotations

import contextlib
import fnmatch
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from autoinit import activations
from autoinit.detect import LayerGraph, from_module_order, move_to, trace
from autoinit.errors import AutoInitError
from autoinit.layers import Block, layer_blocks
from autoinit.report import InitReport, ReportRow
from autoinit.schemes.auto import recommend
from autoinit.schemes.data_dependent import (
    lsuv_layer,
    reset_default,
    sequential_pass,
    yam_chow_eligible,
    yam_chow_layer,
)
from autoinit.schemes.registry import InitContext, SchemeInfo, check_options, get_scheme
from autoinit.schemes.variance import normal

# Schemes that say nothing about a lookup table: embeddings get N(0, g²) under them (PyTorch's rule).
_NOT_FOR_EMBEDDINGS = frozenset({"auto", "orthogonal", "delta_orthogonal", "looks_linear", "lsuv", "yam_chow"})


class _Selection:
    """Which parameters the user asked for: include/exclude globs, and frozen ones only by name."""

    def __init__(self, include: str | Sequence[str] | None, exclude: str | Sequence[str] | None) -> None:
        self.include = [include] if isinstance(include, str) else list(include or [])
        self.exclude = [exclude] if isinstance(exclude, str) else list(exclude or [])

    def why_not(self, name: str, param: nn.Parameter) -> str | None:
        included = any(fnmatch.fnmatchcase(name, p) for p in self.include)
        if self.include and not included:
            return "not matched by include"
        if any(fnmatch.fnmatchcase(name, p) for p in self.exclude):
            return "excluded"
        if not param.requires_grad and not included:
            return "frozen (requires_grad=False): include it by name to initialize it"
        return None


class _Generators:
    """One generator per device: seeded ones from ``seed``, the user's own, or None (global RNG)."""

    def __init__(self, seed: int | None, generator: torch.Generator | None) -> None:
        self.seed, self.generator = seed, generator
        self._by_device: dict[torch.device, torch.Generator] = {}

    def for_tensor(self, t: torch.Tensor) -> torch.Generator | None:
        if self.generator is not None:
            if self.generator.device.type != t.device.type:
                raise AutoInitError(
                    f"generator is on {self.generator.device} but parameters are on {t.device}: "
                    f"pass seed=... or a torch.Generator(device='{t.device}')"
                )
            return self.generator
        if self.seed is None:
            return None
        if t.device not in self._by_device:
            self._by_device[t.device] = torch.Generator(device=t.device).manual_seed(self.seed)
        return self._by_device[t.device]

    @contextlib.contextmanager
    def global_rng(self, devices: list[torch.device]) -> Iterator[None]:
        """Seed the global RNG for code that cannot take a generator (a module's reset_parameters)."""
        if self.seed is None and self.generator is None:
            yield
            return
        seed = self.seed
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,), generator=self.generator, device=self.generator.device))
        cuda = sorted({d.index or 0 for d in devices if d.type == "cuda"})
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            yield


def check_gain(gain: Any) -> float:
    """The gain as a float; a one-line error unless it is a positive finite number."""
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not math.isfinite(gain) or gain <= 0:
        raise AutoInitError(f"gain must be a positive finite number (1.0 = the textbook formula), got {gain!r}")
    return float(gain)


def _check_seed(seed: Any) -> int | None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise AutoInitError(f"seed must be a non-negative int or None, got {seed!r}")
    return seed


class _Initializer:
    def __init__(
        self,
        model: nn.Module,
        info: SchemeInfo,
        gain: float,
        options: dict[str, Any],
        graph: LayerGraph,
        gens: _Generators,
        selection: _Selection,
    ) -> None:
        self.model, self.info, self.gain, self.options = model, info, gain, options
        self.graph, self.gens, self.selection = graph, gens, selection
        self.schemes: dict[str, list[str]] = {}  # param name -> scheme label per block
        self.notes: dict[str, list[str]] = {}
        self.blocks: dict[str, list[Block]] = {}
        self.skipped: dict[str, str] = {}  # param name -> why it was left alone
        self.params: dict[str, nn.Parameter] = dict(model.named_parameters())
        self.layer_of: dict[str, nn.Module] = {}

    # ---- planning -------------------------------------------------------------------------------
    def plan(self) -> None:
        seen: set[int] = set()
        canonical = {id(p): n for n, p in self.params.items()}
        for mname, module in self.model.named_modules():
            own = dict(module.named_parameters(recurse=False))
            if not own:
                continue
            covered = layer_blocks(mname, module, self.graph) or {}
            for pname, p in own.items():
                if id(p) in seen:
                    continue  # a tied parameter is initialized once, under its first name
                seen.add(id(p))
                name = canonical[id(p)]
                self.layer_of[name] = module
                why = self.selection.why_not(name, p)
                full = f"{mname}.{pname}" if mname else pname
                if why is not None:
                    self.skipped[name] = why
                elif full not in covered:
                    self.skipped[name] = f"no rule for {type(module).__name__}.{pname}: left alone"
                else:
                    for b in covered[full]:
                        b.param_name = name
                    self.blocks[name] = covered[full]

    def weight_blocks(self) -> Iterator[Block]:
        for blocks in self.blocks.values():
            yield from (b for b in blocks if b.role == "weight")

    # ---- per-block initialization ---------------------------------------------------------------
    def context(self, b: Block) -> InitContext:
        return InitContext(
            fan_in=b.fan_in,
            fan_out=b.fan_out,
            act_gain=activations.gain(b.activation),
            activation=b.activation,
            gain=self.gain,
            generator=self.gens.for_tensor(b.tensor),
            options=self.options,
            fed_by=b.fed_by,
            layer=b.layer,
            label=b.label,
        )

    def record(self, b: Block, scheme: str, note: str = "") -> None:
        self.schemes.setdefault(b.param_name, []).append(scheme)
        if note:
            self.notes.setdefault(b.param_name, []).append(note)

    def apply(self, b: Block, scheme: str, note: str = "") -> None:
        """Initialize one weight block with a per-block scheme (``auto`` resolved here)."""
        ctx = self.context(b)
        label = scheme
        if scheme == "auto":
            scheme = recommend(ctx)
            label = f"auto→{scheme}"
        fn = get_scheme(scheme).fn
        if fn is None:
            raise AutoInitError(
                f"scheme '{scheme}' works on a whole model and cannot be a fallback: "
                "pick a per-layer scheme such as 'auto' or 'kaiming_normal'"
            )
        fn(b.tensor, ctx)
        self.record(b, label, note)

    def init_bias(self, b: Block) -> None:
        with torch.no_grad():
            std = self.options.get("bias_std")
            if std:
                normal(b.tensor, float(std), self.gens.for_tensor(b.tensor))
            else:
                b.tensor.zero_()
            forget = self.options.get("forget_bias")
            if forget is not None and b.gate == "f" and b.param_name.split(".")[-1].startswith("bias_ih"):
                # PyTorch adds bias_ih and bias_hh: put the whole effective forget bias in one of them.
                b.tensor.fill_(float(forget))
                self.notes.setdefault(b.param_name, []).append(f"forget gate {float(forget):g}")
        self.record(b, "zeros" if not self.options.get("bias_std") else f"N(0,{float(std):g}²)")

    def init_other_roles(self, b: Block) -> bool:
        """Biases, norm layers, embeddings and recurrent weights: True if handled."""
        if b.role == "bias":
            self.init_bias(b)
        elif b.role in ("norm_weight", "norm_bias"):
            with torch.no_grad():
                b.tensor.fill_(1.0 if b.role == "norm_weight" else 0.0)
            self.record(b, "ones" if b.role == "norm_weight" else "zeros")
        elif b.role == "embedding":
            if self.info.name in _NOT_FOR_EMBEDDINGS:
                normal(b.tensor, self.gain, self.gens.for_tensor(b.tensor))
                self.record(b, "normal", f"embedding: N(0, g²) under {self.info.name}")
            else:
                self.apply(b, self.info.name)
            padding = getattr(b.layer, "padding_idx", None)
            if padding is not None:
                with torch.no_grad():
                    b.tensor[padding].zero_()
        elif b.role == "recurrent" and self.options.get("recurrent", "orthogonal") == "orthogonal":
            torch.nn.init.orthogonal_(b.tensor, gain=self.gain, generator=self.gens.for_tensor(b.tensor))
            self.record(b, "orthogonal", "recurrent weights orthogonal")
        else:
            return False
        return True

    # ---- schemes ----------------------------------------------------------------------------------
    def run(self, sample_input: Any) -> None:
        name = self.info.name
        if name == "default":
            self.run_default()
            return
        if name == "looks_linear" and not any(
            b.fed_by is not None and b.fed_by.name == "crelu" for b in self.weight_blocks()
        ):
            raise AutoInitError(
                "looks_linear needs layers fed by a CReLU, and this model has none: "
                "use autoinit.nn.CReLU as the activation, or pick 'orthogonal'"
            )
        for blocks in self.blocks.values():
            for b in blocks:
                if self.init_other_roles(b):
                    continue
                if name == "lsuv":
                    self.apply(b, "orthogonal")  # Mishkin & Matas's orthonormal pre-init, rescaled below
                elif name == "yam_chow":
                    why = yam_chow_eligible(b.layer, b.activation)
                    self.apply(b, self.options.get("fallback", "auto"), why or "")
                else:
                    self.apply(b, name)
        if name == "lsuv":
            self.run_lsuv(sample_input)
        elif name == "yam_chow":
            self.run_yam_chow(sample_input)

    def _pass_layers(self, eligible) -> dict[nn.Module, Block]:
        layers: dict[nn.Module, Block] = {}
        for b in self.weight_blocks():
            if eligible(b) and b.tensor.data_ptr() == b.layer.weight.data.data_ptr():
                layers[b.layer] = b
        return layers

    def _relabel(self, b: Block, scheme: str, note: str) -> None:
        self.schemes[b.param_name] = [scheme]
        self.notes[b.param_name] = [note]

    def run_lsuv(self, sample_input: Any) -> None:
        tol = float(self.options.get("tol", 0.1))
        max_iter = int(self.options.get("max_iter", 10))
        if tol <= 0 or max_iter < 1:
            raise AutoInitError(f"lsuv needs tol > 0 and max_iter >= 1, got tol={tol}, max_iter={max_iter}")
        layers = self._pass_layers(lambda b: isinstance(b.layer, (nn.Linear, nn.modules.conv._ConvNd)))

        def init(module: nn.Module, args: tuple) -> Any:
            out, note = lsuv_layer(module, args, self.gain**2, tol, max_iter)
            self._relabel(layers[module], "lsuv", note)
            return out

        reached = sequential_pass(self.model, sample_input, dict.fromkeys(layers, init))
        for module, b in layers.items():
            if module not in reached:
                self._relabel(b, "orthogonal", "lsuv: not reached by sample_input, left orthogonal")

    def run_yam_chow(self, sample_input: Any) -> None:
        layers = self._pass_layers(lambda b: yam_chow_eligible(b.layer, b.activation) is None)

        def init(module: nn.Module, args: tuple) -> Any:
            b = layers[module]
            bias_name = f"{b.layer_name}.bias" if b.layer_name else "bias"
            set_bias = module.bias is not None and bias_name in self.blocks
            out, note = yam_chow_layer(
                module, args, b.activation, b.fed_by, self.gain, self.gens.for_tensor(b.tensor), set_bias
            )
            self._relabel(b, "yam_chow", note)
            if set_bias:
                self._relabel(self.blocks[bias_name][0], "yam_chow", "−Σ_i W_ji·C_i (centre of the input box)")
            return out

        if not layers:
            raise AutoInitError(
                "yam_chow found no Linear/Conv layer followed by a saturating activation "
                "(sigmoid, tanh...): pick another scheme for this model"
            )
        reached = sequential_pass(self.model, sample_input, dict.fromkeys(layers, init))
        for module, b in layers.items():
            if module not in reached:
                self.notes.setdefault(b.param_name, []).append("yam_chow: not reached by sample_input")

    def run_default(self) -> None:
        modules = dict(self.model.named_modules())
        devices = list({p.device for p in self.params.values()})
        names_by_module: dict[nn.Module, list[str]] = {}
        for name in list(self.blocks) + list(self.skipped):
            names_by_module.setdefault(self.layer_of[name], []).append(name)
        with self.gens.global_rng(devices):
            # Children before parents, as at construction (MultiheadAttention zeroes out_proj.bias after
            # out_proj has reset itself).
            for module in reversed(list(modules.values())):
                own = names_by_module.get(module, [])
                if not any(n in self.blocks for n in own):
                    continue
                keep = {n: self.params[n].detach().clone() for n in own if n in self.skipped}
                has_reset = reset_default(module)
                with torch.no_grad():
                    for n, value in keep.items():
                        self.params[n].copy_(value)
                for n in own:
                    if n not in self.blocks:
                        continue
                    if not has_reset:
                        self.skipped[n] = f"{type(module).__name__} has no reset_parameters(): left alone"
                        del self.blocks[n]
                        continue
                    for b in self.blocks[n]:
                        if b.role in ("weight", "recurrent", "embedding") and self.gain != 1.0:
                            with torch.no_grad():
                                b.tensor.mul_(self.gain)
                        self.record(b, "default")

    # ---- report -----------------------------------------------------------------------------------
    def report(self, seed: int | None) -> InitReport:
        report = InitReport(self.info.name, self.gain, seed, self.graph.source)
        for name, p in self.params.items():
            module = self.layer_of.get(name)
            layer_type = type(module).__name__ if module is not None else "?"
            if name in self.skipped:
                report.rows.append(ReportRow(name, layer_type, None, None, "", None, None, None, self.skipped[name]))
                continue
            blocks = self.blocks[name]
            first = blocks[0]
            if len(blocks) > 1 and first.gate is not None and first.role != "bias":
                act = " ".join(f"{b.gate}:{b.activation}" for b in blocks)
            else:
                act = "" if first.role not in ("weight", "embedding") else _act_label(first.activation)
            fans = (first.fan_in, first.fan_out) if first.role in ("weight", "recurrent", "embedding") else (None, None)
            labels = list(dict.fromkeys(self.schemes.get(name, ["?"])))
            std = _std(p.detach())
            report.rows.append(
                ReportRow(
                    name,
                    layer_type,
                    *fans,
                    act,
                    "/".join(labels),
                    self.gain if first.role in ("weight", "recurrent", "embedding") else None,
                    std,
                    "; ".join(dict.fromkeys(self.notes.get(name, []))),
                )
            )
        return report


# Above 2¹⁶ elements the report's std is estimated from 64 contiguous runs of 2¹⁰ elements spread evenly
# over the tensor: relative error about 1/√(2·2¹⁶) ≈ 0.3%, where reading all of a 100M-parameter model
# would cost a fifth of the initialization itself (and a strided sample touches every cache line).
_RUNS, _RUN = 64, 2**10


def _std(data: torch.Tensor) -> float:
    flat = data.reshape(-1)
    if flat.numel() <= 1:
        return float(flat.float().abs().sum())
    if flat.numel() > _RUNS * _RUN:
        step = flat.numel() // _RUNS
        flat = torch.cat([flat[i * step : i * step + _RUN] for i in range(_RUNS)])
    return float(flat.float().std())


def _act_label(act: activations.Activation) -> str:
    return f"{act} (a={activations.gain(act):.3g})"


def init_model(
    model: nn.Module,
    scheme: str = "auto",
    gain: float = 1.0,
    *,
    sample_input: Any = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    **options: Any,
) -> InitReport:
    """Initialize every parameter of ``model`` in place with ``scheme`` and return what was done.

    Args:
        model: any ``nn.Module``; parameters stay on their device (a meta-device model must be
            materialized with ``to_empty()`` first).
        scheme: a name from :func:`autoinit.list_schemes` (``"auto"`` picks per layer).
        gain: multiplier g on the scheme's textbook scale (1.0 = the formula as published).
        sample_input: a batch of model inputs (tensor, tuple of positional args, or dict of kwargs). With
            it, the activation after each layer is detected from a traced forward pass; ``lsuv`` and
            ``yam_chow`` need it.
        seed: same seed, bit-identical weights. ``generator``: a ``torch.Generator`` to draw from instead.
        include, exclude: glob patterns over parameter names (``"backbone.*"``). Parameters with
            ``requires_grad=False`` are left alone unless ``include`` names them.
        **options: ``mode`` ("fan_in"/"fan_out"), ``distribution`` ("normal"/"truncated_normal"),
            ``bias_std``, ``forget_bias`` (effective LSTM forget-gate bias), ``recurrent``
            ("orthogonal" or "scheme"), ``tol``/``max_iter`` (LSUV), ``fallback`` (Yam–Chow's scheme for the
            layers it cannot cover).
    """
    if not isinstance(model, nn.Module):
        raise AutoInitError(f"init_model needs a torch.nn.Module, got {type(model).__name__}")
    info = get_scheme(scheme)
    check_options(info, options)
    gain = check_gain(gain)
    seed = _check_seed(seed)
    if info.needs_data and sample_input is None:
        raise AutoInitError(
            f"scheme '{scheme}' measures the network on data: pass sample_input=<a batch of "
            "model inputs> (the callback takes it from example_input_array or the train loader)"
        )
    selection = _Selection(include, exclude)
    first = next(model.parameters(), None)
    if first is not None and any(p.is_meta for _, p in model.named_parameters()):
        raise AutoInitError(
            "the model has parameters on the meta device: materialize it with "
            "model.to_empty(device=...) before init_model"
        )
    if sample_input is not None:
        if first is not None:
            sample_input = move_to(sample_input, first.device)
        try:
            graph = trace(model, sample_input)
        except AutoInitError:
            raise
        except Exception as exc:  # the user's forward: say what failed in one line
            raise AutoInitError(
                f"the forward pass on sample_input failed ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}): pass a batch the model's "
                "forward accepts"
            ) from exc
    else:
        graph = from_module_order(model)
    init = _Initializer(model, info, gain, options, graph, _Generators(seed, generator), selection)
    init.plan()
    with torch.no_grad():
        init.run(sample_input)
    return init.report(seed)
