"""What a tune leaves behind: best.yaml, trials.csv, loss_curves.png, and the console ranking."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import yaml
from optuna.trial import TrialState

from autoinit.tuner.records import TrialRecord, TrialStatus, trial_status
from autoinit.tuner.source import TrialSource

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(kw_only=True)
class Row:
    """One trial as the outputs show it."""

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


def rows(study: optuna.Study) -> list[Row]:
    """Every trial of the study, in trial order."""
    out = []
    for t in study.get_trials(deepcopy=False):
        record = TrialRecord.of(t)
        fixed_gain = record.fixed_gain if record.fixed_gain is not None else 1.0
        out.append(
            Row(
                number=t.number,
                status=trial_status(t),
                scheme=t.params.get("scheme", ""),
                gain=float(t.params.get("gain", fixed_gain)),
                lr_scale=float(t.params.get("lr_scale", 1.0)),
                score=t.value if t.state == TrialState.COMPLETE else None,
                score_std=record.score_std,
                seconds=record.seconds or (t.duration.total_seconds() if t.duration else None),
                stalled=record.stalled,
                error=record.error,
                curve=list(record.curve),
            )
        )
    return out


def ranking(all_rows: list[Row]) -> list[Row]:
    """Complete trials by score, then pruned, then diverged; failed and unfinished ones are left out."""
    ranked = [r for r in all_rows if r.status.ranked]
    return sorted(ranked, key=lambda r: (r.status.rank, r.score if r.score is not None else math.inf, r.number))


def default_row(all_rows: list[Row]) -> Row | None:
    """PyTorch's default init at gain 1 (its anchor), else its best complete trial."""
    defaults = [r for r in all_rows if r.scheme == "default" and r.status == TrialStatus.COMPLETE]
    anchored = [r for r in defaults if r.gain == 1.0 and r.lr_scale == 1.0]
    pool = anchored or defaults
    return min(pool, key=lambda r: r.score) if pool else None


def write_trials_csv(path: Path, all_rows: list[Row]) -> None:
    with path.open("w", newline="") as f:
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
                "stalled",
                "duration_s",
                "error",
            ]
        )
        for r in sorted(all_rows, key=lambda r: r.number):
            w.writerow(
                [
                    r.number,
                    r.status.value,
                    r.scheme,
                    f"{r.gain:.6g}",
                    f"{r.lr_scale:.6g}",
                    "" if r.score is None else f"{r.score:.6g}",
                    "" if r.score_std is None else f"{r.score_std:.6g}",
                    r.stalled,
                    "" if r.seconds is None else f"{r.seconds:.2f}",
                    r.error,
                ]
            )


def best_summary(config: TrialSource, all_rows: list[Row]) -> dict[str, Any] | None:
    from autoinit import __version__

    ranked = [r for r in ranking(all_rows) if r.status == TrialStatus.COMPLETE]
    if not ranked:
        return None
    best, default = ranked[0], default_row(all_rows)
    s = config.settings
    options: dict[str, Any] = {}
    out = {
        "scheme": best.scheme,
        "gain": round(best.gain, 6),
        "options": options,
        "score": best.score,
        "score_std": best.score_std,
        "objective": s.objective,
        "default_score": default.score if default else None,
        "improvement": (default.score - best.score) / default.score if default and default.score else None,
        "steps": s.steps,
        "seeds": s.seeds,
        "trial": best.number,
        "config_sha256": config.sha256(),
        "autoinit_version": __version__,
    }
    if best.lr_scale != 1.0 or s.lr_scale is not None:
        out["lr_scale"] = round(best.lr_scale, 6)
    return out


def write_best_yaml(path: Path, summary: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(summary, sort_keys=False))


def summary_line(summary: dict[str, Any] | None, objective: str) -> str:
    if summary is None:
        return "no trial completed: nothing to recommend (see trials.csv for what failed)"
    name = {"auc": "early-loss AUC", "final": "final loss", "steps_to": "steps to threshold"}[objective]
    lr = f" lr×{summary['lr_scale']:.3g}" if "lr_scale" in summary else ""
    line = f"best: {summary['scheme']} gain={summary['gain']:.3g}{lr} — {name} {summary['score']:.3g}"
    if summary["default_score"] is not None:
        change = -summary["improvement"] * 100
        line += f" vs {summary['default_score']:.3g} with PyTorch default ({change:+.0f}%)"
    return line


def curves_figure(all_rows: list[Row], top: int = 4) -> Figure:
    """Mean loss against step for PyTorch's default, the best and the next ``top - 1`` complete trials.
    Built without pyplot, so it neither needs nor changes a display backend (a notebook shows it as is)."""
    from matplotlib.figure import Figure

    ranked = [r for r in ranking(all_rows) if r.status == TrialStatus.COMPLETE and r.curve]
    default = default_row(all_rows)
    shown: list[Row] = [default] if default and default.curve else []
    for r in ranked:
        if len(shown) >= top + 1:
            break
        if r is not default:
            shown.append(r)
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    for r in shown:
        style = "--" if r is default else "-"
        label = f"#{r.number} {r.scheme} gain={r.gain:.3g}" + (" (PyTorch default)" if r is default else "")
        ax.plot(range(1, len(r.curve) + 1), r.curve, style, label=label)
    ax.set_xlabel("step (downsampled to 200 points)" if any(len(r.curve) == 200 for r in shown) else "step")
    ax.set_ylabel("training loss (mean over seeds)")
    ax.set_title("Early loss: PyTorch default vs the best inits found")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_curves(path: Path, all_rows: list[Row], top: int = 4) -> None:
    curves_figure(all_rows, top).savefig(path, dpi=100)


def ranking_table(all_rows: list[Row], limit: int = 12):
    from rich.table import Table

    table = Table(title="ranking (lower score is better; stalled: complete, but the loss never left its start)")
    for col in ("#", "trial", "scheme", "gain", "lr×", "score", "± std", "status", "s"):
        left = col in ("scheme", "status")
        table.add_column(col, justify="left" if left else "right", no_wrap=left)
    for i, r in enumerate(ranking(all_rows)[:limit], 1):
        status = "stalled" if r.stalled and r.status == TrialStatus.COMPLETE else r.status.value
        table.add_row(
            str(i),
            str(r.number),
            r.scheme,
            f"{r.gain:.3g}",
            f"{r.lr_scale:.3g}",
            "" if r.score is None else f"{r.score:.4g}",
            "" if r.score_std is None else f"{r.score_std:.2g}",
            status,
            "" if r.seconds is None else f"{r.seconds:.1f}",
        )
    return table


def write_outputs(config: TrialSource, study: optuna.Study) -> tuple[dict[str, Any] | None, list[Row]]:
    out = config.output
    out.mkdir(parents=True, exist_ok=True)
    all_rows = rows(study)
    write_trials_csv(out / "trials.csv", all_rows)
    summary = best_summary(config, all_rows)
    if summary is not None:
        write_best_yaml(out / "best.yaml", summary)
        plot_curves(out / "loss_curves.png", all_rows)
    return summary, all_rows
