"""``autoinit.tune(...)``: the tuner from Python, the way ``Tuner(trainer).lr_find(model)`` is Lightning's.

It builds a :class:`~autoinit.tuner.spec.PythonSpec` and runs it through the same code as
``autoinit tune config.yaml`` (:func:`autoinit.tuner.run.tune`: study, storage, workers, loop, outputs),
then returns a :class:`~autoinit.tuner.result.TuneResult`.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

from rich.console import Console

from autoinit.errors import AutoInitError
from autoinit.tuner.result import TuneResult
from autoinit.tuner.settings import Range, TuneSettings
from autoinit.tuner.spec import DataArg, ModelArg, PythonSpec

__all__ = ["TuneResult", "settings_from_keys", "tune"]


def settings_from_keys(keys: Mapping[str, Any]) -> TuneSettings:
    """``TuneSettings`` from ``tune`` keys given as keywords (a range as a dict or a ``Range``); one-line
    errors for an unknown key or a bad value."""
    names = [f.name for f in dataclasses.fields(TuneSettings)]
    for key in keys:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise AutoInitError(f"autoinit.tune: unknown tune key '{key}'{hint}: tune keys are {', '.join(names)}")
    values = dict(keys)
    for key in ("gain", "lr_scale"):
        if isinstance(values.get(key), Mapping):
            rng = dict(values[key])
            unknown = set(rng) - {"low", "high", "log"}
            if unknown:
                raise AutoInitError(f"autoinit.tune: {key} range takes low, high and log, got '{sorted(unknown)[0]}'")
            values[key] = Range(**rng)
        elif isinstance(values.get(key), tuple):
            values[key] = list(values[key])
    try:
        return TuneSettings(**values)
    except TypeError as exc:  # a value of the wrong type, compared or used as a number
        raise AutoInitError(f"autoinit.tune: a tune key has a value of the wrong type ({exc})") from None


def tune(
    model: ModelArg,
    *,
    model_args: Mapping[str, Any] | None = None,
    datamodule: DataArg = None,
    data_args: Mapping[str, Any] | None = None,
    train_dataloaders: Any = None,
    trainer: Mapping[str, Any] | None = None,
    verbose: bool = True,
    console: Console | None = None,
    **tune_keys: Any,
) -> TuneResult:
    """Pick the init (scheme and gain) for ``model`` by short trial trainings, as ``autoinit tune`` does.

    Args:
        model: a LightningModule class (built as ``model(**model_args)`` for every trial) or a zero-argument
            factory returning a fresh one. Never an instance: your own model object is never touched.
        model_args: the class's arguments.
        datamodule: a LightningDataModule class (with ``data_args``) or factory, built fresh for each trial;
            or an instance, used as-is when iterating it again gives the same batches (checked). None: the
            model's own data hooks.
        train_dataloaders: a DataLoader (or a list or dict of them) instead of a datamodule, used as-is
            under the same check.
        trainer: Trainer arguments for the trials (``accelerator``, ``precision``, ``devices``...); a trial
            sets its own ``max_steps`` and turns logging, checkpointing and validation off.
        verbose: print the progress and the ranking (``console``: a rich Console to print them to).
        tune_keys: any ``tune`` key of a config — ``steps``, ``seeds``, ``schemes``, ``gain``, ``n_trials``,
            ``storage``, ``workers``, ``study_name``, ``output``, ``lr_scale``, ``log_trials``... — with the
            same defaults. ``study_name`` defaults to the model class's name.

    A study of the same name made from the same model, data, trainer and tune keys is resumed (a finished
    one is read back without training); one made from a different setup gets a study of its own,
    ``<study_name>-<hash>``, in its own output folder ``<output>-<hash>``. Ctrl-C keeps the finished trials and
    returns their result
    with ``interrupted=True``.
    """
    from autoinit.interrupts import INTERRUPTED
    from autoinit.tuner import run
    from autoinit.tuner.ddp_trial import trial_devices
    from autoinit.tuner.reuse import finished_study, study_name_for
    from autoinit.tuner.trial_log import configured_loggers

    spec = PythonSpec(
        model,
        settings=settings_from_keys(tune_keys),
        model_args=model_args,
        datamodule=datamodule,
        data_args=data_args,
        train_dataloaders=train_dataloaders,
        trainer=trainer,
    )
    spec.check()
    console = console or Console(quiet=not verbose)
    name = study_name_for(spec)
    if name != spec.study_name:
        # An output folder holds one study's files: the new study writes beside it, in its own folder.
        output = spec.output.with_name(spec.output.name + name[len(spec.study_name) :])
        console.print(
            f"[dim]study '{spec.study_name}' in {spec.output} was made from another setup: tuning '{name}' "
            f"in {output}[/dim]"
        )
        spec.settings = dataclasses.replace(spec.settings, study_name=name, output=str(output))
    if spec.settings.log_trials:
        configured_loggers(spec)
    subprocesses = spec.settings.workers > 1 or trial_devices(spec) > 1
    if subprocesses:
        _ = spec.path  # a one-line error now when workers could not rebuild the model
    study = finished_study(spec)
    if study is not None:
        console.print(f"study '{spec.study_name}' is finished for this setup: read back, nothing tuned")
        return TuneResult.from_study(spec, study)
    with spec.importable_in_subprocesses() if subprocesses else nullcontext():
        code = run.tune(spec, console)
    return TuneResult.load(spec, interrupted=code == INTERRUPTED)
