"""Verdicts over seeds: standard errors, Welch's test against the baseline (the model's own init), statistical
ties — on
hand-built rows whose per-seed scores are known, with p-values computed independently from the raw
samples."""

import math

import numpy as np
import pytest
from scipy.stats import ttest_ind

from autoinit.tuner.records.record import TrialStatus
from autoinit.tuner.report.outputs import Row, baseline_row, best_summary, ranking, summary_line
from autoinit.tuner.report.verdicts import (
    comparable,
    fit_line,
    significant,
    standard_error,
    tied_with,
    verdict_text,
    welch_p,
)

_numbers = iter(range(10_000))


def row(scheme, per_seed, gain=1.0, status=TrialStatus.COMPLETE, full=True, number=None, stalled=False):
    """A row whose score and std (ddof=0, as the tuner stores it) come from per-seed scores."""
    values = np.asarray(per_seed, dtype=float)
    return Row(
        number=next(_numbers) if number is None else number,
        status=status,
        scheme=scheme,
        gain=gain,
        lr_scale=1.0,
        score=float(values.mean()) if status == TrialStatus.COMPLETE else None,
        score_std=float(values.std()),
        seconds=1.0,
        stalled=stalled,
        error="",
        curve=[1.0],
        full=full,
    )


def test_standard_error_is_the_sample_std_over_root_seeds():
    samples = [1.0, 1.3, 0.8]
    r = row("orthogonal", samples)
    assert standard_error(r, 3) == pytest.approx(np.std(samples, ddof=1) / math.sqrt(3))
    assert standard_error(r, 3) == pytest.approx(0.14529663, rel=1e-6)
    assert standard_error(row("orthogonal", [1.0]), 1) is None
    assert standard_error(row("orthogonal", samples, full=False), 3) is None  # its seed count is not the study's


def test_welch_p_matches_the_test_on_the_raw_samples():
    # By hand: means 2 and 5, sample variances 1 and 1 → t = -3/√(2/3) = -3.674, df = 4, p = 0.0213.
    a, b = row("a", [1, 2, 3]), row("b", [4, 5, 6])
    assert welch_p(a, b, 3) == pytest.approx(0.02131, abs=1e-5)
    # Unequal spreads: Welch's df, checked against scipy on the samples themselves.
    x, y = [2.10, 2.31, 2.02, 2.25], [2.30, 2.29, 2.33, 2.28]
    assert welch_p(row("x", x), row("y", y), 4) == pytest.approx(ttest_ind(x, y, equal_var=False).pvalue, rel=1e-9)
    assert welch_p(row("x", [1.0]), row("y", [2.0]), 1) is None


def test_welch_p_without_spread_is_exact():
    assert welch_p(row("a", [1.0, 1.0]), row("b", [2.0, 2.0]), 2) == 0.0
    assert welch_p(row("a", [1.0, 1.0]), row("b", [1.0, 1.0]), 2) == 1.0


def test_significant_against_the_default():
    default = row("default", [2.30, 2.31, 2.29])
    clear = row("kaiming_normal", [1.90, 1.95, 1.85])  # p ≈ 1e-3
    noisy = row("xavier_uniform", [2.0, 2.5, 2.2])  # 2.23 vs 2.30: p ≈ 0.6
    assert ttest_ind([1.90, 1.95, 1.85], [2.30, 2.31, 2.29], equal_var=False).pvalue < 0.05
    assert ttest_ind([2.0, 2.5, 2.2], [2.30, 2.31, 2.29], equal_var=False).pvalue > 0.05
    assert significant(clear, default, 3) is True
    assert significant(noisy, default, 3) is False
    assert significant(default, default, 3) is False
    assert significant(row("worse", [2.5, 2.6, 2.7]), default, 3) is False  # not below the default at all
    assert significant(row("one", [1.0]), row("default", [2.0]), 1) is None
    assert significant(clear, None, 3) is None


def test_tied_points_are_those_welch_cannot_tell_from_the_best():
    best = row("lsuv", [1.00, 1.02, 0.98], gain=0.5)
    near = row("orthogonal", [1.01, 1.05, 0.99])  # p ≈ 0.4: tied
    noisy = row("kaiming_normal", [0.9, 1.4, 1.1])  # wide spread: tied
    apart = row("xavier_normal", [1.30, 1.31, 1.29])  # p < 0.01: not tied
    screening = row("lecun_normal", [1.00, 1.01, 0.99], full=False)  # another fidelity: never tied
    pruned = row("auto", [1.0, 1.0, 1.0], status=TrialStatus.PRUNED)
    rows = [best, near, noisy, apart, screening, pruned]
    for other, tie in ((near, True), (noisy, True), (apart, False)):
        p = ttest_ind([1.00, 1.02, 0.98], _samples(other), equal_var=False).pvalue
        assert bool(p >= 0.05) is tie
    assert tied_with(best, rows, 3) == [near, noisy]  # best first
    assert tied_with(best, rows, 1) is None


def _samples(r):
    return {
        "orthogonal": [1.01, 1.05, 0.99],
        "kaiming_normal": [0.9, 1.4, 1.1],
        "xavier_normal": [1.30, 1.31, 1.29],
    }[r.scheme]


def test_screening_rows_never_pick_nor_serve_as_the_baseline():
    low = row("lsuv", [0.1, 0.1, 0.1], full=False)
    default_low = row("as_built", [0.2, 0.2, 0.2], full=False)
    best = row("orthogonal", [1.0, 1.1, 0.9])
    default = row("as_built", [2.3, 2.3, 2.3])
    rows = [low, default_low, best, default]
    assert ranking(rows)[:2] == [best, default] and ranking(rows)[2:] == [low, default_low]
    assert baseline_row(rows) is default
    assert comparable(rows) == [best, default]


class _Source:
    """What best_summary reads of a config."""

    def __init__(self, seeds):
        from autoinit.tuner.sources.settings import TuneSettings

        self.settings = TuneSettings(seeds=seeds, steps=10)

    def sha256(self):
        return "0" * 64


def test_best_summary_and_summary_line_when_the_best_beats_the_baseline():
    rows = [
        row("as_built", [2.30, 2.31, 2.29]),
        row("kaiming_normal", [1.90, 1.95, 1.85]),
        row("orthogonal", [1.91, 1.97, 1.86], gain=1.41),
        row("xavier_normal", [2.2, 2.21, 2.19]),
        row("lsuv", [0.5, 0.5, 0.5], full=False),  # lower, but a screening score: not the pick
    ]
    summary = best_summary(_Source(3), rows)
    assert summary.scheme == "kaiming_normal" and summary.significant is True
    assert summary.tied_with == [{"scheme": "orthogonal", "gain": 1.41, "score": pytest.approx(1.913333333)}]
    line = summary_line(summary, "auc")
    assert line == (
        "best: kaiming_normal gain=1 — early-loss AUC 1.9 vs 2.3 with the model's own init (-17%), "
        "beyond noise (Welch, 3 seeds); tied: orthogonal·1.41 (1.91)"
    )


def test_summary_line_when_nothing_beats_the_baseline_says_keep_it():
    rows = [
        row("as_built", [2.30, 2.31, 2.29]),
        row("xavier_uniform", [2.0, 2.5, 2.2]),
        row("lecun_normal", [2.28, 2.35, 2.29]),
        *[row("orthogonal", [2.1, 2.6, 2.3], gain=g) for g in (0.5, 0.71, 1.41)],
    ]
    summary = best_summary(_Source(3), rows)
    assert summary.scheme == "xavier_uniform" and summary.significant is False
    assert [t["scheme"] for t in summary.tied_with] == [
        "as_built",
        "lecun_normal",
        "orthogonal",
        "orthogonal",
        "orthogonal",
    ]
    assert summary_line(summary, "auc") == (
        "best: xavier_uniform gain=1 — early-loss AUC 2.23 vs 2.3 with the model's own init (-3%), no init beats "
        "the model's own init beyond the spread over seeds (Welch, 3 seeds): keep it; tied: as_built·1 (2.3), "
        "lecun_normal·1 (2.31), orthogonal·1.41 (2.33) and 2 more"  # equal scores: in tiebreak order
    )


def test_one_seed_says_no_test_is_possible():
    rows = [row("as_built", [2.3]), row("kaiming_normal", [1.9])]
    summary = best_summary(_Source(1), rows)
    assert summary.significant is None and summary.tied_with is None
    assert summary_line(summary, "auc").endswith("(-17%), one seed: no test over seeds")


def test_the_baseline_itself_best():
    rows = [row("as_built", [2.0, 2.01, 1.99]), row("xavier_uniform", [2.3, 2.31, 2.29])]
    summary = best_summary(_Source(3), rows)
    assert summary.significant is False and summary.tied_with == []
    assert verdict_text(summary) == "the model's own init itself scored best: keep it"


def test_improvement_is_against_the_models_own_init_and_pytorchs_default_is_shown_beside_it():
    """A library model (GPT-2-like): PyTorch's reset_parameters is far worse than what the model had, so an
    improvement against it would flatter the pick; the baseline is the model's own init."""
    rows = [
        row("as_built", [3.40, 3.38, 3.39]),
        row("default", [39.0, 39.2, 39.1]),
        row("xavier_uniform", [3.05, 3.04, 3.06], gain=0.5),
    ]
    summary = best_summary(_Source(3), rows, own_init_is_default=False)
    assert summary.baseline["scheme"] == "as_built" and summary.baseline_score == pytest.approx(3.39)
    assert summary.improvement == pytest.approx((3.39 - 3.05) / 3.39)
    assert summary.default_score == pytest.approx(39.1)
    assert summary_line(summary, "auc").startswith(
        "best: xavier_uniform gain=0.5 — early-loss AUC 3.05 vs 3.39 with the model's own init (-10%); "
        "PyTorch default 39.1, beyond noise"
    )


def test_a_model_without_an_init_of_its_own_names_the_baseline_once():
    rows = [row("as_built", [2.30, 2.31, 2.29]), row("default", [2.31, 2.3, 2.3]), row("lsuv", [1.9, 1.95, 1.85])]
    line = summary_line(best_summary(_Source(3), rows, own_init_is_default=True), "auc")
    assert "vs 2.3 with the model's own init (PyTorch's default) (-17%), beyond noise" in line
    assert "PyTorch default 2.3" not in line


def test_equal_scores_rank_by_the_point_not_the_trial_number():
    """A retried or resumed trial gets a new number: the pick among equal scores must not follow it."""
    picks = set()
    for numbers in ((0, 1, 2), (2, 1, 0), (5, 9, 3)):
        rows = [
            row("orthogonal", [1.0, 1.2], number=numbers[0]),
            row("delta_orthogonal", [1.0, 1.2], number=numbers[1]),
            row("kaiming_normal", [1.0, 1.2], gain=1.41, number=numbers[2]),
        ]
        ranked = ranking(rows)
        picks.add(tuple((r.scheme, r.gain) for r in ranked))
        assert [t.scheme for t in tied_with(ranked[0], rows, 2)] == [r.scheme for r in ranked[1:]]
    assert len(picks) == 1


# ---- verdicts that never mislead (issue 21) ------------------------------------------------------------


def test_beyond_noise_is_never_said_when_the_baseline_stalled():
    # The quick start: the model's own init (PyTorch's default) sits flat at chance (std over seeds 0.0003), so
    # Welch calls any learning init "beyond noise" — a flat loss's spread is no measure of noise.
    rows = [
        row("as_built", [2.3047, 2.3045, 2.3043], stalled=True),
        row("lsuv", [1.76, 1.82, 1.88], gain=0.5),
    ]
    summary = best_summary(_Source(3), rows)
    assert summary.significant is None and summary.baseline_stalled is True and not summary.keep_baseline
    line = summary_line(summary, "auc")
    assert "beyond noise" not in line and "the model's own init stalled" in line
    assert fit_line(summary) == "fitting with the pick: lsuv gain=0.5"


def test_a_stalled_pick_keeps_the_baseline():
    rows = [
        row("as_built", [2.3047, 2.3045, 2.3043], stalled=True),
        row("xavier_uniform", [2.3026, 2.3027, 2.3025], stalled=True),
    ]
    summary = best_summary(_Source(3), rows)
    assert summary.significant is None and summary.keep_baseline is True
    line = summary_line(summary, "auc")
    assert "beyond noise" not in line and "keep the model's own init" in line


def test_when_the_summary_says_keep_the_baseline_the_callback_keeps_it(caplog):
    import logging
    from pathlib import Path

    from autoinit.tuner.report.result import TuneResult

    rows = [
        row("as_built", [2.30, 2.31, 2.29]),
        row("xavier_uniform", [2.0, 2.5, 2.2], gain=1.26),  # lower by mean, not beyond the spread over seeds
    ]
    summary = best_summary(_Source(3), rows)
    assert "keep it" in summary_line(summary, "auc") and summary.keep_baseline is True
    assert fit_line(summary) == (
        "fitting with the model's own init (as built), not the pick xavier_uniform: no init beats it beyond the "
        "spread over seeds (Welch, 3 seeds)"
    )
    result = TuneResult(pick=summary, ranking=rows, trials=rows, study_name="s", storage="memory", output=Path("."))
    with caplog.at_level(logging.INFO):
        callback = result.callback()
    assert (callback.scheme, callback.gain, callback.lr_scale) == ("as_built", 1.0, 1.0)
    assert [r.getMessage() for r in caplog.records if "fitting with" in r.getMessage()] == [fit_line(summary)]
    assert callback.pick.scheme == "xavier_uniform"  # what the tune found is still logged as the pick


def test_a_tied_point_proven_better_than_the_baseline_is_picked_over_an_unproven_lower_mean():
    # The lowest mean spreads widely over seeds (not beyond noise of the own init: p ≈ 0.09); a point Welch
    # cannot tell from it scores a little higher with a tight spread and beats the own init (p ≈ 0.003).
    own, wide, tight = [0.688, 0.689, 0.691], [0.525, 0.585, 0.64], [0.598, 0.602, 0.607]
    assert ttest_ind(wide, own, equal_var=False).pvalue > 0.05
    assert ttest_ind(tight, own, equal_var=False).pvalue < 0.05
    assert ttest_ind(wide, tight, equal_var=False).pvalue > 0.05
    rows = [
        row("as_built", own),
        row("yam_chow", wide, gain=1.26),
        row("delta_orthogonal", tight, gain=0.794),
        row("kaiming_normal", [0.64, 0.66, 0.70], gain=1.59),
    ]
    summary = best_summary(_Source(3), rows)
    assert (summary.scheme, summary.gain) == ("delta_orthogonal", 0.794)
    assert summary.significant is True and summary.keep_baseline is False
    assert summary.improvement == pytest.approx((np.mean(own) - np.mean(tight)) / np.mean(own))
    assert summary.tied_with[0] == {"scheme": "yam_chow", "gain": 1.26, "score": pytest.approx(np.mean(wide))}
    line = summary_line(summary, "auc")
    assert "beyond noise (Welch, 3 seeds); picked over yam_chow·1.26 (0.583): lower, but not beyond noise" in line
    assert fit_line(summary) == "fitting with the pick: delta_orthogonal gain=0.794"


def test_without_a_proven_tied_point_the_lowest_mean_stays_and_the_baseline_is_kept():
    own = [0.688, 0.689, 0.691]
    rows = [
        row("as_built", own),
        row("yam_chow", [0.525, 0.585, 0.64], gain=1.26),
        row("kaiming_normal", [0.60, 0.66, 0.70], gain=1.59),  # tied, but not beyond noise either
    ]
    summary = best_summary(_Source(3), rows)
    assert summary.scheme == "yam_chow" and summary.significant is False and summary.keep_baseline is True
    assert "picked over" not in summary_line(summary, "auc")


def test_a_tied_point_beyond_noise_only_by_chance_of_many_questions_is_not_proven():
    # Holm over the family (the lowest mean and its one tied point): p ≈ 0.03 passes 0.05 alone, but not
    # 0.05/2 — asking two points, one such pass is no proof — so the own init is kept.
    own, wide, near = [0.688, 0.689, 0.691], [0.525, 0.585, 0.64], [0.655, 0.665, 0.672]
    p_near = ttest_ind(near, own, equal_var=False).pvalue
    assert 0.05 / 2 < p_near < 0.05
    assert ttest_ind(wide, near, equal_var=False).pvalue > 0.05  # tied with the lowest mean
    summary = best_summary(_Source(3), [row("as_built", own), row("yam_chow", wide), row("lecun_normal", near)])
    assert summary.scheme == "yam_chow" and summary.significant is False and summary.keep_baseline is True


def test_the_loss_curves_show_the_pick_wherever_it_ranks():
    from autoinit.tuner.report.outputs import curves_figure

    own = row("as_built", [0.69, 0.69, 0.69])
    others = [row("orthogonal", [0.5 + i / 100] * 3, gain=1 + i) for i in range(6)]
    pick = others[-1]  # ranked last of the six
    labels = [line.get_label() for line in curves_figure([own, *others], top=2, pick=pick.number).axes[0].lines]
    assert labels == [
        f"#{own.number} as_built (the model's own init)",
        f"#{pick.number} orthogonal gain=6",
        f"#{others[0].number} orthogonal gain=1",
    ]
