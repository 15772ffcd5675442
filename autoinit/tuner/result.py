"""What a tune found, as a Python object: :class:`TuneResult` (read from the study, as the outputs are)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from autoinit.errors import AutoInitError
from autoinit.tuner import storage
from autoinit.tuner.outputs import Row, best_summary, curves_figure, default_row, ranking, rows, summary_line
from autoinit.tuner.records import TrialStatus
from autoinit.tuner.source import TrialSource

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from autoinit.tuner.pick import TunedAutoInit

# Two-sided level of the Welch test behind ``TuneResult.significant``.
SIGNIFICANCE_LEVEL = 0.05


def significant(best: Row | None, default: Row | None, seeds: int) -> bool | None:
    """Whether the best trial's score beats PyTorch's default by more than the spread over init seeds
    (Welch's t-test on the per-seed scores, two-sided, level 0.05); None with fewer than 2 seeds."""
    if best is None or default is None or best.score is None or default.score is None:
        return None
    if best is default or best.score >= default.score:
        return False
    if seeds < 2 or best.score_std is None or default.score_std is None:
        return None
    # The stored std is over seeds with ddof=0; the test wants the sample std.
    correction = math.sqrt(seeds / (seeds - 1))
    sb, sd = best.score_std * correction, default.score_std * correction
    if sb == 0 and sd == 0:
        return True  # both measured exactly (deterministic): any gap is real
    from scipy.stats import ttest_ind_from_stats

    p = ttest_ind_from_stats(best.score, sb, seeds, default.score, sd, seeds, equal_var=False).pvalue
    return bool(p < SIGNIFICANCE_LEVEL)


@dataclass(frozen=True, kw_only=True)
class TuneResult:
    """The pick of a tune and the trials behind it.

    Attributes:
        scheme, gain, options: the best init (``AutoInit(scheme, gain, options=options)``).
        lr_scale: the best learning-rate factor when ``lr_scale`` was tuned, else None.
        score, score_std: its score (lower is better) and the std over init seeds.
        default_score: PyTorch's default init's score, measured the same way.
        improvement: ``(default_score - score) / default_score`` (0.24: 24% below PyTorch's default).
        significant: whether the improvement exceeds the spread over seeds (Welch's t-test, level 0.05);
            None with one seed.
        objective: what the score measures ("auc", "final", "steps_to").
        ranking: the measured trials, best first (complete, then pruned, pre-screened, diverged).
        trials: every trial, in trial order (failed and unfinished ones too).
        study_name, storage, output: where the study and its outputs are.
        interrupted: the tune was stopped (Ctrl-C) before it finished; the result is of the trials done.
    """

    scheme: str
    gain: float
    options: dict[str, Any]
    lr_scale: float | None
    score: float
    score_std: float | None
    default_score: float | None
    improvement: float | None
    significant: bool | None
    objective: str
    ranking: list[Row]
    trials: list[Row]
    study_name: str
    storage: str
    output: Path
    pick: dict[str, Any] = field(repr=False)
    interrupted: bool = False

    @classmethod
    def from_study(cls, source: TrialSource, study: optuna.Study, *, interrupted: bool = False) -> TuneResult:
        """The result held by ``study``; a one-line error when no trial completed."""
        all_rows = rows(study)
        summary = best_summary(source, all_rows)
        if summary is None:
            errors = [r.error for r in all_rows if r.error]
            why = f" (last error: {errors[-1]})" if errors else ""
            raise AutoInitError(
                f"no trial of study '{source.study_name}' completed{why}: nothing to pick; see "
                f"{source.output / 'trials.csv'} and fix the model, data or tune settings"
            )
        ranked = ranking(all_rows)
        best = next(r for r in ranked if r.status == TrialStatus.COMPLETE)
        sig = summary.get("significant", significant(best, default_row(all_rows), source.settings.seeds))
        pick = {**summary, "significant": sig, "study": source.study_name}
        return cls(
            scheme=summary["scheme"],
            gain=summary["gain"],
            options=dict(summary.get("options") or {}),
            lr_scale=summary.get("lr_scale"),
            score=summary["score"],
            score_std=summary.get("score_std"),
            default_score=summary.get("default_score"),
            improvement=summary.get("improvement"),
            significant=sig,
            objective=summary["objective"],
            ranking=ranked,
            trials=all_rows,
            study_name=source.study_name,
            storage=storage.describe(source.settings, source.output),
            output=source.output,
            pick=pick,
            interrupted=interrupted,
        )

    @classmethod
    def load(cls, source: TrialSource, *, interrupted: bool = False) -> TuneResult:
        """The result of ``source``'s study, read from its storage."""
        optuna.logging.set_verbosity(logging.WARNING)
        study = optuna.load_study(
            study_name=source.study_name, storage=storage.open_storage(source.settings, source.output)
        )
        return cls.from_study(source, study, interrupted=interrupted)

    def plot(self, top: int = 4) -> Figure:
        """The loss curves of PyTorch's default, the best and the next trials (as ``loss_curves.png``)."""
        return curves_figure(self.trials, top)

    def to_yaml(self, path: str | Path) -> Path:
        """Write the pick as ``best.yaml`` is written (``AutoInit.from_file`` reads it)."""
        import yaml

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.pick, sort_keys=False))
        return path

    def callback(self, **overrides: Any) -> TunedAutoInit:
        """An ``AutoInit`` callback configured with the pick (and the tuned learning-rate factor); it logs
        the pick and its improvement to the fit's loggers. ``overrides`` go to the callback (``seed=...``)."""
        from autoinit.tuner.pick import TunedAutoInit

        return TunedAutoInit.from_pick(self.pick, **overrides)

    def __str__(self) -> str:
        text = summary_line(self.pick, self.objective)
        if self.significant is not None and self.improvement:
            text += " — significant" if self.significant else " — within the spread over seeds"
        return text
