import math

import pytest
import torch
from torch import nn

from autoinit import init_model


def test_lstm_gate_blocks_each_initialized_as_own_matrix():
    lstm = nn.LSTM(300, 200, num_layers=2, bidirectional=True)
    report = init_model(lstm, "xavier_normal", seed=0, forget_bias=1.0)
    for suffix in ("l0", "l0_reverse", "l1", "l1_reverse"):
        w_ih = getattr(lstm, f"weight_ih_{suffix}").detach()
        n_in = w_ih.shape[1]
        for k in range(4):
            block = w_ih[k * 200 : (k + 1) * 200]
            assert float(block.std()) == pytest.approx(math.sqrt(2 / (n_in + 200)), rel=0.02)
        w_hh = getattr(lstm, f"weight_hh_{suffix}").detach().double()
        for k in range(4):
            block = w_hh[k * 200 : (k + 1) * 200]
            torch.testing.assert_close(block @ block.T, torch.eye(200, dtype=torch.double), atol=1e-5, rtol=0)
        b_ih = getattr(lstm, f"bias_ih_{suffix}").detach()
        b_hh = getattr(lstm, f"bias_hh_{suffix}").detach()
        effective = b_ih + b_hh  # PyTorch adds the two bias vectors
        assert torch.equal(effective[200:400], torch.ones(200))
        assert torch.count_nonzero(effective[:200]) == 0 and torch.count_nonzero(effective[400:]) == 0
    assert report["weight_ih_l1_reverse"].fan_in == 400  # bidirectional: input is 2·hidden
    assert "f:sigmoid" in report["weight_ih_l0"].activation and "g:tanh" in report["weight_ih_l0"].activation


def test_lstm_gate_gain_follows_gate_activation():
    lstm = nn.LSTM(400, 300)
    init_model(lstm, "kaiming_normal", seed=0)
    w = lstm.weight_ih_l0.detach()
    assert float(w[:300].std()) == pytest.approx(1 / math.sqrt(400), rel=0.02)  # i: sigmoid, a=1
    assert float(w[600:900].std()) == pytest.approx(5 / 3 / math.sqrt(400), rel=0.02)  # g: tanh, a=5/3


def test_gru_and_rnn_blocks():
    gru = nn.GRU(50, 40)
    report = init_model(gru, "orthogonal", seed=0)
    assert report["weight_ih_l0"].activation == "r:sigmoid z:sigmoid n:tanh"
    rnn = nn.RNN(30, 20, nonlinearity="relu")
    report = init_model(rnn, "kaiming_normal", seed=0, recurrent="scheme")
    assert report["weight_hh_l0"].scheme == "kaiming_normal"


def test_multihead_attention_qkv_are_separate_matrices():
    mha = nn.MultiheadAttention(256, 8)
    init_model(mha, "orthogonal", seed=0)
    w = mha.in_proj_weight.detach().double()
    for k in range(3):
        block = w[k * 256 : (k + 1) * 256]
        torch.testing.assert_close(block @ block.T, torch.eye(256, dtype=torch.double), atol=1e-5, rtol=0)
    # as one 768x256 matrix it would have orthonormal columns instead, entries of std 1/sqrt(768)
    assert float(w.std()) == pytest.approx(1 / math.sqrt(256), rel=0.02)


def test_multihead_attention_with_kdim_uses_separate_projections():
    mha = nn.MultiheadAttention(64, 4, kdim=32, vdim=48)
    report = init_model(mha, "xavier_normal", seed=0)
    assert report["k_proj_weight"].fan_in == 32 and report["v_proj_weight"].fan_in == 48
    assert report["k_proj_weight"].std == pytest.approx(math.sqrt(2 / 96), rel=0.06)


def test_norm_layers_get_one_and_zero():
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.BatchNorm1d(8), nn.GroupNorm(2, 8))
    for m in model[1:]:
        nn.init.normal_(m.weight)
        nn.init.normal_(m.bias)
    init_model(model, "kaiming_normal", seed=0)
    for m in model[1:]:
        assert torch.equal(m.weight.detach(), torch.ones(8)) and torch.equal(m.bias.detach(), torch.zeros(8))


def test_bias_std_option():
    model = nn.Linear(10, 20000)
    init_model(model, "lecun_normal", seed=0, bias_std=0.05)
    assert float(model.bias.detach().std()) == pytest.approx(0.05, rel=0.02)
