"""Stacked training state for a population: K copies of one module held as single tensors with a leading
member dimension, and the element-wise operations on them that must stay per member (gradient clipping,
learning-rate scaling, dropping members).

Nothing here mixes members: every reduction is over a member's own elements, so a member trains exactly
as it would alone, and one member's NaN cannot reach another.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# Optimizers whose update of each element depends only on that element's gradient and state (and a few
# scalars shared by all elements, such as the step count): stacked, they update every member exactly as
# separate optimizers would. Their update is also linear in the learning rate for a given state, which is
# what makes a per-member ``lr_scale`` exact (see :func:`scale_updates`).
ELEMENTWISE_OPTIMIZERS: tuple[type[torch.optim.Optimizer], ...] = (
    torch.optim.SGD,
    torch.optim.Adam,
    torch.optim.AdamW,
    torch.optim.RMSprop,
    torch.optim.Adagrad,
    torch.optim.Adamax,
    torch.optim.Adadelta,
    torch.optim.NAdam,
    torch.optim.RAdam,
)

# Schedulers that multiply the base learning rate by a factor of the step count: with them a per-member
# lr_scale still scales the whole schedule, as LearningRateScale does in a sequential trial.
MULTIPLICATIVE_SCHEDULERS: tuple[type, ...] = (
    torch.optim.lr_scheduler.StepLR,
    torch.optim.lr_scheduler.MultiStepLR,
    torch.optim.lr_scheduler.ExponentialLR,
    torch.optim.lr_scheduler.LambdaLR,
    torch.optim.lr_scheduler.MultiplicativeLR,
    torch.optim.lr_scheduler.ConstantLR,
    torch.optim.lr_scheduler.LinearLR,
)


class Stack:
    """The stacked parameters and buffers of ``count`` members of one architecture, filled one member at a
    time (:meth:`put`) and then handed to the carrier module (:meth:`install`). Members are written
    straight into their slot: a population never holds its members as separate modules."""

    def __init__(self, like: nn.Module, count: int) -> None:
        with torch.no_grad():
            self.params = {n: p.new_empty((count, *p.shape)) for n, p in like.named_parameters()}
            self.buffers = {n: b.new_empty((count, *b.shape)) for n, b in like.named_buffers()}

    def put(self, slot: int, member: nn.Module) -> None:
        """Copy ``member``'s parameters and buffers into ``slot``."""
        with torch.no_grad():
            for name, p in member.named_parameters():
                self.params[name][slot].copy_(p)
            for name, b in member.named_buffers():
                self.buffers[name][slot].copy_(b)

    def install(
        self, carrier: nn.Module, slots: Sequence[int]
    ) -> tuple[dict[str, nn.Parameter], dict[str, torch.Tensor]]:
        """Make ``carrier``'s parameters and buffers hold the stacked ones of ``slots`` (the filled ones, in
        order) and return them by name.

        The carrier keeps its own Parameter objects (only their data becomes ``[K, ...]``), so an optimizer
        already built over them — LightningCLI's ``optimizer:`` section instantiates it with the model —
        and anything ``configure_optimizers`` builds from ``self.parameters()`` covers the stacked tensors,
        with the module's own order, grouping and ties. The carrier must not have run a backward yet
        (autograd caches a leaf's shape)."""
        count = next(iter(self.params.values())).shape[0] if self.params else len(slots)
        index = None if list(slots) == list(range(count)) else torch.tensor(list(slots))
        pick = (lambda t: t) if index is None else (lambda t: t[index.to(t.device)])
        params: dict[str, nn.Parameter] = {}
        with torch.no_grad():
            for name, p in carrier.named_parameters():
                p.data = pick(self.params[name])
                params[name] = p
        buffers: dict[str, torch.Tensor] = {}
        for name, _ in carrier.named_buffers():
            buffers[name] = pick(self.buffers[name])
            owner, _, bname = name.rpartition(".")
            carrier.get_submodule(owner)._buffers[bname] = buffers[name]
        self.params, self.buffers = {}, {}
        return params, buffers


def per_member(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A ``[K]`` vector shaped to broadcast over a stacked ``[K, ...]`` tensor."""
    return values.reshape(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def clip_grad_norm(params: Sequence[torch.Tensor], max_norm: float) -> None:
    """Lightning's (torch's) gradient-norm clipping, applied to each member's own gradients: the norm is
    taken over one member's elements of every parameter, never across members."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    squares = torch.stack([g.detach().float().pow(2).flatten(1).sum(1) for g in grads]).sum(0)
    coef = (max_norm / (squares.sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(per_member(coef, g))


def clip_grad_value(params: Sequence[torch.Tensor], clip_value: float) -> None:
    """Element-wise clipping: the same for a stacked tensor as for each member's."""
    for p in params:
        if p.grad is not None:
            p.grad.clamp_(-clip_value, clip_value)


def scale_updates(params: Sequence[torch.Tensor], before: Sequence[torch.Tensor], scale: torch.Tensor) -> None:
    """Make the optimizer step just taken (``before`` → now) ``scale[k]`` times as large for member k.

    Exact for :data:`ELEMENTWISE_OPTIMIZERS`: their step is linear in the learning rate and their state
    does not depend on it, so this equals the step with a learning rate ``scale[k]`` times as large."""
    with torch.no_grad():
        for p, old in zip(params, before, strict=True):
            p.copy_(old + per_member(scale, p) * (p - old))


def keep_members(
    carrier: nn.Module,
    params: dict[str, nn.Parameter],
    buffers: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    keep: torch.Tensor,
) -> None:
    """Drop every member not in ``keep`` (indices) from the stacked parameters, buffers and optimizer
    state, so stopped members cost no more work. The parameters are new tensors (autograd caches a leaf's
    shape), put back everywhere the old ones were: ``params``, ``buffers``, the carrier module and the
    optimizer's param groups and state."""
    with torch.no_grad():
        new: dict[int, nn.Parameter] = {}
        for name, p in params.items():
            q = nn.Parameter(p.detach()[keep].clone(), requires_grad=p.requires_grad)
            state = optimizer.state.pop(p, None)
            if state is not None:
                optimizer.state[q] = {
                    k: (v[keep].clone() if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape == p.shape else v)
                    for k, v in state.items()
                }
            new[id(p)] = q
            params[name] = q
        for group in optimizer.param_groups:
            group["params"] = [new.get(id(p), p) for p in group["params"]]
        for module in carrier.modules():
            for pname, p in list(module._parameters.items()):
                if p is not None and id(p) in new:
                    setattr(module, pname, new[id(p)])
        for name, b in buffers.items():
            buffers[name] = b[keep].clone()
            owner, _, bname = name.rpartition(".")
            carrier.get_submodule(owner)._buffers[bname] = buffers[name]
