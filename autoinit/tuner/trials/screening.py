"""Which schemes a study tries: those that can initialize the model at all, less those the pre-screen
finds hopeless from one forward and backward pass (see :mod:`autoinit.inspection`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.seed import isolate_rng

from autoinit.errors import AutoInitError, one_line
from autoinit.tuner.common.threads import small_step_threads
from autoinit.tuner.records.record import TrialStatus
from autoinit.tuner.sources.settings import BASELINE_SCHEME
from autoinit.tuner.sources.source import TrialSource

if TYPE_CHECKING:
    from autoinit.inspection import SignalStats


_FIX_INPUT = (
    "set tune.batch_to_input to the dotted path of a function from a training batch to forward's input "
    "(e.g. mypkg.data.to_input), or set example_input_array on the LightningModule"
)


def sample_input(config: TrialSource, model: Any, batch: Any) -> Any:
    """What a scheme traces: the model's ``example_input_array``, else the input inside ``batch``
    (``tune.batch_to_input``, or the default rule); a batch with no usable input is one line naming both
    fixes."""
    from autoinit import data

    example = getattr(model, "example_input_array", None)
    if example is not None:
        return example
    try:
        return data.model_input(batch, model, config.batch_to_input)
    except data.NoModelInput as exc:
        raise AutoInitError(f"{exc.reason}: {_FIX_INPUT}") from None


def applicable_schemes(config: TrialSource, log: Callable[[str], None]) -> tuple[list[str], int]:
    """The configured schemes that can initialize this model; with ``schemes: all`` the others are
    skipped with a note, a scheme named explicitly that cannot apply is an error, and so is a baseline
    (``as_built``) that cannot run or that is all there is. Also how many parameters
    hold an init of the model's own (:func:`autoinit.own_init.authored_parameters`; 0: PyTorch's default)."""
    from autoinit import data
    from autoinit.initialize import init_model
    from autoinit.own_init import authored_parameters

    s = config.settings
    explicit = s.schemes != "all"
    keep = []
    with isolate_rng():  # building and initializing a probe model must not move the caller's RNG
        model, datamodule = config.build()
        # prepare_data, setup, the first batch: as Lightning gets it (a model's own loader included); the
        # batch is drawn even with an example_input_array, so empty data is named here, before any trial
        batch = data.first_batch(model, datamodule)
        sample = sample_input(config, model, batch)
        authored = len(authored_parameters(model))
        params = dict(model.named_parameters())
        with small_step_threads(next(iter(params.values()), torch.empty(0)).device, params, batch):
            for scheme in s.scheme_names():
                try:
                    init_model(model, scheme, sample_input=sample, seed=0)
                    keep.append(scheme)
                except AutoInitError as exc:
                    # the baseline (first) writes nothing: what stops it — a forward that rejects the data's
                    # input, say — stops every scheme and every trial, so the study cannot start
                    if scheme == BASELINE_SCHEME:
                        raise AutoInitError(f"the model's own init ({scheme}) cannot run: {exc}") from None
                    if explicit:
                        raise AutoInitError(f"tune.schemes: '{scheme}' cannot initialize this model: {exc}") from None
                    log(f"skipping {scheme}: {exc}")
    if keep == [BASELINE_SCHEME]:  # nothing to measure against it: a study of one point has no answer
        raise AutoInitError(
            f"no scheme beside the model's own init ({BASELINE_SCHEME}) can initialize this model "
            f"(tune.schemes: {s.schemes}): name at least one other"
        )
    return keep, authored


def check_training(config: TrialSource) -> None:
    """One optimizer step of the trial path with the model's own init, before any study exists: a mistake
    every trial would make — a ``training_step`` that returns no loss, a ``tune.metric`` it does not log,
    data that yields no batch — is one line now (AutoInitError), not a failed trial each. An exception in
    the user's own code is left to the trials, which record it per point."""
    import copy
    import dataclasses

    from autoinit.tuner.trials.ddp import trial_devices
    from autoinit.tuner.trials.trial import run_trial

    # a multi-device trial's ranks are separate processes: the probe step runs on one device here
    single = {"devices": 1, "strategy": "auto"} if trial_devices(config) > 1 else None
    probe = copy.copy(config)  # shares the built-once state (prepare_data ran) with the real config
    probe.settings = dataclasses.replace(config.settings, steps=1, seeds=1, report_every=1)
    first = _FirstBatch()
    with isolate_rng():
        try:
            result = run_trial(probe, BASELINE_SCHEME, 1.0, trainer_overrides=single, callbacks_after_init=[first])
        except AutoInitError:
            raise
        except Exception as exc:
            # the likely causes, named; any other error is left to the trials, which record it per point
            _check_trainable(first)
            if isinstance(exc, IndexError) and re.match(r"Target -?\d+ is out of bounds", str(exc)):
                raise AutoInitError(
                    f"the labels of {first.data} are out of range for the model's outputs ({one_line(exc)}): "
                    "make the model's number of classes match the data's"
                ) from None
            return
    if result.status == TrialStatus.DIVERGED and first.nonfinite:
        raise AutoInitError(
            f"the first training batch of {first.data} holds NaN or inf values ({first.nonfinite}): every trial "
            "would diverge at its first step: clean the data (or drop those samples)"
        )


class _FirstBatch(pl.Callback):
    """What the probe step saw: the model's parameters and whether its first batch holds non-finite values."""

    def __init__(self) -> None:
        self.model: pl.LightningModule | None = None
        self.data = "the data"
        self.nonfinite = ""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.model = pl_module
        if trainer.datamodule is not None:
            self.data = type(trainer.datamodule).__name__

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        bad = [
            f"{int((~torch.isfinite(t)).sum())} of {t.numel()} values in a {tuple(t.shape)} tensor"
            for t in _tensors(batch)
            if t.is_floating_point() and not bool(torch.isfinite(t).all())
        ]
        self.nonfinite = "; ".join(bad)


def _tensors(batch: Any) -> list[torch.Tensor]:
    if isinstance(batch, torch.Tensor):
        return [batch]
    if isinstance(batch, Mapping):
        return [t for v in batch.values() for t in _tensors(v)]
    if isinstance(batch, (list, tuple)):
        return [t for v in batch for t in _tensors(v)]
    return []


def _check_trainable(first: _FirstBatch) -> None:
    """A model with no parameter, or with every parameter frozen, cannot be trained: no init can be compared."""
    if first.model is None:
        return
    params = list(first.model.parameters())
    name = type(first.model).__name__
    if not params:
        raise AutoInitError(f"{name} has no parameters: there is nothing to initialize or train")
    if not any(p.requires_grad for p in params):
        raise AutoInitError(
            f"every parameter of {name} is frozen (requires_grad=False): nothing trains, so no init can be "
            "compared: unfreeze the layers to tune"
        )


class _Screen:
    """What every pre-screen pass of one config shares, built once per process: a pristine copy of the
    model as built under the data seed, its first batch, the input a scheme traces, and the RNG state right
    after (so each pass starts where a freshly built model's pass did); and each (scheme, gain)'s stats."""

    def __init__(self, config: TrialSource) -> None:
        import copy

        import lightning.pytorch as pl

        from autoinit import data

        self.data_seed = config.settings.data_seed
        self.stats: dict[tuple[str, float], SignalStats | None] = {}
        self.pristine: Any = None
        with isolate_rng():
            pl.seed_everything(self.data_seed, verbose=False)
            try:
                model, datamodule = config.build()
                self.batch = data.first_batch(model, datamodule)
                self.model_input = sample_input(config, model, self.batch)
                self.rng = _rng_state()
                self.pristine = copy.deepcopy(model)
            except Exception:  # each pass then fails as a fresh build would: the trial reports it in full
                self.pristine = None

    def measure(self, scheme: str, gain: float) -> SignalStats | None:
        key = (scheme, float(gain))
        if key not in self.stats:
            self.stats[key] = self._measure(scheme, float(gain))
        return self.stats[key]

    def _measure(self, scheme: str, gain: float) -> SignalStats | None:
        import copy

        import lightning.pytorch as pl

        from autoinit.inspection import measure

        if self.pristine is None:
            return None
        with isolate_rng():
            pl.seed_everything(self.data_seed, verbose=False)
            _set_rng_state(self.rng)
            try:
                # copies: a training_step or a scheme that changes its batch in place spoils no later pass
                model, batch, model_input = copy.deepcopy((self.pristine, self.batch, self.model_input))
                return measure(model, batch, model_input, scheme, gain, seed=0, jacobian_samples=0)
            except Exception:
                return None


# One _Screen per live config object (keyed by id, dropped when the config is collected).
_SCREENS: dict[int, _Screen] = {}


def _screen(config: TrialSource) -> _Screen:
    import weakref

    key = id(config)
    screen = _SCREENS.get(key)
    if screen is None or screen.data_seed != config.settings.data_seed:
        screen = _Screen(config)
        try:
            weakref.finalize(config, _SCREENS.pop, key, None)
        except TypeError:  # an object that takes no weak reference: build per call, as before
            return screen
        _SCREENS[key] = screen
    return screen


def _rng_state() -> tuple[Any, ...]:
    import random

    import numpy as np
    import torch

    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    return random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda


def _set_rng_state(state: tuple[Any, ...]) -> None:
    import random

    import numpy as np
    import torch

    py, np_state, cpu, cuda = state
    random.setstate(py)
    np.random.set_state(np_state)
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


def prescreen(config: TrialSource, scheme: str, gain: float) -> SignalStats | None:
    """One forward/backward pass of a fresh model under (scheme, gain); None when the pass itself fails —
    then the trial runs and reports the error in full. The model and its data are built once per process
    and copied per pass, and each (scheme, gain) is measured once."""
    return _screen(config).measure(scheme, gain)


def prescreen_schemes(config: TrialSource, schemes: list[str], log: Callable[[str], None]) -> list[str]:
    """Drop the schemes that are hopeless at their textbook gain (the baseline always stays)."""
    gain = config.settings.anchor_gain()
    keep = []
    for scheme in schemes:
        stats = prescreen(config, scheme, gain)
        if scheme != BASELINE_SCHEME and stats is not None and stats.hopeless:
            log(
                f"pre-screen: {scheme} left out — signal ×{stats.forward_ratio:.2g} forward, gradient "
                f"×{stats.backward_ratio:.2g} backward over depth"
            )
            continue
        keep.append(scheme)
    return keep


def screened_out(config: TrialSource, scheme: str, gain: float) -> str | None:
    """Why the pre-screen keeps a sampled (scheme, gain) point from training, or None to train it."""
    if not config.settings.prescreen or scheme == BASELINE_SCHEME:
        return None
    stats = prescreen(config, scheme, gain)
    if stats is None or not stats.hopeless:
        return None
    return f"forward ×{stats.forward_ratio:.2g}, backward ×{stats.backward_ratio:.2g}"


def screen_points(config: TrialSource, points: list[tuple[str, float]]) -> list[str | None]:
    """:func:`screened_out` for many (scheme, gain) points, in order (a search screening a whole ladder
    before its first round): one model build for all of them, one pass per distinct point."""
    return [screened_out(config, scheme, gain) for scheme, gain in points]
