"""The tuner's silencers, re-exported from :mod:`autoinit.noise` (every silencing of autoinit lives there)."""

from autoinit.noise import quiet_lightning as quiet_lightning
from autoinit.noise import quiet_optuna_experimental as quiet_optuna_experimental
from autoinit.noise import quiet_population_ask as quiet_population_ask
