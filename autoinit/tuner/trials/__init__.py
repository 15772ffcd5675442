"""Layer 6, training one point: the sequential and DDP trial runners, the Optuna objective, the
screening of applicable schemes, trial loggers."""

from autoinit.tuner.common.exports import lazy_exports

_EXPORTS = {
    "main": "ddp",
    "run_ddp_trial": "ddp",
    "trial_devices": "ddp",
    "configured_loggers": "loggers",
    "register_trial_logger": "loggers",
    "trial_logger": "loggers",
    "config_at": "objective",
    "make_objective": "objective",
    "objective_parts": "objective",
    "applicable_schemes": "screening",
    "check_training": "screening",
    "prescreen": "screening",
    "prescreen_schemes": "screening",
    "sample_input": "screening",
    "screen_points": "screening",
    "screened_out": "screening",
    "LearningRateScale": "trial",
    "LossCurve": "trial",
    "MetricNotLogged": "trial",
    "SmallStepThreads": "trial",
    "TrialResult": "trial",
    "freeze_startup_objects": "trial",
    "record_training_step": "trial",
    "release_memory": "trial",
    "run_trial": "trial",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
