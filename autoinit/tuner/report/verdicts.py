"""Verdicts over the noise of init seeds: a score's standard error, whether the best beats the baseline (the
model's own init) beyond the spread over seeds, and which points are statistically tied with the best.

Pure functions over trial rows (:class:`autoinit.tuner.report.outputs.Row`, seen here through :class:`Scored` so
that ``outputs`` can import this module). The test is Welch's t-test on the per-seed scores, two-sided, at
level :data:`SIGNIFICANCE_LEVEL`; only complete trials of the study's full fidelity (``full``: all ``steps``
× ``seeds``) take part — a screening trial's score is on another scale.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from autoinit.tuner.records.best import Init, Pick
from autoinit.tuner.records.record import TrialStatus

# Two-sided level of every Welch test here.
SIGNIFICANCE_LEVEL = 0.05
# Tied points the summary line names before "and N more".
SHOWN_TIES = 3


class Scored(Protocol):
    """What a verdict reads of a trial row."""

    number: int
    status: TrialStatus
    scheme: str
    gain: float
    lr_scale: float
    score: float | None
    score_std: float | None
    full: bool
    stalled: bool


R = TypeVar("R", bound=Scored)


def tiebreak(scheme: str, gain: float, lr_scale: float, seed: int = 0) -> int:
    """Where a point goes among points of equal score: a seeded hash of the point (the halving search's
    order), never the trial number — a retried or resumed trial must not change the pick."""
    key = f"{seed}:{scheme}:{gain:.6g}:{lr_scale:.6g}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big")


def score_order(row: Scored) -> tuple[float, int, int]:
    """A row's place by score: lower first, equal scores by :func:`tiebreak` (the trial number last, for
    the same point measured twice)."""
    score = row.score if row.score is not None else math.inf
    return score, tiebreak(row.scheme, row.gain, row.lr_scale), row.number


def comparable(rows: Sequence[R]) -> list[R]:
    """The complete trials of full fidelity: the only ones a pick, the baseline or a tie may be."""
    return [r for r in rows if r.full and r.status == TrialStatus.COMPLETE and r.score is not None]


def standard_error(row: Scored, seeds: int) -> float | None:
    """The standard error of a full-fidelity row's mean score over ``seeds`` seeds (sample std / √seeds);
    None with one seed, a missing std, or a screening row (its seed count is not the study's)."""
    if not row.full or seeds < 2 or row.score_std is None:
        return None
    # score_std is the std over seeds with ddof=0: sample std = std·√(n/(n-1)), so SE = std/√(n-1).
    return row.score_std / math.sqrt(seeds - 1)


def welch_p(a: Scored, b: Scored, seeds: int) -> float | None:
    """Two-sided p-value of Welch's t-test that ``a`` and ``b`` have the same mean score, each measured over
    ``seeds`` seeds; None when no test is possible (one seed, a missing score or std)."""
    if a.score is None or b.score is None or a.score_std is None or b.score_std is None or seeds < 2:
        return None
    se_a, se_b = standard_error(a, seeds), standard_error(b, seeds)
    if se_a is None or se_b is None:
        return None
    if se_a == 0 and se_b == 0:
        # both measured without spread (a seed-independent model): any gap is real, none is a tie
        return 1.0 if a.score == b.score else 0.0
    from scipy.stats import ttest_ind_from_stats

    correction = math.sqrt(seeds / (seeds - 1))  # the test wants the sample std
    p = ttest_ind_from_stats(
        a.score, a.score_std * correction, seeds, b.score, b.score_std * correction, seeds, equal_var=False
    ).pvalue
    return float(p)


def significant(best: Scored | None, default: Scored | None, seeds: int) -> bool | None:
    """Whether ``best`` scores below the baseline ``default`` (the model's own init) by more than the spread
    over init seeds (Welch's t-test, two-sided, level 0.05); False when it does not score below at all; None
    when no test is possible (one seed, no baseline measured) or none is meaningful (either one stalled: a
    flat loss's spread over seeds is no measure of noise)."""
    if best is None or default is None or best.score is None or default.score is None:
        return None
    if best is default or best.score >= default.score:
        return False
    if best.stalled or default.stalled:
        return None
    p = welch_p(best, default, seeds)
    return None if p is None else p < SIGNIFICANCE_LEVEL


def tied_with(best: R, rows: Sequence[R], seeds: int) -> list[R] | None:
    """The complete full-fidelity trials other than ``best`` that Welch's test cannot tell apart from it
    (p ≥ 0.05), best first; None with one seed (no test possible)."""
    if seeds < 2:
        return None
    tied = []
    for r in comparable(rows):
        if r is best or r.number == best.number:
            continue
        p = welch_p(best, r, seeds)
        if p is not None and p >= SIGNIFICANCE_LEVEL:
            tied.append(r)
    return sorted(tied, key=score_order)


def proven_pick(ranked: Sequence[R], baseline: R | None, seeds: int) -> R:
    """The pick among the complete full-fidelity points ``ranked`` (best score first): the lowest score,
    unless it does not beat the ``baseline`` (the model's own init) beyond the spread over seeds while points
    tied with it do — then the lowest-scoring of those.

    The seeds cannot tell tied points apart, so any of them is as good a pick by the evidence; only a proven
    one is known to beat what the user already has. Asking several points the same question finds a
    "beyond noise" by chance more often than 5%, so the family — the lowest score and the points tied with
    it — is tested with Holm's step-down correction (Holm 1979) at :data:`SIGNIFICANCE_LEVEL`: a point is
    proven when its p-value and every smaller one pass α/(points left). (Measured on the HF BERT template:
    the lowest mean, Yam–Chow·1.26, 0.583 ± 0.033 over 3 seeds, was not beyond noise of the own init's
    0.689 ± 0.001, while the tied delta-orthogonal·0.79, 0.603 ± 0.005, was, even so corrected.)
    """
    best = ranked[0]
    if baseline is None or significant(best, baseline, seeds) is not False:
        return best
    family = [best, *(r for r in tied_with(best, ranked, seeds) or () if r.number != baseline.number)]
    proven = _holm_proven(family, baseline, seeds)
    return min(proven, key=score_order) if proven else best


def _holm_proven(family: Sequence[R], baseline: Scored, seeds: int) -> list[R]:
    """The points of ``family`` that beat ``baseline`` beyond noise under Holm's correction."""

    def p_below(r: R) -> float:
        # one-sided evidence only: ``significant`` is False for a point not scoring below the baseline and
        # None where no test means anything (a stall, one seed); neither proves anything
        p = welch_p(r, baseline, seeds) if significant(r, baseline, seeds) is not None else None
        return 1.0 if p is None or r.score >= baseline.score else p

    tested = sorted((p_below(r), i, r) for i, r in enumerate(family))
    proven = []
    for rank, (p, _, r) in enumerate(tested):
        if p >= SIGNIFICANCE_LEVEL / (len(tested) - rank):
            break
        proven.append(r)
    return proven


def point(row: Scored, *, with_lr: bool, scored: bool = True) -> dict[str, Any]:
    """A row as best.yaml's ``tied_with`` lists it (``scored``: with its score; the ``baseline``: without)."""
    lr_scale = round(row.lr_scale, 6) if with_lr else None
    return Init(
        scheme=row.scheme, gain=round(row.gain, 6), score=row.score if scored else None, lr_scale=lr_scale
    ).to_yaml_dict()


def baseline_kept(pick: Pick) -> str | None:
    """Why the verdict is to keep the baseline instead of the pick, or None when the pick stands: the
    baseline scored best itself, no init beats it beyond the spread over seeds, or the pick's loss stalled.
    The one rule the summary line, ``autoinit fit`` and ``TuneResult.callback()`` follow."""
    if pick.baseline_score is None:
        return None
    if _is_baseline(pick):
        return "it scored best itself"
    if pick.stalled:
        return "the pick's loss stalled"
    if pick.significant is False:
        return f"no init beats it beyond the spread over seeds (Welch, {pick.seeds} seeds)"
    return None


def recommended(pick: Pick) -> Init:
    """The init a fit uses: a proxy study's ``recommends`` (its transfer check's), else the baseline when
    kept (``keep_baseline``), else the pick. The one rule ``autoinit fit`` and ``TuneResult.callback()``
    follow."""
    if (rec := pick.recommended_init) is not None:
        return rec
    if pick.keep_baseline and (base := pick.baseline_init) is not None:
        return base
    return pick.init


def fit_line(pick: Pick) -> str:
    """What a fit trains with, in one line: the pick, or the baseline and why."""
    if pick.recommends:
        return "fitting with " + _transfer_choice(pick)
    why = baseline_kept(pick)
    if why is None:
        return f"fitting with the pick: {pick.scheme} gain={pick.gain:.3g}"
    return f"fitting with the model's own init (as built), not the pick {pick.scheme}: {why}"


def _is_baseline(pick: Pick) -> bool:
    """Whether the pick is the baseline itself."""
    base = pick.baseline_init
    return base is not None and pick.scheme == base.scheme and pick.improvement == 0


def verdict_text(pick: Pick) -> str:
    """The summary line's verdict, from the pick's ``significant``, ``tied_with``, ``seeds``, ``baseline``,
    ``baseline_score``, ``scheme``, ``improvement``; empty when there is nothing to judge."""
    seeds = pick.seeds or 1
    sig = pick.significant
    parts = []
    if pick.baseline_score is None:
        pass  # no baseline measured: nothing to say about it
    elif _is_baseline(pick):
        parts.append("the model's own init itself scored best: keep it")
    elif pick.stalled:
        parts.append("the pick's loss stalled (never fell beyond its noise): keep the model's own init")
    elif seeds < 2:
        parts.append("one seed: no test over seeds")
    elif pick.baseline_stalled:
        parts.append("the model's own init stalled (its loss never fell beyond its noise): no test over seeds")
    elif sig is None:
        parts.append("no test over seeds (no spread recorded)")
    elif sig:
        parts.append(f"beyond noise (Welch, {seeds} seeds)")
    else:
        parts.append(f"no init beats the model's own init beyond the spread over seeds (Welch, {seeds} seeds): keep it")
    tied = pick.tied
    lower = [t for t in tied if t.score is not None and pick.score is not None and t.score < pick.score]
    if lower and sig:
        # the pick is not the lowest mean: say why (``proven_pick``)
        parts.append(f"picked over {_label(lower[0])}: lower, but not beyond noise of the own init")
    if tied:
        names = [_label(t) for t in tied[:SHOWN_TIES]]
        more = f" and {len(tied) - SHOWN_TIES} more" if len(tied) > SHOWN_TIES else ""
        parts.append("tied: " + ", ".join(names) + more)
    return "; ".join(parts)


# How the summary names what a transfer check recommends, by its role (transfer.Role's values).
_ROLE_NAMES = {"pick": "the pick", "runner_up": "the proxy's runner-up", "baseline": "the model's own init"}


def _transfer_choice(pick: Pick) -> str:
    """``the pick kaiming_normal gain=1.2``: what a proxy study's transfer check recommends."""
    rec = pick.recommended_init
    assert rec is not None and rec.role is not None
    what = _ROLE_NAMES[rec.role]
    if rec.role != "baseline":
        what += f" {rec.scheme} gain={rec.gain:.3g}"
        if rec.lr_factor != 1.0:
            what += f" lr×{rec.lr_factor:.3g}"
    return what


def transfer_text(pick: Pick) -> str:
    """The summary line's account of a proxy study's transfer check ("" without one): the verdict, why,
    what best.yaml recommends, and the cost against a study of the full model."""
    transfer = pick.transfer
    if not transfer:
        return ""
    verdict = {"transferred": "transferred", "tied": "tied", "not_transferred": "did not transfer"}[transfer["verdict"]]
    line = f"on the full model the pick {verdict} ({transfer['reason']}): best.yaml recommends "
    line += _transfer_choice(pick)
    c = transfer.get("cost") or {}
    if c.get("share_of_full_study") is not None:
        line += (
            f"; proxy study + check {c['proxy_seconds'] + c['check_seconds']:.0f} s, "
            f"{c['share_of_full_study']:.0%} of a full-model study's estimated {c['full_study_seconds_estimate']:.0f} s"
        )
    return line


def _label(point: Init) -> str:
    lr = f" lr×{point.lr_scale:.3g}" if point.lr_scale is not None else ""
    return f"{point.scheme}·{point.gain:.3g}{lr} ({point.score:.3g})"
