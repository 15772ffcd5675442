"""Layer 2, what trials are built from: the ``tune`` settings, the :class:`TrialSource` protocol, the YAML
config, the Python spec, the proxy, the trainer keys a trial sets."""

from autoinit.tuner.common.exports import lazy_exports

_EXPORTS = {
    "RENAMED_TUNE_KEYS": "config",
    "TuneConfig": "config",
    "add_import_paths": "config",
    "PROXY_SUFFIX": "proxy",
    "check_proxy_keys": "proxy",
    "describe": "proxy",
    "proxy_source": "proxy",
    "BASELINE_SCHEME": "settings",
    "DEFAULT_BUDGET": "settings",
    "LADDER_POINTS": "settings",
    "MAX_GAIN": "settings",
    "PROXY_SECTIONS": "settings",
    "Range": "settings",
    "TuneSettings": "settings",
    "proxy_keys": "settings",
    "DROPPED_CALLBACKS": "source",
    "TrialSource": "source",
    "build_for_seed": "source",
    "describe_changes": "source",
    "flatten": "source",
    "is_dropped_callback": "source",
    "trial_trainer_kwargs": "source",
    "ORDER_CHECK_BATCHES": "spec",
    "PythonSpec": "spec",
    "SPEC_FILE": "spec",
    "plain": "spec",
    "KeyUse": "trainer_keys",
    "POPULATION_AUTOCAST": "trainer_keys",
    "STEPS": "trainer_keys",
    "TRAINER_KEYS": "trainer_keys",
    "TrainerKey": "trainer_keys",
    "measured_trainer": "trainer_keys",
    "population_accepts": "trainer_keys",
    "rule": "trainer_keys",
    "trial_values": "trainer_keys",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
