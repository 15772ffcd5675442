"""``autoinit tune``: run the study — in this process, or in ``workers`` worker processes — and write
its outputs."""

from __future__ import annotations

import dataclasses

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from autoinit.tuner.config import TuneConfig
from autoinit.tuner.optimize import optimize
from autoinit.tuner.outputs import ranking_table, summary_line, write_outputs
from autoinit.tuner.study import (
    GOOD_STATES,
    applicable_schemes,
    create_study,
    good_trials,
    make_objective,
    mask_url,
    prescreen_schemes,
    target_trials,
)
from autoinit.tuner.trial import freeze_startup_objects


def best_description(study) -> str:
    try:
        return f"best {study.best_trial.params.get('scheme')} {study.best_value:.4g}"
    except ValueError:
        return "no complete trial yet"


def tune(config: TuneConfig, console: Console | None = None) -> int:
    """Run (or resume) the study described by ``config``; returns a process exit code."""
    console = console or Console()
    s = config.settings
    out = config.output
    out.mkdir(parents=True, exist_ok=True)
    note = lambda msg: console.print(f"[dim]{msg}[/dim]")  # noqa: E731
    schemes = applicable_schemes(config, note)
    if s.prescreen:
        schemes = prescreen_schemes(config, schemes, note)
    study = create_study(config, schemes)
    n_trials = target_trials(s, schemes)
    settings = dataclasses.replace(s, n_trials=n_trials)
    where = mask_url(s.storage) if s.storage else str(out / "study.journal")
    done = good_trials(study)
    console.print(
        f"study '{config.study_name}' ({where}): {done} trials done, {max(0, n_trials - done)} to run — "
        f"{len(schemes)} schemes, {s.steps} steps × {s.seeds} seeds per trial"
        + (f", {s.workers} workers" if s.workers > 1 else "")
    )
    interrupted = False
    reason = "done"
    if done < n_trials:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task("starting", total=n_trials, completed=done)

            def on_trial(study, trial) -> None:
                progress.update(
                    task,
                    completed=len(study.get_trials(deepcopy=False, states=GOOD_STATES)),
                    description=best_description(study),
                )

            try:
                if s.workers > 1:
                    from autoinit.tuner.launcher import launch

                    reason = launch(config, study, settings, on_trial, console)
                else:
                    freeze_startup_objects()
                    reason = optimize(study, make_objective(config, schemes), settings, on_trial)
            except KeyboardInterrupt:
                interrupted = True
    if reason == "failing":
        failed = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("error")]
        console.print(
            f"[red]the first trials all failed ({failed[-1].user_attrs['error'] if failed else 'see above'})"
            ": stopped — fix the config or the model"
        )
    summary, all_rows = write_outputs(config, study)
    console.print(ranking_table(all_rows))
    console.print(summary_line(summary, s.objective))
    console.print(f"outputs in {out}/: best.yaml, trials.csv, loss_curves.png")
    if interrupted:
        console.print(
            f"[yellow]interrupted: {good_trials(study)} finished trials are kept; run the same command to resume"
        )
        return 130
    return 0 if summary is not None else 1
