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

# A curve whose last 10% stays within this fraction of its first value has not started to learn.
STALL_FRACTION = 0.03


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
    """True when the seed-mean loss ends where it started: the init left the network unable to learn."""
    mean = mean_curve(curves)
    if len(mean) < 10:
        return False
    start, end = mean[0], float(np.mean(mean[-max(1, len(mean) // 10) :]))
    return end >= start * (1 - STALL_FRACTION)


def mean_curve(curves: Sequence[Sequence[float]]) -> list[float]:
    n = min(len(c) for c in curves)
    return np.mean([np.asarray(c[:n]) for c in curves], axis=0).tolist() if n else []


def downsample(curve: Sequence[float], points: int = 200) -> list[float]:
    """At most ``points`` evenly spaced values of a curve, to keep the study storage small."""
    if len(curve) <= points:
        return [float(v) for v in curve]
    idx = np.linspace(0, len(curve) - 1, points).round().astype(int)
    return [float(curve[i]) for i in idx]
