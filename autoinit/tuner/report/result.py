"""What a tune found, as a Python object: :class:`TuneResult` (read from the study, as the outputs are)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from autoinit.errors import AutoInitError
from autoinit.noise import quiet_optuna_info
from autoinit.tuner.records.best import Pick
from autoinit.tuner.records.record import own_init_is_default
from autoinit.tuner.report import transfer
from autoinit.tuner.report.outputs import Row, best_summary, curves_figure, ranking, rows, summary_line

# The Welch test lives in verdicts; re-exported here, where it was public first.
from autoinit.tuner.report.verdicts import SIGNIFICANCE_LEVEL as SIGNIFICANCE_LEVEL
from autoinit.tuner.report.verdicts import fit_line
from autoinit.tuner.report.verdicts import significant as significant
from autoinit.tuner.sources.source import TrialSource
from autoinit.tuner.storage import backend as storage

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from autoinit.tuner.report.pick import TunedAutoInit


@dataclass(frozen=True, kw_only=True)
class TuneResult:
    """The pick of a tune and the trials behind it.

    Attributes:
        pick: what the tune found, as best.yaml holds it (:class:`~autoinit.tuner.records.best.Pick`); its
            fields are also read here:
        scheme, gain, options: the best init (``AutoInit(scheme, gain, options=options)``).
        lr_scale: the best learning-rate factor when ``lr_scale`` was tuned, else None.
        score, score_std: its score (lower is better) and the std over init seeds.
        baseline_score: the model's own init's score (``as_built``), measured the same way: the baseline.
        default_score: PyTorch's default init's score (``reset_parameters``), when the study trained it.
        improvement: ``(baseline_score - score) / baseline_score`` (0.24: 24% below the model's own init).
        significant: whether the improvement exceeds the spread over seeds (Welch's t-test on the per-seed
            scores, two-sided, level 0.05); None with one seed.
        tied_with: the complete trials statistically tied with the pick (Welch p ≥ 0.05), best first, as
            best.yaml lists them (``scheme``, ``gain``, ``score``); None with one seed.
        objective: what the score measures ("auc", "final", "steps_to").
        proxy: the config overrides the study tuned on (``tune.proxy``), else None; then ``scheme``...
            ``ranking`` are the proxy's.
        transfer: the check of the proxy's pick on the full model (verdict, rows, cost), as best.yaml's
            ``transfer``; ``callback()`` follows what it recommends (``pick.recommends``).
        ranking: the measured trials, best first (complete, then pruned, pre-screened, diverged).
        trials: every trial, in trial order (failed and unfinished ones too).
        study_name, storage, output: where the study and its outputs are.
        interrupted: the tune was stopped (Ctrl-C) before it finished; the result is of the trials done.
    """

    pick: Pick = field(repr=False)
    ranking: list[Row]
    trials: list[Row]
    study_name: str
    storage: str
    output: Path
    interrupted: bool = False

    @property
    def scheme(self) -> str:
        return self.pick.scheme

    @property
    def gain(self) -> float:
        return self.pick.gain

    @property
    def options(self) -> dict[str, Any]:
        return self.pick.options

    @property
    def lr_scale(self) -> float | None:
        return self.pick.lr_scale

    @property
    def score(self) -> float | None:
        return self.pick.score

    @property
    def score_std(self) -> float | None:
        return self.pick.score_std

    @property
    def baseline_score(self) -> float | None:
        return self.pick.baseline_score

    @property
    def default_score(self) -> float | None:
        return self.pick.default_score

    @property
    def improvement(self) -> float | None:
        return self.pick.improvement

    @property
    def significant(self) -> bool | None:
        return self.pick.significant

    @property
    def tied_with(self) -> list[dict[str, Any]] | None:
        return self.pick.tied_with

    @property
    def objective(self) -> str | None:
        return self.pick.objective

    @property
    def proxy(self) -> dict[str, Any] | None:
        return self.pick.proxy

    @property
    def transfer(self) -> dict[str, Any] | None:
        return self.pick.transfer

    @classmethod
    def from_study(
        cls, source: TrialSource, study: optuna.Study, *, interrupted: bool = False, full: TrialSource | None = None
    ) -> TuneResult:
        """The result held by ``study``; a one-line error when no trial completed. ``full``: the full model
        of a proxy study (``source`` is then the proxy's), whose stored transfer check the result includes."""
        all_rows = rows(study)
        pick = best_summary(source, all_rows, own_init_is_default(study))
        if full is not None and pick is not None:
            pick = transfer.read_back(full, study, pick, all_rows)
        if pick is None:
            errors = [r.error for r in all_rows if r.error]
            why = f" (last error: {errors[-1]})" if errors else ""
            raise AutoInitError(
                f"no trial of study '{source.study_name}' completed{why}: nothing to pick; see "
                f"{source.output / 'trials.csv'} and fix the model, data or tune settings"
            )
        return cls(
            pick=dataclasses.replace(pick, study=source.study_name),
            ranking=ranking(all_rows),
            trials=all_rows,
            study_name=source.study_name,
            storage=storage.describe(source.settings, source.output),
            output=source.output,
            interrupted=interrupted,
        )

    @classmethod
    def load(cls, source: TrialSource, *, interrupted: bool = False, full: TrialSource | None = None) -> TuneResult:
        """The result of ``source``'s study, read from its storage (``full``: as :meth:`from_study`)."""
        quiet_optuna_info()
        study = optuna.load_study(
            study_name=source.study_name, storage=storage.open_storage(source.settings, source.output)
        )
        return cls.from_study(source, study, interrupted=interrupted, full=full)

    def plot(self, top: int = 4) -> Figure:
        """The loss curves of PyTorch's default, the best and the next trials (as ``loss_curves.png``)."""
        return curves_figure(self.trials, top, self.pick.trial)

    def to_yaml(self, path: str | Path) -> Path:
        """Write the pick as ``best.yaml`` is written (``AutoInit.from_file`` reads it)."""
        import yaml

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.pick.to_yaml_dict(), sort_keys=False))
        return path

    def callback(self, **overrides: Any) -> TunedAutoInit:
        """An ``AutoInit`` callback configured with the pick (and the tuned learning-rate factor), or with the
        baseline when the summary says to keep it (logged in one line); it logs the pick and its improvement
        to the fit's loggers. ``overrides`` go to the callback (``seed=...``)."""
        from lightning.pytorch.utilities import rank_zero_info

        from autoinit.tuner.report.pick import TunedAutoInit

        if self.pick.keep_baseline or self.pick.transfer:
            rank_zero_info(fit_line(self.pick))  # the callback may not be the pick's: say whose it is
        return TunedAutoInit.from_pick(self.pick, **overrides)

    def __str__(self) -> str:
        """The summary line ``autoinit tune`` prints (verdict over seeds and tied points included)."""
        return summary_line(self.pick, self.objective)
