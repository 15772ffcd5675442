"""Lightning's and Optuna's known noise, silenced in one place — and nothing else, so the user's own
warnings (from a model's ``__init__``, ``forward`` or ``training_step``) still show during a tune."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

# Lightning's per-Trainer info lines ("GPU available", tips, "`Trainer.fit` stopped").
_LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")

# Messages Lightning (or the libraries under it) raises about a short, logger-less, validation-less trial:
# true of every trial, and nothing the user can act on.
_LIGHTNING_MESSAGES = (
    r".*does not have many workers.*",
    r".*The number of training batches .* is smaller than the logging interval.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
)


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence, for the duration, Lightning's info loggers and the warnings Lightning itself issues
    (attributed to a ``lightning.*`` module, of its ``PossibleUserWarning`` category, or one of its known
    messages). Warnings from any other code — the user's model included — are left alone."""
    from lightning.fabric.utilities.warnings import PossibleUserWarning

    loggers = [logging.getLogger(name) for name in _LIGHTNING_LOGGERS]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"lightning(\.|$)")
        warnings.filterwarnings("ignore", category=PossibleUserWarning)
        for message in _LIGHTNING_MESSAGES:
            warnings.filterwarnings("ignore", message=message)
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


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
    population asks its trials itself and beats for each (``autoinit.tuner.execution.loop``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*Heartbeat of storage is supposed to be used with Study\.optimize.*"
        )
        yield
