"""What a scheme is: one frozen object with its math, its hooks and the options it takes.

The engine (:mod:`autoinit.initialize`) only calls these hooks; it never asks for a scheme by name.

- ``fn(tensor, ctx)`` fills one weight block in place (the ``torch.nn.init`` style).
- ``pick(ctx)`` hands a block to another scheme instead (``auto`` by activation, ``lsuv``'s orthogonal
  pre-init, ``yam_chow``'s fallback); the report shows the scheme used.
- ``model_pass(pctx)`` runs after the per-block pass with the whole model (LSUV, Yam–Chow); a scheme with
  neither ``fn`` nor ``pick`` has no per-block pass at all and its model pass does everything (``default``).
- ``check(pctx)`` refuses a model the scheme cannot initialize, before anything is written.
- ``keep(own)`` keeps a parameter as the model built it (an :class:`OwnValue`), with the reason for the
  report: ``as_built`` keeps every one, ``auto`` those whose author chose an init (:mod:`autoinit.own_init`).

A block's place in the residual structure (``ctx.residual``, a :class:`~autoinit.detect.ResidualRole`:
branch, L, m, whether it writes into the stream) and whether it is the classifier head (``ctx.head``) come
from the traced forward pass; a ``Pick`` with ``scale`` multiplies what the picked scheme drew (0: zeros).
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch

from autoinit.activations import Activation
from autoinit.detect import LayerGraph, ResidualRole
from autoinit.errors import AutoInitError
from autoinit.schemes.options import EMBEDDINGS, Option

if TYPE_CHECKING:
    from torch import nn

    from autoinit.layers import Block
    from autoinit.report import Ledger


@dataclass
class InitContext:
    """What a scheme knows about the block it initializes.

    ``gain`` is the user's multiplier g (1.0 = the textbook formula); ``act_gain`` is the gain a of the
    activation that follows the layer.
    """

    fan_in: int
    fan_out: int
    act_gain: float
    activation: Activation
    gain: float = 1.0
    generator: torch.Generator | None = None
    options: dict[str, Any] = field(default_factory=dict)
    fed_by: Activation | None = None
    layer: Any = None  # the nn.Module the block belongs to
    label: str = ""
    residual: ResidualRole | None = None  # the block's place in a residual branch (traced models only)
    head: bool = False  # the block belongs to the classifier head


SchemeFn = Callable[[torch.Tensor, InitContext], None]


@dataclass(frozen=True)
class Pick:
    """A block handed to another scheme: fill it with ``scheme``, then multiply by ``scale`` (0: zeros);
    the report shows ``label`` (``{}`` stands for the label of the scheme used) and ``note``.

    A scaled block, or one picked with ``plain=True``, is handed on as a plain layer (``ctx.residual`` and
    ``ctx.head`` cleared): a residual rule is applied once, by the outermost scheme that has one
    (``depth_scaled`` over ``auto`` gets auto's per-activation choice, not auto's residual scaling too)."""

    scheme: str
    note: str = ""
    label: str = "{}"
    scale: float = 1.0
    plain: bool = False


class DataUse(enum.Enum):
    """How a scheme uses ``sample_input``."""

    REQUIRED = "required"  # measures the network on it (LSUV, Yam–Chow)
    TRACE = "trace"  # required: a traced forward pass finds the residual branches (Fixup, SkipInit)
    OPTIONAL = "optional"  # a traced forward pass detects the activation after each layer
    NONE = "none"  # never looks at data (PyTorch's default)


class EmbeddingRule(enum.Enum):
    """What a scheme does to an embedding table."""

    SCHEME = "scheme"  # the scheme's own per-block rule, with fan_in = 1
    NORMAL = "normal"  # N(0, g²), PyTorch's rule, for schemes that say nothing about lookup tables


class PassContext:
    """What a model-level pass and a precondition check see: the model, its blocks, the sample input, the
    generators, and the report's rows to relabel or annotate — not the engine itself."""

    def __init__(
        self,
        *,
        model: nn.Module,
        blocks: dict[str, list[Block]],
        params: Mapping[str, nn.Parameter],
        layer_of: Mapping[str, nn.Module],
        sample_input: Any,
        gain: float,
        options: Mapping[str, Any],
        ledger: Ledger,
        generator_for: Callable[[torch.Tensor], torch.Generator | None],
        global_rng: Callable[[], contextlib.AbstractContextManager[None]],
        materialized: Callable[[list[str]], contextlib.AbstractContextManager[None]] | None = None,
        graph: LayerGraph | None = None,
        variance: Callable[[torch.Tensor], float] | None = None,
        rescale: Callable[[Block, float], None] | None = None,
    ) -> None:
        self.model, self.sample_input, self.gain = model, sample_input, gain
        # The traced structure: residual branches (graph.branches), the classifier head (graph.head).
        self.graph = graph if graph is not None else LayerGraph(order=[])
        self.blocks = blocks  # selected parameter name -> its blocks
        self.params = MappingProxyType(dict(params))
        self.options = MappingProxyType(dict(options))
        self._layer_of, self._ledger = layer_of, ledger
        self._generator_for, self._global_rng = generator_for, global_rng
        self._materialized = materialized
        self._variance, self._rescale = variance, rescale

    def weight_blocks(self) -> Iterator[Block]:
        for blocks in self.blocks.values():
            yield from (b for b in blocks if b.role == "weight")

    def layer_of(self, param_name: str) -> nn.Module:
        return self._layer_of[param_name]

    @property
    def left_alone(self) -> Mapping[str, str]:
        """Parameter name -> why it is not written: not selected, or kept as the model built it."""
        return MappingProxyType({**self._ledger.left_alone, **self._ledger.kept})

    def generator_for(self, tensor: torch.Tensor) -> torch.Generator | None:
        """The seeded generator for ``tensor``'s device (None: the global RNG)."""
        return self._generator_for(tensor)

    def global_rng(self) -> contextlib.AbstractContextManager[None]:
        """The global RNG seeded from ``seed``, for code that takes no generator (``reset_parameters``)."""
        return self._global_rng()

    def materialized(self, names: list[str]) -> contextlib.AbstractContextManager[None]:
        """While held, the named parameters are whole, plain tensors in their modules and blocks, and what
        is written to them is kept (on a sharded model: each rank keeps its shard of it). A model pass that
        writes parameters only inside it declares ``Scheme(shardable_pass=True)``."""
        return self._materialized(names) if self._materialized is not None else contextlib.nullcontext()

    def variance(self, activations: torch.Tensor) -> float:
        """The variance of a layer's output on the sample batch; on a sharded model that of the whole
        (global) output, the same number on every rank."""
        return self._variance(activations) if self._variance is not None else float(activations.float().var())

    def rescale(self, block: Block, factor: float) -> None:
        """Multiply an initialized weight block in place by ``factor``, also while a forward pass is using
        it (on a sharded model: every rank's shard and the gathered copy the pass computes with)."""
        if self._rescale is not None:
            self._rescale(block, factor)
        else:
            block.tensor.mul_(factor)

    def record(self, block: Block, label: str, note: str = "") -> None:
        """Add ``label`` (and ``note``) to the block's report row."""
        self._ledger.record(block.param_name, label, note)

    def relabel(self, block: Block, label: str, note: str) -> None:
        """Replace the block's report row label and note (what the per-block pass wrote)."""
        self._ledger.relabel(block.param_name, label, note)

    def annotate(self, block: Block, note: str) -> None:
        self._ledger.annotate(block.param_name, note)

    def keep(self, param_name: str, why: str) -> None:
        """Drop a parameter from the blocks: it is reported as kept as built, with ``why``."""
        del self.blocks[param_name]
        self._ledger.kept[param_name] = why


ModelPass = Callable[[PassContext], None]


class OwnValue:
    """One parameter as the model has it before the scheme writes anything: what a ``keep`` hook sees.

    ``authored()`` says why the value is its author's choice rather than PyTorch's default
    (:func:`autoinit.own_init.authored`), or None; computed once per module, and always None where the
    values cannot be read (a meta-device stand-in of a sharded parameter)."""

    def __init__(
        self,
        name: str,
        module: nn.Module,
        pname: str,
        options: Mapping[str, Any],
        authored: Callable[[], str | None],
        roles: tuple[str, ...] = (),
    ) -> None:
        self.name, self.module, self.pname = name, module, pname
        self.options = MappingProxyType(dict(options))
        self._authored = authored
        self.roles = roles  # the roles of the blocks a rule would write ("weight", "embedding", ...); () if none

    def authored(self) -> str | None:
        return self._authored()


KeepHook = Callable[[OwnValue], "str | None"]


@dataclass(frozen=True, kw_only=True)
class Scheme:
    """One registered scheme: its formula, paper and example (the docs and ``autoinit schemes`` are
    generated from these), its hooks, its options, and how it treats data and embeddings."""

    name: str
    formula: str
    paper: str = ""
    example: str = ""
    fn: SchemeFn | None = None
    pick: Callable[[InitContext], Pick] | None = None
    model_pass: ModelPass | None = None
    check: ModelPass | None = None
    keep: KeepHook | None = None
    options: tuple[Option, ...] = ()
    data: DataUse = DataUse.OPTIONAL
    embeddings: EmbeddingRule = EmbeddingRule.SCHEME
    # Every element drawn on its own from one distribution set by the fans, so a shard can be drawn alone
    # (AutoInit's sharded_draw="local"); not so for orthogonal matrices.
    iid: bool = False
    # The scheme's values depend on the gain g (False: one point per scheme is enough for a search).
    uses_gain: bool = True
    # The model pass writes parameters only inside PassContext.materialized or through PassContext.rescale,
    # and measures only through PassContext.variance, so it runs on sharded models.
    shardable_pass: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise AutoInitError(f"a scheme's name must be an identifier such as 'my_scheme', got {self.name!r}")
        if self.fn is None and self.pick is None and self.model_pass is None and self.keep is None:
            raise AutoInitError(f"scheme '{self.name}' has no fn, pick, model_pass or keep: give it at least one")
        if not isinstance(self.data, DataUse) or not isinstance(self.embeddings, EmbeddingRule):
            raise AutoInitError(f"scheme '{self.name}': data must be a DataUse and embeddings an EmbeddingRule")

    @property
    def per_block(self) -> bool:
        """Whether the engine runs a per-block pass (weights, biases, norms, embeddings, recurrent)."""
        return self.fn is not None or self.pick is not None

    def keeps(self, own: OwnValue) -> str | None:
        """Why ``own`` is kept as the model built it, or None: the scheme's ``keep`` hook; without one, a
        per-block scheme keeps an embedding table whose init the model's author chose (option
        ``embeddings='own'``, the default). Every scheme's embedding rule — N(0, g²), or its weight rule at
        fan_in = 1 — is a guess about the input's scale that a library's table (GPT-2's, BERT's N(0, 0.02²))
        already settled: redrawn, a tied head's first logits start ~50× too large, and the study then
        measures the table rather than the scheme (tiny GPT-2, 40 steps × 3 seeds: round 0's best scheme 3.99
        vs 3.58 with the own table)."""
        if self.keep is not None:
            return self.keep(own)
        if not self.per_block or "embedding" not in own.roles:
            return None
        if own.options.get(EMBEDDINGS.name, EMBEDDINGS.default) != "own":
            return None
        why = own.authored()
        return None if why is None else f"the model's own embedding kept (embeddings='scheme' redraws it): {why}"

    @property
    def needs_data(self) -> bool:
        """``sample_input`` is required: to measure the network on it, or to trace its residual structure."""
        return self.data in (DataUse.REQUIRED, DataUse.TRACE)

    @property
    def uses_sample(self) -> bool:
        return self.data is not DataUse.NONE

    @property
    def doc(self) -> str:
        """The scheme's documentation: formula, paper, example."""
        lines = [f"{self.name}: {self.formula}"]
        if self.paper:
            lines.append(f"Paper: {self.paper}")
        if self.example:
            lines.append(f"Example: {self.example}")
        return "\n".join(lines)
