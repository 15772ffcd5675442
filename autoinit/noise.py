"""Every warning and log line autoinit silences, in one place, each with why — and nothing else, so the
user's own warnings (from a model's ``__init__``, ``forward`` or ``training_step``) still show."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

# Lightning's per-Trainer info lines ("GPU available", tips, "`Trainer.fit` stopped").
_LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")

# Lightning's CombinedLoader on newer torch: a deprecation inside Lightning, not the user's to fix.
_LEAFSPEC = r".*LeafSpec.* is deprecated"

# Messages Lightning (or the libraries under it) raises about a short, logger-less, validation-less trial:
# true of every trial, and nothing the user can act on.
_LIGHTNING_MESSAGES = (
    r".*does not have many workers.*",
    r".*The number of training batches .* is smaller than the logging interval.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
)

# What Lightning says about inspect's measuring fit (one batch, no max_epochs, the user's loader's
# workers): true of that fit by design, not of the user's training.
_MEASURING_FIT_MESSAGES = (r".*(num_workers|does not have many workers|max_epochs)",)


@contextmanager
def _ignoring(*messages: str) -> Iterator[None]:
    with warnings.catch_warnings():
        for message in messages:
            warnings.filterwarnings("ignore", message=message)
        yield


@contextmanager
def quiet_lightning(*also: str) -> Iterator[None]:
    """Silence, for the duration, Lightning's info loggers and the warnings Lightning itself issues
    (attributed to a ``lightning.*`` module, of its ``PossibleUserWarning`` category, or one of its known
    messages; ``also``: more message patterns). Warnings from any other code — the user's model included —
    are left alone."""
    from lightning.fabric.utilities.warnings import PossibleUserWarning

    loggers = [logging.getLogger(name) for name in _LIGHTNING_LOGGERS]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"lightning(\.|$)")
        warnings.filterwarnings("ignore", category=PossibleUserWarning)
        for message in (*_LIGHTNING_MESSAGES, *also):
            warnings.filterwarnings("ignore", message=message)
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


@contextmanager
def quiet_measuring_fit() -> Iterator[None]:
    """:func:`quiet_lightning`, and Lightning's warnings about ``autoinit inspect``'s one-batch fit."""
    with quiet_lightning(*_MEASURING_FIT_MESSAGES):
        yield


@contextmanager
def quiet_combined_loader() -> Iterator[None]:
    """Silence the ``LeafSpec`` deprecation that Lightning's ``CombinedLoader`` raises on newer torch while
    autoinit draws batches itself (the first batch, a population's epochs)."""
    with _ignoring(_LEAFSPEC):
        yield


@contextmanager
def quiet_vmap_fallback() -> Iterator[None]:
    """Silence vmap's "performance drop" warning: for an op without a batching rule (attention on CPU) a
    population falls back to a per-member loop, which is exact, only slower — not the user's to fix."""
    with _ignoring(".*performance drop.*"):
        yield


@contextmanager
def quiet_already_reported() -> Iterator[None]:
    """Silence Optuna's warning that a step is already reported: a screening trial reports its score at its
    last step, which the live report during training may hold already (the first value is kept)."""
    with _ignoring(".*is already reported"):
        yield


@contextmanager
def quiet_cli_args() -> Iterator[None]:
    """Silence LightningCLI's warning about its ``args`` parameter: ``autoinit fit`` hands it autoinit's own
    command line on purpose, so the warning is not the user's."""
    with _ignoring(r"LightningCLI's args parameter is intended"):
        yield


@contextmanager
def quiet_optuna_experimental() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning for the features the tuner relies on on purpose (GP sampler,
    heartbeat and stale-trial APIs)."""
    import optuna

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        yield


@contextmanager
def quiet_population_ask() -> Iterator[None]:
    """Silence Optuna's warning that a heartbeat storage's trials are meant for ``Study.optimize``: a
    population asks its trials itself and beats for each (``autoinit.tuner.owner.keep_alive``)."""
    with _ignoring(r".*Heartbeat of storage is supposed to be used with Study\.optimize.*"):
        yield


def quiet_optuna_info() -> None:
    """Optuna's log at WARNING (process-wide, as Optuna's own switch is): its per-trial INFO lines ("Trial 3
    finished with value ...", "A new study created") would interleave with the tuner's own progress."""
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
