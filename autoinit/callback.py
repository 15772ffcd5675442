"""The Lightning callback: ``Trainer(callbacks=[AutoInit()])`` initializes the model before a fresh fit.

Where it hooks (Lightning 2.x, ``Trainer._run``): callback ``setup`` → ``configure_model`` → checkpoint
restore (single device and DDP) → ``strategy.setup`` (DDP's constructor broadcasts rank 0's parameters,
optimizers are built) → ``on_fit_start`` → training. AutoInit works in ``on_fit_start``:

- after ``configure_model``, so layers built there are covered;
- after the restore, so it can tell a resumed fit (``trainer.ckpt_path`` set, or its own ``initialized``
  flag restored from the checkpoint) and then leaves the restored weights alone;
- after the DDP broadcast, so it re-establishes identity itself: rank 0 chooses the seed and broadcasts
  it, every rank initializes with it, then rank 0's parameters are broadcast to all ranks (a data-dependent
  scheme sees a different batch on each rank).

Parameters are changed in place, so the optimizers built in ``strategy.setup`` keep pointing at them.

Sharded models (``ModelParallelStrategy``: FSDP2 / tensor parallel, DTensor parameters) are initialized at
the same point, after ``configure_model`` sharded them and the strategy materialized any meta-device
parameters, through :class:`autoinit.sharded.ShardedWriter`: every rank traces the same batch (rank 0's,
broadcast), plans on global shapes and keeps its own shard, so no parameter broadcast follows.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import yaml
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy
from lightning.pytorch.utilities import rank_zero_info

from autoinit._compat import train_dataloader_of
from autoinit.data import NoModelInput, default_batch_to_input, load_callable, model_input, next_batch, replayable
from autoinit.errors import AutoInitError, one_line
from autoinit.initialize import check_gain, init_model
from autoinit.report import InitReport
from autoinit.schemes.registry import check_options, get_scheme
from autoinit.sharded import ShardedDraw, ShardedWriter, as_sharded_draw, check_scheme, has_sharded_parameters

__all__ = ["AutoInit", "default_batch_to_input"]

# Strategies whose sharded parameters are not DTensors, with why and what to use instead.
_REFUSED = (
    (
        DeepSpeedStrategy,
        "DeepSpeed ZeRO partitions parameters into flat buffers of its own, outside torch's DTensor",
    ),
    (
        FSDPStrategy,
        "FSDP (v1) flattens each wrapped module's parameters into one sharded FlatParameter, so the layers' "
        "shapes are gone",
    ),
)

# Notes (one line each, rank 0): Python's last-resort handler prints them when logging is not configured.
log = logging.getLogger("autoinit")


class _NoSample(Exception):
    """No usable sample input; the message says why."""


class AutoInit(pl.Callback):
    """Initialize the LightningModule once, before the first training step of a fresh fit.

    Args:
        scheme, gain, seed, include, exclude, **options: as :func:`autoinit.init_model`.
            ``seed=None`` takes ``torch.initial_seed()`` on rank 0 (set by ``seed_everything``).
        options: the same options as a dict, for LightningCLI configs.
        batch_to_input: a function (or its dotted import path, as LightningCLI configs give it) from a
            training batch to the model's input, used when the module has no ``example_input_array``.
            Default: a tensor batch is the input, a tuple's first element, a dict's entries that
            ``forward`` takes as keyword arguments.
        verbose: log the report table on rank 0 (repeated blocks merged: :meth:`InitReport.compact`;
            ``callback.report`` holds every row).
        sharded_draw: for DTensor parameters (``ModelParallelStrategy``): ``"full"`` draws each
            parameter's full tensor on every rank and keeps the local shard (bit-equal to one process;
            peak extra memory one parameter), ``"local"`` draws only the local shard (statistically
            equal; i.i.d. schemes only).
    """

    def __init__(
        self,
        scheme: str = "auto",
        gain: float = 1.0,
        seed: int | None = None,
        include: str | list[str] | None = None,
        exclude: str | list[str] | None = None,
        options: dict[str, Any] | None = None,
        batch_to_input: Callable[[Any], Any] | str | None = None,
        verbose: bool = True,
        sharded_draw: ShardedDraw | str = ShardedDraw.FULL,
        **extra_options: Any,
    ) -> None:
        super().__init__()
        info = get_scheme(scheme)  # unknown scheme: one-line error at construction, before any training
        self.options = {**(options or {}), **extra_options}
        check_options(info, self.options)
        self.scheme, self.gain, self.seed = scheme, check_gain(gain), seed
        self.include, self.exclude = include, exclude
        # A bad path fails here, at construction, before any training.
        self.batch_to_input = None if batch_to_input is None else load_callable(batch_to_input)
        self.verbose = verbose
        self.sharded_draw = as_sharded_draw(sharded_draw)
        self.initialized = False
        self.report: InitReport | None = None
        self.summary: dict[str, Any] = {}

    # ---- construction from the tuner's file ------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> AutoInit:
        """Build the callback from the ``best.yaml`` the tuner writes (keys ``scheme``, ``gain``, ``options``)."""
        path = Path(path)
        if not path.is_file():
            raise AutoInitError(f"AutoInit.from_file: no file at '{path}': run `autoinit tune` first or fix the path")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise AutoInitError(
                f"AutoInit.from_file: '{path}' is not a UTF-8 text file: pass the best.yaml written by `autoinit tune`"
            ) from None
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            where = f" (line {line + 1})" if line is not None else ""
            raise AutoInitError(f"AutoInit.from_file: '{path}' is not valid YAML{where}: fix or regenerate it") from exc
        from autoinit.tuner.records.best import Pick  # best.yaml's record: its keys are read there

        try:
            pick = Pick.from_yaml_dict(data, where=f"'{path}'")
        except AutoInitError as exc:
            raise AutoInitError(f"AutoInit.from_file: {exc}") from None
        kwargs: dict[str, Any] = {"scheme": pick.scheme, "gain": pick.gain, "options": pick.options}
        if pick.seed is not None:
            kwargs["seed"] = pick.seed
        lr_scale = pick.lr_scale
        if lr_scale is not None and lr_scale != 1.0:
            if "lr_scale" in inspect.signature(cls).parameters:
                kwargs["lr_scale"] = lr_scale
            else:
                warnings.warn(
                    f"AutoInit.from_file: '{path}' holds a tuned lr_scale={lr_scale}, which AutoInit does not apply: "
                    "multiply the optimizer's learning rate by it, or use "
                    "autoinit.tuner.report.pick.TunedAutoInit.from_file, which does",
                    UserWarning,
                    stacklevel=2,
                )
        kwargs.update(overrides)
        return cls(**kwargs)

    # ---- state saved with the checkpoint -----------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "initialized": self.initialized,
            "scheme": self.scheme,
            "gain": self.gain,
            "seed": self.seed,
            "options": dict(self.options),
            "summary": self.summary,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.initialized = bool(state_dict.get("initialized", False))
        self.summary = state_dict.get("summary", {})
        if state_dict.get("seed") is not None:
            self.seed = state_dict["seed"]

    # ---- the hook ---------------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for strategy, why in _REFUSED:
            if stage == "fit" and isinstance(trainer.strategy, strategy):
                name = type(trainer.strategy).__name__
                raise AutoInitError(
                    f"AutoInit does not run under {name} ({why}): use ModelParallelStrategy (FSDP2 "
                    "fully_shard), which AutoInit initializes sharded, or DDP, or call autoinit.init_model(...) "
                    "on the unsharded layers inside configure_model"
                )

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.initialized or trainer.ckpt_path is not None:
            if self.verbose:
                rank_zero_info("autoinit: resuming from a checkpoint — the restored weights are kept")
            self.initialized = True
            return
        seed = self.seed if self.seed is not None else torch.initial_seed() % 2**63
        seed = trainer.strategy.broadcast(seed, src=0)
        sharded = has_sharded_parameters(pl_module)
        if sharded:
            check_scheme(get_scheme(self.scheme), type(trainer.strategy).__name__)
        report = self._init(trainer, pl_module, seed, sharded)
        if not sharded:  # sharded: every rank computed its own shard of the same tensors
            self._broadcast_parameters(trainer, pl_module)
        self.initialized = True
        self.seed = seed
        self.report = report
        self.summary = {
            "scheme": self.scheme,
            "gain": self.gain,
            "seed": seed,
            "initialized": len(report.initialized),
            "kept": len(report.kept),
            "left_alone": len(report.left_alone),
            "activation_source": report.activation_source,
        }
        if trainer.is_global_zero:
            if self.verbose:
                rank_zero_info(report.compact())
            for logger in trainer.loggers:
                logger.log_hyperparams(
                    {"autoinit/scheme": self.scheme, "autoinit/gain": self.gain, "autoinit/seed": seed}
                )

    # ---- helpers ----------------------------------------------------------------------------------------
    def _init(self, trainer: pl.Trainer, pl_module: pl.LightningModule, seed: int, sharded: bool) -> InitReport:
        """init_model with a sample input when the scheme uses one; a scheme that uses it only to detect
        activations falls back to module order (with a note) when the sample does not work. Sharded: every
        rank uses rank 0's sample (or its reason for having none), so all trace the same forward pass."""
        info = get_scheme(self.scheme)
        sample = None
        if info.uses_sample:
            try:
                if sharded:
                    sample = self._rank_zero_sample(trainer, pl_module, needs_data=info.needs_data)
                else:
                    sample = self._sample_input(trainer, pl_module, needs_data=info.needs_data)
            except _NoSample as exc:
                if info.needs_data:
                    raise AutoInitError(
                        f"AutoInit: scheme '{self.scheme}' needs a batch of data and none could be had ({exc}): "
                        "set example_input_array on the LightningModule, or pass AutoInit(batch_to_input=...) "
                        "a function (or dotted path) from a training batch to forward's input"
                    ) from None
                self._note(trainer, f"activations taken from module order: {exc}")

        def run(sample_input: Any) -> InitReport:
            return init_model(
                pl_module,
                self.scheme,
                self.gain,
                sample_input=sample_input,
                seed=seed,
                include=self.include,
                exclude=self.exclude,
                writer=ShardedWriter(pl_module, draw=self.sharded_draw, seed=seed) if sharded else None,
                **self.options,
            )

        if sample is None or info.needs_data:
            return run(sample)
        try:
            return run(sample)
        except AutoInitError as exc:
            report = run(None)  # fails again if the sample was not the problem
            self._note(trainer, f"activations taken from module order: {exc}")
            return report

    def _note(self, trainer: pl.Trainer, text: str) -> None:
        if trainer.is_global_zero:
            log.warning(
                f"autoinit: {text} (set example_input_array on the LightningModule or pass "
                "AutoInit(batch_to_input=...) for traced activations)"
            )

    def _sample_input(self, trainer: pl.Trainer, pl_module: pl.LightningModule, needs_data: bool) -> Any:
        """``example_input_array`` if the module has one, else the input of the first train batch, drawn
        with every RNG saved and restored so training sees exactly the batches it would have seen. A
        one-shot loader (an IterableDataset, a generator) is drawn from only when the scheme needs data,
        with a note: its first batch may then be gone from training. Raises _NoSample."""
        example = getattr(pl_module, "example_input_array", None)
        if example is not None:
            return example
        try:
            loader = train_dataloader_of(trainer)
        except Exception as exc:
            raise _NoSample(f"the train dataloader could not be had: {one_line(exc)}") from exc
        if loader is None:
            raise _NoSample("the Trainer has no train dataloader")
        if not replayable(loader):
            if not needs_data:
                raise _NoSample(
                    "the train dataloader is a one-shot stream (an IterableDataset or an iterator), and drawing "
                    "a batch from it could take that batch away from training"
                )
            if trainer.is_global_zero:
                log.warning(
                    f"autoinit: scheme '{self.scheme}' draws its sample batch from a one-shot train dataloader "
                    "(an IterableDataset or an iterator), so training may not see that batch: set "
                    "example_input_array on the LightningModule to keep every batch for training"
                )
        try:
            batch = next_batch(loader)
        except AutoInitError as exc:
            raise _NoSample(str(exc)) from exc
        try:
            batch = trainer.strategy.batch_to_device(batch)
        except Exception as exc:
            raise _NoSample(f"moving a batch to the device failed: {one_line(exc)}") from exc
        try:
            return model_input(batch, pl_module, self.batch_to_input)
        except NoModelInput as exc:
            raise _NoSample(exc.reason) from exc
        except AutoInitError as exc:
            raise _NoSample(str(exc)) from exc

    def _rank_zero_sample(self, trainer: pl.Trainer, pl_module: pl.LightningModule, needs_data: bool) -> Any:
        """Rank 0's sample input on every rank; raises _NoSample on every rank when rank 0 has none."""
        outcome: tuple[bool, Any] = (False, "")
        if trainer.is_global_zero:
            try:
                outcome = (True, self._sample_input(trainer, pl_module, needs_data))
            except _NoSample as exc:
                outcome = (False, str(exc))
        ok, value = trainer.strategy.broadcast(outcome, src=0)
        if not ok:
            raise _NoSample(value)
        return value

    @staticmethod
    def _broadcast_parameters(trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size <= 1 or not torch.distributed.is_available() or not torch.distributed.is_initialized():
            return
        with torch.no_grad():
            for p in pl_module.parameters():
                torch.distributed.broadcast(p.data, src=0)
