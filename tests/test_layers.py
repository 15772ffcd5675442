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


class Conv1D(nn.Module):
    """Hugging Face's Conv1D as GPT-2 ships it (a copy: the structural rule needs no transformers): a Linear
    whose weight is stored transposed, (in, out), y = x·W + b."""

    def __init__(self, nf: int, nx: int) -> None:
        super().__init__()
        self.nf, self.nx = nf, nx
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).reshape(*x.shape[:-1], self.nf)


N_IN, N_OUT = 256, 128
X_IN = torch.randn(512, N_IN, generator=torch.Generator().manual_seed(0))


def _conv1d_net(act: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(Conv1D(N_OUT, N_IN), act, Conv1D(10, N_OUT))


@pytest.mark.parametrize(
    ("scheme", "options", "std"),
    [
        ("kaiming_normal", {}, math.sqrt(2 / N_IN)),  # fan_in = weight.shape[0], ReLU's a = √2
        ("kaiming_uniform", {}, math.sqrt(2 / N_IN)),
        ("kaiming_normal", {"mode": "fan_out"}, math.sqrt(2 / N_OUT)),
        ("xavier_normal", {}, math.sqrt(2 / (N_IN + N_OUT))),
        ("xavier_uniform", {}, math.sqrt(2 / (N_IN + N_OUT))),
        ("lecun_normal", {}, math.sqrt(1 / N_IN)),
        ("lecun_uniform", {}, math.sqrt(1 / N_IN)),
    ],
)
def test_transposed_linear_variance_schemes_use_its_fans_and_the_activation_after(scheme, options, std):
    net = _conv1d_net(nn.ReLU())
    report = init_model(net, scheme, sample_input=X_IN, seed=0, **options)
    row = report["0.weight"]
    assert (row.fan_in, row.fan_out, row.layer_type) == (N_IN, N_OUT, "Conv1D")
    assert "relu" in row.activation
    assert float(net[0].weight.detach().std()) == pytest.approx(std, rel=0.03)
    assert torch.count_nonzero(net[0].bias) == 0


def test_transposed_linear_orthogonal_is_an_isometry_of_its_input():
    net = _conv1d_net(nn.Tanh())
    init_model(net, "orthogonal", sample_input=X_IN, seed=0)
    w = net[0].weight.detach().double()  # (in, out) with in > out: its columns orthonormal × a, a = 5/3
    torch.testing.assert_close(w.T @ w, (5 / 3) ** 2 * torch.eye(N_OUT, dtype=torch.double), atol=1e-5, rtol=0)
    init_model(net, "delta_orthogonal", sample_input=X_IN, seed=1)  # not a conv: plain orthogonal
    w = net[0].weight.detach().double()
    torch.testing.assert_close(w.T @ w, (5 / 3) ** 2 * torch.eye(N_OUT, dtype=torch.double), atol=1e-5, rtol=0)


def test_transposed_linear_lsuv_reaches_unit_output_variance():
    net = _conv1d_net(nn.ReLU())
    report = init_model(net, "lsuv", sample_input=X_IN, seed=0, tol=0.05)
    assert report["0.weight"].scheme == "lsuv" and report["2.weight"].scheme == "lsuv"
    with torch.no_grad():
        h = net[0](X_IN)
        out = net[2](net[1](h))
    assert float(h.var()) == pytest.approx(1.0, rel=0.05)
    assert float(out.var()) == pytest.approx(1.0, rel=0.05)


def test_transposed_linear_yam_chow_bias_centres_each_output_on_the_input_box():
    net = _conv1d_net(nn.Sigmoid())
    report = init_model(net, "yam_chow", sample_input=X_IN, seed=0)
    assert report["0.weight"].scheme == "yam_chow" and report["0.bias"].scheme == "yam_chow"
    w, b = net[0].weight.detach().double(), net[0].bias.detach().double()
    lo, hi = X_IN.double().amin(0), X_IN.double().amax(0)
    # Per output j (a column of the stored (in, out) weight): b_j = −Σ_i W_ij·C_i; |W| ≤ w_max.
    torch.testing.assert_close(b, -(w.T @ ((lo + hi) / 2)), atol=1e-5, rtol=1e-5)
    w_max = 8.71 / float((hi - lo).norm()) * math.sqrt(3 / N_IN)
    assert float(w.abs().max()) <= w_max * 1.01 and float(w.abs().max()) >= 0.9 * w_max


def test_transposed_linear_block_is_a_view_of_the_weight():
    from autoinit.detect import from_module_order, is_transposed_linear
    from autoinit.layers import layer_blocks

    layer = Conv1D(N_OUT, N_IN)
    (block,) = layer_blocks("c", layer, from_module_order(layer))["c.weight"]
    assert tuple(block.tensor.shape) == (N_OUT, N_IN) and block.tensor.data_ptr() == layer.weight.data_ptr()
    assert (block.fan_in, block.fan_out) == (N_IN, N_OUT)
    # Recognised by structure; a module with an nf that does not describe its weight is not one.
    assert is_transposed_linear(layer) and not is_transposed_linear(nn.Linear(4, 4))
    odd = Conv1D(N_OUT, N_IN)
    odd.nf = N_IN
    assert not is_transposed_linear(odd)


@pytest.mark.parametrize(("head", "bias"), [("zero", 0.0), ("prior", -math.log(10))])
def test_transposed_linear_head(head, bias):
    net = _conv1d_net(nn.ReLU())
    report = init_model(net, "kaiming_normal", sample_input=X_IN, seed=0, head=head)
    assert "classifier head" in report["2.weight"].residual
    assert torch.count_nonzero(net[2].weight) == 0 and torch.count_nonzero(net[0].weight) > 0
    assert torch.equal(net[2].bias.detach(), torch.full((10,), bias))  # ten classes: the bias's length


def test_hugging_face_conv1d_is_a_transposed_linear():
    pytorch_utils = pytest.importorskip("transformers.pytorch_utils")
    from autoinit.detect import is_transposed_linear

    assert is_transposed_linear(pytorch_utils.Conv1D(N_OUT, N_IN))
