import math

import numpy as np
import pytest

from autoinit.tuner.records.scores import curve_score, downsample, is_stalled, mean_curve, trial_score


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


def test_stalled_is_a_fall_within_noise_not_a_first_step_transient():
    rng = np.random.default_rng(0)
    noise = lambda n: rng.normal(0, 0.01, n)  # noqa: E731
    # a 16-step prefix: a first-step spike, then learning (falls 1.4%: the quick start's lsuv·0.5) -- was
    # stalled by the old rule (end within 3% of start) only when the spike was absent; both are learning here
    learning = [2.39, *(2.31 - 0.003 * i + e for i, e in enumerate(noise(15)))]
    assert not is_stalled([learning])
    slow_start = [2.293 - 0.004 * i + e for i, e in enumerate(noise(16))]  # auto·1: falls 2.2%, was "stalled"
    assert not is_stalled([slow_start])
    # a spike, then flat at chance: stalled (was "learning": its end sat far below its first, spiked step)
    spike_then_flat = [3.6, *(2.303 + e for e in rng.normal(0, 0.002, 15))]
    assert is_stalled([spike_then_flat])
    # flat at chance, drifting down smoothly by 0.1% in 100 steps (the quick start's PyTorch default): stalled
    drift = [2.309 - 0.00004 * i for i in range(100)]
    assert is_stalled([drift])
    assert is_stalled([[1.0, 1.0, 1.0, 1.0]]) and not is_stalled([[1.0, 0.5]])  # too short to tell: not stalled


def test_downsample_keeps_ends():
    c = list(range(1000))
    d = downsample(c, 200)
    assert len(d) == 200 and d[0] == 0 and d[-1] == 999
