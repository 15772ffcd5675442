"""``init_model``: initialize every parameter of a model in place with one scheme, layer by layer."""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from autoinit import activations, own_init
from autoinit.detect import LayerGraph, eval_mode, from_module_order, is_norm, move_to, run_model, trace
from autoinit.errors import AutoInitError, one_line
from autoinit.layers import Block, layer_blocks
from autoinit.report import KEPT, InitReport, Ledger, ReportRow
from autoinit.schemes.base import DataUse, EmbeddingRule, InitContext, OwnValue, PassContext, Scheme
from autoinit.schemes.registry import check_options, get_scheme
from autoinit.schemes.variance import normal


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
    # torch generators take seeds in [0, 2**64).
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64):
        raise AutoInitError(f"seed must be a non-negative int below 2**64, or None, got {seed!r}")
    return seed


class ParamWriter:
    """How the engine reaches parameter values. This default writes every block in place; a subclass
    (:class:`autoinit.sharded.ShardedWriter`) plans DTensor parameters on stand-ins of their global shape
    and, while :meth:`open` holds them, lets the schemes fill a full tensor of which each rank keeps its
    local shard."""

    def blocks_of(self, name: str, module: nn.Module, graph: LayerGraph) -> dict[str, list[Block]] | None:
        """The blocks of ``module``'s own parameters (:func:`autoinit.layers.layer_blocks`)."""
        return layer_blocks(name, module, graph)

    def trace(self, model: nn.Module, sample_input: Any) -> LayerGraph:
        """The layer graph from one forward pass on ``sample_input`` (:func:`autoinit.detect.trace`)."""
        return trace(model, sample_input)

    @contextlib.contextmanager
    def open(self, names: Sequence[str], blocks: dict[str, list[Block]]) -> Iterator[None]:
        """While held, ``blocks[n]`` of every ``n`` in ``names`` (and the modules holding those parameters)
        can be written."""
        yield

    def generator(self, block: Block, default: torch.Generator | None) -> torch.Generator | None:
        """The generator ``block`` draws from (``default``: the seeded one for its device)."""
        return default

    def reads_values(self) -> bool:
        """Whether parameter values can be read before init (False for meta stand-ins): a ``keep`` hook that
        asks whether a value is its author's gets None where they cannot."""
        return True

    def authored(
        self, name: str, module: nn.Module, pname: str, draws: dict[nn.Module, nn.Module | None]
    ) -> str | None:
        """Why parameter ``name`` (``module.<pname>``) holds its author's init, or None
        (:func:`autoinit.own_init.authored`; ``draws`` caches each module's default draw for one model)."""
        if not self.reads_values():
            return None
        if module not in draws:
            draws[module] = own_init.default_draw(module)
        return own_init.authored(module, pname, draws[module])

    def accept(self, scheme: Scheme, block: Block) -> None:
        """Called with the scheme that will fill ``block`` (after picks); raises if it cannot here."""

    def std(self, name: str, param: nn.Parameter) -> float:
        """The report's std of an initialized parameter."""
        return _std(param.detach())

    def variance(self, activations: torch.Tensor) -> float:
        """A measuring pass's variance of a layer's output (:meth:`PassContext.variance`)."""
        return float(activations.float().var())

    def rescale(self, block: Block, factor: float) -> None:
        """Multiply an initialized block by ``factor`` in place (:meth:`PassContext.rescale`)."""
        block.tensor.mul_(factor)

    @contextlib.contextmanager
    def model_pass(self, model: nn.Module) -> Iterator[None]:
        """Held around a scheme's model pass (which may run the model's forward)."""
        yield


class _Initializer:
    """Runs one scheme's hooks over a model's blocks: the precondition check, the per-block pass (weights
    by the scheme, biases/norms/embeddings/recurrent weights by the engine's rules), then the model pass."""

    def __init__(
        self,
        model: nn.Module,
        scheme: Scheme,
        gain: float,
        options: dict[str, Any],
        graph: LayerGraph,
        gens: _Generators,
        selection: _Selection,
        writer: ParamWriter,
    ) -> None:
        self.model, self.scheme, self.gain, self.options = model, scheme, gain, options
        self.graph, self.gens, self.selection, self.writer = graph, gens, selection, writer
        self.ledger = Ledger()
        self.blocks: dict[str, list[Block]] = {}
        self.params: dict[str, nn.Parameter] = dict(model.named_parameters())
        self.layer_of: dict[str, nn.Module] = {}
        self.tied: dict[str, str] = {}  # parameter name -> how its tying was resolved (the report's note)
        self._default_draws: dict[nn.Module, nn.Module | None] = {}  # module -> its PyTorch-default copy

    # ---- planning -------------------------------------------------------------------------------
    def owners(self) -> dict[int, str]:
        """For each parameter shared by several modules (tied input/output embeddings): the module that
        initializes it, the first to use it in forward order (registration order without a trace)."""
        holders: dict[int, list[str]] = {}
        for mname, module in self.model.named_modules():
            for p in module.parameters(recurse=False):
                holders.setdefault(id(p), []).append(mname)
        forward = {name: i for i, name in enumerate(self.graph.order)}
        owners: dict[int, str] = {}
        for pid, names in holders.items():
            if len(names) > 1:
                owners[pid] = min(names, key=lambda n: (forward.get(n, len(forward)), names.index(n)))
        return owners

    def plan(self) -> None:
        seen: set[int] = set()
        canonical = {id(p): n for n, p in self.params.items()}
        owners = self.owners()
        modules = dict(self.model.named_modules())
        for mname, module in modules.items():
            own = dict(module.named_parameters(recurse=False))
            if not own:
                continue
            covered = self.writer.blocks_of(mname, module, self.graph) or {}
            for pname, p in own.items():
                if id(p) in seen or owners.get(id(p), mname) != mname:
                    continue  # a tied parameter is initialized once, by its owner's rule
                seen.add(id(p))
                name = canonical[id(p)]
                self.layer_of[name] = module
                if id(p) in owners:
                    self.tied[name] = self.tie_note(mname, module, p, modules)
                    for b in covered.get(f"{mname}.{pname}" if mname else pname, []):
                        b.head = False  # a weight shared with the head keeps its owner's rule: never zeroed
                why = self.selection.why_not(name, p)
                full = f"{mname}.{pname}" if mname else pname
                if why is not None:
                    self.ledger.left_alone[name] = why
                elif (kept := self.keeps(name, module, pname, covered.get(full, []))) is not None:
                    self.ledger.kept[name] = kept
                elif full not in covered:
                    self.ledger.kept[name] = self.no_rule(module, pname)
                else:
                    for b in covered[full]:
                        b.param_name = name
                    self.blocks[name] = covered[full]

    @staticmethod
    def no_rule(module: nn.Module, pname: str) -> str:
        """The report's note for a parameter no rule covers. A normalization module autoinit knows by its
        values (:func:`autoinit.detect.is_norm`) says so: its γ and β keep the author's values, since only the
        module knows which γ is the identity (1 for LlamaRMSNorm, 0 for a x·(1 + γ) norm)."""
        what = f"{type(module).__name__}.{pname}"
        if is_norm(module):
            return f"normalization {what} (known by its values) has no reset_parameters(): the model's own init kept"
        return f"no rule for {what}: the model's own init kept"

    def keeps(self, name: str, module: nn.Module, pname: str, blocks: list[Block]) -> str | None:
        """Why one parameter is kept as built (:meth:`Scheme.keeps`), or None."""

        def authored() -> str | None:
            return self.writer.authored(name, module, pname, self._default_draws)

        roles = tuple(dict.fromkeys(b.role for b in blocks))
        return self.scheme.keeps(OwnValue(name, module, pname, self.options, authored, roles))

    def tie_note(self, owner: str, module: nn.Module, p: nn.Parameter, modules: dict[str, nn.Module]) -> str:
        others = [n for n, m in modules.items() if n != owner and any(q is p for q in m.parameters(recurse=False))]
        order = "forward order" if self.graph.source == "traced" else "module order (no sample_input)"
        kind = type(module).__name__
        note = f"tied with {', '.join(others)}: initialized once, by {kind} '{owner}' (first in {order})"
        if self.graph.head in others:
            note += "; the head's weight follows it (head= and Fixup do not zero a tied head)"
        return note

    def pass_context(self, sample_input: Any) -> PassContext:
        devices = list({p.device for p in self.params.values()})
        return PassContext(
            model=self.model,
            blocks=self.blocks,
            params=self.params,
            layer_of=self.layer_of,
            sample_input=sample_input,
            gain=self.gain,
            options=self.options,
            ledger=self.ledger,
            generator_for=self.gens.for_tensor,
            global_rng=lambda: self.gens.global_rng(devices),
            materialized=lambda names: self.writer.open(names, self.blocks),
            graph=self.graph,
            variance=self.writer.variance,
            rescale=self.writer.rescale,
        )

    # ---- per-block initialization ---------------------------------------------------------------
    def generator(self, b: Block) -> torch.Generator | None:
        return self.writer.generator(b, self.gens.for_tensor(b.tensor))

    def context(self, b: Block) -> InitContext:
        return InitContext(
            fan_in=b.fan_in,
            fan_out=b.fan_out,
            act_gain=activations.gain(b.activation),
            activation=b.activation,
            gain=self.gain,
            generator=self.generator(b),
            options=self.options,
            fed_by=b.fed_by,
            layer=b.layer,
            label=b.label,
            residual=b.residual,
            head=b.head,
        )

    def record(self, b: Block, scheme: str, note: str = "") -> None:
        self.ledger.record(b.param_name, scheme, note)

    def apply(self, b: Block, scheme: Scheme) -> None:
        """Initialize one weight block with a per-block scheme."""
        label, notes = _fill(scheme, b.tensor, self.context(b), lambda s: self.writer.accept(s, b))
        self.record(b, label)
        for note in notes:
            self.ledger.annotate(b.param_name, note)

    def init_bias(self, b: Block) -> None:
        with torch.no_grad():
            std = self.options.get("bias_std")
            if std:
                normal(b.tensor, float(std), self.generator(b))
            else:
                b.tensor.zero_()
            forget = self.options.get("forget_bias")
            if forget is not None and b.gate == "f" and b.param_name.split(".")[-1].startswith("bias_ih"):
                # PyTorch adds bias_ih and bias_hh: put the whole effective forget bias in one of them.
                b.tensor.fill_(float(forget))
                self.ledger.annotate(b.param_name, f"forget gate {float(forget):g}")
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
            # A table the head reuses keeps N(0, g²) too: N(0, g²/d) (unit-variance first logits) was measured on
            # the SmallGPT template and trained worse (early-loss AUC 1.72 vs 1.37, 3 seeds): the position table's
            # N(0, 1) then drowns the tokens. A library LM's own (smaller) table is kept by auto instead.
            if self.scheme.embeddings is EmbeddingRule.NORMAL:
                normal(b.tensor, self.gain, self.generator(b))
                self.record(b, "normal", f"embedding: N(0, g²) under {self.scheme.name}")
            else:
                self.apply(b, self.scheme)
            padding = getattr(b.layer, "padding_idx", None)
            if padding is not None:
                with torch.no_grad():
                    b.tensor[padding].zero_()
        elif b.role == "recurrent" and self.options.get("recurrent", "orthogonal") == "orthogonal":
            torch.nn.init.orthogonal_(b.tensor, gain=self.gain, generator=self.generator(b))
            self.record(b, "orthogonal", "recurrent weights orthogonal")
        else:
            return False
        return True

    # ---- the scheme's hooks -----------------------------------------------------------------------
    def run(self, sample_input: Any) -> None:
        pctx = self.pass_context(sample_input)
        if self.scheme.check is not None:
            self.scheme.check(pctx)
        if self.scheme.per_block:
            for name in list(self.blocks):
                with self.writer.open([name], self.blocks):
                    for b in self.blocks[name]:
                        if not self.init_other_roles(b):
                            self.apply(b, self.scheme)
        if self.scheme.model_pass is not None:
            with self.writer.model_pass(self.model):
                self.scheme.model_pass(pctx)
        if self.options.get("head"):
            self.init_head(self.options["head"])

    def init_head(self, mode: str) -> None:
        """The ``head`` option, after every other rule: the classifier head's weight 0, its bias 0
        (``"zero"``) or −log(num_classes) (``"prior"``: each class starts at the uniform prior's logit,
        timm's ``jax_nlhb``; under a softmax a constant bias changes nothing, under per-class sigmoids it
        starts every class at probability 1/(C+1))."""
        for blocks in self.blocks.values():
            for b in blocks:
                if not b.head or b.role not in ("weight", "bias"):
                    continue
                with torch.no_grad():
                    if b.role == "weight":
                        b.tensor.zero_()
                        self.ledger.relabel(b.param_name, "zeros", f"classifier head: weight 0 (head='{mode}')")
                        continue
                    classes = b.tensor.numel()  # one bias per output unit, whatever the layer's type
                    value = -math.log(classes) if mode == "prior" else 0.0
                    b.tensor.fill_(value)
                label = "zeros" if mode == "zero" else f"−log({classes})"
                self.ledger.relabel(b.param_name, label, f"classifier head: bias {value:.4g} (head='{mode}')")

    # ---- report -----------------------------------------------------------------------------------
    def report(self, seed: int | None) -> InitReport:
        structure = self.graph.summary()
        if self.graph.head is not None:
            structure = "; ".join(filter(None, [structure, f"classifier head: {self.graph.head}"]))
        report = InitReport(self.scheme.name, self.gain, seed, self.graph.source, structure=structure)
        for name, p in self.params.items():
            module = self.layer_of.get(name)
            layer_type = type(module).__name__ if module is not None else "?"
            if name in self.ledger.left_alone:
                report.rows.append(
                    ReportRow(name, layer_type, None, None, "", None, None, None, self.ledger.left_alone[name])
                )
                continue
            if name in self.ledger.kept:
                notes = [self.ledger.kept[name], *([self.tied[name]] if name in self.tied else [])]
                report.rows.append(
                    ReportRow(name, layer_type, None, None, "", KEPT, None, self.writer.std(name, p), "; ".join(notes))
                )
                continue
            notes = [*self.ledger.notes.get(name, []), *([self.tied[name]] if name in self.tied else [])]
            blocks = self.blocks[name]
            first = blocks[0]
            if len(blocks) > 1 and first.gate is not None and first.role != "bias":
                act = " ".join(f"{b.gate}:{b.activation}" for b in blocks)
            else:
                act = "" if first.role not in ("weight", "embedding") else _act_label(first.activation)
            fans = (first.fan_in, first.fan_out) if first.role in ("weight", "recurrent", "embedding") else (None, None)
            labels = list(dict.fromkeys(self.ledger.labels.get(name, ["?"])))
            std = self.writer.std(name, p)
            report.rows.append(
                ReportRow(
                    name,
                    layer_type,
                    *fans,
                    act,
                    "/".join(labels),
                    self.gain if first.role in ("weight", "recurrent", "embedding") else None,
                    std,
                    "; ".join(dict.fromkeys(notes)),
                    _structure(first),
                )
            )
        return report


def _structure(b: Block) -> str:
    """The report's residual/head column for a parameter."""
    parts = [b.residual.describe()] if b.residual is not None and b.role != "bias" else []
    if b.head:
        parts.append("classifier head")
    return "; ".join(parts)


def _fill(
    scheme: Scheme, tensor: torch.Tensor, ctx: InitContext, accept: Callable[[Scheme], None]
) -> tuple[str, list[str]]:
    """Fill one block with ``scheme``, following its picks (and their scales); the report label and notes.
    ``accept`` sees the scheme that fills it."""
    if scheme.pick is not None:
        pick = scheme.pick(ctx)
        scaled = pick.scale != 1.0
        # A scaled block goes on as a plain one: its residual rule is applied once, here.
        inner = dataclasses.replace(ctx, residual=None, head=False) if scaled or pick.plain else ctx
        label, notes = _fill(get_scheme(pick.scheme), tensor, inner, accept)
        if scaled:
            tensor.zero_() if pick.scale == 0.0 else tensor.mul_(pick.scale)
        return pick.label.format(label), ([pick.note] if pick.note else []) + notes
    if scheme.fn is None:
        raise AutoInitError(
            f"scheme '{scheme.name}' works on a whole model and cannot fill one block: "
            "pick a per-block scheme such as 'auto' or 'kaiming_normal'"
        )
    accept(scheme)
    version = tensor._version  # in-place writes bump it, through any view
    result = scheme.fn(tensor, ctx)
    fix = "fill `tensor` in place (tensor.copy_(w), tensor.normal_(...))"
    if isinstance(result, torch.Tensor) and result is not tensor and result.data_ptr() != tensor.data_ptr():
        raise AutoInitError(f"scheme '{scheme.name}' returned a new tensor and left the weight unchanged: {fix}")
    if tensor.numel() and tensor._version == version:
        raise AutoInitError(f"scheme '{scheme.name}' did not write into the weight: {fix}")
    return scheme.name, []


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
    writer: ParamWriter | None = None,
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
            layers it cannot cover), ``head`` ("zero"/"prior": the classifier head's weight 0, bias 0 or
            −log(num_classes); needs ``sample_input``), ``base`` (``depth_scaled``'s scheme).
        writer: how parameters are reached (:class:`ParamWriter`); the callback passes
            :class:`autoinit.sharded.ShardedWriter` for DTensor parameters.
    """
    if not isinstance(model, nn.Module):
        raise AutoInitError(f"init_model needs a torch.nn.Module, got {type(model).__name__}")
    info = get_scheme(scheme)
    check_options(info, options)
    gain = check_gain(gain)
    seed = _check_seed(seed)
    if info.data is DataUse.TRACE and sample_input is None:
        raise AutoInitError(
            f"scheme '{scheme}' finds the residual branches by tracing one forward pass: pass sample_input=<a "
            "batch of model inputs> (the callback takes it from example_input_array or the train loader)"
        )
    if info.needs_data and sample_input is None:
        raise AutoInitError(
            f"scheme '{scheme}' measures the network on data: pass sample_input=<a batch of "
            "model inputs> (the callback takes it from example_input_array or the train loader)"
        )
    selection = _Selection(include, exclude)
    writer = writer if writer is not None else ParamWriter()
    if _lazy_parameters(model):
        _materialize(model, sample_input)
    first = next(model.parameters(), None)
    if first is not None and any(p.is_meta for _, p in model.named_parameters()):
        raise AutoInitError(
            "the model has parameters on the meta device: materialize it with "
            "model.to_empty(device=...) before init_model"
        )
    if sample_input is not None:
        if first is not None:
            sample_input = move_to(sample_input, first.device)
        with _user_forward():
            graph = writer.trace(model, sample_input)
    else:
        graph = from_module_order(model)
    if options.get("head") and graph.head is None:
        raise AutoInitError(
            f"head='{options['head']}' needs the classifier head — the last Linear/Conv layer whose output is "
            f"the model's output — and none was found: {graph.head_why}"
        )
    init = _Initializer(model, info, gain, options, graph, _Generators(seed, generator), selection, writer)
    init.plan()
    with torch.no_grad():
        init.run(sample_input)
    own_init.mark_written(init.params[n] for n in init.blocks)
    return init.report(seed)


@contextlib.contextmanager
def _user_forward() -> Iterator[None]:
    """The user's forward fails: say what failed in one line."""
    try:
        yield
    except AutoInitError:
        raise
    except Exception as exc:
        raise AutoInitError(
            f"the forward pass on sample_input failed ({one_line(exc)}): pass a batch the model's forward accepts"
        ) from exc


def _lazy_parameters(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if is_lazy(p)]


def _materialize(model: nn.Module, sample_input: Any) -> None:
    """Give lazy modules (``nn.LazyLinear``...) their shapes with one forward pass on ``sample_input``."""
    lazy = _lazy_parameters(model)
    if sample_input is None:
        raise AutoInitError(
            f"'{lazy[0]}' is an uninitialized lazy parameter: run one forward pass first (model(x)), "
            "or pass sample_input=x and init_model runs it"
        )
    params = [p for p in model.parameters()]
    devices = sorted({p.device.index or 0 for p in params if p.device.type == "cuda"})
    # A lazy module draws its first values from the global RNG; they are overwritten, so leave its state alone.
    with torch.random.fork_rng(devices=devices), _user_forward(), eval_mode(model):
        run_model(model, move_to(sample_input, params[0].device))
    if left := _lazy_parameters(model):
        raise AutoInitError(
            f"'{left[0]}' is still an uninitialized lazy parameter after a forward pass on sample_input: "
            "run a forward pass that reaches it before init_model"
        )
