"""What a tune leaves behind: best.yaml, trials.csv, loss_curves.png, and the console ranking; and the
output folder itself: checked writable before any training, and owned by one study (a marker file), so
two studies given the same ``output`` cannot overwrite each other's files."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import optuna
import yaml
from optuna.trial import TrialState

from autoinit import _compat
from autoinit.errors import AutoInitError, one_line
from autoinit.schemes import get_scheme, list_schemes
from autoinit.tuner.records.best import Pick
from autoinit.tuner.records.record import STUDY_ATTR_CONFIG, TrialRecord, TrialStatus, own_init_is_default, trial_status
from autoinit.tuner.report.verdicts import (
    baseline_kept,
    comparable,
    point,
    proven_pick,
    score_order,
    significant,
    standard_error,
    tied_with,
    transfer_text,
    verdict_text,
)
from autoinit.tuner.sources.proxy import describe as describe_proxy
from autoinit.tuner.sources.settings import BASELINE_SCHEME
from autoinit.tuner.sources.source import TrialSource
from autoinit.tuner.storage.owner import process_exists

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Names the study that owns an output folder; written once the study's checks pass and it is about to run.
OWNER_FILE = ".autoinit-study"
BEST_YAML, TRIALS_CSV, LOSS_CURVES = "best.yaml", "trials.csv", "loss_curves.png"


def check_output(config: TrialSource) -> None:
    """Before any work: the output folder can be created and written, and no other study owns it."""
    out = config.output
    check_writable(out)
    remove_stale_temporaries(out)
    owner = output_owner(out)
    if owner is not None and owner != config.study_name:
        raise AutoInitError(
            f"the output folder '{out}' holds the outputs of study '{owner}', not '{config.study_name}': give this "
            f"study its own tune.output (or run it with --tune.study_name={owner} to resume that study)"
        )


def check_writable(out: Path) -> None:
    """The output folder can be created and written (else one line: nothing was run)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".autoinit-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise AutoInitError(
            f"cannot write to the output folder '{out}' ({one_line(exc)}): set tune.output to a folder you can "
            "write (nothing was run)"
        ) from None


def remove_stale_temporaries(out: Path) -> None:
    """Delete the temporary files (``.<name>.<pid>.tmp``) that a killed run's :func:`_atomic_write` left."""
    for tmp in out.glob(".*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and int(pid) != os.getpid() and not process_exists(int(pid), None):
            with contextlib.suppress(OSError):
                tmp.unlink()


def output_owner(out: Path) -> str | None:
    """The study whose outputs ``out`` holds, or None (a new folder, or one from before owners were kept)."""
    try:
        return (out / OWNER_FILE).read_text().strip() or None
    except OSError:
        return None


def claim_output(config: TrialSource) -> None:
    """Mark the output folder as this study's (after its checks passed: a study refused at its checks
    claims nothing)."""
    if output_owner(config.output) is None:
        _atomic_write(config.output / OWNER_FILE, lambda f: f.write(config.study_name + "\n"))


def _atomic_write(path: Path, write: Callable[[TextIO], Any]) -> None:
    """Write through a temporary file and rename: a failed write leaves the old file, never half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", newline="") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A temporary path to write instead of ``path``, renamed onto it on success."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


@dataclass(kw_only=True)
class Row:
    """One trial as the outputs show it. ``full``: trained at the study's full fidelity (all ``steps`` ×
    ``seeds``); a screening trial (fewer steps or seeds) is shown, but never picked nor compared with."""

    number: int
    status: TrialStatus
    scheme: str
    gain: float
    lr_scale: float
    score: float | None
    score_std: float | None
    seconds: float | None
    stalled: bool
    error: str
    curve: list[float]
    fidelity: dict[str, int] | None = None  # a halving round's {"round", "steps", "seeds"}; None: full
    full: bool = True


def rows(study: optuna.Study) -> list[Row]:
    """Every trial of the study, in trial order."""
    out = []
    for t in study.get_trials(deepcopy=False):
        record = TrialRecord.of(t)
        fixed_gain = record.fixed_gain if record.fixed_gain is not None else 1.0
        params = _compat.queued_params(t)  # a waiting trial's point is its queued parameters
        out.append(
            Row(
                number=t.number,
                status=trial_status(t),
                scheme=params.get("scheme", ""),
                gain=float(params.get("gain", fixed_gain)),
                lr_scale=float(params.get("lr_scale", 1.0)),
                score=t.value if t.state == TrialState.COMPLETE else record.score,
                score_std=record.score_std,
                seconds=record.seconds or (t.duration.total_seconds() if t.duration else None),
                stalled=record.stalled,
                error=record.error,
                curve=list(record.curve),
                fidelity=record.fidelity,
                full=_is_full(record.fidelity, study),
            )
        )
    return out


def _is_full(fidelity: dict[str, int] | None, study: optuna.Study) -> bool:
    """Whether a trial trained the study's full steps × seeds (every trial of a sampled search does)."""
    if fidelity is None:
        return True
    config = study.user_attrs.get(STUDY_ATTR_CONFIG) or {}
    steps, seeds = config.get("tune.steps"), config.get("tune.seeds")
    if steps is None or seeds is None:
        # the study's settings are not recorded under these keys: the largest fidelity is the full one
        trained = [TrialRecord.of(t).fidelity for t in study.get_trials(deepcopy=False)]
        widest = max((f["steps"] * f["seeds"] for f in trained if f), default=0)
        return fidelity["steps"] * fidelity["seeds"] >= widest
    return (fidelity["steps"], fidelity["seeds"]) == (steps, seeds)


def ranking(all_rows: list[Row]) -> list[Row]:
    """Trials of full fidelity first — complete by score, then pruned, then diverged — then screening trials
    in the same order (their scores are on another scale); failed and unfinished ones are left out."""
    ranked = [r for r in all_rows if r.status.ranked]
    return sorted(ranked, key=lambda r: (not r.full, r.status.rank, *score_order(r)))


def scheme_row(all_rows: list[Row], scheme: str) -> Row | None:
    """``scheme`` at gain 1 and the unscaled learning rate (its anchor), else its best complete trial (full
    fidelity only)."""
    rows_of = [r for r in comparable(all_rows) if r.scheme == scheme]
    anchored = [r for r in rows_of if r.gain == 1.0 and r.lr_scale == 1.0]
    pool = anchored or rows_of
    return min(pool, key=score_order) if pool else None


def baseline_row(all_rows: list[Row]) -> Row | None:
    """The model's own init (:data:`~autoinit.tuner.sources.settings.BASELINE_SCHEME`): what every pick is measured
    against."""
    return scheme_row(all_rows, BASELINE_SCHEME)


def default_row(all_rows: list[Row]) -> Row | None:
    """PyTorch's default init (``reset_parameters``) at gain 1, when the study trained it."""
    return scheme_row(all_rows, "default")


def write_trials_csv(path: Path, all_rows: list[Row], seeds: int) -> None:
    _atomic_write(path, lambda f: _trials_csv(f, all_rows, seeds))


def _trials_csv(f: TextIO, all_rows: list[Row], seeds: int) -> None:
    w = csv.writer(f)
    w.writerow(
        [
            "number",
            "state",
            "scheme",
            "gain",
            "lr_scale",
            "score_mean",
            "score_std",
            "score_se",
            "stalled",
            "duration_s",
            "error",
            "round",
            "steps",
            "seeds",
        ]
    )
    for r in sorted(all_rows, key=lambda r: r.number):
        se = standard_error(r, seeds) if r.score is not None else None
        w.writerow(
            [
                r.number,
                r.status.value,
                r.scheme,
                f"{r.gain:.6g}",
                f"{r.lr_scale:.6g}",
                "" if r.score is None else f"{r.score:.6g}",
                "" if r.score_std is None else f"{r.score_std:.6g}",
                "" if se is None else f"{se:.6g}",
                r.stalled,
                "" if r.seconds is None else f"{r.seconds:.2f}",
                r.error,
                *(
                    ("", "", "")
                    if r.fidelity is None
                    else (r.fidelity["round"], r.fidelity["steps"], r.fidelity["seeds"])
                ),
            ]
        )


def best_summary(config: TrialSource, all_rows: list[Row], own_init_is_default: bool | None = None) -> Pick | None:
    """best.yaml's record: the pick, its score against the baseline (the model's own init) — the improvement,
    whether it is beyond noise, the points tied with it — and PyTorch's default's score where the model's own
    init is not PyTorch's default (``own_init_is_default``: from the study, None when not known)."""
    from autoinit import __version__

    ranked = comparable(ranking(all_rows))
    if not ranked:
        return None
    baseline, default = baseline_row(all_rows), default_row(all_rows)
    s = config.settings
    best = proven_pick(ranked, baseline, s.seeds)
    tied = tied_with(best, ranked, s.seeds)
    with_lr = s.lr_scale is not None or any(r.lr_scale != 1.0 for r in ranked)
    pick = Pick(
        scheme=best.scheme,
        gain=round(best.gain, 6),
        options={},
        score=best.score,
        score_std=best.score_std,
        objective=s.objective,
        # the baseline's init, as `autoinit fit` and `TuneResult.callback()` use it when it is kept
        baseline=None if baseline is None else point(baseline, with_lr=with_lr, scored=False),
        baseline_score=baseline.score if baseline else None,
        own_init_is_default=own_init_is_default,
        default_score=default.score if default else None,
        improvement=(baseline.score - best.score) / baseline.score if baseline and baseline.score else None,
        significant=significant(best, baseline, s.seeds),
        tied_with=None if tied is None else [point(r, with_lr=with_lr) for r in tied],
        stalled=best.stalled,
        baseline_stalled=baseline.stalled if baseline else None,
        steps=s.steps,
        seeds=s.seeds,
        trial=best.number,
        config_sha256=config.sha256(),
        autoinit_version=__version__,
        lr_scale=round(best.lr_scale, 6) if best.lr_scale != 1.0 or s.lr_scale is not None else None,
    )
    return dataclasses.replace(pick, keep_baseline=baseline_kept(pick) is not None)


def write_best_yaml(path: Path, pick: Pick) -> None:
    _atomic_write(path, lambda f: f.write(yaml.safe_dump(pick.to_yaml_dict(), sort_keys=False)))


def summary_line(pick: Pick | None, objective: str) -> str:
    if pick is None:
        return "no trial completed: nothing to recommend (see trials.csv for what failed)"
    name = {"auc": "early-loss AUC", "final": "final loss", "steps_to": "steps to threshold"}[objective]
    lr = f" lr×{pick.lr_scale:.3g}" if pick.lr_scale is not None else ""
    # a scheme that takes no gain (the model's own init) shows none; one not registered here shows its gain
    gainless = pick.scheme in list_schemes() and not get_scheme(pick.scheme).uses_gain
    gain = "" if gainless else f" gain={pick.gain:.3g}"
    line = f"best: {pick.scheme}{gain}{lr} — {name} {pick.score:.3g}"
    baseline = pick.baseline_score
    if baseline is not None:
        change = -pick.improvement * 100
        # Said once when the model's own init is PyTorch's default; both scores when they differ.
        own = " (PyTorch's default)" if pick.own_init_is_default else ""
        line += f" vs {baseline:.3g} with the model's own init{own} ({change:+.0f}%)"
        if not pick.own_init_is_default and pick.default_score is not None:
            line += f"; PyTorch default {pick.default_score:.3g}"
    verdict = verdict_text(pick)
    if verdict:
        line += (", " if baseline is not None else "; ") + verdict
    if pick.proxy:
        line = f"on the proxy ({describe_proxy(pick.proxy)}) {line}"
        transfer = transfer_text(pick)
        line += f". {transfer[0].upper()}{transfer[1:]}" if transfer else ". No transfer check on the full model"
    return line


def curves_figure(all_rows: list[Row], top: int = 4, pick: int | None = None) -> Figure:
    """Mean loss against step for the model's own init, the best and the next ``top - 1`` complete trials —
    the pick (trial number ``pick``) among them wherever it ranks. Built without pyplot, so it neither needs
    nor changes a display backend (a notebook shows it as is)."""
    from matplotlib.figure import Figure

    ranked = [r for r in comparable(ranking(all_rows)) if r.curve]
    default = baseline_row(all_rows)
    shown: list[Row] = [default] if default and default.curve else []
    shown += [r for r in ranked if r.number == pick and r is not default]
    for r in ranked:
        if len(shown) >= top + 1:
            break
        if all(r is not s for s in shown):
            shown.append(r)
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    for r in shown:
        style = "--" if r is default else "-"
        label = f"#{r.number} {r.scheme}" + (" (the model's own init)" if r is default else f" gain={r.gain:.3g}")
        ax.plot(range(1, len(r.curve) + 1), r.curve, style, label=label)
    ax.set_xlabel("step (downsampled to 200 points)" if any(len(r.curve) == 200 for r in shown) else "step")
    ax.set_ylabel("training loss (mean over seeds)")
    ax.set_title("Early loss: the model's own init vs the best inits found")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_curves(path: Path, all_rows: list[Row], top: int = 4, pick: int | None = None) -> None:
    with _replacing(path) as tmp:
        curves_figure(all_rows, top, pick).savefig(tmp, dpi=100)


def ranking_table(all_rows: list[Row], seeds: int, limit: int = 12):
    """The console ranking: the score as mean ± standard error over ``seeds`` seeds."""
    from rich.table import Table

    table = Table(title="ranking (lower score is better; stalled: complete, but the loss never left its start)")
    shown = ranking(all_rows)[:limit]
    with_lr = any(r.lr_scale != 1.0 for r in shown)  # an 80-column terminal has no room for a column of 1s
    # mean and SE in two columns: one "1.886 ± 0.082" cell wraps on an 80-column terminal
    for col in ("#", "trial", "scheme", "gain", "lr×", "score", "± SE", "status", "s"):
        if col == "lr×" and not with_lr:
            continue
        left = col in ("scheme", "status")
        table.add_column(col, justify="left" if left else "right", no_wrap=True)
    for i, r in enumerate(shown, 1):
        status = "stalled" if r.stalled and r.status == TrialStatus.COMPLETE else r.status.value
        if not r.full and r.fidelity is not None:  # a lower-fidelity trial: its steps × seeds
            status += f" {r.fidelity['steps']}×{r.fidelity['seeds']}"
        elif not r.full:
            status += " (screening)"
        se = standard_error(r, seeds)
        table.add_row(
            str(i),
            str(r.number),
            r.scheme,
            f"{r.gain:.3g}",
            *([f"{r.lr_scale:.3g}"] if with_lr else []),
            "" if r.score is None else f"{r.score:.4g}",
            "" if se is None or r.score is None else f"{se:.2g}",
            status,
            "" if r.seconds is None else f"{r.seconds:.1f}",
        )
    return table


@dataclass(kw_only=True)
class Outputs:
    """What :func:`write_outputs` found and wrote."""

    summary: Pick | None
    rows: list[Row]
    written: list[Path] = field(default_factory=list)


def collect(config: TrialSource, study: optuna.Study) -> Outputs:
    """The study's rows and best summary, nothing written yet."""
    all_rows = rows(study)
    return Outputs(summary=best_summary(config, all_rows, own_init_is_default(study)), rows=all_rows)


def write_outputs(config: TrialSource, outputs: Outputs) -> list[Path]:
    """Write trials.csv, and best.yaml and loss_curves.png when a trial completed; returns the files
    written (each replaced whole, or left as it was). A failure is an OSError for the caller to report."""
    out = config.output
    out.mkdir(parents=True, exist_ok=True)
    write_trials_csv(out / TRIALS_CSV, outputs.rows, config.settings.seeds)
    outputs.written.append(out / TRIALS_CSV)
    if outputs.summary is not None:
        write_best_yaml(out / BEST_YAML, outputs.summary)
        outputs.written.append(out / BEST_YAML)
        plot_curves(out / LOSS_CURVES, outputs.rows, pick=outputs.summary.trial)
        outputs.written.append(out / LOSS_CURVES)
    return outputs.written
