"""Which activation follows each layer, and which feeds it.

With a sample input, one real forward pass is traced: forward hooks tag each layer's output tensor, and a
``TorchFunctionMode`` sees every torch call made inside ``forward`` — module activations and functional
ones (``F.relu``, ``torch.tanh``, ``x.sigmoid()``) alike. Shape-only and normalizing operations (reshape,
dropout, pooling, batch/layer norm) carry a tag through, so ``conv → BatchNorm → relu`` gives the conv
ReLU's gain; a residual sum carries the tags of all its operands, so the ReLU after ``idt + out`` follows
both the block's last conv and a downsample conv, in either order. Without a sample input, module
registration order is the fallback.

The same pass records the residual structure (:class:`Branch`): every op's output becomes a node of a
graph (its inputs, and the layer or normalization module it came out of), and an addition ``a + b``
(``+``, ``torch.add``, ``+=``, ``add_``) is a *residual connection* when, from the latest tensor both
operands derive from (the fork), one side passes through at most one weighted layer (the identity, or a
downsample projection such as ResNet's 1×1 conv + BN) and the other through strictly more (the branch).
Sums of two unrelated tensors (token + position embeddings) or of two equal-depth paths (``conv_a(x) +
conv_b(x)``) are not residual. Sums chained through their identity side form one *stream*; L is the
number of branches along it. The classifier head is the last Linear/Conv layer whose output reaches the
model's (first) output through one-input ops only (reshape, dropout, a final log_softmax...).
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import is_lazy
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

from autoinit.activations import LINEAR, Activation, activation_from_name, activation_of_module

# Module types whose parameters autoinit initializes as a layer's weights.
LAYER_TYPES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Bilinear,
    nn.modules.conv._ConvNd,
    nn.Embedding,
    nn.EmbeddingBag,
    nn.RNNBase,
    nn.MultiheadAttention,
)

# Calls whose output is still "the same signal" as their first tensor input.
_TRANSPARENT = frozenset(
    """
    view reshape flatten unflatten permute transpose t contiguous squeeze unsqueeze clone to float half
    bfloat16 double type_as expand __getitem__ dropout dropout1d dropout2d dropout3d alpha_dropout
    feature_alpha_dropout batch_norm layer_norm group_norm instance_norm rms_norm local_response_norm
    max_pool1d max_pool2d max_pool3d max_pool1d_with_indices max_pool2d_with_indices max_pool3d_with_indices
    avg_pool1d avg_pool2d avg_pool3d adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d
    adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d adaptive_max_pool1d_with_indices
    adaptive_max_pool2d_with_indices add __add__ __radd__ __iadd__ add_ mean
    """.split()  # noqa: SIM905
)
_ADDS = frozenset({"add", "__add__", "__radd__", "__iadd__", "add_"})
_NORM_OPS = frozenset(
    "batch_norm layer_norm group_norm instance_norm rms_norm local_response_norm".split()  # noqa: SIM905
)

# Normalization modules: their weight is γ, their bias β.
NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)
# Layers that can be a classifier head (a weight to zero, a bias to set).
HEAD_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.modules.conv._ConvNd)
# A backward walk over the traced graph stops after this many nodes (a pathological model stays fast).
_WALK_CAP = 50_000


@dataclass
class Branch:
    """One residual branch: the weighted layers between the stream and the sum that adds the branch's output
    back into it.

    ``layers`` are in forward order (a MultiheadAttention counts with its ``out_proj``); ``outputs`` are the
    branch's last layers (their output reaches the sum with no weighted layer after them: they write into
    the stream); ``norms`` the normalization modules inside the branch (pre-norm, or ResNet's BN);
    ``output_norm`` the norm after the last layer, whose γ scales the branch output (ResNet's last BN);
    ``shortcut`` the projection on the identity side (ResNet's downsample), if any; ``post_norm``: a
    normalization layer sits on the stream after the sum (post-LN Transformers).
    """

    index: int
    layers: list[str]
    outputs: list[str]
    norms: list[str] = field(default_factory=list)
    output_norm: str | None = None
    shortcut: list[str] = field(default_factory=list)
    stream: int = 0
    post_norm: bool = False
    norm_ops: bool = False  # a functional norm (F.layer_norm...) inside the branch, outside any norm module
    stream_std: float = math.nan  # std of the stream right after the sum, on the traced sample

    @property
    def m(self) -> int:
        """Weighted layers in the branch (Fixup's m)."""
        return len(self.layers)

    @property
    def pre_norm(self) -> bool:
        return bool(self.norms) or self.norm_ops

    @property
    def normalized(self) -> bool:
        """A normalization layer in the branch or on the stream after it."""
        return self.pre_norm or self.post_norm


@dataclass(frozen=True)
class ResidualRole:
    """Where one layer (or normalization module) sits in the residual structure.

    ``kind``: ``"inner"`` (a branch layer before its last), ``"output"`` (a last layer: writes into the
    stream), ``"shortcut"`` (a projection on the identity side), ``"norm"`` (a norm inside the branch) or
    ``"output_norm"`` (the branch's norm after its last layer: its γ scales the branch output). ``L``: the
    branches along the stream; ``m``: the weighted layers in this branch.
    """

    branch: int
    kind: str
    L: int
    m: int
    stream: int = 0
    pre_norm: bool = False
    post_norm: bool = False
    output_norm: str | None = None

    @property
    def writes_stream(self) -> bool:
        return self.kind == "output"

    @property
    def normalized(self) -> bool:
        return self.pre_norm or self.post_norm

    def describe(self) -> str:
        kind = {
            "inner": "inside",
            "output": "last layer of",
            "shortcut": "shortcut of",
            "norm": "norm in",
            "output_norm": "last norm of",
        }[self.kind]
        norm = "post-norm" if self.post_norm else "norm in branch" if self.pre_norm else "no norm"
        return f"residual: {kind} branch {self.branch + 1}/{self.L} (m={self.m}, {norm})"


@dataclass
class LayerGraph:
    """Layers in forward order, the activation that follows each, and the activation feeding each."""

    order: list[str]
    follows: dict[str, Activation] = field(default_factory=dict)
    fed_by: dict[str, Activation] = field(default_factory=dict)
    source: str = "module order"
    branches: list[Branch] = field(default_factory=list)  # residual branches in forward order (traced only)
    head: str | None = None  # the classifier head (traced only)
    head_why: str = "the forward pass was not traced: pass sample_input"  # why there is no head
    roles: dict[str, ResidualRole] = field(default_factory=dict)  # layer or norm module -> its role

    def activation_after(self, layer: str) -> Activation:
        return self.follows.get(layer, LINEAR)

    def activation_before(self, layer: str) -> Activation | None:
        return self.fed_by.get(layer)

    @property
    def residual(self) -> bool:
        return bool(self.branches)

    def stream_length(self, stream: int) -> int:
        """L: the residual branches along one stream."""
        return sum(1 for b in self.branches if b.stream == stream)

    def role(self, name: str) -> ResidualRole | None:
        """The residual role of a layer or normalization module, None outside every branch."""
        return self.roles.get(name)

    def summary(self) -> str:
        """One line on the residual structure ('' for a model without residual connections)."""
        if not self.branches:
            return ""
        streams = sorted({b.stream for b in self.branches})
        lengths = "+".join(str(self.stream_length(s)) for s in streams)
        ms = sorted({b.m for b in self.branches})
        post = sum(b.post_norm for b in self.branches)
        pre = sum(b.pre_norm and not b.post_norm for b in self.branches)
        norm = "post-norm" if post else "pre-norm" if pre == len(self.branches) else "no norm" if not pre else "mixed"
        return f"residual: {len(self.branches)} branches (L={lengths}), m={'/'.join(map(str, ms))}, {norm}"

    def _assign_roles(self) -> None:
        """Roles per layer and norm module; a layer in several branches (nested or shared) keeps its first,
        innermost one."""
        for b in self.branches:
            common = dict(
                L=self.stream_length(b.stream),
                m=b.m,
                stream=b.stream,
                pre_norm=b.pre_norm,
                post_norm=b.post_norm,
                output_norm=b.output_norm,
            )
            for name in b.layers:
                kind = "output" if name in b.outputs else "inner"
                self.roles.setdefault(name, ResidualRole(b.index, kind, **common))
            for name in b.shortcut:
                self.roles.setdefault(name, ResidualRole(b.index, "shortcut", **common))
            for name in b.norms:
                kind = "output_norm" if name == b.output_norm else "norm"
                self.roles.setdefault(name, ResidualRole(b.index, kind, **common))


def is_transposed_linear(module: nn.Module) -> bool:
    """A Linear that stores its weight transposed, (in, out), and computes y = x·W + b: Hugging Face's
    ``Conv1D`` (GPT, GPT-2, ImageGPT...) and copies of it. Recognised by structure, not class: its own
    parameters are a 2-D ``weight`` of shape (nx, nf) and at most a bias of nf, with the output width ``nf``
    (and ``nx``, where it has it) an attribute — so autoinit imports no ``transformers`` (an optional extra)
    to know it, and vendored copies of the class are covered too."""
    nf = getattr(module, "nf", None)
    if isinstance(module, LAYER_TYPES) or not isinstance(nf, int):
        return False
    params = dict(module.named_parameters(recurse=False))
    w, b = params.get("weight"), params.get("bias")
    if w is None or is_lazy(w) or w.dim() != 2 or w.shape[1] != nf or set(params) - {"weight", "bias"}:
        return False
    return getattr(module, "nx", w.shape[0]) == w.shape[0] and (b is None or tuple(b.shape) == (nf,))


# A normalization module divides its input's scale out: its output on a probe and on 4× the probe agree to
# within _NORM_TOL (relative; an eps of 1e-5 under a unit-RMS probe moves it by ~1e-5).
_NORM_SCALE, _NORM_TOL, _NORM_PROBE_ROWS = 4.0, 1e-3, 8


def is_norm(module: nn.Module) -> bool:
    """A normalization module, whose weight is γ and bias β: PyTorch's own (:data:`NORM_TYPES`), or one
    recognised by structure and values — a leaf whose own parameters are a 1-D ``weight`` of width d and at
    most a ``bias`` of d, whose output on a (rows, d) probe keeps the probe's shape, depends on it and does
    not change when the probe is scaled by 4. Hand-written norms (Hugging Face's LlamaRMSNorm, T5LayerNorm,
    vendored LayerNorms) are the pre-norm of most Transformers: unknown, a pre-norm branch reads as one with
    no normalization, and ``auto`` shrinks it by Fixup's and GPT-2's depth factors, which are for branches
    nothing renormalizes. A learned scale (LayerScale) has the same parameters but is not scale-invariant."""
    if isinstance(module, NORM_TYPES):
        return True
    if isinstance(module, LAYER_TYPES) or next(module.children(), None) is not None:
        return False
    params = dict(module.named_parameters(recurse=False))
    w, b = params.get("weight"), params.get("bias")
    if w is None or is_lazy(w) or w.dim() != 1 or w.is_meta or set(params) - {"weight", "bias"}:
        return False
    if b is not None and b.shape != w.shape:
        return False
    g = torch.Generator().manual_seed(0)
    probe = torch.randn(_NORM_PROBE_ROWS, w.shape[0], generator=g).to(device=w.device, dtype=w.dtype)
    other = torch.randn(_NORM_PROBE_ROWS, w.shape[0], generator=g).to(device=w.device, dtype=w.dtype)
    training = module.training
    # Probed at γ = 1, β = 0 (then given back its values): a structural question, whatever values it holds —
    # a zero γ, or memory not yet initialized (to_empty), would otherwise read as "no norm".
    saved = {name: t.detach().clone() for name, t in params.items()}
    try:
        # forward, not __call__: the user's hooks do not see the probe; eval: no running statistics move.
        module.train(False)
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            w.fill_(1.0)
            if b is not None:
                b.zero_()
            y, y_scaled, y_other = (module.forward(t) for t in (probe, _NORM_SCALE * probe, other))
    except Exception:  # not a function of one (rows, d) tensor
        return False
    finally:
        module.train(training)
        with torch.no_grad():
            for name, t in params.items():
                t.copy_(saved[name])
    if not all(isinstance(t, torch.Tensor) and t.shape == probe.shape for t in (y, y_scaled, y_other)):
        return False
    y, y_scaled, y_other = y.float(), y_scaled.float(), y_other.float()
    if not bool(torch.isfinite(y).all()):
        return False
    scale = float(y.abs().max()) or 1.0
    invariant = float((y_scaled - y).abs().max()) <= _NORM_TOL * scale
    return invariant and float((y_other - y).abs().max()) > _NORM_TOL * scale


def is_layer(module: nn.Module) -> bool:
    return isinstance(module, LAYER_TYPES) or is_transposed_linear(module)


def is_linear(module: nn.Module) -> bool:
    """A Linear, stored as PyTorch does (out, in) or transposed (:func:`is_transposed_linear`)."""
    return isinstance(module, nn.Linear) or is_transposed_linear(module)


def can_be_head(module: nn.Module) -> bool:
    """A layer that can be a classifier head: a Linear (either layout) or a conv."""
    return isinstance(module, HEAD_TYPES) or is_transposed_linear(module)


def from_module_order(model: nn.Module) -> LayerGraph:
    """Activations read off registration order: a layer is followed by the next activation module
    registered before the next layer (the common ``nn.Sequential`` layout)."""
    graph = LayerGraph(order=[])
    pending: list[str] = []  # layers still waiting for their activation
    last_act: Activation | None = None
    for name, module in model.named_modules():
        if is_layer(module):
            if any(name.startswith(p + ".") for p in graph.order):
                continue  # a layer inside a layer (MultiheadAttention.out_proj) belongs to its parent
            graph.order.append(name)
            if last_act is not None:
                graph.fed_by[name] = last_act
            last_act = None
            pending = [name]
            continue
        act = activation_of_module(module)
        if act is not None:
            for layer in pending:
                graph.follows[layer] = act
            pending = []
            last_act = act
    return graph


def _first_tensor(args: Any) -> torch.Tensor | None:
    for a in args:
        if isinstance(a, torch.Tensor):
            return a
        if isinstance(a, (list, tuple)):
            t = _first_tensor(a)
            if t is not None:
                return t
    return None


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)


class _Node:
    """One traced tensor: the op's inputs, and the layer or normalization module it came out of. Indices
    grow in execution order, so they are a topological order."""

    __slots__ = ("index", "layer", "norm", "parents", "residual")

    def __init__(self, index: int, parents: tuple[_Node, ...], layer: str = "", norm: str | None = None) -> None:
        self.index, self.parents, self.layer, self.norm = index, parents, layer, norm
        self.residual: int | None = None  # the branch whose sum produced this tensor


def _ancestors(node: _Node) -> dict[_Node, None]:
    """``node`` and every node it derives from (at most ``_WALK_CAP``)."""
    seen: dict[_Node, None] = {node: None}
    todo = deque([node])
    while todo and len(seen) < _WALK_CAP:
        for p in todo.popleft().parents:
            if p not in seen:
                seen[p] = None
                todo.append(p)
    return seen


def _between(fork: _Node, ancestors: dict[_Node, None]) -> list[_Node]:
    """The nodes among ``ancestors`` (of one operand) that derive from ``fork``, in execution order: the
    path from the fork to the operand."""
    inside = {fork}
    for n in sorted(ancestors, key=lambda n: n.index):
        if n.index > fork.index and any(p in inside for p in n.parents):
            inside.add(n)
    inside.discard(fork)
    return sorted(inside, key=lambda n: n.index)


def _last_before(end: _Node, inside: set[_Node]) -> tuple[list[str], str | None]:
    """Walking back from ``end`` through ``inside`` without crossing a weighted layer: the layers reached
    first (the branch's last layers) and the first normalization module met on the way (its output norm)."""
    outputs: list[str] = []
    norm: str | None = None
    todo, seen = [end], {end}
    while todo:
        n = todo.pop()
        if n.layer:
            outputs.append(n.layer)
            continue
        if n.norm and norm is None:
            norm = n.norm
        for p in n.parents:
            if p in inside and p not in seen:
                seen.add(p)
                todo.append(p)
    return sorted(set(outputs), key=outputs.index), norm


class _Tracer(TorchFunctionMode):
    """Tags tensors with the layer that produced them, or the activation they came out of."""

    def __init__(self, graph: LayerGraph) -> None:
        super().__init__()
        self.graph = graph
        self.tags: dict[int, tuple[str, Any]] = {}  # ("layer", layer names) or ("act", Activation)
        self._alive: list[torch.Tensor] = []  # keeps tagged tensors alive so their ids stay unique
        # The residual structure's graph: a node per traced tensor, held weakly (freed tensors keep their node
        # in their children's parents).
        self.nodes: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self._count = itertools.count()
        self.sums: list[_Node] = []  # the residual sums' nodes, by branch index
        self.forks: list[_Node] = []  # each residual sum's fork, by branch index
        self._stream_of: list[int] = []
        self._streams = itertools.count()

    # ---- the residual structure -------------------------------------------------------------------------
    def node_of(self, t: torch.Tensor) -> _Node | None:
        return self.nodes.get(t)

    def node_or_root(self, t: torch.Tensor) -> _Node:
        """The tensor's node; a root node for a tensor no traced op made (the model's inputs)."""
        node = self.node_of(t)
        return node if node is not None else self.new_node(t, ())

    def new_node(self, t: torch.Tensor, parents: tuple[_Node, ...], layer: str = "", norm: str | None = None) -> _Node:
        node = _Node(next(self._count), parents, layer, norm)
        self.nodes[t] = node
        return node

    def wrap(self, out: Any, layer: str = "", norm: str | None = None) -> None:
        """A module's output: a node naming the module, on top of the op that made it."""
        for t in _tensors(out):
            inner = self.node_of(t)
            self.new_node(t, (inner,) if inner is not None else (), layer, norm)

    def see_sum(self, a: _Node, b: _Node, out: torch.Tensor) -> None:
        """Decide whether ``a + b`` is a residual connection and record its branch."""
        anc_a, anc_b = _ancestors(a), _ancestors(b)
        common = [n for n in anc_a if n in anc_b]
        if not common:
            return  # two unrelated tensors (token + position embeddings)
        fork = max(common, key=lambda n: n.index)  # the latest tensor both derive from
        side_a, side_b = _between(fork, anc_a), _between(fork, anc_b)
        layers_a = [n.layer for n in side_a if n.layer]
        layers_b = [n.layer for n in side_b if n.layer]
        if len(layers_a) > len(layers_b):  # the operand with fewer layers is the identity side
            a, b, anc_a, side_b = b, a, anc_b, side_a
            layers_a, layers_b = layers_b, layers_a
        # The identity side: the stream itself, or one projection (a downsample); the branch: more layers.
        if len(layers_a) > 1 or len(layers_b) <= len(layers_a):
            return
        # The fork must be a stream: where the branch passes through an earlier residual sum, that sum's own
        # fork derives from this one. An attention mask added to every layer's logits reaches the next layer's
        # logits only through the previous branches' outputs — a side input, not a stream.
        inside = {fork, *side_b}
        if any(n.residual is not None and self.forks[n.residual] not in inside for n in side_b):
            return
        index = len(self.sums)
        outputs, output_norm = _last_before(b, set(side_b))
        # Norm modules inside the branch; a functional norm (its op) counts when no module wraps it.
        norms = list(dict.fromkeys(n.norm for n in side_b if n.norm))
        wrapped = {p for n in side_b if n.norm for p in n.parents}
        norm_ops = any(n.norm == "" and n not in wrapped for n in side_b)
        branch = Branch(
            index=index,
            layers=list(dict.fromkeys(layers_b)),
            outputs=outputs,
            norms=norms,
            output_norm=output_norm,
            shortcut=list(dict.fromkeys(layers_a)),
            norm_ops=norm_ops,
        )
        # The stream: this sum continues the latest residual sum the identity side derives from; a norm on
        # the identity path between the two makes that earlier sum post-norm.
        previous = [n for n in anc_a if n.residual is not None]
        if previous:
            prev = max(previous, key=lambda n: n.index)
            branch.stream = self.graph.branches[prev.residual].stream
            self._mark_post_norm(a)
        else:
            branch.stream = next(self._streams)
        self.graph.branches.append(branch)
        self.forks.append(fork)
        node = self.nodes.get(out)
        if node is not None:
            node.residual = index
        self.sums.append(node)
        with torch.no_grad():
            branch.stream_std = float(out.detach().float().std()) if out.numel() > 1 else math.nan

    def _mark_post_norm(self, start: _Node) -> None:
        """Walk back from an identity operand without crossing a layer: every earlier residual sum reached
        through a normalization op is post-norm."""
        todo, seen = [(start, False)], {start}
        while todo:
            n, normed = todo.pop()
            normed = normed or n.norm is not None
            if n.residual is not None:
                if normed:
                    self.graph.branches[n.residual].post_norm = True
                continue
            if n.layer:
                continue
            for p in n.parents:
                if p not in seen:
                    seen.add(p)
                    todo.append((p, normed))

    def find_head(self, output: Any, modules: dict[str, nn.Module]) -> None:
        """The classifier head: the layer whose output reaches the model's first prediction through one-input
        ops only. A prediction keeps a batch dimension: a 0-dim tensor is a reduced value — the loss a
        Hugging Face model puts first when the batch's ``labels`` reach ``forward`` — and is passed over."""
        tensors = list(_tensors(output if not isinstance(output, dict) else list(output.values())))
        first = next((t for t in tensors if t.dim() > 0), tensors[0] if tensors else None)
        node = self.node_of(first) if first is not None else None
        if node is None:
            self.graph.head_why = "the model's output is not a traced tensor"
            return
        for _ in range(_WALK_CAP):
            if node.layer:
                if can_be_head(modules.get(node.layer)):
                    self.graph.head, self.graph.head_why = node.layer, ""
                else:
                    kind = type(modules.get(node.layer)).__name__
                    self.graph.head_why = f"the model's output comes out of {kind} '{node.layer}', not a Linear/Conv"
                return
            if len(node.parents) != 1:
                why = "a sum or another op of several tensors" if node.parents else "no layer"
                self.graph.head_why = f"the model's output comes out of {why}, not one Linear/Conv layer"
                return
            node = node.parents[0]

    def tag(self, t: torch.Tensor, kind: str, value: Any) -> None:
        self.tags[id(t)] = (kind, value)
        self._alive.append(t)

    def tag_of(self, t: torch.Tensor | None) -> tuple[str, Any] | None:
        return None if t is None else self.tags.get(id(t))

    def followed_by(self, t: torch.Tensor | None, act: Activation) -> None:
        """``act`` is applied to ``t``: it follows every layer ``t`` comes straight out of."""
        tag = self.tag_of(t)
        if tag is not None and tag[0] == "layer":
            for layer in tag[1]:
                self.graph.follows.setdefault(layer, act)

    def sum_tag(self, args: tuple) -> tuple[str, Any] | None:
        """A residual sum is the output of every layer summed into it, whatever the operand order, so the
        activation after ``idt + out`` follows both the block's last layer and a downsample layer."""
        tags = [self.tags[id(t)] for t in _tensors(args) if id(t) in self.tags]
        layers = tuple(dict.fromkeys(name for kind, names in tags if kind == "layer" for name in names))
        if layers:
            return ("layer", layers)
        return tags[0] if tags else None

    def see_activation(self, act: Activation, inp: torch.Tensor | None, out: Any) -> None:
        self.followed_by(inp, act)
        for t in _tensors(out):
            self.tag(t, "act", act)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        # Parents are looked up before the output's node is made: an in-place op's output is its input.
        parents = tuple(
            self.node_or_root(t)
            for t in itertools.chain(_tensors(args), _tensors(list(kwargs.values())))
            if not isinstance(t, nn.Parameter)  # weights are not the signal: a shared one is no fork
        )
        if name in _ADDS and len(parents) == 2 and isinstance(out, torch.Tensor):
            self.new_node(out, parents)
            self.see_sum(*parents, out)
        else:
            for t in _tensors(out):
                self.new_node(t, parents, norm="" if name.rstrip("_") in _NORM_OPS else None)
        inp = _first_tensor(args) if args else _first_tensor(list(kwargs.values()))
        act = activation_from_name(name, _slope(name, args, kwargs))
        if act is not None and not act.is_linear:
            self.see_activation(act, inp, out)
        elif name in _TRANSPARENT:
            tag = self.sum_tag(args) if name in _ADDS else self.tag_of(inp)
            if tag is not None:
                for t in _tensors(out):
                    self.tag(t, *tag)
        return out


def _slope(name: str, args: tuple, kwargs: dict) -> float | None:
    if name.rstrip("_") in ("leaky_relu", "elu", "celu"):
        value = kwargs.get("negative_slope", kwargs.get("alpha", args[1] if len(args) > 1 else None))
        return float(value) if isinstance(value, (int, float)) else None
    return None


def run_model(model: nn.Module, sample_input: Any) -> Any:
    """Call the model on a sample the way Lightning's ``example_input_array`` is used: a tuple is
    unpacked as positional arguments, a dict as keyword arguments."""
    if isinstance(sample_input, dict):
        return model(**sample_input)
    if isinstance(sample_input, (tuple, list)):
        return model(*sample_input)
    return model(sample_input)


def move_to(sample_input: Any, device: torch.device) -> Any:
    if isinstance(sample_input, torch.Tensor):
        return sample_input.to(device)
    if isinstance(sample_input, dict):
        return {k: move_to(v, device) for k, v in sample_input.items()}
    if isinstance(sample_input, (tuple, list)):
        return type(sample_input)(move_to(v, device) for v in sample_input)
    return sample_input


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for a measuring pass: no dropout draws from the global RNG and no
    update of BatchNorm's running statistics; every module's own training flag is restored after."""
    flags = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, flag in flags.items():
            m.training = flag


def trace(model: nn.Module, sample_input: Any) -> LayerGraph:
    """Detect the activation after (and before) every layer from one traced forward pass."""
    graph = LayerGraph(order=[], source="traced")
    tracer = _Tracer(graph)
    handles = []

    def pre_hook(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            if name not in graph.order:
                graph.order.append(name)
                tag = tracer.tag_of(_first_tensor(args))
                if tag is not None and tag[0] == "act":
                    graph.fed_by[name] = tag[1]

        return hook

    def post_hook(name: str):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            out = output[0] if isinstance(output, tuple) else output
            if isinstance(out, torch.Tensor):
                tracer.tag(out, "layer", (name,))
                tracer.wrap(out, layer=name)

        return hook

    def norm_hook(name: str):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            tracer.wrap(output, norm=name)

        return hook

    def act_hook(act: Activation):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            tracer.see_activation(act, _first_tensor(args), output)

        return hook

    modules = dict(model.named_modules())
    for name, module in modules.items():
        if is_layer(module):
            handles.append(module.register_forward_pre_hook(pre_hook(name)))
            handles.append(module.register_forward_hook(post_hook(name)))
        elif is_norm(module):
            handles.append(module.register_forward_hook(norm_hook(name)))
        else:
            act = activation_of_module(module)
            if act is not None:
                # A module activation (CReLU's torch.cat included) wins over the calls inside it.
                handles.append(module.register_forward_pre_hook(lambda m, a, act=act: _mark(tracer, act, a)))
                handles.append(module.register_forward_hook(act_hook(act)))
    try:
        with eval_mode(model), tracer:
            output = run_model(model, sample_input)
    finally:
        for h in handles:
            h.remove()
    tracer.find_head(output, modules)
    _finish_branches(graph, modules)
    # Layers the pass never reached (an out_proj called through its parent's functional code) keep
    # their module-order activation.
    fallback = from_module_order(model)
    for name in fallback.order:
        if name not in graph.order:
            graph.order.append(name)
            if name in fallback.follows:
                graph.follows[name] = fallback.follows[name]
    return graph


def _mark(tracer: _Tracer, act: Activation, args: tuple) -> None:
    tracer.followed_by(_first_tensor(args), act)


def _finish_branches(graph: LayerGraph, modules: dict[str, nn.Module]) -> None:
    """A MultiheadAttention writes into the stream through its ``out_proj`` (a Linear its functional code
    calls without a module call); the last sum of a stream is post-norm when every other sum of it is."""
    for b in graph.branches:
        for name in list(b.layers):
            proj = getattr(modules.get(name), "out_proj", None)
            if isinstance(modules.get(name), nn.MultiheadAttention) and isinstance(proj, nn.Linear):
                b.layers.insert(b.layers.index(name) + 1, f"{name}.out_proj")
                if name in b.outputs:
                    b.outputs[b.outputs.index(name)] = f"{name}.out_proj"
    for stream in {b.stream for b in graph.branches}:
        members = [b for b in graph.branches if b.stream == stream]
        if len(members) > 1 and all(b.post_norm for b in members[:-1]):
            members[-1].post_norm = True
    graph._assign_roles()


def stream_stds(model: nn.Module, sample_input: Any) -> list[tuple[int, str, float]]:
    """The std of each residual stream right after every residual sum, in forward order, on one forward
    pass over ``sample_input`` (eval mode, no grad): ``(branch index, the branch's last layer, std)``. A
    stream whose std grows with the number of branches is what the residual schemes (``fixup``,
    ``zero_residual``, ``depth_scaled``) and ``auto``'s depth scaling keep flat."""
    graph = trace(model, sample_input)
    return [(b.index, ",".join(b.outputs), b.stream_std) for b in graph.branches]
