"""Scores of a trial's loss curves: lower is better.

- ``auc``: the mean training loss over the trial's steps (the area under the early loss curve per step),
- ``final``: the mean loss over the last 10% of the steps,
- ``steps_to``: the number of steps until the loss first falls below ``threshold`` (``steps`` if never).

A trial's score is the mean over its seeds; the std over seeds is reported beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# A curve is stalled when its fall from its first quarter to its last is within STALL_Z standard errors of its
# own step-to-step noise (a flat noisy curve is called learning about once in fifty: a cut ranks it among the
# stalled or not, nothing is dropped for it), or under STALL_FLOOR of its start: a net at chance drifts down
# smoothly by a fraction of a percent (the quick start's stalled baseline: 0.09% in 100 steps) while one that
# learns falls by percents even in a 16-step prefix.
STALL_Z = 2.0
STALL_FLOOR = 0.01


def curve_score(curve: Sequence[float], objective: str, threshold: float | None = None) -> float:
    """The score of one seed's per-step loss curve."""
    values = np.asarray(curve, dtype=np.float64)
    if values.size == 0:
        return math.inf
    if objective == "auc":
        return float(values.mean())
    if objective == "final":
        return float(values[-max(1, values.size // 10) :].mean())
    if objective == "steps_to":
        below = np.flatnonzero(values < threshold)
        return float(below[0] + 1) if below.size else float(values.size)
    raise ValueError(f"unknown objective '{objective}'")


def trial_score(
    curves: Sequence[Sequence[float]], objective: str, threshold: float | None = None
) -> tuple[float, float]:
    """Mean and std over seeds of the per-seed scores."""
    scores = np.array([curve_score(c, objective, threshold) for c in curves])
    return float(scores.mean()), float(scores.std()) if scores.size > 1 else 0.0


def is_stalled(curves: Sequence[Sequence[float]]) -> bool:
    """True when the seed-mean loss did not fall beyond its own noise: the init left the network unable to
    learn (for now). The one definition of "stalled", for the outputs, the verdicts and the search's cuts.

    With q = a quarter of the curve: the fall = median(first q) - mean(last q) (a median, so a first-step
    transient is no fall), the per-step noise σ = 1.4826·MAD(Δloss)/√2 (robust to trends and spikes), and
    the fall's standard error σ·√((π/2 + 1)/q); stalled when the fall ≤ max(STALL_Z standard errors,
    STALL_FLOOR·|start|). A curve still in its first-step transient at the end of a short prefix is not
    stalled; one that sits flat (or rises) is.
    """
    mean = np.asarray(mean_curve(curves), dtype=np.float64)
    if mean.size < 4 or not np.all(np.isfinite(mean)):
        return False
    q = max(2, mean.size // 4)
    start, end = float(np.median(mean[:q])), float(mean[-q:].mean())
    steps = np.diff(mean)
    sigma = 1.4826 * float(np.median(np.abs(steps - np.median(steps)))) / math.sqrt(2)
    error = sigma * math.sqrt((math.pi / 2 + 1) / q)
    return start - end <= max(STALL_Z * error, STALL_FLOOR * abs(start))


def mean_curve(curves: Sequence[Sequence[float]]) -> list[float]:
    n = min(len(c) for c in curves)
    return np.mean([np.asarray(c[:n]) for c in curves], axis=0).tolist() if n else []


def downsample(curve: Sequence[float], points: int = 200) -> list[float]:
    """At most ``points`` evenly spaced values of a curve, to keep the study storage small."""
    if len(curve) <= points:
        return [float(v) for v in curve]
    idx = np.linspace(0, len(curve) - 1, points).round().astype(int)
    return [float(curve[i]) for i in idx]
