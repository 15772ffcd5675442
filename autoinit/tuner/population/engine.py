"""The population trial engine: K candidate inits of one config, trained together as one stacked model.

Every member is a (scheme, gain, lr_scale, seed) of the same config. Members are built and initialized
one by one as a sequential trial does it (``seed_everything(data_seed)``, the config's model, the scheme
with the member's seed and the first training batch as sample), then their parameters and buffers are
stacked along a new leading dimension and trained together for ``steps`` optimizer steps:

- the user's ``training_step`` runs once per step under ``torch.vmap`` (``randomness="different"``) with
  each member's slice of the stacked tensors substituted by ``torch.func.functional_call``;
- one backward of the summed loss gives every member its own gradients (no op mixes members);
- the optimizer and schedulers are the user's own, built by ``configure_optimizers`` over the stacked
  tensors (the same classes, hyperparameters and param groups); only element-wise optimizers qualify;
- every member sees the batches of its sequential trial (all trials share the data seed, so one data
  stream serves the whole population), ``self.log`` values are recorded per member, a member whose loss
  turns NaN/inf is dropped from the stack, and ``watch`` may stop (drop) members every ``report_every``
  steps.

:func:`unsupported` says why a config cannot train as a population (then the tuner runs sequential
trials); :func:`train_population` trains one population. Trials (seeds, pruner reports) are built on it by
:mod:`autoinit.tuner.population.trials`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import CombinedLoader
from lightning.pytorch.utilities.model_helpers import is_overridden
from lightning.pytorch.utilities.seed import isolate_rng

from autoinit import _compat, data
from autoinit.errors import AutoInitError, one_line
from autoinit.initialize import ParamWriter, init_model
from autoinit.noise import quiet_combined_loader, quiet_vmap_fallback
from autoinit.schemes.registry import get_scheme
from autoinit.tuner.common.noise import quiet_lightning
from autoinit.tuner.common.threads import one_thread_for, small_step_threads
from autoinit.tuner.population.functional import (
    ELEMENTWISE_OPTIMIZERS,
    MULTIPLICATIVE_SCHEDULERS,
    Stack,
    clip_grad_norm,
    clip_grad_value,
    keep_members,
    scale_updates,
)
from autoinit.tuner.sources.config import TuneConfig
from autoinit.tuner.sources.source import build_for_seed
from autoinit.tuner.sources.trainer_keys import POPULATION_AUTOCAST, population_accepts

# (step, {member index: its loss curve so far}) -> the members to stop now
Watch = Callable[[int, Mapping[int, list[float]]], Collection[int]]

# LightningModule hooks a sequential trial would call during training; a population does not.
_TRAINING_HOOKS = (
    "on_fit_start",
    "on_train_start",
    "on_train_epoch_start",
    "on_train_epoch_end",
    "on_train_batch_start",
    "on_train_batch_end",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "optimizer_step",
    "optimizer_zero_grad",
    "backward",
    "configure_gradient_clipping",
    "lr_scheduler_step",
    "configure_callbacks",
)


class PopulationUnsupported(Exception):
    """The config cannot train as a population; the message (one line) says why."""


class PopulationFailed(Exception):
    """Training a population raised an error that cannot be pinned on one member; its trials must run
    sequentially instead. ``out_of_memory`` tells a smaller population may succeed."""

    def __init__(self, message: str, *, out_of_memory: bool = False) -> None:
        super().__init__(message)
        self.out_of_memory = out_of_memory


@dataclass(frozen=True, kw_only=True)
class Member:
    """One candidate of a population: an init of the config's model and its learning-rate scale."""

    scheme: str
    gain: float
    lr_scale: float = 1.0
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class MemberOutcome:
    """What one member's training gave: its loss curve (one value per optimizer step) and how it ended.
    ``error``: its initialization failed (the message); it was not trained."""

    curve: list[float] = field(default_factory=list)
    diverged: bool = False
    stopped: bool = False
    error: str | None = None


class _TrainerView:
    """What ``training_step`` (or ``configure_optimizers``) may read from ``self.trainer`` in a population;
    anything else is an AttributeError, which the probe turns into a fallback naming it."""

    def __init__(self, *, steps: int, accumulate: int, precision: Any, datamodule: Any) -> None:
        self.global_step = 0
        self.current_epoch = 0
        self.max_steps = steps
        self.max_epochs = -1
        self.estimated_stepping_batches = steps
        self.accumulate_grad_batches = accumulate
        self.precision = str(precision or "32-true")
        self.datamodule = datamodule
        self.world_size = self.num_devices = self.num_nodes = 1
        self.global_rank = self.local_rank = self.node_rank = 0
        self.is_global_zero = self.training = True
        self.sanity_checking = self.fast_dev_run = False


class _TrainingStep(torch.nn.Module):
    """``module.training_step`` as a module's forward, so ``functional_call`` can run it."""

    def __init__(self, module: pl.LightningModule) -> None:
        super().__init__()
        self.m = module

    def forward(self, batch: Any, batch_idx: int) -> Any:
        return self.m.training_step(batch, batch_idx)


def device_of(config: TuneConfig) -> torch.device:
    """The device a single-device sequential trial of ``config`` trains on."""
    kwargs = config.trainer_kwargs()
    accel, devices = kwargs.get("accelerator", "auto"), kwargs.get("devices", "auto")
    if accel in ("gpu", "cuda") or (accel in ("auto", None) and torch.cuda.is_available()):
        index = devices[0] if isinstance(devices, list) else 0
        return torch.device("cuda", index)
    return torch.device("cpu")


def static_reason(config: TuneConfig) -> str | None:
    """Why the config's trainer section or tune settings rule a population out, without building anything."""
    if config.settings.devices_per_trial > 1:
        return "trials are DDP runs (tune.devices_per_trial > 1)"
    for key, value in config.trainer_kwargs().items():
        if not population_accepts(key, value):
            if key == "callbacks":
                names = ", ".join(type(c).__name__ for c in value)
                return f"trainer callbacks ({names}) must see the module during training"
            return f"trainer.{key}={value!r} is not supported by population training"
    if device_of(config).type == "cuda" and not torch.cuda.is_available():
        return "the trainer asks for a GPU and none is available"
    return None


def _model_reason(
    model: pl.LightningModule, settings_lr_scaled: bool, optimizers: list, schedulers: list
) -> str | None:
    if not model.automatic_optimization:
        return "the model uses manual optimization"
    hooks = [h for h in _TRAINING_HOOKS if is_overridden(h, model)]
    if hooks:
        return f"the model overrides {', '.join(hooks)}, which a population does not call"
    if len(optimizers) != 1:
        return f"configure_optimizers returns {len(optimizers)} optimizers (a population trains with one)"
    opt = optimizers[0]
    if type(opt) not in ELEMENTWISE_OPTIMIZERS:
        return (
            f"the optimizer {type(opt).__name__} is not element-wise (supported: "
            + ", ".join(o.__name__ for o in ELEMENTWISE_OPTIMIZERS)
            + ")"
        )
    for cfg in schedulers:
        if cfg.reduce_on_plateau:
            return "a ReduceLROnPlateau scheduler needs a monitored metric"
        if settings_lr_scaled and type(cfg.scheduler) not in MULTIPLICATIVE_SCHEDULERS:
            return f"tune.lr_scale with the scheduler {type(cfg.scheduler).__name__} (not a multiplicative one)"
    return None


def _run_prepared(config: TuneConfig, seed: int) -> tuple[pl.LightningModule, Any, Any]:
    """The config's model and data as a sequential trial of init seed ``seed`` has them at ``on_fit_start``:
    built under that seed, data hooks run, ``configure_model`` called, on the trial's device; and the
    train loader."""
    model, datamodule = build_for_seed(config, seed)
    loader = data.train_loader(model, datamodule)  # prepare_data, setup("fit"), as Trainer.fit
    if is_overridden("configure_model", model):
        model.configure_model()
    model.to(device_of(config))
    return model, datamodule, loader


def _hook_host(hook: str, model: pl.LightningModule, datamodule: Any) -> Any:
    # Lightning's rule: the datamodule's batch hook when it defines one, else the module's.
    if datamodule is not None and is_overridden(hook, datamodule):
        return datamodule
    return model


def _to_device(batch: Any, model: pl.LightningModule, datamodule: Any, device: torch.device) -> Any:
    return _BatchHosts(model, datamodule, device).to_device(batch)


class _BatchHosts:
    """Lightning's three batch-transfer hooks, each from its host (looked up once, not per batch)."""

    def __init__(self, model: pl.LightningModule, datamodule: Any, device: torch.device) -> None:
        self.before = _hook_host("on_before_batch_transfer", model, datamodule).on_before_batch_transfer
        self.transfer = _hook_host("transfer_batch_to_device", model, datamodule).transfer_batch_to_device
        self.after = _hook_host("on_after_batch_transfer", model, datamodule).on_after_batch_transfer
        self.device = device

    def to_device(self, batch: Any) -> Any:
        return self.after(self.transfer(self.before(batch, 0), self.device, 0), 0)


class _TracedOnce(ParamWriter):
    """The members are builds of one model (under their own seeds): the layer graph traced for the first,
    and whether each parameter holds its author's init, serve them all (the trace is most of a small model's
    init time; the author's-init test is a property of the model's code, not of a seed's draw). The test
    reads the pristine build a working copy was made from (:meth:`copied`): a working copy reused for
    several members holds an earlier member's init, which is autoinit's, not the author's."""

    def __init__(self) -> None:
        self.graph: Any = None
        self._authored: dict[str, str | None] = {}
        self._pristine: dict[int, torch.nn.Module] = {}

    def copied(self, work: torch.nn.Module, pristine: torch.nn.Module) -> None:
        """``work`` is a copy of ``pristine``: ask the author's-init test of ``pristine``'s modules."""
        self._pristine.update((id(w), p) for w, p in zip(work.modules(), pristine.modules(), strict=True))

    def trace(self, model: torch.nn.Module, sample_input: Any) -> Any:
        if self.graph is None:
            self.graph = super().trace(model, sample_input)
        return self.graph

    def authored(self, name: str, module: torch.nn.Module, pname: str, draws: dict) -> str | None:
        if name not in self._authored:
            self._authored[name] = super().authored(name, self._pristine.get(id(module), module), pname, draws)
        return self._authored[name]


def _initialize(
    model: pl.LightningModule,
    member: Member,
    batch: Any,
    batch_to_input: Any = None,
    writer: ParamWriter | None = None,
) -> None:
    """What ``AutoInit(scheme, gain, seed=seed, batch_to_input=...)`` does at ``on_fit_start`` of a
    sequential trial."""
    info = get_scheme(member.scheme)
    sample = getattr(model, "example_input_array", None)
    if sample is None and info.uses_sample:
        try:
            sample = data.model_input(batch, model, batch_to_input)
        except Exception as exc:
            if info.needs_data:
                raise AutoInitError(f"AutoInit: scheme '{member.scheme}' needs a batch of data: {exc}") from None
            sample = None
    kwargs = dict(member.options)
    try:
        init_model(model, member.scheme, member.gain, sample_input=sample, seed=member.seed, writer=writer, **kwargs)
    except AutoInitError:
        if sample is None or info.needs_data:
            raise
        init_model(model, member.scheme, member.gain, sample_input=None, seed=member.seed, **kwargs)


def _rng_state() -> Callable[[], None]:
    """A function that puts every RNG (torch CPU and CUDA, NumPy, Python) back to its state now."""
    import random

    import numpy as np

    cpu, py, npy = torch.get_rng_state(), random.getstate(), np.random.get_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None

    def restore() -> None:
        torch.set_rng_state(cpu)
        random.setstate(py)
        np.random.set_state(npy)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)

    return restore


def _optimizers_of(model: pl.LightningModule) -> tuple[list, list]:
    try:
        optimizers, schedulers = _compat.configure_optimizers_output(model.configure_optimizers())
    except Exception as exc:
        raise PopulationUnsupported(f"configure_optimizers failed on the stacked model: {one_line(exc)}") from exc
    return optimizers, schedulers


def _epochs(loader: Any) -> Any:
    """(batch_idx, batch, is_last) of one pass over the loader, as Lightning's fit loop iterates it."""
    with quiet_combined_loader():
        combined = loader if isinstance(loader, CombinedLoader) else CombinedLoader(loader, "max_size_cycle")
        iterator = iter(combined)
    try:
        nxt = next(iterator)
    except StopIteration:
        raise AutoInitError("the train dataloader yields no batch: give it at least one full batch") from None
    idx = 0
    while True:
        try:
            following = next(iterator)
        except StopIteration:
            following = None
        batch = nxt[0] if isinstance(nxt, tuple) and len(nxt) == 3 else nxt
        yield idx, batch, following is None
        if following is None:
            return
        nxt, idx = following, idx + 1


@dataclass(kw_only=True)
class EngineTimes:
    """Seconds one :func:`train_population` call spent, by phase (filled in when passed: the benchmark's
    breakdown). ``build``: the model and data under each distinct member seed and their working copies;
    ``init``: the members' inits, written into the stack; ``stack``: handing the stack to the model, the
    optimizer; ``steps``: the training loop (``member_steps`` member-steps) but for ``watch``, the time in
    the ``watch`` callback (the trials' pruner reports)."""

    build: float = 0.0
    init: float = 0.0
    stack: float = 0.0
    steps: float = 0.0
    watch: float = 0.0
    member_steps: int = 0


class _WorkingCopies:
    """The model as each member's trial has it before its init: built once per distinct member seed, and one
    working copy of that build reset to its values before each member's init (a deep copy of a
    LightningModule per member cost as much as a dozen of the quick start's population steps). A model
    whose parameters or buffers change name or shape in its init (lazy modules) is copied afresh."""

    def __init__(self, config: TuneConfig, carrier: pl.LightningModule, seed: int, writer: _TracedOnce) -> None:
        self.config, self.writer = config, writer
        self.built: dict[int, pl.LightningModule] = {seed: carrier}
        self.work: dict[int, pl.LightningModule] = {}

    def __call__(self, seed: int) -> pl.LightningModule:
        if seed not in self.built:
            with quiet_lightning():
                self.built[seed] = _run_prepared(self.config, seed)[0]
        pristine, work = self.built[seed], self.work.get(seed)
        if work is not None and _layout(work) == _layout(pristine):
            with torch.no_grad():
                for (_, w), (_, p) in zip(_state(work), _state(pristine), strict=True):
                    w.copy_(p)
            return work
        try:
            work = self.work[seed] = copy.deepcopy(pristine)
        except Exception as exc:
            raise PopulationUnsupported(f"the model cannot be copied: {one_line(exc)}") from exc
        self.writer.copied(work, pristine)
        return work


def _state(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [*model.named_parameters(), *model.named_buffers()]


def _layout(model: torch.nn.Module) -> list[tuple[str, Any, Any]]:
    return [(n, t.shape, t.dtype) for n, t in _state(model)]


def train_population(
    config: TuneConfig,
    members: Sequence[Member],
    *,
    watch: Watch | None = None,
    steps: int | None = None,
    times: EngineTimes | None = None,
) -> list[MemberOutcome]:
    """Train ``members`` together for ``steps`` (default ``tune.steps``) optimizer steps.

    Raises :class:`PopulationUnsupported` (the config cannot be vectorized: nothing trained) or
    :class:`PopulationFailed` (an error during training that no single member owns). A member whose
    initialization fails gets its error in its outcome and is left out. ``times``: filled in with where
    the call's time went.
    """
    s = config.settings
    steps = s.steps if steps is None else steps
    times = times if times is not None else EngineTimes()
    if (why := static_reason(config)) is not None:
        raise PopulationUnsupported(why)
    kwargs = config.trainer_kwargs()
    accumulate = int(kwargs.get("accumulate_grad_batches") or 1)
    precision = kwargs.get("precision")
    clip_val = kwargs.get("gradient_clip_val")
    clip_algo = kwargs.get("gradient_clip_algorithm") or "norm"
    device = device_of(config)
    outcomes = [MemberOutcome() for _ in members]

    clock = time.perf_counter()
    with quiet_lightning():
        carrier, datamodule, loader = _run_prepared(config, members[0].seed if members else 0)
    restore_rng = _rng_state()
    batch0 = data.next_batch(loader)
    sample_batch = _to_device(batch0, carrier, datamodule, device)
    alive: list[int] = []
    writer = _TracedOnce()
    # Each member starts from the model as built under its own init seed (its own init), as its trial would.
    copies = _WorkingCopies(config, carrier, members[0].seed if members else 0, writer)
    stack: Stack | None = None
    # A member's init runs on the threads its sequential trial trains on (one for a small step).
    one_model = dict(carrier.named_parameters())
    for i, member in enumerate(members):
        model = copies(member.seed)
        now = time.perf_counter()
        times.build += now - clock
        try:
            with isolate_rng(), small_step_threads(device, one_model, sample_batch):
                _initialize(model, member, sample_batch, config.batch_to_input, writer)
        except Exception as exc:
            outcomes[i].error = one_line(exc) if not isinstance(exc, AutoInitError) else str(exc)
        else:
            stack = stack if stack is not None else Stack(model, len(members))
            stack.put(i, model)
            alive.append(i)
        clock = time.perf_counter()
        times.init += clock - now
    del copies
    if stack is None:
        return outcomes

    params, buffers = stack.install(carrier, alive)
    del stack
    view = _TrainerView(steps=steps, accumulate=accumulate, precision=precision, datamodule=datamodule)
    _compat.attach_trainer_view(carrier, view)
    logged: dict[str, torch.Tensor] = {}

    def log(name: str, value: Any, *args: Any, **kw: Any) -> None:
        logged[name] = value if isinstance(value, torch.Tensor) else torch.as_tensor(float(value))

    def log_dict(values: Mapping[str, Any], *args: Any, **kw: Any) -> None:
        for name, value in values.items():
            log(name, value)

    carrier.log, carrier.log_dict = log, log_dict  # type: ignore[method-assign]
    restore_rng()  # configure_optimizers, then training, start from the RNG state a sequential trial has
    optimizers, schedulers = _optimizers_of(carrier)
    lr_scaled = any(m.lr_scale != 1.0 for m in members)
    if (why := _model_reason(carrier, lr_scaled, optimizers, schedulers)) is not None:
        raise PopulationUnsupported(why)
    optimizer = optimizers[0]
    step_module = _TrainingStep(carrier)
    scales = torch.tensor([members[i].lr_scale for i in alive], device=device)
    autocast_dtype = POPULATION_AUTOCAST.get(precision)

    def one_member(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], batch: Any, batch_idx: int) -> Any:
        logged.clear()
        out = torch.func.functional_call(step_module, (p, b), (batch, batch_idx), strict=True)
        loss = out["loss"] if isinstance(out, Mapping) else out
        if not isinstance(loss, torch.Tensor):
            raise PopulationUnsupported("training_step returned no loss tensor (a skipped step)")
        metric = loss if s.metric is None else logged.get(s.metric)
        if metric is None:
            raise PopulationUnsupported(f"metric '{s.metric}' was not logged in training_step")
        return loss, torch.as_tensor(metric).float()

    # built once: vmap's wrapper, the functional_call names, the trained tensors (again after members drop)
    run = torch.vmap(one_member, in_dims=(0, 0, None, None), randomness="different")
    autocast = partial(torch.autocast, device.type, dtype=autocast_dtype) if autocast_dtype is not None else nullcontext
    hosts = _BatchHosts(carrier, datamodule, device)

    def arguments() -> tuple[dict, dict, list[torch.nn.Parameter]]:
        named = {f"m.{n}": p for n, p in params.items()}, {f"m.{n}": b for n, b in buffers.items()}
        return (*named, [p for p in params.values() if p.requires_grad])

    p_args, b_args, trained = arguments()
    carrier.train()
    threads = torch.get_num_threads()
    if one_thread_for(device, params, sample_batch):  # stacked parameters: the whole population's step
        torch.set_num_threads(1)
    times.stack += time.perf_counter() - clock
    clock = time.perf_counter()
    curves: dict[int, list[float]] = {i: [] for i in alive}
    # Step values stay on the device until the next report: one host sync per report_every steps, not per
    # step. A member that diverges in between trains on (alone: nothing mixes members) and its curve ends at
    # its first non-finite value, as its sequential trial's does.
    unread: list[torch.Tensor] = []
    pending: torch.Tensor | None = None
    micro = 0
    done = 0
    try:
        with quiet_vmap_fallback():
            while done < steps:
                for batch_idx, batch, last in _epochs(loader):
                    batch = hosts.to_device(batch)
                    with autocast():
                        losses, metrics = run(p_args, b_args, batch, batch_idx)
                    (losses.float().sum() / accumulate).backward()
                    metrics = metrics.detach()
                    pending = metrics if pending is None else pending + metrics
                    micro += 1
                    if (batch_idx + 1) % accumulate != 0 and not last:
                        continue
                    if clip_val:
                        (clip_grad_norm if clip_algo == "norm" else clip_grad_value)(trained, float(clip_val))
                    before = [p.detach().clone() for p in trained] if lr_scaled else None
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    if before is not None:
                        scale_updates(trained, before, scales)
                    for cfg in schedulers:
                        if cfg.interval == "step" and (batch_idx + 1) % cfg.frequency == 0:
                            cfg.scheduler.step()
                    done += 1
                    times.member_steps += len(alive)
                    view.global_step = done
                    unread.append(pending / micro if micro > 1 else pending)
                    pending, micro = None, 0
                    if done % s.report_every != 0 and done < steps:
                        continue
                    stop = _read(unread, alive, curves, outcomes)
                    unread = []
                    if watch is not None and done % s.report_every == 0:
                        live = {i: curves[i] for i in alive if i not in stop}
                        asked = time.perf_counter()
                        told = watch(done, live)
                        times.watch += time.perf_counter() - asked
                        for i in told:
                            if i in live:
                                outcomes[i].stopped = True
                                stop.add(i)
                    if stop:
                        keep = [pos for pos, i in enumerate(alive) if i not in stop]
                        alive = [alive[pos] for pos in keep]
                        if not alive:
                            break
                        index = torch.tensor(keep, device=device)
                        keep_members(carrier, params, buffers, optimizer, index)
                        scales = scales[index]
                        p_args, b_args, trained = arguments()
                    if done >= steps:
                        break
                else:
                    view.current_epoch += 1
                    for cfg in schedulers:
                        if cfg.interval == "epoch" and view.current_epoch % cfg.frequency == 0:
                            cfg.scheduler.step()
                    continue
                break
    except PopulationUnsupported:
        raise
    except torch.OutOfMemoryError as exc:
        raise PopulationFailed(one_line(exc), out_of_memory=True) from exc
    except Exception as exc:
        oom = "out of memory" in str(exc).lower()
        raise PopulationFailed(one_line(exc), out_of_memory=oom) from exc
    finally:
        torch.set_num_threads(threads)
        times.steps += time.perf_counter() - clock - times.watch
    for i, curve in curves.items():
        outcomes[i].curve = curve
    return outcomes


def _read(
    unread: list[torch.Tensor], alive: list[int], curves: dict[int, list[float]], outcomes: list[MemberOutcome]
) -> set[int]:
    """Append the steps' values not read yet (``[alive]`` each) to the members' curves, each curve ending at
    its first non-finite value; returns the members that diverged."""
    diverged: set[int] = set()
    for row in torch.stack(unread).tolist():
        for pos, i in enumerate(alive):
            if i in diverged:
                continue
            curves[i].append(row[pos])
            if not math.isfinite(row[pos]):
                outcomes[i].diverged = True
                diverged.add(i)
    return diverged
