"""Empirical std and bounds of the variance-scaling schemes against their formulas, on large layers."""

import math

import pytest
import torch
from torch import nn

from autoinit import AutoInitError, init_model
from autoinit.schemes import TRUNCATED_STD, normal

N_IN, N_OUT = 800, 600
RELU = math.sqrt(2.0)


def _relu_net():
    return nn.Sequential(nn.Linear(N_IN, N_OUT), nn.ReLU(), nn.Linear(N_OUT, 10))


def _std(scheme, gain=1.0, **options):
    model = _relu_net()
    init_model(model, scheme, gain, seed=0, **options)
    return model[0].weight.detach()


@pytest.mark.parametrize(
    ("scheme", "gain", "options", "expected_std"),
    [
        ("xavier_normal", 1.0, {}, math.sqrt(2 / (N_IN + N_OUT))),
        ("xavier_normal", 1.5, {}, 1.5 * math.sqrt(2 / (N_IN + N_OUT))),
        ("xavier_uniform", 1.0, {}, math.sqrt(6 / (N_IN + N_OUT)) / math.sqrt(3)),
        ("kaiming_normal", 1.0, {}, RELU / math.sqrt(N_IN)),
        ("kaiming_normal", 0.5, {"mode": "fan_out"}, 0.5 * RELU / math.sqrt(N_OUT)),
        ("kaiming_uniform", 1.0, {}, RELU * math.sqrt(3 / N_IN) / math.sqrt(3)),
        ("lecun_normal", 1.0, {}, 1 / math.sqrt(N_IN)),
        ("lecun_uniform", 2.0, {}, 2 * math.sqrt(3 / N_IN) / math.sqrt(3)),
        ("kaiming_normal", 1.0, {"distribution": "truncated_normal"}, RELU / math.sqrt(N_IN)),
        ("lecun_normal", 1.0, {"distribution": "truncated_normal"}, 1 / math.sqrt(N_IN)),
    ],
)
def test_std_matches_formula(scheme, gain, options, expected_std):
    w = _std(scheme, gain, **options)
    assert float(w.std()) == pytest.approx(expected_std, rel=0.01)
    assert float(w.mean()) == pytest.approx(0.0, abs=expected_std * 0.01)


@pytest.mark.parametrize(
    ("scheme", "bound"),
    [
        ("xavier_uniform", math.sqrt(6 / (N_IN + N_OUT))),
        ("kaiming_uniform", RELU * math.sqrt(3 / N_IN)),
        ("lecun_uniform", math.sqrt(3 / N_IN)),
    ],
)
def test_uniform_bounds(scheme, bound):
    w = _std(scheme)
    assert float(w.abs().max()) <= bound
    assert float(w.abs().max()) > 0.999 * bound


def test_truncated_normal_is_cut_at_two_scaled_sigma():
    w = _std("kaiming_normal", distribution="truncated_normal")
    std = RELU / math.sqrt(N_IN)
    cut = 2 * std / TRUNCATED_STD
    assert float(w.abs().max()) <= cut
    assert float(w.abs().max()) > 0.99 * cut


def test_kaiming_uses_gain_of_following_activation():
    model = nn.Sequential(
        nn.Linear(N_IN, N_OUT), nn.Tanh(), nn.Linear(N_OUT, N_OUT), nn.LeakyReLU(0.2), nn.Linear(N_OUT, 10)
    )
    report = init_model(model, "kaiming_normal", seed=0)
    assert report["0.weight"].std == pytest.approx(5 / 3 / math.sqrt(N_IN), rel=0.01)
    assert report["2.weight"].std == pytest.approx(math.sqrt(2 / 1.04) / math.sqrt(N_OUT), rel=0.01)
    assert report["4.weight"].std == pytest.approx(1 / math.sqrt(N_OUT), rel=0.02)


def test_conv_fans_are_channels_times_receptive_field():
    conv = nn.Sequential(nn.Conv2d(64, 128, 3), nn.ReLU())
    report = init_model(conv, "kaiming_normal", seed=0)
    row = report["0.weight"]
    assert (row.fan_in, row.fan_out) == (64 * 9, 128 * 9)
    assert row.std == pytest.approx(RELU / math.sqrt(64 * 9), rel=0.01)


def test_conv_transpose_fans_are_not_swapped():
    # ConvTranspose2d stores its weight (in, out, k, k); torch.nn.init would take fan_in = out·k².
    deconv = nn.ConvTranspose2d(96, 32, 4)
    report = init_model(deconv, "lecun_normal", seed=0)
    row = report["weight"]
    assert (row.fan_in, row.fan_out) == (96 * 16, 32 * 16)
    assert row.std == pytest.approx(1 / math.sqrt(96 * 16), rel=0.02)


def test_grouped_conv_fan_in_is_per_group():
    conv = nn.Conv1d(64, 64, 5, groups=4)
    assert init_model(conv, "lecun_normal", seed=0)["weight"].fan_in == 16 * 5


def test_embedding_fan_in_is_one_and_padding_row_zero():
    emb = nn.Embedding(5000, 64, padding_idx=3)
    report = init_model(emb, "kaiming_normal", gain=0.5, seed=0)
    assert (report["weight"].fan_in, report["weight"].fan_out) == (1, 64)
    assert float(emb.weight[torch.arange(5000) != 3].std()) == pytest.approx(0.5, rel=0.01)
    assert torch.count_nonzero(emb.weight[3]) == 0


def test_normal_helper_rejects_unknown_distribution():
    with pytest.raises(AutoInitError, match="truncated_normal"):
        normal(torch.empty(3), 1.0, distribution="cauchy")


def test_bad_mode_is_one_line_error():
    with pytest.raises(AutoInitError, match="fan_in"):
        init_model(_relu_net(), "kaiming_normal", mode="fan_middle")
