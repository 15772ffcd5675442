"""Split a model's parameters into the blocks a scheme initializes, each with its own fans.

A block is one matrix (or kernel) a scheme sees as a whole: a Linear weight, a conv kernel, one gate of an
LSTM's stacked weight, the q, k or v part of a MultiheadAttention's packed projection. Fans:

- Linear / Bilinear / ConvNd: as ``torch.nn.init`` computes them — fan_in = in_channels/groups × receptive
  field, fan_out = out_channels × receptive field.
- ConvTranspose: the weight is stored (in, out/groups, *k), so ``torch.nn.init`` swaps the fans; here they
  are computed from the module (fan_in = in_channels/groups × receptive field, fan_out = out_channels ×
  receptive field), the same rule as for a conv.
- Transposed linear (Hugging Face's Conv1D, :func:`autoinit.detect.is_transposed_linear`): the weight is
  stored (in, out) and y = x·W + b; the block is its transposed view, (out, in), so every scheme sees a
  Linear: fan_in = in = weight.shape[0], fan_out = weight.shape[1], rows are outputs (orthogonal, LSUV's
  rescale, Yam–Chow's per-row bias all read it as they read a Linear's weight).
- Embedding: a lookup reads exactly one row — the layer is a Linear over a one-hot input of unit norm — so
  the variance-preserving fan_in is 1 and fan_out the embedding dimension.
- RNN/LSTM/GRU: each gate's block is a hidden×input (or hidden×hidden) matrix of its own.
- MultiheadAttention: q, k, v are three embed×embed (or embed×kdim) matrices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from autoinit.activations import LINEAR, Activation
from autoinit.detect import NORM_TYPES, LayerGraph, ResidualRole, is_layer, is_transposed_linear

_NORM_TYPES = NORM_TYPES

_GATES = {
    "LSTM": (("i", "sigmoid"), ("f", "sigmoid"), ("g", "tanh"), ("o", "sigmoid")),
    "GRU": (("r", "sigmoid"), ("z", "sigmoid"), ("n", "tanh")),
    "RNN_TANH": (("h", "tanh"),),
    "RNN_RELU": (("h", "relu"),),
}


@dataclass
class Block:
    """One matrix or vector a scheme initializes as a whole."""

    param_name: str
    label: str  # param_name, or param_name[gate] for one block of a stacked parameter
    tensor: torch.Tensor  # a view into the parameter's storage
    role: str  # weight | recurrent | embedding | bias | norm_weight | norm_bias
    layer_name: str
    layer: nn.Module
    fan_in: int = 0
    fan_out: int = 0
    activation: Activation = LINEAR
    fed_by: Activation | None = None
    gate: str | None = None
    residual: ResidualRole | None = None  # where the layer sits in a residual branch (traced models only)
    head: bool = False  # the block belongs to the classifier head (see autoinit.detect)

    @property
    def layer_type(self) -> str:
        return type(self.layer).__name__

    @property
    def is_conv(self) -> bool:
        return isinstance(self.layer, nn.modules.conv._ConvNd)


def conv_fans(conv: nn.modules.conv._ConvNd) -> tuple[int, int]:
    rf = math.prod(conv.kernel_size)
    return conv.in_channels // conv.groups * rf, conv.out_channels * rf


def _weight_fans(module: nn.Module, w: torch.Tensor) -> tuple[int, int]:
    if isinstance(module, nn.modules.conv._ConvNd):
        return conv_fans(module)
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return 1, module.embedding_dim
    rf = math.prod(w.shape[2:]) if w.dim() > 2 else 1
    return w.shape[1] * rf, w.shape[0] * rf


def _rnn_blocks(name: str, rnn: nn.RNNBase) -> dict[str, list[Block]]:
    gates = _GATES[rnn.mode]
    out: dict[str, list[Block]] = {}
    for pname, p in rnn.named_parameters(recurse=False):
        full = f"{name}.{pname}" if name else pname
        kind = pname.split("_")[0]  # weight | bias
        if pname.startswith("weight_hr"):
            out[full] = [Block(full, full, p.data, "weight", name, rnn, p.shape[1], p.shape[0])]
            continue
        h = p.shape[0] // len(gates)
        blocks = []
        for k, (gate, act) in enumerate(gates):
            view = p.data[k * h : (k + 1) * h]
            role = "bias" if kind == "bias" else "recurrent" if pname.startswith("weight_hh") else "weight"
            fans = (view.shape[1], view.shape[0]) if view.dim() == 2 else (0, 0)
            blocks.append(Block(full, f"{full}[{gate}]", view, role, name, rnn, *fans, Activation(act), None, gate))
        out[full] = blocks
    return out


def _mha_blocks(name: str, mha: nn.MultiheadAttention) -> dict[str, list[Block]]:
    out: dict[str, list[Block]] = {}
    e = mha.embed_dim
    for pname, p in mha.named_parameters(recurse=False):
        full = f"{name}.{pname}" if name else pname
        if pname == "in_proj_weight":
            out[full] = [
                Block(
                    full, f"{full}[{part}]", p.data[k * e : (k + 1) * e], "weight", name, mha, e, e, LINEAR, None, part
                )
                for k, part in enumerate("qkv")
            ]
        elif pname in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
            out[full] = [Block(full, full, p.data, "weight", name, mha, p.shape[1], p.shape[0])]
        else:  # in_proj_bias, bias_k, bias_v
            out[full] = [Block(full, full, p.data, "bias", name, mha)]
    return out


def layer_blocks(name: str, module: nn.Module, graph: LayerGraph) -> dict[str, list[Block]] | None:
    """Blocks of a module's own (non-recursive) parameters, by parameter name; None if no rule covers
    the module."""
    blocks = _blocks(name, module, graph)
    if blocks is not None:
        role, head = graph.role(name), graph.head == name
        for bs in blocks.values():
            for b in bs:
                b.residual, b.head = role, head
    return blocks


def _blocks(name: str, module: nn.Module, graph: LayerGraph) -> dict[str, list[Block]] | None:
    if isinstance(module, nn.RNNBase):
        return _rnn_blocks(name, module)
    if isinstance(module, nn.MultiheadAttention):
        return _mha_blocks(name, module)
    params = dict(module.named_parameters(recurse=False))
    prefix = f"{name}." if name else ""
    if isinstance(module, _NORM_TYPES):
        return {
            prefix + p: [
                Block(prefix + p, prefix + p, t.data, "norm_" + ("bias" if p == "bias" else "weight"), name, module)
            ]
            for p, t in params.items()
        }
    if not is_layer(module):
        return None
    out: dict[str, list[Block]] = {}
    transposed = is_transposed_linear(module)
    for p, t in params.items():
        full = prefix + p
        if p == "weight":
            role = "embedding" if isinstance(module, (nn.Embedding, nn.EmbeddingBag)) else "weight"
            data = t.data.t() if transposed else t.data  # a view: what a scheme writes lands in the parameter
            fan_in, fan_out = _weight_fans(module, data)
            out[full] = [
                Block(
                    full,
                    full,
                    data,
                    role,
                    name,
                    module,
                    fan_in,
                    fan_out,
                    graph.activation_after(name),
                    graph.activation_before(name),
                )
            ]
        elif p == "bias":
            out[full] = [Block(full, full, t.data, "bias", name, module)]
    return out
