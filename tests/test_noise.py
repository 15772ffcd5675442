"""Each of autoinit's silencers silences its own message and lets every other warning through."""

import logging
import warnings

import optuna
import pytest

from autoinit import noise

SILENCED = [
    (noise.quiet_combined_loader, "`isinstance(treespec, LeafSpec)` is deprecated"),
    (noise.quiet_vmap_fallback, "There is a performance drop because we have not yet implemented the batching rule"),
    (noise.quiet_already_reported, "The reported value is ignored because this `step` 4 is already reported."),
    (noise.quiet_cli_args, "LightningCLI's args parameter is intended to run from within Python"),
    (noise.quiet_population_ask, "Heartbeat of storage is supposed to be used with Study.optimize."),
    (noise.quiet_measuring_fit, "The 'train_dataloader' does not have many workers"),
    (noise.quiet_measuring_fit, "`max_epochs` was not set. Setting it to 1000 epochs."),
]


@pytest.mark.parametrize(("quiet", "message"), SILENCED)
def test_a_silencer_silences_its_message_and_nothing_else(quiet, message):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet():
            warnings.warn(message, UserWarning, stacklevel=1)
            warnings.warn("the user's own warning", UserWarning, stacklevel=1)
        warnings.warn(message, UserWarning, stacklevel=1)  # after: shown again
    assert [str(w.message) for w in seen] == ["the user's own warning", message]


def test_optuna_experimental_warnings_are_silenced_and_others_are_not():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with noise.quiet_optuna_experimental():
            warnings.warn("gp", optuna.exceptions.ExperimentalWarning, stacklevel=1)
            warnings.warn("mine", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["mine"]


def test_quiet_lightning_takes_more_messages_for_the_duration():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with noise.quiet_lightning("extra .*"):
            warnings.warn("extra noise", UserWarning, stacklevel=1)
        with noise.quiet_lightning():
            warnings.warn("extra noise", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["extra noise"]


def test_optuna_info_lines_are_off():
    optuna.logging.set_verbosity(logging.INFO)
    noise.quiet_optuna_info()
    assert optuna.logging.get_verbosity() == logging.WARNING


def test_the_tuner_reexports_its_silencers_from_the_one_noise_module():
    from autoinit.tuner.common import noise as tuner_noise

    assert tuner_noise.quiet_lightning is noise.quiet_lightning
    assert tuner_noise.quiet_population_ask is noise.quiet_population_ask
