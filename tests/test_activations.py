import math

import pytest
import torch
from torch import nn

from autoinit.activations import (
    Activation,
    activation_from_name,
    activation_of_module,
    gain,
    non_saturated_width,
    output_range,
)


@pytest.mark.parametrize(
    ("act", "expected"),
    [
        (Activation("relu"), math.sqrt(2)),
        (Activation("leaky_relu", 0.2), math.sqrt(2 / 1.04)),
        (Activation("tanh"), 5 / 3),
        (Activation("sigmoid"), 1.0),
        (Activation("linear"), 1.0),
        (Activation("selu"), 1.0),  # self-normalizing choice, not calculate_gain's 3/4
    ],
)
def test_gain_matches_pytorch_values(act, expected):
    assert gain(act) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", ["gelu", "silu", "elu", "mish", "softplus"])
def test_numerical_gain_is_inverse_rms_under_gaussian(name):
    z = torch.randn(4_000_000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    fn = {
        "gelu": torch.nn.functional.gelu,
        "silu": torch.nn.functional.silu,
        "elu": torch.nn.functional.elu,
        "mish": torch.nn.functional.mish,
        "softplus": torch.nn.functional.softplus,
    }[name]
    monte_carlo = 1 / math.sqrt(float((fn(z) ** 2).mean()))
    assert gain(Activation(name)) == pytest.approx(monte_carlo, rel=2e-3)


def test_numerical_rule_reproduces_relu_sqrt2():
    from autoinit.activations import _numerical_gain

    assert _numerical_gain("relu", None) == pytest.approx(math.sqrt(2), rel=1e-4)


def test_non_saturated_width_sigmoid_is_yam_chow_872():
    # sigmoid'(z) = s(1-s) >= 1/80  <=>  |z| <= ln((1+√0.95)/(1-√0.95)) = 4.3567
    assert non_saturated_width(Activation("sigmoid")) == pytest.approx(8.7134, abs=1e-3)
    assert non_saturated_width(Activation("tanh")) == pytest.approx(2 * math.atanh(math.sqrt(0.95)), abs=1e-3)
    assert math.isinf(non_saturated_width(Activation("relu")))
    assert math.isinf(non_saturated_width(Activation("linear")))


def test_module_and_name_detection():
    assert activation_of_module(nn.LeakyReLU(0.3)) == Activation("leaky_relu", 0.3)
    assert activation_of_module(nn.Linear(2, 2)) is None
    assert activation_from_name("relu_") == Activation("relu")
    assert activation_from_name("expit") == Activation("sigmoid")
    assert activation_from_name("matmul") is None
    assert output_range(Activation("sigmoid")) == (0.0, 1.0)
    assert output_range(Activation("relu")) is None


class _TanhGELU(nn.Module):
    """GPT-2's gelu_new as Hugging Face writes it (NewGELUActivation): a class autoinit does not list."""

    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class _QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class _Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


def test_an_unlisted_activation_module_is_known_by_its_values():
    assert activation_of_module(_TanhGELU()) == Activation("gelu")
    assert activation_of_module(_QuickGELU()) == Activation("gelu")
    assert activation_of_module(_Swish()) == Activation("silu")


def test_modules_that_are_no_activation_stay_unknown():
    dropout = nn.Dropout(0.5)  # training mode: probed in eval (the identity), its flag and the RNG left alone
    state = torch.random.get_rng_state()
    assert activation_of_module(dropout) is None and dropout.training
    assert torch.equal(torch.random.get_rng_state(), state)
    for module in (nn.Identity(), nn.Softmax(-1), nn.Flatten(), nn.Linear(3, 3), nn.Sequential(nn.ReLU())):
        assert activation_of_module(module) is None, module
