"""Which activation follows each layer, and which feeds it.

With a sample input, one real forward pass is traced: forward hooks tag each layer's output tensor, and a
``TorchFunctionMode`` sees every torch call made inside ``forward`` — module activations and functional
ones (``F.relu``, ``torch.tanh``, ``x.sigmoid()``) alike. Shape-only and normalizing operations (reshape,
dropout, pooling, batch/layer norm) carry a tag through, so ``conv → BatchNorm → relu`` gives the conv
ReLU's gain; a residual sum carries the tags of all its operands, so the ReLU after ``idt + out`` follows
both the block's last conv and a downsample conv, in either order. Without a sample input, module
registration order is the fallback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

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


@dataclass
class LayerGraph:
    """Layers in forward order, the activation that follows each, and the activation feeding each."""

    order: list[str]
    follows: dict[str, Activation] = field(default_factory=dict)
    fed_by: dict[str, Activation] = field(default_factory=dict)
    source: str = "module order"

    def activation_after(self, layer: str) -> Activation:
        return self.follows.get(layer, LINEAR)

    def activation_before(self, layer: str) -> Activation | None:
        return self.fed_by.get(layer)


def is_layer(module: nn.Module) -> bool:
    return isinstance(module, LAYER_TYPES)


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


class _Tracer(TorchFunctionMode):
    """Tags tensors with the layer that produced them, or the activation they came out of."""

    def __init__(self, graph: LayerGraph) -> None:
        super().__init__()
        self.graph = graph
        self.tags: dict[int, tuple[str, Any]] = {}  # ("layer", layer names) or ("act", Activation)
        self._alive: list[torch.Tensor] = []  # keeps tagged tensors alive so their ids stay unique

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

        return hook

    def act_hook(act: Activation):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            tracer.see_activation(act, _first_tensor(args), output)

        return hook

    for name, module in model.named_modules():
        if is_layer(module):
            handles.append(module.register_forward_pre_hook(pre_hook(name)))
            handles.append(module.register_forward_hook(post_hook(name)))
        else:
            act = activation_of_module(module)
            if act is not None:
                # A module activation (CReLU's torch.cat included) wins over the calls inside it.
                handles.append(module.register_forward_pre_hook(lambda m, a, act=act: _mark(tracer, act, a)))
                handles.append(module.register_forward_hook(act_hook(act)))
    try:
        with eval_mode(model), tracer:
            run_model(model, sample_input)
    finally:
        for h in handles:
            h.remove()
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
