"""Which schemes a study tries: those that can initialize the model at all, less those the pre-screen
finds hopeless from one forward and backward pass (see :mod:`autoinit.inspection`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lightning.pytorch.utilities.seed import isolate_rng

from autoinit.errors import AutoInitError
from autoinit.tuner.source import TrialSource

if TYPE_CHECKING:
    from autoinit.inspection import SignalStats


def applicable_schemes(config: TrialSource, log: Callable[[str], None]) -> list[str]:
    """The configured schemes that can initialize this model; with ``schemes: all`` the others are
    skipped with a note, a scheme named explicitly that cannot apply is an error."""
    from autoinit import data
    from autoinit.initialize import init_model

    s = config.settings
    explicit = s.schemes != "all"
    keep = []
    with isolate_rng():  # building and initializing a probe model must not move the caller's RNG
        model, datamodule = config.build()
        sample = getattr(model, "example_input_array", None)
        if sample is None:
            # prepare_data, setup, the first batch: as Lightning gets it (a model's own loader included)
            sample = data.model_input(data.first_batch(model, datamodule), model)
        for scheme in s.scheme_names():
            try:
                init_model(model, scheme, sample_input=sample, seed=0)
                keep.append(scheme)
            except AutoInitError as exc:
                if explicit and scheme != "default":
                    raise AutoInitError(f"tune.schemes: '{scheme}' cannot initialize this model: {exc}") from None
                log(f"skipping {scheme}: {exc}")
    return keep


def prescreen(config: TrialSource, scheme: str, gain: float) -> SignalStats | None:
    """One forward/backward pass of a fresh model under (scheme, gain); None when the pass itself fails —
    then the trial runs and reports the error in full."""
    import lightning.pytorch as pl

    from autoinit.inspection import measure, sample_batch

    with isolate_rng():
        pl.seed_everything(config.settings.data_seed, verbose=False)
        try:
            model, datamodule = config.build()
            batch, model_input = sample_batch(model, datamodule)
            return measure(model, batch, model_input, scheme, gain, seed=0, jacobian_samples=0)
        except Exception:
            return None


def prescreen_schemes(config: TrialSource, schemes: list[str], log: Callable[[str], None]) -> list[str]:
    """Drop the schemes that are hopeless at their textbook gain (PyTorch's default always stays)."""
    gain = config.settings.anchor_gain()
    keep = []
    for scheme in schemes:
        stats = prescreen(config, scheme, gain)
        if scheme != "default" and stats is not None and stats.hopeless:
            log(
                f"pre-screen: {scheme} left out — signal ×{stats.forward_ratio:.2g} forward, gradient "
                f"×{stats.backward_ratio:.2g} backward over depth"
            )
            continue
        keep.append(scheme)
    return keep


def screened_out(config: TrialSource, scheme: str, gain: float) -> str | None:
    """Why the pre-screen keeps a sampled (scheme, gain) point from training, or None to train it."""
    if not config.settings.prescreen or scheme == "default":
        return None
    stats = prescreen(config, scheme, gain)
    if stats is None or not stats.hopeless:
        return None
    return f"forward ×{stats.forward_ratio:.2g}, backward ×{stats.backward_ratio:.2g}"
