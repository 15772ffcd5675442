"""One trial: build the config's model and data, initialize through ``AutoInit``, train ``steps`` steps
per seed, and record the per-step loss."""

from __future__ import annotations

import gc
import math
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import torch

from autoinit.callback import AutoInit
from autoinit.errors import AutoInitError, one_line
from autoinit.tuner.common.noise import quiet_lightning
from autoinit.tuner.common.threads import one_thread_for
from autoinit.tuner.records.record import TrialStatus
from autoinit.tuner.sources.source import TrialSource, build_for_seed
from autoinit.tuner.sources.trainer_keys import trial_values

if TYPE_CHECKING:
    import optuna

# report(step, value) -> True when the pruner says stop
Reporter = Callable[[int, float], bool]


def pruner_reporter(trial: optuna.Trial) -> Reporter:
    """The :data:`Reporter` of an Optuna trial: each value goes to the study's pruner, which answers."""

    def report(step: int, value: float) -> bool:
        trial.report(value, step)
        return trial.should_prune()

    return report


class MetricNotLogged(AutoInitError, KeyError):
    """``tune.metric`` names a value ``training_step`` does not log (a KeyError, as a missing key is)."""

    __str__ = BaseException.__str__  # KeyError's own would quote the message


class LossCurve(pl.Callback):
    """Records the training loss of every optimizer step; stops at the first non-finite value (divergence)
    or when the pruner says so. Under DDP the loss is averaged over ranks, so every rank records the same
    curve.

    A step's value is the per-sample loss: the mean over the step's micro-batches of the loss
    ``training_step`` returned (Lightning divides the loss it hands to callbacks by
    ``accumulate_grad_batches``; :func:`record_training_step` keeps the value the user returned), or of
    the logged ``metric``. Values are indexed by optimizer step (``trainer.global_step``), so a trial with
    ``accumulate_grad_batches: 2`` has as many points as one without, and seed ``k`` reports to the pruner
    at steps ``offset + 1 …``, its own range."""

    def __init__(
        self, metric: str | None, offset: int, every: int, report: Reporter | None, history: list[float]
    ) -> None:
        self.metric, self.offset, self.every, self.report = metric, offset, every, report
        self.history = history  # earlier seeds' values, for the running mean the pruner sees
        self.values: list[float] = []
        self.diverged = False
        self.pruned = False
        self.returned: Any = None  # the loss training_step returned for the current micro-batch
        self._micro: list[torch.Tensor] = []
        self._steps_done = 0

    def _micro_loss(self, trainer: pl.Trainer) -> torch.Tensor:
        if self.metric is None:
            loss = self.returned
        else:
            loss = trainer.callback_metrics.get(self.metric)
            if loss is None:
                raise MetricNotLogged(
                    f"metric '{self.metric}' was not logged in training_step: log it with "
                    f"self.log('{self.metric}', value, on_step=True) or leave tune.metric unset"
                )
        return torch.as_tensor(loss).detach().float().mean()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = self._micro_loss(trainer)
        if trainer.world_size > 1:
            loss = trainer.strategy.reduce(loss, reduce_op="mean")
        self._micro.append(loss)
        if not math.isfinite(float(loss)):
            self.values.append(float(loss))
            self.diverged = True
            trainer.should_stop = True
            return
        if trainer.global_step == self._steps_done:
            return  # accumulating: no optimizer step yet
        self._steps_done = trainer.global_step
        value = float(torch.stack(self._micro).mean())
        self._micro = []
        self.values.append(value)
        step = self.offset + len(self.values)
        if self.report is not None and step % self.every == 0 and trainer.is_global_zero:
            seen = self.history + self.values
            if self.report(step, sum(seen) / len(seen)):
                self.pruned = True
        if trainer.world_size > 1 and step % self.every == 0:
            # Only rank 0 talks to Optuna; every rank must stop together.
            self.pruned = bool(trainer.strategy.broadcast(self.pruned, src=0))
        if self.pruned:
            trainer.should_stop = True


def record_training_step(model: pl.LightningModule, curve: LossCurve) -> None:
    """Shadow ``model.training_step`` (this instance only) to hand ``curve`` the loss it returns, and to
    turn a return value the tuner cannot score (None, a dict without "loss") into one line naming the fix
    instead of Lightning's skipped step or a ``KeyError: 'loss'`` later."""
    original = model.training_step

    def training_step(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        loss = out.get("loss") if isinstance(out, Mapping) else out
        if loss is None and (model.automatic_optimization or curve.metric is None):
            got = "None" if out is None else f"a dict without 'loss' (keys: {', '.join(map(str, out))})"
            raise AutoInitError(
                f"{type(model).__name__}.training_step returned {got}: it must return the loss (or a dict with a "
                "'loss' key) — the tuner scores the loss of every step"
                + ("" if model.automatic_optimization else ", or log it with self.log and set tune.metric")
            )
        curve.returned = loss
        return out

    object.__setattr__(model, "training_step", training_step)


class LearningRateScale(pl.Callback):
    """Multiplies every optimizer's learning rate (and its schedulers' base rates) by ``scale`` before
    the first step."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for opt in trainer.optimizers:
            for group in opt.param_groups:
                group["lr"] *= self.scale
                if "initial_lr" in group:
                    group["initial_lr"] *= self.scale
        for config in trainer.lr_scheduler_configs:
            sched = config.scheduler
            if hasattr(sched, "base_lrs"):
                sched.base_lrs = [lr * self.scale for lr in sched.base_lrs]


class SmallStepThreads(pl.Callback):
    """Trains a small step on one CPU thread, as a population does (:mod:`autoinit.tuner.common.threads`): decided
    on the first batch, undone by :meth:`restore`."""

    def __init__(self) -> None:
        self.threads: int | None = None

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.threads is None:
            self.threads = torch.get_num_threads()
            if one_thread_for(pl_module.device, dict(pl_module.named_parameters()), batch):
                torch.set_num_threads(1)

    def restore(self) -> None:
        if self.threads is not None:
            torch.set_num_threads(self.threads)
            self.threads = None


@dataclass(kw_only=True)
class TrialResult:
    """What training one point gave: a loss curve per seed, how it ended, and how long it took."""

    curves: list[list[float]] = field(default_factory=list)
    status: TrialStatus = TrialStatus.COMPLETE  # COMPLETE, DIVERGED or PRUNED
    seconds: float = 0.0


def run_trial(
    config: TrialSource,
    scheme: str,
    gain: float,
    *,
    lr_scale: float = 1.0,
    report: Reporter | None = None,
    trainer_overrides: dict[str, Any] | None = None,
    callbacks_after_init: list[pl.Callback] | None = None,
    **options: Any,
) -> TrialResult:
    """Train every seed of one (scheme, gain, lr_scale) point and return the loss curves.

    ``options`` go to the scheme (``bias_std=...``); ``callbacks_after_init`` run after ``AutoInit``.
    Seed ``k`` builds the model under seed ``k`` (:func:`~autoinit.tuner.sources.source.build_for_seed`: the model's
    own init varies by seed) and initializes it with seed ``k``; the data order is the same for every trial
    and seed (``tune.data_seed``).
    """
    s = config.settings
    result = TrialResult()
    start = time.perf_counter()
    history: list[float] = []
    for seed in range(s.seeds):
        model, datamodule = build_for_seed(config, seed)
        curve = LossCurve(s.metric, seed * s.steps, s.report_every, report, history)
        record_training_step(model, curve)
        kwargs = {**config.trainer_kwargs(), **(trainer_overrides or {})}
        callbacks: list[pl.Callback] = [
            *kwargs["callbacks"],
            AutoInit(scheme, gain, seed=seed, verbose=False, options=options, batch_to_input=config.batch_to_input),
            *(callbacks_after_init or []),
            curve,
        ]
        if lr_scale != 1.0:
            callbacks.append(LearningRateScale(lr_scale))
        threads = SmallStepThreads()
        callbacks.append(threads)  # after AutoInit: a data-dependent init runs as in a population
        kwargs.update(trial_values(s.steps), callbacks=callbacks)
        with quiet_lightning():
            try:
                trainer = pl.Trainer(**kwargs)
            except Exception as exc:  # Lightning's check of the config's trainer section
                raise AutoInitError(
                    f"the config's trainer section cannot build a Trainer: {one_line(exc)}: fix it there"
                ) from None
            try:
                trainer.fit(model, datamodule=datamodule)
            except SystemExit:
                # Lightning answers Ctrl-C with sys.exit(1) after ignoring SIGINT: give the study a
                # KeyboardInterrupt so it stops cleanly, and make Ctrl-C work again.
                if trainer.interrupted:
                    signal.signal(signal.SIGINT, signal.default_int_handler)
                    raise KeyboardInterrupt from None
                raise
            finally:
                threads.restore()
                del model, datamodule
        del trainer
        if not curve.values:
            raise AutoInitError(
                "the training data yields no batch (an empty dataset, or fewer samples than batch_size with "
                "drop_last=True, or limit_train_batches=0): give it at least one full batch"
            )
        if not (curve.diverged or curve.pruned) and len(curve.values) < s.steps:
            raise AutoInitError(
                f"training stopped after {len(curve.values)} of tune.steps={s.steps} steps (a callback or hook "
                "set trainer.should_stop, or on_train_batch_start returned -1): a trial's score needs every step"
            )
        result.curves.append(curve.values)
        history.extend(curve.values)
        if curve.diverged or curve.pruned:
            result.status = TrialStatus.DIVERGED if curve.diverged else TrialStatus.PRUNED
            break
    release_memory()
    result.seconds = time.perf_counter() - start
    return result


def release_memory() -> None:
    """Free what a trial left behind, so a long study does not grow until it runs out of (GPU) memory.

    Cheap because :func:`freeze_startup_objects` moved everything alive before the first trial out of the
    collector's reach: a full collection after a trial scans only the trial's own objects.
    """
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def freeze_startup_objects(*, collect: bool = True) -> None:
    """Call once before the trials: a full gc.collect over Lightning's, Optuna's and jsonargparse's
    objects costs about 0.3 s, more than a short trial's whole fixed cost. ``collect=False`` when no trial
    follows (a resume with nothing to run): the exit's collection is skipped either way, and the startup
    garbage left frozen is freed with the process."""
    if collect:
        gc.collect()
    gc.freeze()
