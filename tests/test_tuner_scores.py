import math

import pytest

from autoinit.tuner.scores import curve_score, downsample, is_stalled, mean_curve, trial_score


def test_auc_final_steps_to():
    curve = [2.0, 1.5, 1.0, 0.8, 0.6, 0.5, 0.45, 0.4, 0.35, 0.3]
    assert curve_score(curve, "auc") == pytest.approx(sum(curve) / 10)
    assert curve_score(curve, "final") == pytest.approx(0.3)
    assert curve_score(curve, "steps_to", threshold=0.9) == 4.0
    assert curve_score(curve, "steps_to", threshold=0.1) == 10.0  # never reached: all the steps


def test_trial_score_mean_and_std_over_seeds():
    mean, std = trial_score([[1.0, 1.0], [3.0, 3.0]], "auc")
    assert (mean, std) == (2.0, 1.0)
    assert curve_score([], "auc") == math.inf


def test_stalled_when_loss_stays_at_start():
    flat = [2.3026 - 0.001 * (i % 3) for i in range(100)]
    learning = [2.3 * (0.98**i) for i in range(100)]
    assert is_stalled([flat, flat])
    assert not is_stalled([learning])
    assert mean_curve([[1.0, 2.0, 3.0], [3.0, 4.0]]) == [2.0, 3.0]


def test_downsample_keeps_ends():
    c = list(range(1000))
    d = downsample(c, 200)
    assert len(d) == 200 and d[0] == 0 and d[-1] == 999
