"""``autoinit tune``: run the study — in this process, or in ``workers`` worker processes — and write
its outputs."""

from __future__ import annotations

import dataclasses

import optuna
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from autoinit.errors import AutoInitError, one_line
from autoinit.interrupts import INTERRUPTED
from autoinit.tuner.execution.loop import claim_lock, optimize
from autoinit.tuner.population.study import population_runner
from autoinit.tuner.records.counts import good_trials
from autoinit.tuner.records.record import STUDY_ATTR_OWN_INIT, TrialRecord
from autoinit.tuner.records.stop_rule import StopReason
from autoinit.tuner.report import transfer
from autoinit.tuner.report.outputs import (
    check_output,
    claim_output,
    collect,
    ranking_table,
    summary_line,
    write_outputs,
)
from autoinit.tuner.reuse import resume_finished
from autoinit.tuner.search.registry import search_for, search_type
from autoinit.tuner.sources.proxy import describe, proxy_source
from autoinit.tuner.sources.source import TrialSource
from autoinit.tuner.storage import backend as storage
from autoinit.tuner.study.lifecycle import create_study
from autoinit.tuner.trials.ddp import trial_devices
from autoinit.tuner.trials.objective import make_objective
from autoinit.tuner.trials.screening import applicable_schemes, check_training, prescreen_schemes
from autoinit.tuner.trials.trial import freeze_startup_objects


def best_description(study: optuna.Study) -> str:
    try:
        return f"best {study.best_trial.params.get('scheme')} {study.best_value:.4g}"
    except ValueError:
        return "no complete trial yet"


def tune(config: TrialSource, console: Console | None = None, *, proxy: TrialSource | None = None) -> int:
    """Run (or resume) the study described by ``config``; returns a process exit code. With ``tune.proxy``
    the study runs on the proxy (``proxy``: its source, by default :func:`~autoinit.tuner.sources.proxy.proxy_source`)
    and its pick is then checked on ``config``'s full model (:mod:`autoinit.tuner.report.transfer`)."""
    console = console or Console()
    search_type(config.settings).check_settings(config.settings)  # before any work
    if config.settings.proxy is None:
        return _reached(config, console, full=None)
    if trial_devices(config) > 1:
        # the check trains the full model in this process, as sequential single-process trials
        raise AutoInitError(
            "tune.proxy checks the pick on the full model in this process, and trials on several devices "
            "(trainer.devices > 1) are not supported there yet: tune the proxy with trainer.devices=1"
        )
    proxy = proxy or proxy_source(config)
    console.print(
        f"tuning on a proxy of the model ({describe(config.settings.proxy)}) in study '{proxy.study_name}', "
        "then checking its pick on the full model"
    )
    return _reached(proxy, console, full=config)


def _reached(config: TrialSource, console: Console, *, full: TrialSource | None) -> int:
    """:func:`_tune`, where a storage that cannot be reached (at the start, or an outage on the way) is a
    one-line :class:`AutoInitError`."""
    with storage.outage_is_one_line(config.settings, config.output):
        return _tune(config, console, full=full)


def _tune(config: TrialSource, console: Console, *, full: TrialSource | None) -> int:
    """The study of ``config``; ``full``: the full model a proxy study's pick is checked on."""
    s = config.settings
    out = config.output
    if s.workers > 1:
        from autoinit.tuner.execution.launcher import check_worker_count

        check_worker_count(s)  # before any work: more workers than devices is a one-line error
    check_output(config)  # before any work: a folder that cannot be written, or another study's
    note = lambda msg: console.print(f"[dim]{msg}[/dim]")  # noqa: E731
    finished = resume_finished(config)  # nothing left to run: nothing is built, only the outputs written
    if finished is not None:
        study, schemes = finished
        search = search_for(s, schemes)
        # the process's exit then skips a full collection over every object torch and Lightning made (1–1.5 s
        # of a 6 s resume at a load of 3); no trial follows, so no collection first either (0.5 s at a load of 10)
        freeze_startup_objects(collect=False)
    else:
        schemes, authored = applicable_schemes(config, note)
        search = search_for(s, schemes)
        search.check()  # before any training (the halving search: a budget that cannot pay for round 0)
        check_training(config)
        if s.prescreen and search.prescreens:
            schemes = prescreen_schemes(config, schemes, note)
            search = search_for(s, schemes)
        study = create_study(config, schemes)
        if STUDY_ATTR_OWN_INIT not in study.user_attrs:
            study.set_user_attr(STUDY_ATTR_OWN_INIT, authored)
    claim_output(config)
    n_trials = search.target_trials()
    settings = dataclasses.replace(s, n_trials=n_trials)
    where = storage.describe(s, out)
    done = good_trials(study)
    workers = f", {s.workers} workers" if s.workers > 1 else ""
    console.print(f"study '{config.study_name}' ({where}): {done} trials done{search.status(study, done)}{workers}")
    interrupted = False
    reason = StopReason.DONE
    if finished is None and not search.finished(study):
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            total = lambda: search.total(study)  # noqa: E731
            task = progress.add_task("starting", total=total(), completed=done)

            def on_trial(study, trial) -> None:
                progress.update(
                    task,
                    completed=good_trials(study),
                    total=total(),
                    description=best_description(study),
                )

            try:
                if s.workers > 1:
                    from autoinit.tuner.execution.launcher import launch

                    reason = launch(config, study, settings, search=search, on_trial=on_trial, console=console)
                else:
                    freeze_startup_objects()
                    objective = make_objective(config, schemes)
                    batch = population_runner(config, schemes, note)
                    reason = optimize(
                        study,
                        objective,
                        settings,
                        lock=claim_lock(out),
                        on_trial=on_trial,
                        run_batch=batch,
                        search=search,
                    )
            except KeyboardInterrupt:
                interrupted = True
    if reason == StopReason.FAILING:
        errors = [e for t in study.get_trials(deepcopy=False) if (e := TrialRecord.of(t).error)]
        console.print(
            f"[red]the first trials all failed ({errors[-1] if errors else 'see above'})"
            ": stopped — fix the config or the model"
        )
    outputs = collect(config, study)
    console.print(ranking_table(outputs.rows, s.seeds))
    if full is not None and outputs.summary is not None:
        if interrupted:
            outputs.summary = transfer.with_transfer(outputs.summary, full, None)
        else:
            try:
                outputs.summary = transfer.check(full, study, outputs.summary, outputs.rows, console)
            except KeyboardInterrupt:
                interrupted = True
                outputs.summary = transfer.with_transfer(outputs.summary, full, None)
    console.print(summary_line(outputs.summary, s.objective))
    try:
        written = write_outputs(config, outputs)
    except OSError as exc:
        raise AutoInitError(
            f"writing the outputs to '{out}' failed ({one_line(exc)}), after all the work: the study's "
            f"{good_trials(study)} finished trials are safe in {where}; fix the folder and run the same command "
            "again: it resumes with nothing to run and writes the outputs"
        ) from None
    console.print(f"outputs in {out}/: {', '.join(p.name for p in written)}")
    summary = outputs.summary
    if interrupted:
        console.print(
            f"[yellow]interrupted: {good_trials(study)} finished trials are kept; run the same command to resume"
        )
        return INTERRUPTED
    return 0 if summary is not None else 1
