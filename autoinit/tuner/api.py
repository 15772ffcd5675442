"""``autoinit.tune(...)``: the tuner from Python, the way ``Tuner(trainer).lr_find(model)`` is Lightning's.

It builds a :class:`~autoinit.tuner.sources.spec.PythonSpec` and runs it through the same code as
``autoinit tune config.yaml`` (:func:`autoinit.tuner.run.tune`: study, storage, workers, loop, outputs),
then returns a :class:`~autoinit.tuner.report.result.TuneResult`.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from rich.console import Console

from autoinit.errors import AutoInitError
from autoinit.tuner.report.result import TuneResult
from autoinit.tuner.sources.settings import Range, TuneSettings
from autoinit.tuner.sources.spec import DataArg, ModelArg, PythonSpec

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
            ``storage``, ``workers``, ``study_name``, ``output``, ``lr_scale``, ``log_trials``, ``proxy``... —
            with the same defaults. ``study_name`` defaults to the model class's name. ``proxy``: the model's
            (and data's) arguments that make a smaller copy to tune on, ``{"model.init_args.width": 16}``;
            the result is then the proxy study's, with the check of its pick on the full model
            (``result.transfer``), whose recommendation ``result.callback()`` follows.

    A study of the same name made from the same model, data, trainer and tune keys is resumed (a finished
    one is read back without training); one made from a different setup gets a study of its own,
    ``<study_name>-<hash>``, in its own output folder ``<output>-<hash>``. Ctrl-C keeps the finished trials and
    returns their result
    with ``interrupted=True``.
    """
    from autoinit.interrupts import INTERRUPTED
    from autoinit.tuner import run
    from autoinit.tuner.reuse import reusable, study_for
    from autoinit.tuner.trials.ddp import trial_devices
    from autoinit.tuner.trials.loggers import configured_loggers

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

    def renamed(spec: PythonSpec, name: str, output: Path) -> PythonSpec:
        spec.settings = dataclasses.replace(spec.settings, study_name=name, output=str(output))
        return spec

    target = study_for(spec, renamed, lambda msg: console.print(f"[dim]{msg}[/dim]"), what="setup")
    source, full = target.source, target.full
    if spec.settings.log_trials:
        configured_loggers(spec)
    subprocesses = spec.settings.workers > 1 or trial_devices(spec) > 1
    if subprocesses:
        _ = source.path  # a one-line error now when workers could not rebuild the model
    result = target.finished()
    if reusable(result, full):
        console.print(f"study '{source.study_name}' is finished for this setup: read back, nothing tuned")
        return result
    with source.importable_in_subprocesses() if subprocesses else nullcontext():
        code = run.tune(spec, console, proxy=None if full is None else source)
    return TuneResult.load(source, interrupted=code == INTERRUPTED, full=full)
