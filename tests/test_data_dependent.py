import math

import pytest
import torch
from torch import nn

from autoinit import AutoInitError, init_model
from autoinit.schemes import yam_chow_

W_NS_SIGMOID = 2 * math.log((1 + math.sqrt(0.95)) / (1 - math.sqrt(0.95)))  # 8.7134


def _sigmoid_mlp():
    return nn.Sequential(nn.Linear(6, 400), nn.Sigmoid(), nn.Linear(400, 300), nn.Sigmoid(), nn.Linear(300, 3))


def test_yam_chow_first_layer_bound_and_bias_from_sample_box():
    lo = torch.tensor([0.0, -2.0, 1.0, 5.0, -1.0, 0.0])
    hi = torch.tensor([1.0, 2.0, 4.0, 6.0, 1.0, 10.0])
    x = lo + (hi - lo) * torch.rand(500, 6)
    x[0], x[1] = lo, hi  # make the observed box exactly [lo, hi]
    model = _sigmoid_mlp()
    report = init_model(model, "yam_chow", gain=1.0, sample_input=x, seed=0)
    w, b = model[0].weight.detach(), model[0].bias.detach()
    diag = math.sqrt(float(((hi - lo) ** 2).sum()))
    w_max = W_NS_SIGMOID / diag * math.sqrt(3 / 6)
    assert float(w.abs().max()) <= w_max * (1 + 1e-3)
    assert float(w.abs().max()) > 0.98 * w_max
    torch.testing.assert_close(b, -(w @ ((lo + hi) / 2)), atol=1e-5, rtol=1e-5)  # per output row
    assert report["0.weight"].scheme == "yam_chow"


def test_yam_chow_hidden_layer_uses_sigmoid_range():
    model = _sigmoid_mlp()
    init_model(model, "yam_chow", gain=0.7, sample_input=torch.randn(64, 6), seed=0)
    w, b = model[2].weight.detach(), model[2].bias.detach()
    w_max = 0.7 * W_NS_SIGMOID / math.sqrt(400) * math.sqrt(3 / 400)  # box [0,1]^400
    assert float(w.abs().max()) == pytest.approx(w_max, rel=0.01)
    torch.testing.assert_close(b, -0.5 * w.sum(1), atol=1e-5, rtol=1e-5)


def test_yam_chow_last_linear_layer_falls_back():
    model = _sigmoid_mlp()
    report = init_model(model, "yam_chow", sample_input=torch.randn(64, 6), seed=0, fallback="lecun_normal")
    assert report["4.weight"].scheme == "lecun_normal"
    assert "never saturates" in report["4.weight"].note


def test_yam_chow_conv_per_channel_box():
    w = torch.empty(5, 2, 3, 3)
    b = torch.empty(5)
    lo, hi = torch.tensor([0.0, -1.0]), torch.tensor([2.0, 1.0])
    w_max = yam_chow_(w, b, lo, hi, 8.0, 1.0)
    assert w_max == pytest.approx(8.0 / math.sqrt(9 * (4 + 4)) * math.sqrt(3 / 18))
    torch.testing.assert_close(b, -(w.sum((2, 3)) @ torch.tensor([1.0, 0.0])))


def test_lsuv_output_variance_within_tolerance():
    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(8) for m in (nn.Linear(64, 64), nn.ReLU())], nn.Linear(64, 4))
    x = torch.randn(256, 64) * 3
    report = init_model(model, "lsuv", gain=1.0, sample_input=x, seed=0, tol=0.02)
    h = x
    for layer in model:
        h = layer(h).detach()
        if isinstance(layer, nn.Linear):
            assert float(h.var()) == pytest.approx(1.0, abs=0.021)
    assert all(r.scheme == "lsuv" for r in report if r.name.endswith("weight"))


def test_lsuv_target_is_gain_squared():
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 36, 3))
    x = torch.randn(32, 3, 8, 8)
    init_model(model, "lsuv", gain=2.0, sample_input=x, seed=0, tol=0.01)
    assert float(model[0](x).var()) == pytest.approx(4.0, rel=0.011)


def test_data_schemes_without_data_are_one_line_errors():
    for scheme in ("lsuv", "yam_chow"):
        with pytest.raises(AutoInitError, match="sample_input"):
            init_model(_sigmoid_mlp(), scheme)


def test_yam_chow_needs_saturating_layers():
    relu = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(AutoInitError, match="saturating"):
        init_model(relu, "yam_chow", sample_input=torch.randn(4, 4))


def test_default_scheme_matches_pytorch_reset_and_scales():
    torch.manual_seed(5)
    reference = nn.Linear(30, 20)
    model = nn.Linear(30, 20)
    init_model(model, "default", gain=2.0, seed=5)
    torch.testing.assert_close(model.weight.detach(), 2 * reference.weight.detach())
    torch.testing.assert_close(model.bias.detach(), reference.bias.detach())


def test_data_pass_has_no_side_effects_on_rng_or_bn_stats():
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Dropout(0.5), nn.Tanh(), nn.Linear(16, 2))
    model.train()
    x = torch.randn(32, 8)
    state = torch.random.get_rng_state()
    init_model(model, "lsuv", sample_input=x, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.count_nonzero(model[1].running_mean) == 0 and model[1].num_batches_tracked == 0
    assert model.training and model[2].training
