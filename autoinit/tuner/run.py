"""``autoinit tune``: run the study in this process and write its outputs."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from autoinit.tuner.config import TuneConfig
from autoinit.tuner.outputs import ranking_table, summary_line, write_outputs
from autoinit.tuner.study import applicable_schemes, create_study, good_trials, make_objective, mask_url

# Stop a run whose first trials all fail: the config or the model is broken, not the init.
FAILS_BEFORE_GIVING_UP = 3


class _Progress:
    """A progress bar over trials showing the best score so far; stops a run that only fails."""

    def __init__(self, progress: Progress, task: Any) -> None:
        self.progress, self.task = progress, task
        self.finished = 0
        self.failed_in_a_row = 0

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.finished += 1
        if trial.state == TrialState.FAIL:
            self.failed_in_a_row += 1
            if self.failed_in_a_row >= FAILS_BEFORE_GIVING_UP and self.finished == self.failed_in_a_row:
                self.progress.console.print(
                    f"[red]the first {self.finished} trials failed "
                    f"({trial.user_attrs.get('error', 'see the log')}): stopping"
                )
                study.stop()
        else:
            self.failed_in_a_row = 0
        try:
            best = f"best {study.best_trial.params.get('scheme')} {study.best_value:.4g}"
        except ValueError:
            best = "no complete trial yet"
        self.progress.update(
            self.task, advance=1 if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) else 0, description=best
        )


def tune(config: TuneConfig, console: Console | None = None) -> int:
    """Run (or resume) the study described by ``config``; returns a process exit code."""
    console = console or Console()
    s = config.settings
    out = config.output
    out.mkdir(parents=True, exist_ok=True)
    schemes = applicable_schemes(config, lambda msg: console.print(f"[dim]{msg}[/dim]"))
    study = create_study(config, schemes)
    where = mask_url(s.storage) if s.storage else str(out / "study.journal")
    done = good_trials(study)
    todo = max(0, s.n_trials - done)
    console.print(
        f"study '{config.study_name}' ({where}): {done} trials done, {todo} to run — "
        f"{len(schemes)} schemes, {s.steps} steps × {s.seeds} seeds per trial"
    )
    interrupted = False
    if todo:
        objective = make_objective(config, schemes)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task("starting", total=s.n_trials, completed=done)
            try:
                study.optimize(
                    objective,
                    n_trials=todo,
                    timeout=s.timeout,
                    catch=(Exception,),
                    callbacks=[_Progress(progress, task)],
                    gc_after_trial=True,
                )
            except KeyboardInterrupt:
                interrupted = True
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
