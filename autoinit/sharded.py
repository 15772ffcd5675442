"""Initializing sharded parameters where they live: DTensor parameters (FSDP2 ``fully_shard``, tensor
parallel ``parallelize_module``, Lightning's ``ModelParallelStrategy``).

:class:`ShardedWriter` plugs into :func:`autoinit.init_model` (its ``writer=``):

- **Planning** sees each DTensor parameter as a meta tensor of its *global* shape, so fans, blocks (LSTM
  gates, packed q/k/v) and the traced activations are those of the unsharded model; nothing is allocated.
- **Full draw** (``ShardedDraw.FULL``, the default): one parameter at a time, every rank allocates the
  parameter's full tensor, the scheme fills it from the seeded generator exactly as a single process
  would, and each rank keeps its local shard (no communication). Every rank's generator advances as in a
  single process, so the gathered parameters are bit-equal to ``init_model`` on the unsharded model with the
  same seed, orthogonal schemes included. Peak extra memory: the largest single parameter (for the
  ``default`` scheme, the largest module's parameters, since ``reset_parameters`` writes them together).
- **Local draw** (``ShardedDraw.LOCAL``): a parameter that is one block is drawn directly into its local
  shard from a generator keyed by (seed, name, shard coordinate), with fans from the global shape, so no
  full tensor ever exists. Statistically the same as the full draw, not bit-equal; only for schemes that
  draw every element independently (``Scheme.iid``); ranks that hold the same shard (``Replicate``) draw
  the same values.
- **Measuring passes** (LSUV) run the sharded model's own forward on the batch every rank shares (rank 0's,
  broadcast): a layer's output variance is that of its global output (a tensor-parallel output is gathered
  first) and rank 0's value is broadcast, so every rank applies the same scale, to its shard and to the
  gathered copy the forward pass is computing with.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor, distribute_tensor

from autoinit.detect import LayerGraph, move_to, trace
from autoinit.errors import AutoInitError
from autoinit.initialize import ParamWriter
from autoinit.layers import Block, layer_blocks
from autoinit.schemes.base import Scheme

__all__ = ["ShardedDraw", "ShardedWriter", "check_scheme", "has_sharded_parameters"]


class ShardedDraw(enum.Enum):
    """How a sharded parameter is drawn."""

    FULL = "full"  # the full tensor on every rank, one parameter at a time; bit-equal to one process
    LOCAL = "local"  # only the local shard; statistically equal; no full tensor ever


def as_sharded_draw(value: ShardedDraw | str) -> ShardedDraw:
    """``value`` as a :class:`ShardedDraw`; a one-line error otherwise."""
    if isinstance(value, ShardedDraw):
        return value
    try:
        return ShardedDraw(value)
    except ValueError:
        raise AutoInitError(
            f"sharded_draw must be 'full' (bit-equal to one process; peak memory one full parameter) or "
            f"'local' (draws only each rank's shard), got {value!r}"
        ) from None


def has_sharded_parameters(model: nn.Module) -> bool:
    """Whether any parameter of ``model`` is a DTensor."""
    return any(isinstance(p, DTensor) for p in model.parameters())


def check_scheme(scheme: Scheme, strategy: str) -> None:
    """A one-line error for a scheme that cannot run on sharded parameters under ``strategy``."""
    if scheme.model_pass is not None and not scheme.shardable_pass:
        what = (
            "measures the network on a batch and redraws whole weights from it"
            if scheme.needs_data
            else "runs a pass over the whole model that writes unsharded weights"
        )
        raise AutoInitError(
            f"scheme '{scheme.name}' {what}, which it cannot do on the sharded parameters of {strategy}: use it "
            f"under DDP, or pick a per-block scheme (such as 'auto' or 'orthogonal') or 'lsuv' under {strategy}"
        )


# Module types whose weight shape is fixed by their constructor arguments: a sharded parameter of another
# global shape means the model was split by hand (local shapes), and its fans would be silently wrong.
def _expected_weight_shape(module: nn.Module) -> tuple[int, ...] | None:
    if isinstance(module, nn.Linear):
        return (module.out_features, module.in_features)
    if isinstance(module, nn.modules.conv._ConvNd):
        if module.transposed:
            return (module.in_channels, module.out_channels // module.groups, *module.kernel_size)
        return (module.out_channels, module.in_channels // module.groups, *module.kernel_size)
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return (module.num_embeddings, module.embedding_dim)
    return None


def _stable_seed(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little") % 2**63


class ShardedWriter(ParamWriter):
    """The :class:`~autoinit.initialize.ParamWriter` for models with DTensor parameters (see the module
    docstring). Plain parameters of the same model are written in place, as without it; every rank draws
    them from the same stream, so they end identical."""

    def __init__(self, model: nn.Module, *, draw: ShardedDraw | str = ShardedDraw.FULL, seed: int | None) -> None:
        self.draw = as_sharded_draw(draw)
        self.seed = seed
        self.params: dict[str, nn.Parameter] = dict(model.named_parameters())
        # Every (module, attribute) holding each parameter, so a tied one is swapped everywhere.
        self._places: dict[int, list[tuple[nn.Module, str]]] = {}
        for module in model.modules():
            for attr, p in module.named_parameters(recurse=False, remove_duplicate=False):
                self._places.setdefault(id(p), []).append((module, attr))
        self._stds: dict[str, float] = {}
        self._local: dict[int, torch.Generator] = {}  # id(block) -> its shard's generator, while open

    def reads_values(self) -> bool:
        return False  # stand-ins of global shape, often never initialized (a meta-device build)

    # ---- planning on global shapes ---------------------------------------------------------------------
    def blocks_of(self, name: str, module: nn.Module, graph: LayerGraph) -> dict[str, list[Block]] | None:
        sharded = {k: p for k, p in module.named_parameters(recurse=False) if isinstance(p, DTensor)}
        if not sharded:
            return layer_blocks(name, module, graph)
        expected = _expected_weight_shape(module)
        if expected is not None and "weight" in sharded and tuple(sharded["weight"].shape) != expected:
            full = f"{name}.weight" if name else "weight"
            raise AutoInitError(
                f"sharded parameter '{full}' has global shape {tuple(sharded['weight'].shape)} but its "
                f"{type(module).__name__} declares {expected}: the sharded model does not match its module "
                "structure (layers built with local shapes?); shard with fully_shard/parallelize_module on "
                "full-size layers, or exclude it"
            )
        with self._swapped(module, {k: _meta_like(p) for k, p in sharded.items()}):
            return layer_blocks(name, module, graph)

    def trace(self, model: nn.Module, sample_input: Any) -> LayerGraph:
        # On a meta skeleton, not the sharded model: a sharded forward all-gathers every layer (measured:
        # about twice the full model's size in peak memory on 2 CPU ranks), a meta one allocates nothing.
        return trace(meta_skeleton(model), move_to(sample_input, torch.device("meta")))

    # ---- writing ---------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def open(self, names: Sequence[str], blocks: dict[str, list[Block]]) -> Iterator[None]:
        saved: list[tuple[Block, torch.Tensor]] = []
        fulls: dict[str, torch.Tensor] = {}
        locals_: list[str] = []
        swaps: dict[nn.Module, dict[str, nn.Parameter]] = {}
        for n in names:
            p = self.params[n]
            if not isinstance(p, DTensor):
                continue
            own = blocks.get(n, [])
            if self.draw is ShardedDraw.LOCAL and self._drawable_locally(own, p):
                shard = p.to_local()
                saved.append((own[0], own[0].tensor))
                own[0].tensor = shard
                self._local[id(own[0])] = self._shard_generator(n, p, shard.device)
                locals_.append(n)
                continue
            full = torch.empty(p.shape, dtype=p.dtype, device=p.to_local().device)
            fulls[n] = full
            for b in own:
                saved.append((b, b.tensor))
                b.tensor = full.as_strided(b.tensor.size(), b.tensor.stride(), b.tensor.storage_offset())
            stand_in = nn.Parameter(full, requires_grad=p.requires_grad)
            for module, attr in self._places[id(p)]:
                swaps.setdefault(module, {})[attr] = stand_in
        try:
            with contextlib.ExitStack() as stack:
                if any(f.device.type == "cpu" for f in fulls.values()):
                    stack.enter_context(_one_thread())
                for module, params in swaps.items():
                    stack.enter_context(self._swapped(module, params))
                yield
                with torch.no_grad():
                    for n, full in fulls.items():
                        if n in blocks:  # the others were opened only to take a module-wide reset
                            self._keep_shard(n, self.params[n], full)
            for n in locals_:
                self._stds[n] = super().std(n, self.params[n].to_local())
        finally:
            for b, t in saved:
                self._local.pop(id(b), None)
                b.tensor = t

    def _keep_shard(self, name: str, p: DTensor, full: torch.Tensor) -> None:
        # src_data_rank=None: every rank slices its own shard out of its own full tensor, no communication.
        shard = distribute_tensor(full, p.device_mesh, p.placements, src_data_rank=None).to_local()
        local = p.to_local()
        if shard.shape != local.shape:
            raise AutoInitError(
                f"sharded parameter '{name}': its local shard has shape {tuple(local.shape)} but its placements "
                f"{p.placements} give {tuple(shard.shape)}: a sharding autoinit cannot follow; exclude it"
            )
        local.copy_(shard)
        self._stds[name] = super().std(name, full)

    def _drawable_locally(self, blocks: list[Block], p: DTensor) -> bool:
        if len(blocks) != 1 or blocks[0].tensor.numel() != p.numel():
            return False  # a stacked parameter (LSTM gates, packed q/k/v): blocks cut across shards
        # A padding row is zeroed by its global index.
        return not (blocks[0].role == "embedding" and getattr(blocks[0].layer, "padding_idx", None) is not None)

    def _shard_generator(self, name: str, p: DTensor, device: torch.device) -> torch.Generator:
        coordinate = p.device_mesh.get_coordinate() or []
        # Only the sharded mesh dimensions: ranks that hold the same shard draw the same values.
        shard = tuple(c for c, pl in zip(coordinate, p.placements, strict=True) if pl.is_shard())
        return torch.Generator(device=device).manual_seed(_stable_seed(self.seed, name, shard))

    def generator(self, block: Block, default: torch.Generator | None) -> torch.Generator | None:
        return self._local.get(id(block), default)

    def accept(self, scheme: Scheme, block: Block) -> None:
        if id(block) in self._local and not scheme.iid:
            raise AutoInitError(
                f"sharded_draw='local' draws each shard on its own, which scheme '{scheme.name}' cannot do for "
                f"'{block.label}' (its elements are not independent): use sharded_draw='full', or an i.i.d. "
                "scheme such as 'kaiming_normal'"
            )

    def std(self, name: str, param: nn.Parameter) -> float:
        if name in self._stds:
            return self._stds[name]
        return super().std(name, param.to_local() if isinstance(param, DTensor) else param)

    # ---- measuring passes ------------------------------------------------------------------------------
    def variance(self, activations: torch.Tensor) -> float:
        if isinstance(activations, DTensor):  # a tensor-parallel output: sharded or partial sums
            activations = activations.full_tensor()
        value = torch.tensor([super().variance(activations)], dtype=torch.float64, device=activations.device)
        # Ranks must agree to the bit: each rescale is followed by a forward with collectives, so a rank that
        # stopped one rescale early would hang the others.
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.broadcast(value, src=0)
        return float(value)

    def rescale(self, block: Block, factor: float) -> None:
        p = self.params.get(block.param_name)
        if not isinstance(p, DTensor):
            super().rescale(block, factor)
            return
        if block.tensor.numel() != p.numel():  # not the shape: a transposed linear's block is its transpose
            raise AutoInitError(
                f"sharded parameter '{block.param_name}': a measuring pass rescales part of it ({block.label}), "
                "which autoinit does not do on shards: exclude it, or use this scheme under DDP"
            )
        local = p.to_local()
        local.mul_(factor)
        # During a forward pass FSDP2 holds the gathered weight in the module instead: the pass computes with it.
        done = {id(p)}
        for module, attr in self._places[id(p)]:
            visible = module._parameters.get(attr)
            if visible is None or id(visible) in done:
                continue
            done.add(id(visible))
            held = visible.to_local() if isinstance(visible, DTensor) else visible
            if held.untyped_storage().data_ptr() != local.untyped_storage().data_ptr():
                visible.mul_(factor)

    @contextlib.contextmanager
    def model_pass(self, model: nn.Module) -> Iterator[None]:
        try:
            yield
        finally:
            # FSDP2 keeps the root's gathered weights after a forward (training's backward would reshard them):
            # back to shards, so the next forward gathers the rescaled values.
            for module in model.modules():
                if isinstance(module, FSDPModule):
                    module.reshard()

    @staticmethod
    @contextlib.contextmanager
    def _swapped(module: nn.Module, params: dict[str, nn.Parameter]) -> Iterator[None]:
        """``module``'s parameters replaced by ``params`` while held."""
        before = {k: module.get_parameter(k) for k in params}
        try:
            for k, p in params.items():
                module.register_parameter(k, p)
            yield
        finally:
            for k, p in before.items():
                module.register_parameter(k, p)


def meta_skeleton(model: nn.Module) -> nn.Module:
    """A copy of ``model``'s module tree with every parameter and buffer a meta tensor of its global shape
    and no hooks (so no FSDP all-gather, no tensor-parallel redistribution): forward runs on shapes only."""
    memo: dict[int, nn.Module] = {}

    def clone(module: nn.Module) -> nn.Module:
        if id(module) in memo:
            return memo[id(module)]
        cls = type(module)
        if isinstance(module, FSDPModule):  # FSDP2's generated subclass: back to the user's class
            cls = next(c for c in cls.__mro__[1:] if not issubclass(c, FSDPModule))
        skel = object.__new__(cls)  # no __init__: the attributes are copied below
        skel.__dict__.update(module.__dict__)
        memo[id(module)] = skel
        skel._parameters = {k: None if p is None else _meta_like(p) for k, p in module._parameters.items()}
        skel._buffers = {
            k: None if b is None else torch.empty(b.shape, dtype=b.dtype, device="meta")
            for k, b in module._buffers.items()
        }
        skel._modules = {k: None if m is None else clone(m) for k, m in module._modules.items()}
        for hooks in (
            "_forward_hooks",
            "_forward_pre_hooks",
            "_forward_hooks_with_kwargs",
            "_forward_pre_hooks_with_kwargs",
            "_forward_hooks_always_called",
            "_backward_hooks",
            "_backward_pre_hooks",
            "_state_dict_hooks",
            "_load_state_dict_pre_hooks",
        ):
            if hasattr(module, hooks):
                setattr(skel, hooks, type(getattr(module, hooks))())
        return skel

    return clone(model)


def _meta_like(p: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(torch.empty(p.shape, dtype=p.dtype, device="meta"), requires_grad=p.requires_grad)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    # CPU QR (orthogonal schemes) rounds differently with the thread count, which ranks need not share.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
