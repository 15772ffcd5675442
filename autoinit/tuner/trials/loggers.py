"""``tune.log_trials``: each trial's loss curve, logged to the trainer's logger as a run of its own
(``tune-<study>-trial-<n>``), so a team sees the tune's trials in TensorBoard beside its fits.

A trial logger is made from the configured one by a factory registered for its class
(:func:`register_trial_logger`): TensorBoard and CSV are built in; another logger class is a one-line error
at the start of the tune, naming how to add it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

from autoinit.errors import AutoInitError
from autoinit.tuner.records.record import TrialStatus
from autoinit.tuner.records.scores import mean_curve, trial_score
from autoinit.tuner.search.space import Point
from autoinit.tuner.sources.source import TrialSource
from autoinit.tuner.trials.trial import TrialResult

# (the configured logger, a run name) -> a fresh logger that writes beside it under that name
TrialLoggerFactory = Callable[[Logger, str], Logger]

_FACTORIES: dict[type, TrialLoggerFactory] = {}

# log_trial(trial_number, point, result): log one finished trial
LogTrial = Callable[[int, Point, TrialResult], None]


def register_trial_logger(logger_class: type, factory: TrialLoggerFactory) -> None:
    """Let ``tune.log_trials`` log to ``logger_class`` (and its subclasses): ``factory(configured, name)``
    returns a new logger writing a run called ``name`` where ``configured`` writes."""
    _FACTORIES[logger_class] = factory


register_trial_logger(TensorBoardLogger, lambda lg, name: TensorBoardLogger(lg.save_dir, name=lg.name, version=name))
register_trial_logger(CSVLogger, lambda lg, name: CSVLogger(lg.save_dir, name=lg.name, version=name))


def _factory(logger: Logger) -> TrialLoggerFactory:
    for cls in type(logger).__mro__:
        if cls in _FACTORIES:
            return _FACTORIES[cls]
    known = ", ".join(sorted(c.__name__ for c in _FACTORIES))
    raise AutoInitError(
        f"tune.log_trials cannot log to a {type(logger).__name__} (it knows {known}): set tune.log_trials: "
        "false, or add it with autoinit.tuner.trials.loggers.register_trial_logger"
    )


def _default_logger(root: str) -> Logger:
    """Lightning's default logger: TensorBoard when tensorboard or tensorboardX is installed, else CSV."""
    try:
        return TensorBoardLogger(root)
    except ModuleNotFoundError:
        return CSVLogger(root)


def configured_loggers(source: TrialSource) -> list[Logger]:
    """The loggers the trainer section names (Lightning's default for none); a one-line error for
    ``logger: false`` and for a logger class no factory is registered for."""
    logger = source.logger()
    if logger is False:
        raise AutoInitError(
            "tune.log_trials needs a logger, and the trainer's logger is false: set trainer.logger "
            "(or remove logger: false) or set tune.log_trials: false"
        )
    if logger is None or logger is True:
        logger = _default_logger(str(source.trainer_kwargs().get("default_root_dir") or "."))
    loggers = list(logger) if isinstance(logger, (list, tuple)) else [logger]
    for lg in loggers:
        _factory(lg)
    return loggers


def trial_logger(source: TrialSource) -> LogTrial:
    """The function the objective calls after each trained trial (checks the logger at once)."""
    loggers = configured_loggers(source)
    s = source.settings

    def log_trial(number: int, point: Point, result: TrialResult) -> None:
        curve = mean_curve(result.curves) if result.curves else []
        params: dict[str, Any] = {
            "trial": number,
            "scheme": point.scheme,
            "gain": point.gain,
            "lr_scale": point.lr_scale,
            "status": result.status.value,
            "study": source.study_name,
        }
        if result.status == TrialStatus.COMPLETE:
            params["score"] = trial_score(result.curves, s.objective, s.threshold)[0]
        for configured in loggers:
            lg = _factory(configured)(configured, f"tune-{source.study_name}-trial-{number:03d}")
            lg.log_hyperparams(params)
            for step, value in enumerate(curve, 1):
                lg.log_metrics({"tune/loss": value}, step=step)
            lg.finalize("success")

    return log_trial
